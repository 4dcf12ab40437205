//! DescribeProducers on the real broker: librdkafka's idempotent producer writes, and the
//! partition reports it (producer id, epoch, last sequence, last timestamp) — also after a
//! restart, which rebuilds the state from the snapshot; a partition written without
//! idempotence has no producers, an unknown one is UNKNOWN_TOPIC_OR_PARTITION.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::broker::Broker;
use common::wire::{request, roundtrip};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::describe_producers_response::PartitionResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn produce(b: &Broker, topic: &str, partition: i32, n: usize, idempotent: bool) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set(
            "enable.idempotence",
            if idempotent { "true" } else { "false" },
        )
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    for i in 0..n {
        let v = format!("v-{i}");
        p.send(
            BaseRecord::<(), _>::to(topic)
                .partition(partition)
                .payload(&v),
        )
        .expect("send");
        p.poll(Duration::from_millis(1));
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

fn describe(b: &Broker, topic: &str, partitions: Vec<i32>) -> Vec<PartitionResponse> {
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partition_indexes(partitions)]);
    let mut s = b.connect();
    let r: DescribeProducersResponse =
        roundtrip(&mut s, &request(ApiKey::DescribeProducers, 0, &req), 0);
    assert_eq!(r.topics.len(), 1);
    r.topics
        .into_iter()
        .next()
        .map(|t| t.partitions)
        .unwrap_or_default()
}

#[test]
fn describe_producers_reports_each_partitions_idempotent_producers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start(dir.path(), &["--default-partitions", "2"]);
    let before = now_ms();
    // Partition 0 by an idempotent producer (auto-creates the topic), partition 1 without.
    produce(&b, "dp", 0, 7, true);
    let after = now_ms();
    produce(&b, "dp", 1, 3, false);

    let check = |parts: Vec<PartitionResponse>, when: &str| {
        assert_eq!(parts.len(), 3, "{when}");
        let p0 = &parts[0];
        assert_eq!((p0.partition_index, p0.error_code), (0, 0), "{when}");
        assert_eq!(p0.active_producers.len(), 1, "{when}: {p0:?}");
        let ps = &p0.active_producers[0];
        assert!(ps.producer_id.0 >= 0, "{when}");
        assert_eq!(ps.producer_epoch, 0, "{when}");
        assert_eq!(
            ps.last_sequence, 6,
            "{when}: seven records, sequences 0..=6"
        );
        assert!(
            (before..=after).contains(&ps.last_timestamp),
            "{when}: last timestamp {} not in {before}..={after}",
            ps.last_timestamp
        );
        assert_eq!(
            (ps.coordinator_epoch, ps.current_txn_start_offset),
            (-1, -1)
        );
        assert_eq!((parts[1].partition_index, parts[1].error_code), (1, 0));
        assert!(
            parts[1].active_producers.is_empty(),
            "{when}: not idempotent"
        );
        assert_eq!(parts[2].partition_index, 5);
        assert_eq!(parts[2].error_code, UNKNOWN_TOPIC_OR_PARTITION, "{when}");
    };
    check(describe(&b, "dp", vec![0, 1, 5]), "running");
    b.restart();
    check(describe(&b, "dp", vec![0, 1, 5]), "after a restart");

    let unknown = describe(&b, "no-such-topic", vec![0]);
    assert_eq!(unknown[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
}
