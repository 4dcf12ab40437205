//! A three-broker cluster of real processes (`--cores 1` each) under a real Kafka client
//! (librdkafka): a topic with three replicas per partition is created through whichever
//! broker is the controller; an idempotent producer with acks=all writes unique values to
//! every partition while brokers are killed with `kill -9` one after another (the leader of
//! a partition among them each time) and restarted.
//!
//! Checked: every acknowledged value is in the log exactly once, at the partition and offset
//! it was acknowledged with; no value is there twice; offsets are dense; the high watermark
//! seen through ListOffsets never goes back; a restarted broker catches up (every replica
//! ends with the same high watermark). Also: a broker frozen with SIGSTOP for 10 s, then two of
//! three brokers lost (nothing acknowledged meanwhile, nothing acknowledged lost); group
//! commits through the loss of each broker; a rolling restart with no error to the producer.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::broker::{bootstrap_all, start_cluster, Broker};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const TOPIC: &str = "replicated";
const PARTITIONS: i32 = 3;

#[derive(Default)]
struct Acks {
    /// (partition, offset, value) of every acknowledged record.
    acked: Mutex<Vec<(i32, i64, String)>>,
    failed: Mutex<Vec<String>>,
}

impl ClientContext for Acks {}
impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(m) => {
                let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                if let Ok(mut a) = self.acked.lock() {
                    a.push((m.partition(), m.offset(), v));
                }
            }
            Err((e, _)) => {
                if let Ok(mut f) = self.failed.lock() {
                    f.push(e.to_string());
                }
            }
        }
    }
}

fn create_topic(bootstrap: &str, brokers: &[Broker]) {
    let start = Instant::now();
    loop {
        // A fresh client each time: one that saw no controller yet waits for its next
        // metadata refresh (minutes) before it asks again.
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .expect("admin");
        let t = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(3));
        let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        let r = futures_lite::future::block_on(admin.create_topics([&t], &opts));
        match r.as_deref() {
            Ok([Ok(_)]) => return,
            other => {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "cannot create the topic: {other:?}\n{}",
                    brokers
                        .iter()
                        .map(|b| b.log_tail(30))
                        .collect::<Vec<_>>()
                        .join("\n----\n")
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

/// The leader of `partition` as Metadata reports it.
fn leader_of(bootstrap: &str, partition: i32) -> Option<i32> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .ok()?;
    let md = c.fetch_metadata(Some(TOPIC), Duration::from_secs(5)).ok()?;
    let t = md.topics().iter().find(|t| t.name() == TOPIC)?;
    let p = t.partitions().iter().find(|p| p.id() == partition)?;
    (p.leader() >= 0).then_some(p.leader())
}

#[test]
fn acknowledged_records_survive_leader_kills_exactly_once_at_their_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut brokers = start_cluster(dir.path(), 3);
    let all = bootstrap_all(&brokers);
    create_topic(&all, &brokers);

    let stop = Arc::new(AtomicBool::new(false));
    let producer: Arc<BaseProducer<Acks>> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", &all)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "120000")
            .set("retry.backoff.ms", "100")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .create_with_context(Acks::default())
            .expect("producer"),
    );
    let writer = {
        let (p, stop) = (producer.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let v = format!("value-{n}");
                let part = (n % PARTITIONS as u64) as i32;
                if p.send(BaseRecord::<(), _>::to(TOPIC).partition(part).payload(&v))
                    .is_ok()
                {
                    n += 1;
                }
                p.poll(Duration::from_millis(1));
                if n % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            let _ = p.flush(Duration::from_secs(120));
            n
        })
    };
    // The high watermark, sampled through ListOffsets, never goes back.
    let watcher = {
        let (stop, all) = (stop.clone(), all.clone());
        std::thread::spawn(move || {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &all)
                .set("topic.metadata.refresh.interval.ms", "500")
                .create()
                .expect("consumer");
            let mut best: HashMap<i32, i64> = HashMap::new();
            let mut samples = 0;
            while !stop.load(Ordering::SeqCst) {
                for p in 0..PARTITIONS {
                    // Each sample from a fresh view of the cluster (a watermark request
                    // follows the client's idea of the leader, which lags a failover).
                    match c.fetch_watermarks(TOPIC, p, Duration::from_secs(2)) {
                        Ok((_, hw)) => {
                            let b = best.entry(p).or_insert(0);
                            assert!(hw >= *b, "partition {p}: high watermark {hw} after {b}");
                            *b = hw;
                            samples += 1;
                        }
                        Err(e) => eprintln!("watermarks of {p}: {e}"),
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        })
    };

    // Kill a partition's leader, let the cluster go on without it, bring it back.
    let mut kills = 0;
    for round in 0..6 {
        std::thread::sleep(Duration::from_secs(2));
        let part = round % PARTITIONS;
        let Some(leader) = leader_of(&all, part) else {
            continue;
        };
        let victim = (leader - 1) as usize;
        brokers[victim].kill9();
        kills += 1;
        std::thread::sleep(Duration::from_secs(3));
        brokers[victim].start_again();
    }
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::SeqCst);
    let sent = writer.join().expect("writer");
    let samples = watcher.join().expect("watcher");
    assert!(kills >= 4, "only {kills} leaders killed");
    assert!(samples > 20, "only {samples} high-watermark samples");
    let acked = producer.context().acked.lock().expect("lock").clone();
    let failed = producer.context().failed.lock().expect("lock").clone();
    assert!(
        acked.len() > 500,
        "too little was acknowledged: {} of {sent}",
        acked.len()
    );

    check_log(&all, &acked);
    eprintln!(
        "{kills} leader kills: {sent} sent, {} acknowledged, {} failed ({:?}), {samples} high-watermark samples",
        acked.len(),
        failed.len(),
        failed.iter().take(3).collect::<Vec<_>>()
    );
}

