//! The newest request versions, over the wire, each doing what its version adds (the
//! differential tests compare the same against Apache Kafka; these run without a JVM):
//! Produce v13 and OffsetCommit/OffsetFetch v10 name topics by id; ListOffsets' tiered-storage
//! queries; DescribeTopicPartitions pages with its cursor; ApiVersions v5 checks the cluster
//! and node the client names; DeleteGroups v3; OffsetForLeaderEpoch; ListConfigResources;
//! AlterReplicaLogDirs.

mod common;

use std::net::TcpStream;

use bytes::Bytes;
use common::broker::Broker;
use common::wire::{request, roundtrip};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;
const GROUP_ID_NOT_FOUND: i16 = 69;
const UNKNOWN_TOPIC_ID: i16 = 100;
const REBOOTSTRAP_REQUIRED: i16 = 129;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Creates `topic` with `partitions` and returns its id.
fn create(c: &mut TcpStream, topic: &str, partitions: i32) -> uuid::Uuid {
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(s(topic)))
        .with_num_partitions(partitions)
        .with_replication_factor(1)]);
    let r: CreateTopicsResponse = roundtrip(c, &request(ApiKey::CreateTopics, 7, &req), 7);
    assert_eq!(r.topics[0].error_code, 0);
    r.topics[0].topic_id
}

fn produce_by_id(c: &mut TcpStream, id: uuid::Uuid, partition: i32) -> (uuid::Uuid, i16, i64) {
    let batch = strata::storage::batch::build_batch(0, 1, &[(None, b"v")]);
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_topic_id(id)
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(batch)))])]);
    let r: ProduceResponse = roundtrip(c, &request(ApiKey::Produce, 13, &req), 13);
    let t = &r.responses[0];
    let p = &t.partition_responses[0];
    (t.topic_id, p.error_code, p.base_offset)
}

#[test]
fn produce_v13_names_topics_by_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(dir.path(), &[]);
    let mut c = b.connect();
    let id = create(&mut c, "by-id", 2);
    assert_eq!(produce_by_id(&mut c, id, 1), (id, 0, 0));
    assert_eq!(produce_by_id(&mut c, id, 1), (id, 0, 1));
    assert_eq!(produce_by_id(&mut c, id, 2).1, UNKNOWN_TOPIC_OR_PARTITION);
    let other = uuid::Uuid::from_u128(7);
    assert_eq!(
        produce_by_id(&mut c, other, 0),
        (other, UNKNOWN_TOPIC_ID, -1)
    );
    assert_eq!(
        produce_by_id(&mut c, uuid::Uuid::nil(), 0).1,
        UNKNOWN_TOPIC_ID
    );
}

fn list_offset(c: &mut TcpStream, version: i16, topic: &str, ts: i64) -> (i16, i64, i64, i32) {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(ts)])]);
    let r: ListOffsetsResponse =
        roundtrip(c, &request(ApiKey::ListOffsets, version, &req), version);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp, p.leader_epoch)
}

#[test]
fn list_offsets_answers_the_tiered_storage_queries_as_kafka_without_remote_storage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(dir.path(), &[]);
    let mut c = b.connect();
    let id = create(&mut c, "lo", 1);
    for _ in 0..3 {
        produce_by_id(&mut c, id, 0);
    }
    const UNSUPPORTED_VERSION: i16 = 35;
    // Earliest local (-4) is the log start from v8; before, not a query.
    assert_eq!(list_offset(&mut c, 7, "lo", -4).0, UNSUPPORTED_VERSION);
    assert_eq!(list_offset(&mut c, 8, "lo", -4), (0, 0, -1, 0));
    // Last tiered (-5, v9+) and earliest pending upload (-6, v11+): nothing, without an error.
    assert_eq!(list_offset(&mut c, 8, "lo", -5).0, UNSUPPORTED_VERSION);
    assert_eq!(list_offset(&mut c, 9, "lo", -5), (0, -1, -1, -1));
    assert_eq!(list_offset(&mut c, 10, "lo", -6).0, UNSUPPORTED_VERSION);
    assert_eq!(list_offset(&mut c, 11, "lo", -6), (0, -1, -1, -1));
    assert_eq!(list_offset(&mut c, 11, "lo", -1), (0, 3, -1, 0));
}

