//! DeleteRecords and DescribeLogDirs on the real broker, over the wire and through
//! librdkafka's admin client: the log start moves (durably: through a restart and kill -9),
//! segments wholly below it go, reads below it are out of range, ListOffsets earliest returns
//! it; Kafka's errors for compact-only topics, offsets beyond the high watermark and unknown
//! partitions; partition sizes per log dir. Compaction by the broker's cleaner, read by
//! librdkafka across gaps and through batches stamped with a KIP-534 delete horizon.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::broker::Broker;
use common::wire::{request, roundtrip};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const POLICY_VIOLATION: i16 = 44;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn create(b: &Broker, topic: &str, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("admin");
    let mut t = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let r = futures_lite::future::block_on(admin.create_topics([&t], &AdminOptions::new()))
        .expect("create");
    for x in r {
        x.expect("created");
    }
}

/// `n` keyed records, flushed every 10 so they land in several batches (and segments).
fn produce(b: &Broker, topic: &str, n: usize) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    for i in 0..n {
        let key = format!("k{}", i % 7);
        let value = format!("value-{i:04}-{}", "x".repeat(200));
        p.send(BaseRecord::to(topic).key(&key).payload(&value))
            .expect("send");
        if i % 10 == 9 {
            p.flush(Duration::from_secs(30)).expect("flush");
        }
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

fn delete_records(
    s: &mut TcpStream,
    version: i16,
    topic: &str,
    partition: i32,
    offset: i64,
) -> (i16, i64) {
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(partition)
                .with_offset(offset)])]);
    let r: DeleteRecordsResponse =
        roundtrip(s, &request(ApiKey::DeleteRecords, version, &req), version);
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.partition_index, partition);
    (p.error_code, p.low_watermark)
}

fn fetch_error(s: &mut TcpStream, topic: &str, offset: i64) -> i16 {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let r: FetchResponse = roundtrip(s, &request(ApiKey::Fetch, 11, &req), 11);
    r.responses[0].partitions[0].error_code
}

fn watermarks(b: &Broker, topic: &str) -> (i64, i64) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("consumer");
    c.fetch_watermarks(topic, 0, Duration::from_secs(20))
        .expect("watermarks")
}

