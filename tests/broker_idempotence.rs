//! Idempotent producers (librdkafka with enable.idempotence=true): the broker is restarted and
//! killed with SIGKILL mid-stream, the producer retries, and the log holds every record
//! exactly once, in order.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::broker::Broker;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

#[derive(Clone, Default)]
struct Count {
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
}
impl ClientContext for Count {}
impl ProducerContext for Count {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(_) => self.ok.fetch_add(1, Ordering::SeqCst),
            Err(_) => self.failed.fetch_add(1, Ordering::SeqCst),
        };
    }
}

/// Produces `n` records to two partitions with an idempotent producer, calling `chaos(i, b)`
/// after each send, then checks that each partition holds its records exactly once, in order.
fn produce_exactly_once(b: &mut Broker, n: usize, mut chaos: impl FnMut(usize, &mut Broker)) {
    let ctx = Count::default();
    let p: ThreadedProducer<Count> = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("batch.num.messages", "200")
        .set("message.timeout.ms", "120000")
        .set("reconnect.backoff.ms", "50")
        // Connections that the broker drops on purpose must not push the backoff to 10 s.
        .set("reconnect.backoff.max.ms", "200")
        .create_with_context(ctx.clone())
        .expect("producer");
    for i in 0..n {
        let v = format!("i-{i}");
        loop {
            match p.send(
                BaseRecord::<(), _>::to("idem")
                    .partition((i % 2) as i32)
                    .payload(&v),
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
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        chaos(i, b);
        if i % 1000 == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if let Err(e) = p.flush(Duration::from_secs(120)) {
        panic!(
            "not every record was delivered: {e}\nbroker log:\n{}",
            b.log_tail(40)
        );
    }
    assert_eq!(ctx.failed.load(Ordering::SeqCst), 0, "no delivery failed");
    assert_eq!(ctx.ok.load(Ordering::SeqCst), n);

    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "x")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for part in 0..2 {
        tpl.add_partition_offset("idem", part, Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
    let mut got: HashMap<i32, Vec<String>> = HashMap::new();
    let start = Instant::now();
    let mut idle = Instant::now();
    while idle.elapsed() < Duration::from_secs(3) {
        assert!(start.elapsed() < Duration::from_secs(120));
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("message");
            got.entry(m.partition())
                .or_default()
                .push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
            idle = Instant::now();
        }
    }
    for part in 0..2usize {
        let want: Vec<String> = (0..n)
            .filter(|i| i % 2 == part)
            .map(|i| format!("i-{i}"))
            .collect();
        let have = got.remove(&(part as i32)).unwrap_or_default();
        assert_eq!(
            have.len(),
            want.len(),
            "partition {part}: exactly once (no duplicate, no loss)"
        );
        assert!(have == want, "partition {part}: in order");
    }
}

#[test]
fn retries_across_restart_and_kill_9_write_each_record_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start(&dir.path().join("data"), &["--default-partitions", "2"]);
    let n = 30_000;
    produce_exactly_once(&mut b, n, |i, b| {
        if i == n / 3 {
            b.restart();
        }
        if i == 2 * n / 3 {
            b.kill9();
            std::thread::sleep(Duration::from_millis(200));
            b.start_again();
        }
    });
}

#[test]
fn lost_responses_are_retried_without_duplicates() {
    // The broker applies every 7th Produce request and then drops the connection instead of
    // answering, as a network failure would: the producer must retry, and the broker must
    // recognise the retry. Restarts in between make it rebuild producer state from disk.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start(
        &dir.path().join("data"),
        &[
            "--default-partitions",
            "2",
            "--fault-drop-produce-response-every",
            "7",
        ],
    );
    let n = 20_000;
    produce_exactly_once(&mut b, n, |i, b| {
        if i == n / 2 {
            b.kill9();
            b.start_again();
        }
    });
}
