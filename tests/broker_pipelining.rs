//! Pipelined Produce requests on one connection (as librdkafka sends them, several in flight):
//! answered in request order, appended in request order on every partition, and a later
//! request of another kind sees all of them.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use common::broker::Broker;
use common::wire::{read_response, request_with_id};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const REQUESTS: i32 = 60;
/// This request carries a corrupt batch: refused, it takes no offset.
const CORRUPT: i32 = 31;

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("pipelined"))
}

fn produce(partition: i32, records: Vec<u8>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic())
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(records)))])])
}

#[test]
fn pipelined_produces_are_appended_and_answered_in_request_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(&dir.path().join("data"), &[]);
    let mut s = TcpStream::connect(b.bootstrap()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let create = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(topic())
        .with_num_partitions(2)
        .with_replication_factor(1)]);
    s.write_all(&request_with_id(ApiKey::CreateTopics, 7, 1, &create))
        .expect("write");
    let (_, created): (_, CreateTopicsResponse) = read_response(&mut s, 7);
    assert_eq!(created.topics[0].error_code, 0);

    // Every request is written before any answer is read.
    let mut frames = Vec::new();
    for i in 0..REQUESTS {
        let value = format!("r-{i}");
        let mut batch = strata::storage::batch::build_batch(0, 1, &[(None, value.as_bytes())]);
        if i == CORRUPT {
            let n = batch.len();
            batch[n - 1] ^= 0xff;
        }
        frames.extend(request_with_id(
            ApiKey::Produce,
            9,
            100 + i,
            &produce(i % 2, batch),
        ));
    }
    let list = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic())
            .with_partitions(
                (0..2)
                    .map(|p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p)
                            .with_timestamp(-1)
                    })
                    .collect(),
            )]);
    frames.extend(request_with_id(ApiKey::ListOffsets, 5, 1000, &list));
    s.write_all(&frames).expect("write pipelined requests");

    let mut next = [0i64; 2];
    for i in 0..REQUESTS {
        let (id, r): (_, ProduceResponse) = read_response(&mut s, 9);
        assert_eq!(id, 100 + i, "answers come in request order");
        let p = &r.responses[0].partition_responses[0];
        if i == CORRUPT {
            assert_eq!(p.error_code, 2, "CORRUPT_MESSAGE");
            continue;
        }
        let part = (i % 2) as usize;
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, next[part]),
            "request {i} got the next offset of partition {part}"
        );
        next[part] += 1;
    }
    let (id, listed): (_, ListOffsetsResponse) = read_response(&mut s, 5);
    assert_eq!(id, 1000);
    for p in &listed.topics[0].partitions {
        assert_eq!(
            p.offset, next[p.partition_index as usize],
            "ListOffsets after the produces sees every one of them"
        );
    }

    // The stored order is the request order.
    for part in 0..2 {
        let fetch = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic())
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(part)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]);
        s.write_all(&request_with_id(ApiKey::Fetch, 11, 2000, &fetch))
            .expect("write");
        let (_, fetched): (_, FetchResponse) = read_response(&mut s, 11);
        let mut records = fetched.responses[0].partitions[0]
            .records
            .clone()
            .expect("records");
        let mut values = Vec::new();
        while !records.is_empty() {
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut records)
                .expect("stored batch decodes");
            for r in set.records {
                values.push(String::from_utf8(r.value.expect("value").to_vec()).expect("utf8"));
            }
        }
        let expected: Vec<String> = (0..REQUESTS)
            .filter(|i| i % 2 == part && *i != CORRUPT)
            .map(|i| format!("r-{i}"))
            .collect();
        assert_eq!(values, expected, "partition {part}");
    }
}