fn segment_files(dir: &Path) -> Vec<i64> {
    let mut v: Vec<i64> = std::fs::read_dir(dir)
        .expect("partition dir")
        .filter_map(|e| {
            let n = e.ok()?.file_name().to_string_lossy().to_string();
            n.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn delete_records_moves_the_log_start_durably_and_answers_as_kafka() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut b = Broker::start(&data, &[]);
    create(&b, "dr", &[("segment.bytes", "4096")]);
    produce(&b, "dr", 200);
    let pdir = data.join("dr-0");
    let before = segment_files(&pdir);
    assert!(before.len() > 5, "several segments: {before:?}");
    assert_eq!(watermarks(&b, "dr"), (0, 200));

    let mut s = b.connect();
    // A target in the middle of a segment: the log start moves exactly there.
    let target = before[3] + 2;
    assert_eq!(delete_records(&mut s, 2, "dr", 0, target), (0, target));
    let after = segment_files(&pdir);
    assert_eq!(
        after[0], before[3],
        "segments wholly below the log start are gone"
    );
    assert_eq!(
        watermarks(&b, "dr"),
        (target, 200),
        "ListOffsets earliest is the new log start"
    );
    assert_eq!(
        fetch_error(&mut s, "dr", 0),
        OFFSET_OUT_OF_RANGE,
        "below the log start"
    );
    assert_eq!(fetch_error(&mut s, "dr", target - 1), OFFSET_OUT_OF_RANGE);
    assert_eq!(fetch_error(&mut s, "dr", target), 0);

    // Never backwards; beyond the high watermark or negative: out of range, nothing changes.
    assert_eq!(delete_records(&mut s, 0, "dr", 0, 5), (0, target));
    assert_eq!(
        delete_records(&mut s, 1, "dr", 0, 201).0,
        OFFSET_OUT_OF_RANGE
    );
    assert_eq!(
        delete_records(&mut s, 1, "dr", 0, -7).0,
        OFFSET_OUT_OF_RANGE
    );
    assert_eq!(
        delete_records(&mut s, 2, "dr", 1, 5).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        delete_records(&mut s, 2, "nope", 0, 5).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(watermarks(&b, "dr").0, target);

    // Survives a clean restart.
    drop(s);
    b.restart();
    assert_eq!(watermarks(&b, "dr"), (target, 200), "after a restart");

    // Through librdkafka's admin client, then kill -9.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("admin");
    let mut list = TopicPartitionList::new();
    list.add_partition_offset("dr", 0, Offset::Offset(150))
        .expect("list");
    let r = futures_lite::future::block_on(admin.delete_records(&list, &AdminOptions::new()))
        .expect("delete records");
    let e = &r.elements()[0];
    assert!(e.error().is_ok(), "{:?}", e.error());
    assert_eq!(e.offset(), Offset::Offset(150));
    drop(admin);
    b.kill9();
    b.start_again();
    assert_eq!(watermarks(&b, "dr"), (150, 200), "after kill -9");
    let mut s = b.connect();
    assert_eq!(fetch_error(&mut s, "dr", 149), OFFSET_OUT_OF_RANGE);

    // -1: everything up to the high watermark; the log goes on from there.
    assert_eq!(delete_records(&mut s, 2, "dr", 0, -1), (0, 200));
    assert_eq!(
        segment_files(&pdir).len(),
        1,
        "only the active segment is left"
    );
    produce(&b, "dr", 5);
    assert_eq!(watermarks(&b, "dr"), (200, 205));
    drop(s);
    b.kill9();
    b.start_again();
    assert_eq!(watermarks(&b, "dr"), (200, 205), "after kill -9");
}

#[test]
fn delete_records_is_a_policy_violation_on_a_compact_only_topic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(&dir.path().join("data"), &[]);
    create(&b, "compacted", &[("cleanup.policy", "compact")]);
    create(&b, "both", &[("cleanup.policy", "compact,delete")]);
    create(&b, "dr-plain", &[]);
    produce(&b, "compacted", 10);
    produce(&b, "both", 10);
    let mut s = b.connect();
    assert_eq!(
        delete_records(&mut s, 2, "compacted", 0, 5).0,
        POLICY_VIOLATION
    );
    assert_eq!(watermarks(&b, "compacted"), (0, 10));
    assert_eq!(delete_records(&mut s, 2, "both", 0, 5), (0, 5));

    // A keyless record is refused on a compacted topic with INVALID_RECORD, as Kafka does.
    assert_eq!(produce_raw_keyless(&b, "compacted"), 87, "INVALID_RECORD");
    assert_eq!(
        watermarks(&b, "compacted"),
        (0, 10),
        "the keyless record was not appended"
    );
    assert_eq!(
        produce_raw_keyless(&b, "dr-plain"),
        0,
        "a delete topic takes it"
    );
}

/// A Produce v9 of one keyless record over the wire; its partition's error code.
fn produce_raw_keyless(b: &Broker, topic: &str) -> i16 {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let batch = strata::storage::batch::build_batch(0, 0, &[(None, b"v")]);
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(bytes::Bytes::from(batch)))])]);
    let mut s = b.connect();
    let r: ProduceResponse = roundtrip(&mut s, &request(ApiKey::Produce, 9, &req), 9);
    r.responses[0].partition_responses[0].error_code
}

fn describe(
    s: &mut TcpStream,
    version: i16,
    topics: Option<Vec<(&str, Vec<i32>)>>,
) -> DescribeLogDirsResponse {
    let req = DescribeLogDirsRequest::default().with_topics(topics.map(|ts| {
        ts.into_iter()
            .map(|(t, ps)| {
                DescribableLogDirTopic::default()
                    .with_topic(name(t))
                    .with_partitions(ps)
            })
            .collect()
    }));
    roundtrip(s, &request(ApiKey::DescribeLogDirs, version, &req), version)
}

fn sizes(r: &DescribeLogDirsResponse) -> Vec<(String, i32, i64)> {
    assert_eq!(r.results.len(), 1, "one log dir");
    let mut v: Vec<(String, i32, i64)> = r.results[0]
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                assert_eq!(p.offset_lag, 0);
                assert!(!p.is_future_key);
                (t.name.0.to_string(), p.partition_index, p.partition_size)
            })
        })
        .collect();
    v.sort();
    v
}

