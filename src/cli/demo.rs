//! `strata demo attendance`: a realistic stream of attendance events — JSON records
//! `{"event_time": ms, "venue": "...", "gate": n, "attendees": n}` keyed by venue, with event
//! times a little out of order as they would be from many gates — and, when it stops, the
//! ground truth (total attendees, per venue, per venue and minute) on stdout as JSON, so a
//! query's results can be checked against it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::json;

use super::client_config;

/// Largest out-of-order shift of an event's time.
const MAX_JITTER_MS: u64 = 2000;

#[derive(Subcommand)]
pub enum DemoCommand {
    /// Produce attendance events.
    Attendance {
        #[arg(long, default_value = "attendance")]
        topic: String,
        /// Events per second (0: as fast as the broker takes them).
        #[arg(long, default_value_t = 100)]
        rate: u64,
        /// Stop after this many events (0: run until interrupted).
        #[arg(long, default_value_t = 0)]
        count: u64,
        #[arg(long, default_value_t = 8)]
        venues: u32,
        /// Seed of the generator (the same seed and start time give the same stream).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Event time of the first event in ms (default: now); with it, event times advance by
        /// --spacing-ms per event instead of following the clock.
        #[arg(long)]
        start_time: Option<i64>,
        #[arg(long, default_value_t = 10)]
        spacing_ms: i64,
        /// Generate and drop this many events first: with the same seed and start time, the
        /// run continues a stream an earlier `--count` run stopped (the ground truth printed
        /// covers only the events sent).
        #[arg(long, default_value_t = 0)]
        skip: u64,
    },
}

/// xorshift64*: small, seedable, good enough for demo data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn run(brokers: &str, cmd: DemoCommand) -> Result<()> {
    let DemoCommand::Attendance {
        topic,
        rate,
        count,
        venues,
        seed,
        start_time,
        spacing_ms,
        skip,
    } = cmd;
    if venues == 0 {
        bail!("--venues must be at least 1");
    }
    let p: BaseProducer = client_config(brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .context("producer")?;
    let mut rng = Rng(seed.max(1));
    let started = Instant::now();
    let mut total: u64 = 0;
    let mut per_venue: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_minute: BTreeMap<String, BTreeMap<i64, u64>> = BTreeMap::new();
    let mut i: u64 = 0;
    while count == 0 || i < skip + count {
        let sent = i.saturating_sub(skip);
        if rate > 0 && i >= skip {
            let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                p.poll(wait);
            }
        }
        let venue = format!("venue-{}", rng.below(venues as u64));
        let attendees = 1 + rng.below(40);
        let base = start_time.map_or_else(now_ms, |s| s + i as i64 * spacing_ms);
        let event_time = base - rng.below(MAX_JITTER_MS) as i64;
        let value = json!({
            "event_time": event_time,
            "venue": venue,
            "gate": rng.below(6),
            "attendees": attendees,
        })
        .to_string();
        if i < skip {
            i += 1;
            continue;
        }
        super::send_waiting(&p, BaseRecord::to(&topic).key(&venue).payload(&value))?;
        p.poll(Duration::ZERO);
        total += attendees;
        *per_venue.entry(venue.clone()).or_default() += attendees;
        *per_minute
            .entry(venue)
            .or_default()
            .entry(event_time.div_euclid(60_000) * 60_000)
            .or_default() += attendees;
        i += 1;
        if rate > 0 && (i - skip) % rate == 0 {
            eprintln!("{} events, {total} attendees so far", i - skip);
        }
    }
    p.flush(Duration::from_secs(60))
        .context("not every event was acknowledged")?;
    println!(
        "{}",
        json!({
            "records": i - skip,
            "total_attendees": total,
            "per_venue": per_venue,
            "per_venue_minute": per_minute,
        })
    );
    Ok(())
}
