//! The broker driven by a real Kafka client (librdkafka, through the `rdkafka` crate).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::broker::Broker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

fn admin(b: &Broker) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("admin client")
}

fn create_topic(b: &Broker, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let res = futures_lite::future::block_on(admin(b).create_topics([&t], &AdminOptions::new()))
        .expect("create_topics");
    for r in res {
        r.expect("topic created");
    }
}

/// Counts acknowledged records per partition and remembers the highest acknowledged offset.
#[derive(Clone, Default)]
struct Acks {
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    acked: Arc<Mutex<HashMap<(i32, i64), Vec<u8>>>>,
    last_error: Arc<Mutex<Option<String>>>,
}
impl ClientContext for Acks {}
impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(m) => {
                self.ok.fetch_add(1, Ordering::SeqCst);
                let v = m.payload().map(|p| p.to_vec()).unwrap_or_default();
                self.acked
                    .lock()
                    .expect("lock")
                    .insert((m.partition(), m.offset()), v);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::SeqCst);
                *self.last_error.lock().expect("lock") = Some(e.to_string());
            }
        }
    }
}

fn producer(b: &Broker, extra: &[(&str, &str)]) -> BaseProducer<Acks> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", b.bootstrap())
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create_with_context(Acks::default()).expect("producer")
}

fn consumer(b: &Broker) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "strata-tests-unused")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer")
}

/// Reads `want` records from each listed partition, from the beginning.
fn consume_all(
    b: &Broker,
    topic: &str,
    want: &HashMap<i32, usize>,
) -> HashMap<i32, Vec<(i64, Vec<u8>)>> {
    let c = consumer(b);
    let mut tpl = TopicPartitionList::new();
    for p in want.keys() {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let mut got: HashMap<i32, Vec<(i64, Vec<u8>)>> = HashMap::new();
    let start = Instant::now();
    // Each partition up to its own count (another may hold more, which must not end the wait).
    while want
        .iter()
        .any(|(p, n)| got.get(p).map_or(0, Vec::len) < *n)
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out consuming"
        );
        if let Some(m) = c.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            got.entry(m.partition())
                .or_default()
                .push((m.offset(), m.payload().unwrap_or_default().to_vec()));
        }
    }
    got
}

fn flush(p: &BaseProducer<Acks>) {
    p.flush(Duration::from_secs(60)).expect("flush");
}

#[test]
fn two_hundred_thousand_records_over_eight_partitions_round_trip_and_survive_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start(&dir.path().join("data"), &["--cores", "2"]);
    create_topic(&b, "bulk", 8, &[]);
    let p = producer(&b, &[("batch.num.messages", "2000")]);
    let n = 200_000usize;
    let mut sent: HashMap<i32, Vec<Vec<u8>>> = HashMap::new();
    for i in 0..n {
        let part = (i % 8) as i32;
        let value = format!("value-{i}-{}", "x".repeat(i % 50)).into_bytes();
        loop {
            match p.send(
                BaseRecord::to("bulk")
                    .partition(part)
                    .payload(&value)
                    .key("k"),
            ) {
                Ok(()) => break,
                Err((e, _)) => {
                    assert!(
                        matches!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        ),
                        "{e}"
                    );
                    p.poll(Duration::from_millis(10));
                }
            }
        }
        sent.entry(part).or_default().push(value);
    }
    flush(&p);
    assert_eq!(
        p.context().failed.load(Ordering::SeqCst),
        0,
        "{:?}",
        p.context().last_error.lock().expect("lock")
    );
    assert_eq!(p.context().ok.load(Ordering::SeqCst), n);
    let want: HashMap<i32, usize> = sent.iter().map(|(k, v)| (*k, v.len())).collect();
    let check = |got: HashMap<i32, Vec<(i64, Vec<u8>)>>| {
        for (part, values) in &sent {
            let g = &got[part];
            assert_eq!(g.len(), values.len(), "partition {part}");
            for (i, (off, v)) in g.iter().enumerate() {
                assert_eq!(*off, i as i64, "dense offsets in partition {part}");
                assert_eq!(
                    v, &values[i],
                    "byte-identical record {i} of partition {part}"
                );
            }
        }
    };
    check(consume_all(&b, "bulk", &want));
    b.restart();
    check(consume_all(&b, "bulk", &want));
}

#[test]
fn long_poll_fetch_wakes_when_data_arrives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(&dir.path().join("data"), &[]);
    create_topic(&b, "poll", 1, &[]);
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "unused")
        .set("fetch.wait.max.ms", "20000")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("poll", 0, Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    // Let the consumer park a fetch on the empty partition.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        assert!(c.poll(Duration::from_millis(100)).is_none());
    }
    let p = producer(&b, &[]);
    p.send(BaseRecord::<(), _>::to("poll").partition(0).payload("wake"))
        .expect("send");
    flush(&p);
    let sent_at = Instant::now();
    loop {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            assert_eq!(m.expect("msg").payload(), Some(&b"wake"[..]));
            break;
        }
        // A fetch that only returned at fetch.wait.max.ms would take 20 s.
        assert!(
            sent_at.elapsed() < Duration::from_secs(10),
            "parked fetch was not woken by new data"
        );
    }
}