#[test]
fn describe_log_dirs_reports_every_partitions_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let b = Broker::start(&data, &["--cores", "2", "--default-partitions", "4"]);
    produce(&b, "sized", 40);
    let other_topic: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("producer");
    other_topic
        .send(BaseRecord::to("small").partition(0).key("k").payload("v"))
        .expect("send");
    other_topic.flush(Duration::from_secs(30)).expect("flush");

    let mut s = b.connect();
    for version in 1..=4 {
        let r = describe(&mut s, version, None);
        assert_eq!(r.results[0].error_code, 0);
        let log_dir = r.results[0].log_dir.to_string();
        assert_eq!(
            Path::new(&log_dir),
            std::fs::canonicalize(&data).expect("canonical")
        );
        if version >= 4 {
            assert!(r.results[0].total_bytes > 0 && r.results[0].usable_bytes > 0);
        }
        let all = sizes(&r);
        let sized: Vec<_> = all.iter().filter(|(t, _, _)| t == "sized").collect();
        assert_eq!(sized.len(), 4, "every partition, from every core: {all:?}");
        let total: i64 = sized.iter().map(|(_, _, n)| n).sum();
        assert!(
            total > 40 * 200,
            "{total} bytes for 40 records of 200+ bytes"
        );
        assert!(all
            .iter()
            .any(|(t, p, n)| t == "small" && *p == 0 && *n > 0));
    }
    // A filter: only what was asked for that exists.
    let r = describe(
        &mut s,
        4,
        Some(vec![("small", vec![0, 7]), ("nope", vec![0])]),
    );
    let only = sizes(&r);
    assert_eq!(only.len(), 1, "{only:?}");
    assert_eq!((only[0].0.as_str(), only[0].1), ("small", 0));
    // Sizes follow the data.
    let before = only[0].2;
    other_topic
        .send(
            BaseRecord::to("small")
                .partition(0)
                .key("k")
                .payload(&"y".repeat(5000)),
        )
        .expect("send");
    other_topic.flush(Duration::from_secs(30)).expect("flush");
    let r = describe(&mut s, 2, Some(vec![("small", vec![0])]));
    assert!(sizes(&r)[0].2 > before + 5000);
}

/// Reads partition 0 of `topic` from the beginning to `end` with librdkafka: (offset, key, value).
fn consume_all(b: &Broker, topic: &str, end: i64) -> Vec<(i64, String, Option<String>)> {
    consume_all_timed(b, topic, end)
        .into_iter()
        .map(|(o, k, v, _)| (o, k, v))
        .collect()
}

/// [`consume_all`], with each record's timestamp as librdkafka gives it.
fn consume_all_timed(
    b: &Broker,
    topic: &str,
    end: i64,
) -> Vec<(i64, String, Option<String>, Option<i64>)> {
    use rdkafka::message::Message;
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let start = std::time::Instant::now();
    loop {
        if out.last().is_some_and(|(o, _, _, _)| *o + 1 >= end) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "stalled after {:?}",
            out.last()
        );
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("message");
            let s = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).to_string());
            out.push((
                m.offset(),
                s(m.key()).unwrap_or_default(),
                s(m.payload()),
                m.timestamp().to_millis(),
            ));
        }
    }
    std::mem::forget(c); // see tests/broker_offsets.rs: the group consumer's drop can hang
    out
}