fn commit_v10(c: &mut TcpStream, group: &str, id: uuid::Uuid, partition: i32, offset: i64) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_topic_id(id)
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_metadata(Some(s("m")))])]);
    let r: OffsetCommitResponse = roundtrip(c, &request(ApiKey::OffsetCommit, 10, &req), 10);
    assert_eq!(r.topics[0].topic_id, id, "the answer names the topic by id");
    r.topics[0].partitions[0].error_code
}

fn fetch_v10(
    c: &mut TcpStream,
    group: &str,
    topics: Option<Vec<(uuid::Uuid, Vec<i32>)>>,
) -> Vec<(uuid::Uuid, i32, i16, i64)> {
    let req = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(topics.map(|ts| {
            ts.into_iter()
                .map(|(id, ps)| {
                    OffsetFetchRequestTopics::default()
                        .with_topic_id(id)
                        .with_partition_indexes(ps)
                })
                .collect()
        }))]);
    let r: OffsetFetchResponse = roundtrip(c, &request(ApiKey::OffsetFetch, 10, &req), 10);
    let g = &r.groups[0];
    assert_eq!(g.error_code, 0);
    g.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.topic_id,
                    p.partition_index,
                    p.error_code,
                    p.committed_offset,
                )
            })
        })
        .collect()
}

#[test]
fn offset_commit_and_fetch_v10_name_topics_by_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(dir.path(), &[]);
    let mut c = b.connect();
    let id = create(&mut c, "offsets-by-id", 2);
    let unknown = uuid::Uuid::from_u128(99);
    assert_eq!(commit_v10(&mut c, "g10", id, 1, 42), 0);
    assert_eq!(
        commit_v10(&mut c, "g10", id, 5, 1),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(commit_v10(&mut c, "g10", unknown, 0, 1), UNKNOWN_TOPIC_ID);
    assert_eq!(
        fetch_v10(
            &mut c,
            "g10",
            Some(vec![(id, vec![0, 1]), (unknown, vec![0])])
        ),
        vec![
            (id, 0, 0, -1),
            (id, 1, 0, 42),
            (unknown, 0, UNKNOWN_TOPIC_ID, -1)
        ]
    );
    assert_eq!(fetch_v10(&mut c, "g10", None), vec![(id, 1, 0, 42)]);
    // The same commit, read by name at v9.
    let req = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(s("g10")))
        .with_topics(Some(vec![OffsetFetchRequestTopics::default()
            .with_name(TopicName(s("offsets-by-id")))
            .with_partition_indexes(vec![1])]))]);
    let r: OffsetFetchResponse = roundtrip(&mut c, &request(ApiKey::OffsetFetch, 9, &req), 9);
    assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, 42);
}

fn describe_partitions(
    c: &mut TcpStream,
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsResponse {
    let req = DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| TopicRequest::default().with_name(TopicName(s(t))))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            Cursor::default()
                .with_topic_name(TopicName(s(t)))
                .with_partition_index(p)
        }));
    roundtrip(c, &request(ApiKey::DescribeTopicPartitions, 0, &req), 0)
}

/// (topic, partitions in the answer, error)
fn summary(r: &DescribeTopicPartitionsResponse) -> Vec<(String, Vec<i32>, i16)> {
    r.topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
                t.error_code,
            )
        })
        .collect()
}

fn next(r: &DescribeTopicPartitionsResponse) -> Option<(String, i32)> {
    r.next_cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index))
}