#[test]
fn list_offsets_by_time_earliest_and_latest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(&dir.path().join("data"), &[]);
    create_topic(&b, "times", 1, &[]);
    let p = producer(&b, &[("linger.ms", "0")]);
    for i in 0..100i64 {
        p.send(
            BaseRecord::<(), _>::to("times")
                .partition(0)
                .payload("t")
                .timestamp(1_000_000 + i * 1000),
        )
        .expect("send");
        flush(&p);
    }
    let c = consumer(&b);
    let (lo, hi) = c
        .fetch_watermarks("times", 0, Duration::from_secs(10))
        .expect("watermarks");
    assert_eq!((lo, hi), (0, 100));
    for (ts, want) in [
        (1_000_000, 0),
        (1_000_500, 1),
        (1_050_000, 50),
        (1_099_000, 99),
    ] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("times", 0, Offset::Offset(ts))
            .expect("tpl");
        let r = c
            .offsets_for_times(tpl, Duration::from_secs(10))
            .expect("offsets_for_times");
        assert_eq!(
            r.elements()[0].offset(),
            Offset::Offset(want),
            "timestamp {ts}"
        );
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("times", 0, Offset::Offset(9_000_000))
        .expect("tpl");
    let r = c
        .offsets_for_times(tpl, Duration::from_secs(10))
        .expect("offsets_for_times");
    assert_eq!(r.elements()[0].offset(), Offset::End, "no record that late");
}

#[test]
fn create_and_delete_topics_through_the_admin_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(&dir.path().join("data"), &["--auto-create-topics", "false"]);
    create_topic(&b, "alpha", 3, &[("retention.ms", "3600000")]);
    let a = admin(&b);
    let again = futures_lite::future::block_on(a.create_topics(
        [&NewTopic::new("alpha", 1, TopicReplication::Fixed(1))],
        &AdminOptions::new(),
    ))
    .expect("call");
    assert!(again[0].is_err(), "duplicate create fails");
    let c = consumer(&b);
    let md = c
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    let alpha = md
        .topics()
        .iter()
        .find(|t| t.name() == "alpha")
        .expect("alpha listed");
    assert_eq!(alpha.partitions().len(), 3);
    let p = producer(&b, &[]);
    p.send(BaseRecord::<(), _>::to("alpha").partition(2).payload("x"))
        .expect("send");
    flush(&p);
    assert!(dir.path().join("data/alpha-2").is_dir());
    let del = futures_lite::future::block_on(a.delete_topics(&["alpha"], &AdminOptions::new()))
        .expect("delete");
    del[0].as_ref().expect("deleted");
    let md = c
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    assert!(md.topics().iter().all(|t| t.name() != "alpha"));
    assert!(
        !dir.path().join("data/alpha-2").exists(),
        "partition files removed"
    );
    let md = c
        .fetch_metadata(Some("nope"), Duration::from_secs(10))
        .expect("metadata");
    assert!(
        md.topics()[0].error().is_some(),
        "unknown topic is reported, not created"
    );
}

#[test]
fn acknowledged_records_survive_kill_9_of_the_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start(&dir.path().join("data"), &[]);
    create_topic(&b, "durable", 2, &[]);
    let p = producer(&b, &[("message.timeout.ms", "3000"), ("retries", "0")]);
    let stop_at = Instant::now() + Duration::from_millis(1500);
    let mut i = 0u64;
    let killed = Arc::new(AtomicI64::new(0));
    while Instant::now() < stop_at {
        let v = format!("d-{i}");
        let _ = p.send(
            BaseRecord::<(), _>::to("durable")
                .partition((i % 2) as i32)
                .payload(&v),
        );
        i += 1;
        p.poll(Duration::ZERO);
        if i % 500 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    b.kill9();
    killed.store(1, Ordering::SeqCst);
    let _ = p.flush(Duration::from_secs(10));
    let acked = p.context().acked.lock().expect("lock").clone();
    assert!(
        acked.len() > 100,
        "producer made progress: {} acks",
        acked.len()
    );
    b.start_again();
    let c = consumer(&b);
    for part in 0..2 {
        let (_, hi) = c
            .fetch_watermarks("durable", part, Duration::from_secs(10))
            .expect("watermarks");
        let max_acked = acked
            .keys()
            .filter(|(pp, _)| *pp == part)
            .map(|(_, o)| *o)
            .max()
            .unwrap_or(-1);
        assert!(
            hi > max_acked,
            "partition {part}: acked offset {max_acked} lost, high watermark {hi}"
        );
    }
    // Read up to the highest acknowledged offset: offsets in between may hold records whose
    // acknowledgement the kill swallowed, so counting acks would stop short.
    let want: HashMap<i32, usize> = (0..2)
        .map(|part| {
            let max = acked
                .keys()
                .filter(|(pp, _)| *pp == part)
                .map(|(_, o)| *o + 1)
                .max()
                .unwrap_or(0);
            (part, max as usize)
        })
        .collect();
    let got = consume_all(&b, "durable", &want);
    for ((part, off), v) in &acked {
        let (o, gv) = &got[part][*off as usize];
        assert_eq!((o, gv), (off, v), "acknowledged record intact");
    }
}