#[test]
fn a_compacted_topic_is_cleaned_by_the_broker_and_read_by_librdkafka_across_gaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start(&dir.path().join("data"), &[]);
    create(
        &b,
        "table",
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "4096"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    );
    produce(&b, "table", 300); // keys k0..k6
    let (_, end) = watermarks(&b, "table");
    let mut s = b.connect();
    let size = |s: &mut TcpStream| sizes(&describe(s, 4, Some(vec![("table", vec![0])])))[0].2;
    let before = size(&mut s);
    // The shard starts its cleaner every 30 s.
    let start = std::time::Instant::now();
    while size(&mut s) > before / 2 {
        assert!(
            start.elapsed() < Duration::from_secs(100),
            "not cleaned: {}",
            b.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let check = |recs: &[(i64, String, Option<String>)]| {
        let mut latest = std::collections::BTreeMap::new();
        for (o, k, v) in recs {
            latest.insert(k.clone(), (*o, v.clone()));
        }
        // produce() wrote record i with key k{i%7}: the latest of each key is among the last 7.
        for k in 0..7 {
            let (o, v) = &latest[&format!("k{k}")];
            let i = 293 + ((k + 7 - 293 % 7) % 7);
            assert_eq!(*o, i as i64, "k{k}");
            assert!(v
                .as_deref()
                .is_some_and(|v| v.starts_with(&format!("value-{i:04}"))));
        }
        assert!(recs.len() < 150, "{} records left of 300", recs.len());
        assert!(recs.windows(2).all(|w| w[1].0 > w[0].0));
    };
    let recs = consume_all(&b, "table", end);
    check(&recs);
    drop(s);
    b.kill9();
    b.start_again();
    check(&consume_all(&b, "table", end));
}

/// The batches stored in a partition's segment files (read from disk, the broker running).
fn stored_batches(dir: &Path) -> Vec<strata::storage::batch::BatchHeader> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("partition dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            let bytes = std::fs::read(f).expect("segment");
            strata::storage::batch::iter_batches(&bytes)
                .map(|(_, h)| h)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// KIP-534 and RETAIN_EMPTY with real clients: an idempotent librdkafka producer writes
/// records with their own timestamps and two tombstones; the broker's cleaner writes the delete
/// horizon into the tombstones' batches (seen in the files); librdkafka then reads every
/// record with the timestamp it was produced with, the tombstones as null values, and the
/// latest value of every other key.
#[test]
fn librdkafka_reads_tombstone_batches_stamped_with_a_delete_horizon() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(&dir.path().join("data"), &[]);
    create(
        &b,
        "kip534",
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "4096"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    );
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        - 600_000;
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    // Record i has key k{i%7} and timestamp t0 + i; k0 and k1 end as tombstones.
    let total = 400;
    for i in 0..total {
        let value = format!("value-{i:04}-{}", "x".repeat(200));
        let (key, tombstone) = match i {
            300 | 301 => (format!("k{}", i - 300), true),
            // After their tombstones, k0 and k1 are not written again.
            _ if i > 301 && i % 7 < 2 => ("k6".to_string(), false),
            _ => (format!("k{}", i % 7), false),
        };
        let mut r = BaseRecord::to("kip534").key(&key).timestamp(t0 + i as i64);
        if !tombstone {
            r = r.payload(&value);
        }
        p.send(r).expect("send");
        if i % 10 == 9 {
            p.flush(Duration::from_secs(30)).expect("flush");
        }
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    let (_, end) = watermarks(&b, "kip534");
    assert_eq!(end, total as i64);
    let part = dir.path().join("data").join("kip534-0");
    // The shard starts its cleaner every 30 s.
    let start = std::time::Instant::now();
    while !stored_batches(&part)
        .iter()
        .any(|h| h.delete_horizon().is_some())
    {
        assert!(
            start.elapsed() < Duration::from_secs(100),
            "no horizon written: {}",
            b.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let batches = stored_batches(&part);
    let horizon = batches
        .iter()
        .find_map(|h| h.delete_horizon())
        .expect("stamped");
    assert!(
        horizon > t0 + 86_000_000,
        "now + delete.retention.ms (1 day)"
    );
    assert!(
        batches.iter().all(|h| h.producer_id >= 0),
        "idempotent batches"
    );
    let recs = consume_all_timed(&b, "kip534", end);
    let mut latest = std::collections::BTreeMap::new();
    for (offset, key, value, timestamp) in &recs {
        assert_eq!(
            *timestamp,
            Some(t0 + offset),
            "offset {offset}: the record's own timestamp"
        );
        latest.insert(key.clone(), value.clone());
    }
    assert!(recs.windows(2).all(|w| w[1].0 > w[0].0));
    let read = recs.len();
    assert!(read < total / 2, "cleaned: {read} of {total} read");
    assert_eq!(latest.get("k0"), Some(&None), "a tombstone");
    assert_eq!(latest.get("k1"), Some(&None), "a tombstone");
    for k in 2..7 {
        assert!(latest[&format!("k{k}")].is_some());
    }
}