/// Reads every partition back to its high watermark: offsets dense, no value twice, every
/// acknowledged value at the partition and offset it was acknowledged with.
fn check_log(all: &str, acked: &[(i32, i64, String)]) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", all)
        .set("group.id", "checker")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut ends = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        let (_, hw) = c
            .fetch_watermarks(TOPIC, p, Duration::from_secs(10))
            .expect("watermarks");
        ends.insert(p, hw);
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let mut log: HashMap<i32, Vec<(i64, String)>> = HashMap::new();
    let start = Instant::now();
    while ends
        .iter()
        .any(|(p, hw)| log.get(p).map_or(0, Vec::len) < *hw as usize)
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out reading back"
        );
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            log.entry(m.partition()).or_default().push((
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string(),
            ));
        }
    }
    let mut seen = HashSet::new();
    let mut at: HashMap<(i32, i64), String> = HashMap::new();
    for (p, records) in &log {
        for (i, (offset, v)) in records.iter().enumerate() {
            assert_eq!(*offset, i as i64, "partition {p}: offsets are dense");
            assert!(seen.insert(v.clone()), "{v} is in the log twice");
            at.insert((*p, *offset), v.clone());
        }
    }
    for (p, offset, v) in acked {
        assert_eq!(
            at.get(&(*p, *offset)),
            Some(v),
            "acknowledged {v} at {p}/{offset} is not there"
        );
    }
}

/// A broker frozen with SIGSTOP for 10 s (its sockets open, its leaderships stale) and then the
/// loss of two brokers of three: while the majority is gone no produce may be acknowledged, and
/// once everything is back every acknowledged record is in the log exactly once, where it was
/// acknowledged.
#[test]
fn a_paused_broker_and_a_lost_majority_lose_no_acknowledged_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut brokers = start_cluster(dir.path(), 3);
    let all = bootstrap_all(&brokers);
    create_topic(&all, &brokers);
    let producer: Arc<BaseProducer<Acks>> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", &all)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "8000")
            .set("retry.backoff.ms", "100")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .create_with_context(Acks::default())
            .expect("producer"),
    );
    let phase = Arc::new(std::sync::atomic::AtomicU8::new(0));
    let writer = {
        let (p, phase) = (producer.clone(), phase.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while phase.load(Ordering::SeqCst) < 3 {
                let v = format!("v{}-{n}", phase.load(Ordering::SeqCst));
                let part = (n % PARTITIONS as u64) as i32;
                if p.send(BaseRecord::<(), _>::to(TOPIC).partition(part).payload(&v))
                    .is_ok()
                {
                    n += 1;
                }
                p.poll(Duration::from_millis(1));
                if n % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            let _ = p.flush(Duration::from_secs(60));
            n
        })
    };
    let acked_now = || producer.context().acked.lock().expect("lock").len();
    std::thread::sleep(Duration::from_secs(2));
    // Freeze the leader of partition 0 for 10 s: the others elect, writes go on.
    let frozen = leader_of(&all, 0).expect("a leader") as usize - 1;
    let before = acked_now();
    brokers[frozen].pause();
    std::thread::sleep(Duration::from_secs(10));
    let during_pause = acked_now() - before;
    brokers[frozen].resume();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        during_pause > 100,
        "writes stopped while one broker was frozen: {during_pause} acknowledged"
    );

    // Lose two brokers: nothing may be acknowledged while only one is left.
    phase.store(1, Ordering::SeqCst);
    let survivor = (frozen + 1) % 3;
    for (i, b) in brokers.iter_mut().enumerate() {
        if i != survivor {
            b.kill9();
        }
    }
    // What was in flight when the majority went may still be answered at once: wait that out.
    std::thread::sleep(Duration::from_secs(2));
    let before = acked_now();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        acked_now(),
        before,
        "a produce was acknowledged with two of three brokers down"
    );
    phase.store(2, Ordering::SeqCst);
    for (i, b) in brokers.iter_mut().enumerate() {
        if i != survivor {
            b.start_again();
        }
    }
    std::thread::sleep(Duration::from_secs(6));
    phase.store(3, Ordering::SeqCst);
    let sent = writer.join().expect("writer");
    let acked = producer.context().acked.lock().expect("lock").clone();
    let failed = producer.context().failed.lock().expect("lock").len();
    assert!(failed > 0, "with the majority gone some produces must fail");
    assert!(
        acked.iter().any(|(_, _, v)| v.starts_with("v2-")),
        "writes resumed once the brokers were back"
    );
    check_log(&all, &acked);
    eprintln!(
        "pause and majority loss: {sent} sent, {} acknowledged ({during_pause} during the pause), {failed} failed",
        acked.len()
    );
}

