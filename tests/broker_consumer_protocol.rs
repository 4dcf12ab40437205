//! The KIP-848 consumer group protocol on the wire: ConsumerGroupHeartbeat's error codes as
//! Kafka answers them, OffsetCommit/OffsetFetch v9 member-epoch checks, the protocols kept
//! apart (classic vs consumer groups of the same id), ListGroups/DescribeGroups/
//! ConsumerGroupDescribe of a consumer group, and a broker restart that restores the group,
//! so that a member goes on heartbeating at its epoch.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use common::broker::Broker;
use common::wire::{request, roundtrip};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const FENCED_MEMBER_EPOCH: i16 = 110;
const UNSUPPORTED_ASSIGNOR: i16 = 112;
const STALE_MEMBER_EPOCH: i16 = 113;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_REQUEST: i16 = 42;
const INVALID_REGULAR_EXPRESSION: i16 = 128;
const GROUP_ID_NOT_FOUND: i16 = 69;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn join(member: &str) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_member_id(s(member))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![TopicName(s("orders"))]))
        .with_topic_partitions(Some(Vec::new()))
}

fn beat(
    member: &str,
    epoch: i32,
    topic: uuid::Uuid,
    owned: &[i32],
) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(-1)
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic_id(topic)
            .with_partitions(owned.to_vec())]))
}

fn hb(c: &mut TcpStream, req: &ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse {
    roundtrip(c, &request(ApiKey::ConsumerGroupHeartbeat, 1, req), 1)
}

fn assigned(r: &ConsumerGroupHeartbeatResponse) -> Vec<i32> {
    let mut v: Vec<i32> = r
        .assignment
        .iter()
        .flat_map(|a| a.topic_partitions.iter().flat_map(|t| t.partitions.clone()))
        .collect();
    v.sort_unstable();
    v
}

fn commit(c: &mut TcpStream, member: &str, epoch: i32, offset: i64) -> i16 {
    commit_v(c, member, epoch, offset, 9)
}

fn commit_v(c: &mut TcpStream, member: &str, epoch: i32, offset: i64, version: i16) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id_or_member_epoch(epoch)
        .with_member_id(s(member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s("orders")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let r: OffsetCommitResponse =
        roundtrip(c, &request(ApiKey::OffsetCommit, version, &req), version);
    r.topics[0].partitions[0].error_code
}

/// (group error, committed offset of orders/0)
fn fetch(c: &mut TcpStream, member: Option<&str>, epoch: i32) -> (i16, i64) {
    let req = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(s("g")))
        .with_member_id(member.map(s))
        .with_member_epoch(epoch)
        .with_topics(Some(vec![OffsetFetchRequestTopics::default()
            .with_name(TopicName(s("orders")))
            .with_partition_indexes(vec![0])]))]);
    let r: OffsetFetchResponse = roundtrip(c, &request(ApiKey::OffsetFetch, 9, &req), 9);
    let g = &r.groups[0];
    let offset = g
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(-1, |p| p.committed_offset);
    (g.error_code, offset)
}

fn describe(c: &mut TcpStream, group: &str) -> consumer_group_describe_response::DescribedGroup {
    let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]);
    let mut r: ConsumerGroupDescribeResponse =
        roundtrip(c, &request(ApiKey::ConsumerGroupDescribe, 0, &req), 0);
    r.groups.remove(0)
}

