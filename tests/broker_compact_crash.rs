//! `kill -9` of the broker while its cleaner compacts, many rounds: an idempotent librdkafka
//! producer writes keyed records without pause to a compacted topic with 4 KiB segments and a
//! dirty ratio of 0.01, and the broker starts a cleaner pass every 100 ms, so a clean is running
//! (or its files are half written, half renamed) at most moments; the broker is killed at a
//! random moment, restarted (1000 keys: each pass rewrites some 50 segments, so the cleaner is
//! busy most of the time and most kills land inside a clean), and a fresh consumer reads the whole log: for every key, the value
//! read is the latest one acknowledged before the kill or a later one sent for that key, never
//! an older one and never a lost key. The swap's own failpoints are in tests/storage_compact.rs;
//! this is the same promise through the whole broker and a real client.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::broker::Broker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "table";
const KEYS: u64 = 1000;
const ROUNDS: usize = 15;

/// Per key, the highest sequence number the broker acknowledged (record `seq` has key
/// `seq % KEYS`, so per key the sequence numbers grow in send order).
#[derive(Clone, Default)]
struct Acks(Arc<Mutex<BTreeMap<u64, u64>>>);

impl ClientContext for Acks {}
impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if let Ok(m) = r {
            if let Some(seq) = m.payload().and_then(seq_of) {
                let mut acks = self.0.lock().expect("acks");
                let e = acks.entry(seq % KEYS).or_insert(seq);
                *e = (*e).max(seq);
            }
        }
    }
}

/// The sequence number in a value `v-{seq}-xxx...`.
fn seq_of(value: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(value).ok()?;
    s.strip_prefix("v-")?.split('-').next()?.parse().ok()
}

/// A small deterministic generator for the kill moments (xorshift).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn create_topic(b: &Broker) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("admin");
    let t = NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", "4096")
        .set("min.cleanable.dirty.ratio", "0.01");
    let r = futures_lite::future::block_on(admin.create_topics([&t], &AdminOptions::new()))
        .expect("create");
    for x in r {
        x.expect("created");
    }
}

/// The latest sequence number of each key in the whole log, read by a fresh consumer up to the
/// high watermark of the moment; with the number of records read and that high watermark.
fn latest_per_key(b: &Broker) -> (BTreeMap<u64, u64>, i64, i64) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "crash-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let (_, high) = c
        .fetch_watermarks(TOPIC, 0, Duration::from_secs(20))
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .expect("offset");
    c.assign(&tpl).expect("assign");
    let mut latest = BTreeMap::new();
    let mut last = -1;
    let mut records = 0;
    let start = Instant::now();
    while last < high - 1 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "read stalled at offset {last} of {high}: {}",
            b.log_tail(20)
        );
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("message");
            assert!(m.offset() > last, "offsets only increase");
            last = m.offset();
            let seq = m
                .payload()
                .and_then(seq_of)
                .expect("a value written by this test");
            let key = String::from_utf8_lossy(m.key().expect("keyed")).to_string();
            assert_eq!(
                key,
                format!("k{}", seq % KEYS),
                "offset {last}: key and value match"
            );
            latest.insert(seq % KEYS, seq);
            records += 1;
        }
    }
    (latest, records, high)
}

#[test]
fn kill_9_during_background_cleans_loses_no_acknowledged_latest_value() {
    // STRATA_KEEP_DATA=1 keeps the data folder (and the broker's log beside it) for a
    // post-mortem of the segment files; STRATA_CRASH_ROUNDS runs more (or fewer) kills.
    let keep = std::env::var_os("STRATA_KEEP_DATA").is_some();
    let dir = tempfile::Builder::new()
        .disable_cleanup(keep)
        .tempdir()
        .expect("tempdir");
    if keep {
        eprintln!("data kept in {}", dir.path().display());
    }
    let rounds = std::env::var("STRATA_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    let data = dir.path().join("data");
    let mut b = Broker::start(&data, &["--log-retention-check-interval-ms", "100"]);
    create_topic(&b);
    let acks = Acks::default();
    let p: ThreadedProducer<Acks> = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "100")
        .create_with_context(acks.clone())
        .expect("producer");
    let p = Arc::new(p);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = std::thread::spawn({
        let (p, stop) = (p.clone(), stop.clone());
        move || {
            let pad = "x".repeat(150);
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("k{}", seq % KEYS);
                let value = format!("v-{seq}-{pad}");
                match p.send(BaseRecord::to(TOPIC).key(&key).payload(&value)) {
                    Ok(()) => seq += 1,
                    // Queue full while the broker is down: wait for it.
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
                // About 1000 records (190 KB, 45 segments) a second: enough that a clean is
                // due at every pass, few enough that the debug build's cleaner keeps up.
                if seq % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    });
    let mut rng = Rng(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
        | 1);
    let started = Instant::now();
    for round in 0..rounds {
        std::thread::sleep(Duration::from_millis(300 + rng.below(1200)));
        // What the broker acknowledged before it dies.
        let acked = acks.0.lock().expect("acks").clone();
        b.kill9();
        b.start_again();
        let (read, _, _) = latest_per_key(&b);
        let lost: Vec<(u64, u64, Option<u64>)> = acked
            .iter()
            .map(|(key, seq)| (*key, *seq, read.get(key).copied()))
            .filter(|(_, seq, got)| !got.is_some_and(|g| g >= *seq))
            .collect();
        if let Some((key, seq, got)) = lost.first() {
            // A second reader tells a read that skipped records (it finds them) from records
            // gone from the log (it does not either).
            let (again, _, _) = latest_per_key(&b);
            let found_again = lost
                .iter()
                .filter(|(k, s, _)| again.get(k).is_some_and(|g| g >= s))
                .count();
            panic!(
                "round {round}, key k{key}: acknowledged seq {seq} before the kill, read {got:?} \
                 ({} keys short; a second reader found {found_again} of them)\n{}",
                lost.len(),
                b.log_tail(30)
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let flushed = p.flush(Duration::from_secs(30));
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap_or_default();
    let count = |what: &str| {
        log.lines()
            .filter(|l| l.contains(what) && l.contains(TOPIC))
            .count()
    };
    let cleans = count(" cleaned ");
    // Kills that landed inside a clean: an unfinished copy rolled back, or a committed swap
    // finished, on the next open.
    let rolled_back = count("rolling back an unfinished clean");
    let rolled_forward = count("finishing an interrupted swap");
    let acked = acks.0.lock().expect("acks").clone();
    assert_eq!(acked.len() as u64, KEYS, "every key was acknowledged");
    // The cleaner kept up: cleans completed between the kills, and the log holds far fewer
    // records than were written.
    assert!(
        cleans >= rounds,
        "{cleans} cleans logged in {rounds} rounds"
    );
    assert!(
        rolled_back + rolled_forward > 0,
        "no kill landed inside a clean"
    );
    let (read, records, high) = latest_per_key(&b);
    assert!(
        records < high / 2,
        "{records} records left of {high} offsets"
    );
    if flushed.is_ok() {
        assert_eq!(
            read, acked,
            "after the last flush, the latest value of every key"
        );
    }
    eprintln!(
        "{rounds} kills in {:?}: {cleans} cleans completed, {rolled_back} interrupted cleans rolled back, {rolled_forward} swaps finished on open, {records} records left of {high} offsets",
        started.elapsed()
    );
}
