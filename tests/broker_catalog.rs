//! The catalog across cores, through the wire: a created topic is on every core by the time
//! CreateTopics answers, a deleted one is gone from every core (files included) by the time
//! DeleteTopics answers, and producer ids handed out from per-core blocks are never handed out
//! again, even after `kill -9`.

mod common;

use std::collections::HashSet;
use std::net::TcpStream;

use bytes::Bytes;
use common::broker::Broker;
use common::wire::{request, roundtrip};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// Connections to open per check: the kernel spreads them over the cores (SO_REUSEPORT).
const CONNECTIONS: usize = 6;
const PARTITIONS: i32 = 8;

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn create(s: &mut TcpStream, topic: &str) -> i16 {
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(PARTITIONS)
        .with_replication_factor(1)]);
    let r: CreateTopicsResponse = roundtrip(s, &request(ApiKey::CreateTopics, 7, &req), 7);
    r.topics[0].error_code
}

fn delete(s: &mut TcpStream, topic: &str) -> i16 {
    let req = DeleteTopicsRequest::default().with_topic_names(vec![name(topic)]);
    let r: DeleteTopicsResponse = roundtrip(s, &request(ApiKey::DeleteTopics, 5, &req), 5);
    r.responses[0].error_code
}

/// The error code of a one-record produce to each partition of `topic`.
fn produce_codes(s: &mut TcpStream, topic: &str) -> Vec<i16> {
    let batch = strata::storage::batch::build_batch(0, 1, &[(None, b"v")]);
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(
                (0..PARTITIONS)
                    .map(|p| {
                        PartitionProduceData::default()
                            .with_index(p)
                            .with_records(Some(Bytes::from(batch.clone())))
                    })
                    .collect(),
            )]);
    let r: ProduceResponse = roundtrip(s, &request(ApiKey::Produce, 9, &req), 9);
    r.responses[0]
        .partition_responses
        .iter()
        .map(|p| p.error_code)
        .collect()
}

#[test]
fn topics_are_on_every_core_when_create_answers_and_gone_when_delete_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let b = Broker::start(&data, &["--cores", "2", "--auto-create-topics", "false"]);
    let mut admin = b.connect();
    for round in 0..10 {
        let topic = format!("t{round}");
        assert_eq!(create(&mut admin, &topic), 0);
        // At once, from connections on both cores: every partition takes a produce.
        for _ in 0..CONNECTIONS {
            let mut s = b.connect();
            assert_eq!(produce_codes(&mut s, &topic), vec![0; PARTITIONS as usize]);
        }
        assert_eq!(delete(&mut admin, &topic), 0);
        for _ in 0..CONNECTIONS {
            let mut s = b.connect();
            assert_eq!(
                produce_codes(&mut s, &topic),
                vec![3; PARTITIONS as usize],
                "UNKNOWN_TOPIC_OR_PARTITION on every core once deleted"
            );
        }
        for p in 0..PARTITIONS {
            assert!(
                !data.join(format!("{topic}-{p}")).exists(),
                "partition {p}'s folder removed before the answer"
            );
        }
    }
}

fn init_producer_id(s: &mut TcpStream) -> i64 {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r: InitProducerIdResponse = roundtrip(s, &request(ApiKey::InitProducerId, 4, &req), 4);
    assert_eq!(r.error_code, 0);
    r.producer_id.0
}

#[test]
fn producer_ids_are_unique_and_never_handed_out_again_after_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start(&dir.path().join("data"), &["--cores", "2"]);
    let mut seen = HashSet::new();
    for _ in 0..CONNECTIONS {
        let mut s = b.connect();
        for _ in 0..20 {
            assert!(
                seen.insert(init_producer_id(&mut s)),
                "an id handed out twice"
            );
        }
    }
    let before = *seen.iter().max().expect("ids");
    b.kill9();
    b.start_again();
    for _ in 0..CONNECTIONS {
        let mut s = b.connect();
        let id = init_producer_id(&mut s);
        assert!(
            id > before,
            "id {id} after a crash, {before} handed out before"
        );
    }
}