#[test]
fn consumer_protocol_on_the_wire_and_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start(&dir.path().join("data"), &[]);
    let mut c = b.connect();

    let versions: ApiVersionsResponse = roundtrip(
        &mut c,
        &request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()),
        3,
    );
    let range = |k: ApiKey| {
        versions
            .api_keys
            .iter()
            .find(|v| v.api_key == k as i16)
            .map(|v| (v.min_version, v.max_version))
    };
    assert_eq!(range(ApiKey::ConsumerGroupHeartbeat), Some((0, 1)));
    assert_eq!(range(ApiKey::ConsumerGroupDescribe), Some((0, 1)));
    assert_eq!(range(ApiKey::OffsetCommit).map(|r| r.1), Some(10));
    assert_eq!(range(ApiKey::OffsetFetch).map(|r| r.1), Some(10));

    let create = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(s("orders")))
        .with_num_partitions(6)
        .with_replication_factor(1)]);
    let r: CreateTopicsResponse = roundtrip(&mut c, &request(ApiKey::CreateTopics, 7, &create), 7);
    assert_eq!(r.topics[0].error_code, 0);
    let topic = r.topics[0].topic_id;

    // Refusals, each as Kafka answers it.
    let bad = [
        (
            join("a").with_server_assignor(Some(s("sticky"))),
            UNSUPPORTED_ASSIGNOR,
        ),
        (
            join("a").with_subscribed_topic_regex(Some(s("ord("))),
            INVALID_REGULAR_EXPRESSION,
        ),
        (join("a").with_rebalance_timeout_ms(-1), INVALID_REQUEST),
        (join(""), INVALID_REQUEST),
        (beat("a", 3, topic, &[]), UNKNOWN_MEMBER_ID),
    ];
    for (req, code) in bad {
        let r = hb(&mut c, &req);
        assert_eq!(r.error_code, code, "{req:?}: {:?}", r.error_message);
        assert!(r.error_message.is_some());
    }

    let a = hb(&mut c, &join("a"));
    assert_eq!(a.error_code, 0, "{:?}", a.error_message);
    assert_eq!(a.member_epoch, 1);
    assert_eq!(a.heartbeat_interval_ms, 5000);
    assert_eq!(assigned(&a), vec![0, 1, 2, 3, 4, 5]);
    let r = hb(&mut c, &beat("a", 2, topic, &[0, 1, 2, 3, 4, 5]));
    assert_eq!(r.error_code, FENCED_MEMBER_EPOCH);

    // Commits and fetches check the member epoch.
    assert_eq!(commit(&mut c, "a", 0, 5), STALE_MEMBER_EPOCH);
    assert_eq!(commit(&mut c, "a", 2, 5), FENCED_MEMBER_EPOCH);
    assert_eq!(commit(&mut c, "x", 1, 5), UNKNOWN_MEMBER_ID);
    assert_eq!(
        commit_v(&mut c, "a", 1, 5, 8),
        35,
        "UNSUPPORTED_VERSION below v9"
    );
    assert_eq!(commit(&mut c, "a", 1, 42), 0);
    assert_eq!(fetch(&mut c, Some("a"), 1), (0, 42));
    assert_eq!(fetch(&mut c, Some("a"), 0).0, STALE_MEMBER_EPOCH);
    assert_eq!(
        fetch(&mut c, None, -1),
        (0, 42),
        "admin clients may always read"
    );

    // The protocols stay apart: no classic member in a consumer group, no consumer member in
    // a classic group with members.
    let classic_join = |group: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(
                    b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
                ))])
    };
    let j: JoinGroupResponse = roundtrip(
        &mut c,
        &request(ApiKey::JoinGroup, 3, &classic_join("g")),
        3,
    );
    assert_eq!(j.error_code, INCONSISTENT_GROUP_PROTOCOL);
    let j: JoinGroupResponse = roundtrip(
        &mut c,
        &request(ApiKey::JoinGroup, 3, &classic_join("classic")),
        3,
    );
    assert_eq!(j.error_code, 0);
    let r = hb(&mut c, &join("z").with_group_id(GroupId(s("classic"))));
    assert_eq!(r.error_code, GROUP_ID_NOT_FOUND, "{:?}", r.error_message);
    assert_eq!(describe(&mut c, "classic").error_code, GROUP_ID_NOT_FOUND);
    assert_eq!(describe(&mut c, "nope").error_code, GROUP_ID_NOT_FOUND);

    // A second member: a revokes before b gets anything.
    let r = hb(&mut c, &join("b"));
    assert_eq!((r.error_code, r.member_epoch), (0, 2));
    assert!(assigned(&r).is_empty());
    let r = hb(&mut c, &beat("a", 1, topic, &[0, 1, 2, 3, 4, 5]));
    assert_eq!(r.member_epoch, 1, "a revokes first");
    let a_keeps = assigned(&r);
    assert_eq!(a_keeps.len(), 3);
    let d = describe(&mut c, "g");
    assert_eq!((d.error_code, d.group_epoch, d.assignment_epoch), (0, 2, 2));
    assert_eq!(d.group_state.as_str(), "Reconciling");
    assert_eq!(d.assignor_name.as_str(), "uniform");
    assert_eq!(d.members.len(), 2);
    let list: ListGroupsResponse = roundtrip(
        &mut c,
        &request(ApiKey::ListGroups, 5, &ListGroupsRequest::default()),
        5,
    );
    let g = list
        .groups
        .iter()
        .find(|g| g.group_id.as_str() == "g")
        .expect("g listed");
    assert_eq!(
        (
            g.group_type.as_str(),
            g.group_state.as_str(),
            g.protocol_type.as_str()
        ),
        ("consumer", "Reconciling", "consumer")
    );
    let dg: DescribeGroupsResponse = roundtrip(
        &mut c,
        &request(
            ApiKey::DescribeGroups,
            5,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]),
        ),
        5,
    );
    assert_eq!(
        dg.groups[0].group_state.as_str(),
        "Dead",
        "not a classic group"
    );

    // A restart restores the group: a goes on revoking at epoch 1, then moves to epoch 2;
    // b gets the rest; the commit is still there.
    b.restart();
    let mut c = b.connect();
    let r = hb(&mut c, &beat("a", 1, topic, &a_keeps));
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(assigned(&r), a_keeps);
    let r = hb(&mut c, &beat("b", 2, topic, &[]));
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    let b_got = assigned(&r);
    assert_eq!(b_got.len(), 3);
    assert!(b_got.iter().all(|p| !a_keeps.contains(p)));
    let d = describe(&mut c, "g");
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(fetch(&mut c, Some("b"), 2), (0, 42));

    // Leaving: a's partitions go to b.
    let r = hb(&mut c, &beat("a", -1, topic, &a_keeps));
    assert_eq!((r.error_code, r.member_epoch), (0, -1));
    let r = hb(&mut c, &beat("b", 2, topic, &b_got));
    assert_eq!(r.member_epoch, 3);
    assert_eq!(assigned(&r), vec![0, 1, 2, 3, 4, 5]);

    // An empty consumer group can be deleted, offsets and all, and stays deleted.
    let delete = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g"))]);
    let r: DeleteGroupsResponse = roundtrip(&mut c, &request(ApiKey::DeleteGroups, 2, &delete), 2);
    assert_eq!(
        r.results[0].error_code, 68,
        "NON_EMPTY_GROUP while b is in it"
    );
    let r = hb(&mut c, &beat("b", -1, topic, &[0, 1, 2, 3, 4, 5]));
    assert_eq!(r.error_code, 0);
    assert_eq!(describe(&mut c, "g").group_state.as_str(), "Empty");
    let r: DeleteGroupsResponse = roundtrip(&mut c, &request(ApiKey::DeleteGroups, 2, &delete), 2);
    assert_eq!(r.results[0].error_code, 0);
    // An empty consumer group gives way to a classic member, as in Kafka.
    let r = hb(&mut c, &join("h1").with_group_id(GroupId(s("h"))));
    assert_eq!(r.error_code, 0);
    let r = hb(
        &mut c,
        &beat("h1", -1, topic, &[]).with_group_id(GroupId(s("h"))),
    );
    assert_eq!(r.error_code, 0);
    let j: JoinGroupResponse = roundtrip(
        &mut c,
        &request(ApiKey::JoinGroup, 3, &classic_join("h")),
        3,
    );
    assert_eq!(j.error_code, 0, "an empty consumer group is taken over");
    assert_eq!(describe(&mut c, "h").error_code, GROUP_ID_NOT_FOUND);
    b.restart();
    let mut c = b.connect();
    assert_eq!(describe(&mut c, "g").error_code, GROUP_ID_NOT_FOUND);
    assert_eq!(fetch(&mut c, None, -1), (0, -1), "its offsets went with it");
}

