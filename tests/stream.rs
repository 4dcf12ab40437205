//! `strata stream` end to end: the attendance demo feeds a topic, queries compute the running
//! total and the attendees per venue per minute, and the results are checked against the
//! ground truth the producer printed — also after the processor was killed with SIGKILL in the
//! middle of the stream and restarted from its checkpoint.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::broker::Broker;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

const EVENTS: u64 = 60_000;

fn strata(b: &Broker) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.env("STRATA_BROKERS", b.bootstrap())
        .env("RUST_LOG", "info");
    c
}

/// Produces the demo stream and returns the producer's ground truth.
/// A broker whose auto-created topics have 4 partitions, with the given initial rebalance delay.
fn attendance_broker(dir: &std::path::Path, rebalance_delay_ms: &str) -> Broker {
    Broker::start(
        &dir.join("data"),
        &[
            "--default-partitions",
            "4",
            "--group-initial-rebalance-delay-ms",
            rebalance_delay_ms,
        ],
    )
}

fn demo(b: &Broker) -> Value {
    demo_part(b, 0, EVENTS)
}

/// Events `skip..skip + count` of the deterministic attendance stream, and their ground truth.
fn demo_part(b: &Broker, skip: u64, count: u64) -> Value {
    let out = strata(b)
        .args([
            "demo",
            "attendance",
            "--rate",
            "0",
            "--skip",
            &skip.to_string(),
            "--count",
            &count.to_string(),
        ])
        .args([
            "--start-time",
            "1700000000000",
            "--seed",
            "42",
            "--venues",
            "6",
        ])
        .output()
        .expect("demo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ground truth JSON")
}

/// The ground truth of two consecutive parts of the stream.
fn merge_truths(a: &Value, b: &Value) -> Value {
    let total = |v: &Value| v["total_attendees"].as_u64().expect("total");
    let mut minutes: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for part in [a, b] {
        for (venue, per) in part["per_venue_minute"].as_object().expect("venues") {
            for (minute, n) in per.as_object().expect("minutes") {
                *minutes
                    .entry(venue.clone())
                    .or_default()
                    .entry(minute.clone())
                    .or_default() += n.as_u64().expect("n");
            }
        }
    }
    serde_json::json!({
        "total_attendees": total(a) + total(b),
        "per_venue_minute": minutes,
    })
}

/// A running `strata stream` and the JSON lines it printed.
struct Stream {
    child: Child,
    printed: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
}

impl Stream {
    fn start(b: &Broker, args: &[&str]) -> Stream {
        Self::start_idle(b, args, "4s")
    }

    /// Started with `--exit-when-idle idle`.
    fn start_idle(b: &Broker, args: &[&str], idle: &str) -> Stream {
        let mut child = strata(b)
            .arg("stream")
            .args(args)
            .args(["--print", "--exit-when-idle", idle])
            .args(["--emit-interval", "100ms", "--checkpoint-interval", "300ms"])
            // The killed run's member blocks the next rebalance until its session expires.
            .args(["-X", "session.timeout.ms=6000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn stream");
        let printed: Arc<Mutex<Vec<Value>>> = Arc::default();
        let stderr: Arc<Mutex<String>> = Arc::default();
        let (out, err) = (
            child.stdout.take().expect("out"),
            child.stderr.take().expect("err"),
        );
        let sink = printed.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    sink.lock().expect("lock").push(v);
                }
            }
        });
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().expect("lock");
                s.push_str(&line);
                s.push('\n');
            }
        });
        Stream {
            child,
            printed,
            stderr,
        }
    }

    fn last_count(&self) -> u64 {
        self.printed
            .lock()
            .expect("lock")
            .last()
            .and_then(|v| v["count"].as_u64())
            .unwrap_or(0)
    }

    fn wait(mut self) -> String {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                std::thread::sleep(Duration::from_millis(200));
                let err = self.stderr.lock().expect("lock").clone();
                assert!(status.success(), "stream failed:\n{err}");
                return err;
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "stream did not finish"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The latest upsert of every output key (a compacted view of the output topic).
fn results(b: &Broker, topic: &str) -> BTreeMap<String, Value> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "results-reader")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let (_, end) = c
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let mut latest = BTreeMap::new();
    let mut next = 0;
    let start = Instant::now();
    while next < end {
        assert!(start.elapsed() < Duration::from_secs(60), "reading {topic}");
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.expect("message");
            next = m.offset() + 1;
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).to_string();
            match m.payload() {
                Some(v) => latest.insert(key, serde_json::from_slice(v).expect("result JSON")),
                None => latest.remove(&key),
            };
        }
    }
    std::mem::forget(c); // see broker_offsets.rs: rust-rdkafka's drop may block
    latest
}

/// Records in a query's checkpoint topic.
fn checkpoints(b: &Broker, name: &str) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("consumer");
    let end = c
        .fetch_watermarks(
            &format!("__strata_stream_{name}"),
            0,
            Duration::from_secs(10),
        )
        .map(|(_, hi)| hi)
        .unwrap_or(0);
    std::mem::forget(c);
    end
}

