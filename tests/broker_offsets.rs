//! Committed offsets through librdkafka: a consumer commits, the broker restarts (cleanly and
//! with kill -9), and a new consumer of the same group resumes from the commit.

mod common;

use std::time::{Duration, Instant};

use common::broker::Broker;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

fn consumer(b: &Broker, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer")
}

/// rust-rdkafka 0.39's `BaseConsumer` drop polls until librdkafka reports the consumer closed,
/// which for these group consumers never happens here (confluent-kafka's close() on the same
/// broker returns in ~1 ms; see `tests/compat`). The test ends the process, so let them go.
fn let_go(c: BaseConsumer) {
    std::mem::forget(c);
}

fn read(c: &BaseConsumer, n: usize) -> Vec<(i32, i64, String)> {
    let mut out = Vec::new();
    let start = Instant::now();
    while out.len() < n {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out after {} of {n}",
            out.len()
        );
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("message");
            out.push((
                m.partition(),
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string(),
            ));
        }
    }
    out
}

fn assign_stored(c: &BaseConsumer) {
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset("orders", p, Offset::Stored)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
}

#[test]
fn commits_survive_restart_and_kill_9_and_consumers_resume_from_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start(&dir.path().join("data"), &["--default-partitions", "2"]);
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("producer");
    for i in 0..100 {
        p.send(
            BaseRecord::<(), _>::to("orders")
                .partition(i % 2)
                .payload(&format!("o-{i}")),
        )
        .expect("send");
    }
    p.flush(Duration::from_secs(30)).expect("flush");

    // First consumer: no commit yet, so Stored falls back to the beginning (auto.offset.reset).
    let c = consumer(&b, "billing");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("orders", 0, Offset::Beginning)
        .expect("tpl");
    tpl.add_partition_offset("orders", 1, Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let first = read(&c, 60);
    c.commit_consumer_state(CommitMode::Sync).expect("commit");
    let committed = c.committed(Duration::from_secs(10)).expect("committed");
    let mut want = std::collections::HashMap::new();
    for (part, off, _) in &first {
        let e = want.entry(*part).or_insert(0i64);
        *e = (*e).max(off + 1);
    }
    for e in committed.elements() {
        assert_eq!(
            e.offset(),
            Offset::Offset(want[&e.partition()]),
            "committed position of partition {}",
            e.partition()
        );
    }
    let_go(c);

    // Another group has nothing committed.
    let other = consumer(&b, "audit");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("orders", 0);
    let none = other
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed");
    assert_eq!(
        none.elements()[0].offset(),
        Offset::Invalid,
        "no commit for another group"
    );
    let_go(other);

    for crash in [false, true] {
        if crash {
            b.kill9();
            b.start_again();
        } else {
            b.restart();
        }
        let c = consumer(&b, "billing");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("orders", 0);
        tpl.add_partition("orders", 1);
        let after = c
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed after restart");
        for e in after.elements() {
            assert_eq!(
                e.offset(),
                Offset::Offset(want[&e.partition()]),
                "commit survived (crash: {crash})"
            );
        }
        let_go(c);
    }

    // A consumer of the group resumes exactly after the commit: the other 40 records, no more.
    let c = consumer(&b, "billing");
    assign_stored(&c);
    let rest = read(&c, 40);
    let mut seen: Vec<String> = first
        .iter()
        .chain(rest.iter())
        .map(|(_, _, v)| v.clone())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen.len(),
        100,
        "every record exactly once across the two consumers"
    );
    assert!(
        c.poll(Duration::from_millis(500)).is_none(),
        "nothing beyond"
    );
    let_go(c);
}
