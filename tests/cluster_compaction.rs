//! Compaction of a replicated topic on a three-broker cluster of real processes (`--cores 1`
//! each, the cleaner started every 200 ms): a `compact` topic with three replicas gets many
//! updates of a few keys through librdkafka (acks=all).
//!
//! Checked: the segments shrink on the leader and on both followers (each replica cleans its
//! own log, below what its Raft group may still read back); a consumer reads the latest value
//! of every key; after the leader is killed with `kill -9` the two others keep taking and
//! serving updates; the killed broker, restarted, catches up (its own log holds the newest
//! values) and cleans too.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::broker::{bootstrap_all, start_cluster_with, Broker};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const TOPIC: &str = "compacted";
const KEYS: usize = 10;

fn logs(brokers: &[Broker]) -> String {
    brokers
        .iter()
        .map(|b| b.log_tail(30))
        .collect::<Vec<_>>()
        .join("\n----\n")
}

fn create_topic(bootstrap: &str, brokers: &[Broker]) {
    let start = Instant::now();
    loop {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .expect("admin");
        let t = NewTopic::new(TOPIC, 1, TopicReplication::Fixed(3))
            .set("cleanup.policy", "compact")
            .set("segment.bytes", "16384")
            .set("min.cleanable.dirty.ratio", "0.01");
        let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        match futures_lite::future::block_on(admin.create_topics([&t], &opts)).as_deref() {
            Ok([Ok(_)]) => return,
            other => {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "cannot create the topic: {other:?}\n{}",
                    logs(brokers)
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

fn leader(bootstrap: &str) -> Option<i32> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .ok()?;
    let md = c.fetch_metadata(Some(TOPIC), Duration::from_secs(5)).ok()?;
    let p = md.topics().first()?.partitions().first()?.leader();
    (p >= 0).then_some(p)
}

/// Bytes of the batches in the partition's segment files in a broker's data dir (the files
/// themselves are allocated ahead of their writes).
fn segment_bytes(data_dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(data_dir.join(format!("{TOPIC}-0"))) else {
        return 0;
    };
    let mut total = 0u64;
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().ends_with(".log") {
            continue;
        }
        let Ok(bytes) = std::fs::read(e.path()) else {
            continue;
        };
        let mut at = 0usize;
        // Each batch: base offset (8), then its length (4) after which `length` bytes follow.
        while let Some(len) = bytes.get(at + 8..at + 12) {
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            if len <= 0 || at + 12 + len as usize > bytes.len() {
                break;
            }
            at += 12 + len as usize;
        }
        total += at as u64;
    }
    total
}

/// Whether a broker's own segment files hold `value` (records are stored uncompressed).
fn holds(data_dir: &Path, value: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(data_dir.join(format!("{TOPIC}-0"))) else {
        return false;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .any(|bytes| bytes.windows(value.len()).any(|w| w == value.as_bytes()))
}

/// Counts failed deliveries.
#[derive(Default)]
struct Failures(AtomicUsize);
impl ClientContext for Failures {}
impl ProducerContext for Failures {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = r {
            eprintln!("delivery failed: {e}");
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Sends `rounds` updates of every key (acks=all), the value naming the key and the round;
/// returns the newest value of each key once all are acknowledged.
fn produce(bootstrap: &str, tag: &str, rounds: usize) -> BTreeMap<String, String> {
    let p: BaseProducer<Failures> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "60000")
        .set("retry.backoff.ms", "100")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create_with_context(Failures::default())
        .expect("producer");
    let mut latest = BTreeMap::new();
    let pad = "x".repeat(100);
    for r in 0..rounds {
        for k in 0..KEYS {
            let key = format!("key-{k}");
            let value = format!("{tag}-{r}-{key}-{pad}");
            let mut record = BaseRecord::<String, String>::to(TOPIC)
                .key(&key)
                .payload(&value);
            loop {
                match p.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        record = back;
                        p.poll(Duration::from_millis(10));
                    }
                }
            }
            p.poll(Duration::ZERO);
            latest.insert(key, value);
        }
        if r % 20 == 0 {
            // Each stretch of updates its own batches, so segments roll and are cleaned.
            p.flush(Duration::from_secs(60)).expect("flush");
        }
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    assert_eq!(
        p.context().0.load(Ordering::SeqCst),
        0,
        "every update acknowledged"
    );
    latest
}

/// Reads the partition from its start to the high watermark: the newest value of each key.
fn read_latest(bootstrap: &str) -> BTreeMap<String, String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "checker")
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .expect("consumer");
    let start = Instant::now();
    let hw = loop {
        match c.fetch_watermarks(TOPIC, 0, Duration::from_secs(5)) {
            Ok((_, hw)) => break hw,
            Err(e) => {
                assert!(start.elapsed() < Duration::from_secs(60), "watermarks: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let mut latest = BTreeMap::new();
    let mut at = 0;
    while at + 1 < hw {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out reading back at offset {at} of {hw}"
        );
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            at = m.offset();
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).to_string();
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
            latest.insert(key, value);
        }
    }
    latest
}

/// Waits until every broker in `which` holds at most `limit` bytes of segments.
fn wait_cleaned(brokers: &[Broker], which: &[usize], limit: u64) {
    let start = Instant::now();
    loop {
        let sizes: Vec<u64> = which
            .iter()
            .map(|&i| segment_bytes(&brokers[i].data_dir))
            .collect();
        if sizes.iter().all(|s| *s <= limit) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "segments not cleaned to {limit} bytes: {sizes:?}\n{}",
            logs(brokers)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_replicated_compacted_topic_is_cleaned_on_every_replica_and_survives_the_leader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut brokers =
        start_cluster_with(dir.path(), 3, &["--log-retention-check-interval-ms", "200"]);
    let all = bootstrap_all(&brokers);
    create_topic(&all, &brokers);

    // 300 updates of each of 10 keys: ~400 KiB, ~25 segments of 16 KiB per replica.
    let expected = produce(&all, "one", 300);
    let produced = 300 * KEYS as u64 * 150;
    wait_cleaned(&brokers, &[0, 1, 2], produced / 4);
    let sizes: Vec<u64> = brokers.iter().map(|b| segment_bytes(&b.data_dir)).collect();
    eprintln!("segment bytes after cleaning: {sizes:?} (about {produced} produced)");
    assert_eq!(read_latest(&all), expected);

    // The leader dies; the others go on taking and serving updates.
    let victim = (leader(&all).expect("a leader") - 1) as usize;
    brokers[victim].kill9();
    let others: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    let rest: String = others
        .iter()
        .map(|&i| brokers[i].bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let expected = produce(&rest, "two", 100);
    assert_eq!(read_latest(&rest), expected);
    wait_cleaned(&brokers, &others, produced / 4);

    // Back, the killed broker catches up from a compacted log, then cleans its own.
    brokers[victim].start_again();
    let start = Instant::now();
    while !expected
        .values()
        .all(|v| holds(&brokers[victim].data_dir, v))
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the restarted broker did not catch up\n{}",
            logs(&brokers)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let expected = produce(&all, "three", 50);
    assert_eq!(read_latest(&all), expected);
    wait_cleaned(&brokers, &[0, 1, 2], produced / 4);
}