#[test]
fn a_silent_member_expires_after_the_configured_session_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(
        &dir.path().join("data"),
        &[
            "--group-consumer-heartbeat-interval-ms",
            "200",
            "--group-consumer-session-timeout-ms",
            "1500",
        ],
    );
    let mut c = b.connect();
    let create = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(s("orders")))
        .with_num_partitions(6)
        .with_replication_factor(1)]);
    let r: CreateTopicsResponse = roundtrip(&mut c, &request(ApiKey::CreateTopics, 7, &create), 7);
    let topic = r.topics[0].topic_id;
    let a = hb(&mut c, &join("a"));
    assert_eq!(a.heartbeat_interval_ms, 200, "the configured interval");
    let r = hb(&mut c, &join("b"));
    assert_eq!(r.member_epoch, 2);
    // a never heartbeats again; b keeps heartbeating and, once a expired, gets everything.
    let start = std::time::Instant::now();
    let mut got = Vec::new();
    let mut epoch = 2;
    while start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
        let r = hb(&mut c, &beat("b", epoch, topic, &got));
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        epoch = r.member_epoch;
        if r.assignment.is_some() {
            got = assigned(&r);
        }
        if got.len() == 6 {
            break;
        }
    }
    let waited = start.elapsed();
    assert_eq!(got, vec![0, 1, 2, 3, 4, 5], "b took over a's partitions");
    assert!(
        waited >= Duration::from_millis(1200),
        "a expired after {waited:?}, before its session timeout"
    );
    let d = describe(&mut c, "g");
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.group_state.as_str(), "Stable");
}