/// A consumer group's committed offsets live in the replicated `__consumer_offsets`: they
/// survive the loss of each broker in turn (whichever coordinated the group), and a consumer
/// that joins after a broker died resumes from them.
#[test]
fn group_commits_survive_the_loss_of_each_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut brokers = start_cluster(dir.path(), 3);
    let all = bootstrap_all(&brokers);
    create_topic(&all, &brokers);
    let producer: BaseProducer<Acks> = ClientConfig::new()
        .set("bootstrap.servers", &all)
        .set("acks", "all")
        .create_with_context(Acks::default())
        .expect("producer");
    for i in 0..300 {
        let v = format!("g-{i}");
        let part = i % PARTITIONS;
        while producer
            .send(BaseRecord::<(), _>::to(TOPIC).partition(part).payload(&v))
            .is_err()
        {
            producer.poll(Duration::from_millis(10));
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    assert_eq!(producer.context().acked.lock().expect("lock").len(), 300);

    // Consume some, commit, then check the commit from a fresh consumer with each broker down.
    let consumer = |all: &str| -> BaseConsumer {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", all)
            .set("group.id", "survivors")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("topic.metadata.refresh.interval.ms", "500")
            .create()
            .expect("consumer");
        c.subscribe(&[TOPIC]).expect("subscribe");
        c
    };
    let c = consumer(&all);
    let mut got = 0;
    let start = Instant::now();
    while got < 300 {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "consumed only {got}"
        );
        if let Some(Ok(_)) = c.poll(Duration::from_millis(200)) {
            got += 1;
        }
    }
    let start = Instant::now();
    while let Err(e) = c.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
        assert!(start.elapsed() < Duration::from_secs(30), "commit: {e}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(c);
    for victim in 0..3 {
        brokers[victim].kill9();
        let c = consumer(&all);
        let start = Instant::now();
        // Whoever coordinates now answers the group's committed offsets: all 300 consumed,
        // so nothing more is delivered and the positions are at the ends.
        let mut ends = 0;
        while ends < PARTITIONS {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "broker {} down: the committed offsets did not come back",
                victim + 1
            );
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                panic!(
                    "broker {} down: {:?} delivered again",
                    victim + 1,
                    m.payload_view::<str>()
                );
            }
            let mut tpl = TopicPartitionList::new();
            for p in 0..PARTITIONS {
                tpl.add_partition(TOPIC, p);
            }
            if let Ok(committed) = c.committed_offsets(tpl, Duration::from_secs(5)) {
                ends = committed
                    .elements()
                    .iter()
                    .filter(|e| e.offset() == Offset::Offset(100))
                    .count() as i32;
            }
        }
        drop(c);
        brokers[victim].start_again();
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// A rolling restart (SIGTERM, start again, one broker after the other) under load: a
/// producer with default retries sees no error, and everything it was told is stored is.
#[test]
fn a_rolling_restart_under_load_shows_the_producer_no_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut brokers = start_cluster(dir.path(), 3);
    let all = bootstrap_all(&brokers);
    create_topic(&all, &brokers);
    let stop = Arc::new(AtomicBool::new(false));
    let producer: Arc<BaseProducer<Acks>> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", &all)
            .set("acks", "all")
            .set("linger.ms", "5")
            .create_with_context(Acks::default())
            .expect("producer"),
    );
    let writer = {
        let (p, stop) = (producer.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let v = format!("roll-{n}");
                let part = (n % PARTITIONS as u64) as i32;
                if p.send(BaseRecord::<(), _>::to(TOPIC).partition(part).payload(&v))
                    .is_ok()
                {
                    n += 1;
                }
                p.poll(Duration::from_millis(2));
            }
            let _ = p.flush(Duration::from_secs(120));
            n
        })
    };
    for b in brokers.iter_mut() {
        std::thread::sleep(Duration::from_secs(2));
        b.stop();
        b.start_again();
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let sent = writer.join().expect("writer");
    let acked = producer.context().acked.lock().expect("lock").len();
    let failed = producer.context().failed.lock().expect("lock").clone();
    eprintln!(
        "rolling restart: {sent} sent, {acked} acknowledged, {} failed",
        failed.len()
    );
    let logs = || {
        brokers
            .iter()
            .map(|b| b.log_tail(40))
            .collect::<Vec<_>>()
            .join("\n----\n")
    };
    assert!(
        failed.is_empty(),
        "the producer saw errors: {:?}\n{}",
        &failed[..failed.len().min(5)],
        logs()
    );
    assert_eq!(
        acked as u64,
        sent,
        "not everything was acknowledged\n{}",
        logs()
    );
}