#[test]
fn running_total_is_exact_after_kill_9_and_windows_match_the_ground_truth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = attendance_broker(dir.path(), "0");
    // Two phases, the kill between them, so that it lands mid-stream however fast the machine.
    let half = EVENTS / 2;
    let first_half = demo_part(&b, 0, half);
    let total_args = [
        "--name",
        "total",
        "--topic",
        "attendance",
        "--value",
        "json:attendees",
        "--agg",
        "sum,count",
        "--event-time",
        "json:event_time",
    ];

    // Killed mid-stream, once it has checkpointed, then restarted: it resumes from there.
    let first = Stream::start(&b, &total_args);
    let start = Instant::now();
    while first.last_count() < half || checkpoints(&b, "total") == 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut first = first;
    first.child.kill().expect("kill -9");
    first.child.wait().expect("reap");
    let at_kill = first.last_count();
    assert!(
        at_kill < EVENTS,
        "killed before the end ({at_kill} of {EVENTS})"
    );
    let second_half = demo_part(&b, half, EVENTS - half);
    let truth = merge_truths(&first_half, &second_half);
    let log = Stream::start(&b, &total_args).wait();
    assert!(
        log.contains("resumed from checkpoint"),
        "restart did not resume:\n{log}"
    );

    // The latest upserts, summed over input partitions, are the exact totals.
    let out = results(&b, "total-results");
    let sum: f64 = out.values().map(|v| v["sum"].as_f64().unwrap_or(0.0)).sum();
    let count: u64 = out.values().map(|v| v["count"].as_u64().unwrap_or(0)).sum();
    assert_eq!(count, EVENTS, "each record counted once: {out:?}");
    assert_eq!(
        sum as u64,
        truth["total_attendees"].as_u64().expect("truth")
    );

    // Attendees per venue per minute, from final tumbling windows.
    let args = [
        "--name",
        "venues",
        "--topic",
        "attendance",
        "--key",
        "json:venue",
        "--value",
        "json:attendees",
        "--agg",
        "sum,count,mean,distinct",
        "--distinct-of",
        "json:gate",
        "--window",
        "tumbling:1m",
        "--allowed-lateness",
        "5s",
        "--event-time",
        "json:event_time",
    ];
    Stream::start(&b, &args).wait();
    let mut got: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for v in results(&b, "venues-results").values() {
        let key = (
            v["key"].as_str().expect("key").to_string(),
            v["window_start"].as_i64().expect("window"),
        );
        *got.entry(key).or_default() += v["sum"].as_f64().expect("sum") as u64;
        assert!(
            v["distinct"].as_u64().is_some_and(|d| (1..=6).contains(&d)),
            "6 gates: {v}"
        );
    }
    let mut want: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for (venue, minutes) in truth["per_venue_minute"].as_object().expect("truth") {
        for (minute, n) in minutes.as_object().expect("minutes") {
            want.insert(
                (venue.clone(), minute.parse().expect("minute")),
                n.as_u64().expect("n"),
            );
        }
    }
    assert_eq!(got, want, "per venue per minute");
}

#[test]
fn two_processes_split_the_partitions_and_one_takes_over_when_the_other_is_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = attendance_broker(dir.path(), "1000");
    let truth = demo(&b);
    let args = [
        "--name",
        "split",
        "--topic",
        "attendance",
        "--key",
        "json:venue",
        "--value",
        "json:attendees",
        "--agg",
        "sum,count",
        "--event-time",
        "json:event_time",
    ];
    // The survivor must outwait the killed member's 6 s session before it may call it done.
    let (a, mut killed) = (
        Stream::start_idle(&b, &args, "10s"),
        Stream::start_idle(&b, &args, "10s"),
    );
    let start = Instant::now();
    while a.last_count() == 0 || killed.last_count() == 0 || checkpoints(&b, "split") == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "both members should get partitions"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    killed.child.kill().expect("kill -9");
    killed.child.wait().expect("reap");
    a.wait();
    // Every venue's total over the partitions equals the ground truth: the survivor resumed
    // the killed member's partitions from their checkpoints, nothing counted twice or lost.
    let mut got: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for v in results(&b, "split-results").values() {
        let e = got
            .entry(v["key"].as_str().expect("key").to_string())
            .or_default();
        e.0 += v["sum"].as_f64().expect("sum") as u64;
        e.1 += v["count"].as_u64().expect("count");
    }
    let count: u64 = got.values().map(|(_, c)| c).sum();
    assert_eq!(count, EVENTS, "{got:?}");
    for (venue, n) in truth["per_venue"].as_object().expect("truth") {
        assert_eq!(got.get(venue).map(|(s, _)| *s), n.as_u64(), "venue {venue}");
    }
}