#[test]
fn describe_topic_partitions_pages_through_its_cursor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(dir.path(), &[]);
    let mut c = b.connect();
    let a_id = create(&mut c, "dtp-a", 3);
    create(&mut c, "dtp-b", 2);
    let named = ["dtp-b", "dtp-a", "dtp-missing", "bad/name"];

    let all = describe_partitions(&mut c, &named, 2000, None);
    assert_eq!(
        summary(&all),
        vec![
            ("bad/name".into(), vec![], 17),
            ("dtp-a".into(), vec![0, 1, 2], 0),
            ("dtp-b".into(), vec![0, 1], 0),
            ("dtp-missing".into(), vec![], UNKNOWN_TOPIC_OR_PARTITION),
        ],
        "name order; 17 is INVALID_TOPIC_EXCEPTION"
    );
    assert_eq!(next(&all), None);
    let a = &all.topics[1];
    assert_eq!(a.topic_id, a_id);
    assert!(a.partitions.iter().all(|p| p.leader_id.0 == 0
        && p.replica_nodes.len() == 1
        && p.isr_nodes.len() == 1
        && p.eligible_leader_replicas == Some(vec![])));

    // Two partitions an answer: a's first two, then the rest from the cursor.
    let p1 = describe_partitions(&mut c, &named, 2, None);
    assert_eq!(next(&p1), Some(("dtp-a".into(), 2)));
    assert_eq!(summary(&p1)[1], ("dtp-a".into(), vec![0, 1], 0));
    let p2 = describe_partitions(&mut c, &named, 2, Some(("dtp-a", 2)));
    assert_eq!(
        summary(&p2)[..2],
        [("dtp-a".into(), vec![2], 0), ("dtp-b".into(), vec![0], 0)]
    );
    assert_eq!(next(&p2), Some(("dtp-b".into(), 1)));
    // A page that ends with a topic points at the next topic's first partition.
    let p3 = describe_partitions(&mut c, &named, 3, None);
    assert_eq!(next(&p3), Some(("dtp-b".into(), 0)));

    // Every topic when none is named, from the cursor on.
    let rest = describe_partitions(&mut c, &[], 10, Some(("dtp-a", 1)));
    assert_eq!(
        summary(&rest),
        vec![
            ("dtp-a".into(), vec![1, 2], 0),
            ("dtp-b".into(), vec![0, 1], 0)
        ]
    );

    // A cursor outside the named topics, or a negative partition: an invalid request.
    let bad = describe_partitions(&mut c, &["dtp-a"], 10, Some(("dtp-b", 0)));
    assert_eq!(
        summary(&bad),
        vec![("dtp-a".into(), vec![], INVALID_REQUEST)]
    );
    let bad = describe_partitions(&mut c, &["dtp-a"], 10, Some(("dtp-a", -1)));
    assert_eq!(bad.topics[0].error_code, INVALID_REQUEST);
}

fn api_versions_v5(c: &mut TcpStream, cluster: Option<&str>, node: i32) -> (i16, usize) {
    let req = ApiVersionsRequest::default()
        .with_client_software_name(s("wire-test"))
        .with_client_software_version(s("1"))
        .with_cluster_id(cluster.map(s))
        .with_node_id(node);
    let r: ApiVersionsResponse = roundtrip(c, &request(ApiKey::ApiVersions, 5, &req), 5);
    (r.error_code, r.api_keys.len())
}

#[test]
fn api_versions_v5_checks_the_cluster_and_node_the_client_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(dir.path(), &[]);
    let mut c = b.connect();
    let (code, keys) = api_versions_v5(&mut c, None, -1);
    assert!(code == 0 && keys > 20, "{code} {keys}");
    assert_eq!(api_versions_v5(&mut c, Some("strata"), 0).0, 0);
    assert_eq!(
        api_versions_v5(&mut c, Some("other"), 0),
        (REBOOTSTRAP_REQUIRED, 0)
    );
    assert_eq!(
        api_versions_v5(&mut c, Some("strata"), 3),
        (REBOOTSTRAP_REQUIRED, 0)
    );
    assert_eq!(
        api_versions_v5(&mut c, Some("strata"), -1),
        (INVALID_REQUEST, 0)
    );
    assert_eq!(api_versions_v5(&mut c, None, 0), (INVALID_REQUEST, 0));
    // The connection goes on.
    assert_eq!(api_versions_v5(&mut c, None, -1).0, 0);
}

#[test]
fn delete_groups_v3_answers_each_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(dir.path(), &[]);
    let mut c = b.connect();
    let id = create(&mut c, "dg", 1);
    assert_eq!(commit_v10(&mut c, "dg-group", id, 0, 3), 0);
    let req = DeleteGroupsRequest::default()
        .with_groups_names(vec![GroupId(s("dg-group")), GroupId(s("no-such-group"))]);
    let r: DeleteGroupsResponse = roundtrip(&mut c, &request(ApiKey::DeleteGroups, 3, &req), 3);
    let got: Vec<(String, i16, Option<String>)> = r
        .results
        .iter()
        .map(|g| {
            (
                g.group_id.0.to_string(),
                g.error_code,
                g.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("dg-group".into(), 0, None),
            ("no-such-group".into(), GROUP_ID_NOT_FOUND, None)
        ]
    );
}

fn epoch_end(
    c: &mut TcpStream,
    topic: &str,
    partition: i32,
    current: i32,
    epoch: i32,
) -> (i16, i32, i64) {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(current)
                .with_leader_epoch(epoch)])]);
    let r: OffsetForLeaderEpochResponse =
        roundtrip(c, &request(ApiKey::OffsetForLeaderEpoch, 4, &req), 4);
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

#[test]
fn offset_for_leader_epoch_ends_epoch_0_at_the_high_watermark() {
    const UNKNOWN_LEADER_EPOCH: i16 = 75;
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(dir.path(), &[]);
    let mut c = b.connect();
    let id = create(&mut c, "ofle", 1);
    assert_eq!(epoch_end(&mut c, "ofle", 0, -1, 0), (0, 0, 0));
    for _ in 0..3 {
        produce_by_id(&mut c, id, 0);
    }
    assert_eq!(epoch_end(&mut c, "ofle", 0, -1, 0), (0, 0, 3));
    assert_eq!(epoch_end(&mut c, "ofle", 0, 0, 0), (0, 0, 3));
    assert_eq!(
        epoch_end(&mut c, "ofle", 0, -1, 1),
        (0, -1, -1),
        "a later epoch"
    );
    assert_eq!(
        epoch_end(&mut c, "ofle", 0, -1, -1),
        (0, -1, -1),
        "no epoch"
    );
    assert_eq!(
        epoch_end(&mut c, "ofle", 0, 3, 0),
        (UNKNOWN_LEADER_EPOCH, -1, -1)
    );
    assert_eq!(
        epoch_end(&mut c, "ofle", 4, -1, 0).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
}

fn config_resources(c: &mut TcpStream, version: i16, types: Vec<i8>) -> (i16, Vec<(i8, String)>) {
    let req = ListConfigResourcesRequest::default().with_resource_types(types);
    let r: ListConfigResourcesResponse = roundtrip(
        c,
        &request(ApiKey::ListConfigResources, version, &req),
        version,
    );
    let mut got: Vec<(i8, String)> = r
        .config_resources
        .iter()
        .map(|c| (c.resource_type, c.resource_name.to_string()))
        .collect();
    got.sort();
    (r.error_code, got)
}

#[test]
fn list_config_resources_lists_topics_and_this_broker() {
    const UNSUPPORTED_VERSION: i16 = 35;
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(dir.path(), &[]);
    let mut c = b.connect();
    create(&mut c, "lcr-b", 1);
    create(&mut c, "lcr-a", 2);
    let topics = vec![(2, "lcr-a".to_string()), (2, "lcr-b".to_string())];
    let broker = (4, "0".to_string());
    let all = [topics.clone(), vec![broker.clone()]].concat();
    assert_eq!(config_resources(&mut c, 1, vec![]), (0, all.clone()));
    assert_eq!(config_resources(&mut c, 1, vec![2]), (0, topics));
    assert_eq!(config_resources(&mut c, 1, vec![4]), (0, vec![broker]));
    assert_eq!(
        config_resources(&mut c, 1, vec![16, 32]),
        (0, vec![]),
        "none of these"
    );
    assert_eq!(
        config_resources(&mut c, 1, vec![2, 99]),
        (UNSUPPORTED_VERSION, vec![])
    );
    assert_eq!(
        config_resources(&mut c, 0, vec![]),
        (0, vec![]),
        "v0: client metrics only"
    );
}

#[test]
fn alter_replica_log_dirs_knows_its_one_log_dir() {
    use kafka_protocol::messages::alter_replica_log_dirs_request::{
        AlterReplicaLogDir, AlterReplicaLogDirTopic,
    };
    const LOG_DIR_NOT_FOUND: i16 = 57;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let b = Broker::start(&data, &[]);
    let mut c = b.connect();
    create(&mut c, "ld", 1);
    let mut ask = |path: &str, partition: i32| {
        let req =
            AlterReplicaLogDirsRequest::default().with_dirs(vec![AlterReplicaLogDir::default()
                .with_path(s(path))
                .with_topics(vec![AlterReplicaLogDirTopic::default()
                    .with_name(TopicName(s("ld")))
                    .with_partitions(vec![partition])])]);
        let r: AlterReplicaLogDirsResponse =
            roundtrip(&mut c, &request(ApiKey::AlterReplicaLogDirs, 2, &req), 2);
        r.results[0].partitions[0].error_code
    };
    let ours = std::fs::canonicalize(&data).expect("data dir");
    let ours = ours.to_string_lossy();
    assert_eq!(ask(&ours, 0), 0, "already there");
    assert_eq!(ask(&ours, 3), UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(ask("/elsewhere", 0), LOG_DIR_NOT_FOUND);
    assert_eq!(
        ask("/elsewhere", 3),
        LOG_DIR_NOT_FOUND,
        "the dir is checked first"
    );
}
