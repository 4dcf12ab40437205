//! Malformed and hostile input: each gets a Kafka error code or a closed connection, never a
//! crash, and a normal client keeps working on the same broker afterwards.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, Bytes};
use common::broker::Broker;
use common::wire::{request, roundtrip};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

/// True if the broker closed the connection (EOF or reset) instead of answering.
fn closed_by_broker(mut s: TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(0) | Err(_))
}

fn client_still_works(b: &Broker, topic: &str) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("producer");
    p.send(BaseRecord::<(), _>::to(topic).payload("still alive"))
        .expect("send");
    p.flush(Duration::from_secs(30)).expect("delivered");
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "x")
        .create()
        .expect("consumer");
    let (lo, hi) = c
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks");
    assert!(hi > lo);
}

#[test]
fn hostile_frames_close_the_connection_and_the_broker_survives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start(&dir.path().join("data"), &[]);

    let mut s = b.connect();
    s.write_all(&[
        0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ])
    .expect("garbage");
    assert!(closed_by_broker(s), "garbage closes the connection");

    let mut s = b.connect();
    s.write_all(&0x7fff_ffffi32.to_be_bytes())
        .expect("2 GiB length");
    assert!(
        closed_by_broker(s),
        "a 2 GiB frame is refused before allocation"
    );

    let mut s = b.connect();
    s.write_all(&(-1i32).to_be_bytes())
        .expect("negative length");
    assert!(closed_by_broker(s));

    let mut s = b.connect();
    s.write_all(&100i32.to_be_bytes()).expect("len");
    s.write_all(&[0u8; 10]).expect("part");
    drop(s); // truncated frame, then the client vanishes

    let mut s = b.connect();
    let mut f = request(ApiKey::Metadata, 1, &MetadataRequest::default());
    f[4..6].copy_from_slice(&999i16.to_be_bytes());
    s.write_all(&f).expect("unknown api");
    assert!(closed_by_broker(s), "unknown api key closes the connection");

    let mut s = b.connect();
    let mut f = request(ApiKey::Metadata, 1, &MetadataRequest::default());
    f[6..8].copy_from_slice(&99i16.to_be_bytes());
    s.write_all(&f).expect("unsupported version");
    assert!(
        closed_by_broker(s),
        "unsupported version closes the connection"
    );

    let mut s = b.connect();
    let mut f = request(ApiKey::Metadata, 1, &MetadataRequest::default());
    let n = f.len();
    f[n - 3] = 0xff; // topics array length garbage inside a well-framed request
    f[n - 4] = 0x7f;
    s.write_all(&f).expect("malformed body");
    assert!(
        closed_by_broker(s),
        "a malformed body closes the connection"
    );

    assert!(b.is_running(), "broker survived");
    client_still_works(&b, "after-garbage");
}

#[test]
fn api_versions_answers_an_unknown_version_in_v0_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(&dir.path().join("data"), &[]);
    let mut s = b.connect();
    let mut f = request(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
    f[6..8].copy_from_slice(&42i16.to_be_bytes());
    s.write_all(&f).expect("write");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("len");
    let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).expect("body");
    let mut b2 = Bytes::from(buf);
    assert_eq!(b2.get_i32(), 7, "v0 header: correlation id only");
    let resp = ApiVersionsResponse::decode(&mut b2, 0).expect("v0 body");
    assert_eq!(resp.error_code, 35, "UNSUPPORTED_VERSION");
    let fetch = resp
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Fetch as i16)
        .expect("fetch listed");
    assert!(fetch.min_version <= 4 && fetch.max_version >= 13);
    assert!(
        resp.api_keys
            .iter()
            .all(|k| k.api_key != ApiKey::AddPartitionsToTxn as i16),
        "only implemented APIs are advertised"
    );

    // And a normal v3 request gets a v3 answer.
    let mut s = b.connect();
    let resp: ApiVersionsResponse = roundtrip(
        &mut s,
        &request(
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("t"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        ),
        3,
    );
    assert_eq!(resp.error_code, 0);
}

#[test]
fn the_newest_metadata_describe_cluster_and_api_versions_versions_are_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(&dir.path().join("data"), &[]);
    let mut s = b.connect();
    let v: ApiVersionsResponse = roundtrip(
        &mut s,
        &request(
            ApiKey::ApiVersions,
            4,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("t"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        ),
        4,
    );
    assert_eq!(v.error_code, 0);
    let range = |k: ApiKey| {
        v.api_keys
            .iter()
            .find(|a| a.api_key == k as i16)
            .map(|a| (a.min_version, a.max_version))
    };
    assert_eq!(range(ApiKey::ApiVersions), Some((0, 5)));
    assert_eq!(range(ApiKey::Metadata), Some((0, 13)));
    assert_eq!(range(ApiKey::DescribeCluster), Some((0, 2)));
    // Metadata v13 (a top-level error code, KIP-1102) auto-creates and describes a topic.
    let m: MetadataResponse = roundtrip(
        &mut s,
        &request(
            ApiKey::Metadata,
            13,
            &MetadataRequest::default()
                .with_allow_auto_topic_creation(true)
                .with_topics(Some(vec![
                    kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_static_str("m13")))),
                ])),
        ),
        13,
    );
    assert_eq!((m.error_code, m.brokers.len()), (0, 1));
    assert_eq!(m.topics[0].error_code, 0);
    assert_eq!(m.topics[0].partitions.len(), 1);
    // DescribeCluster v2 (fenced brokers may be asked for: one broker, never fenced).
    let c: DescribeClusterResponse = roundtrip(
        &mut s,
        &request(
            ApiKey::DescribeCluster,
            2,
            &DescribeClusterRequest::default().with_include_fenced_brokers(true),
        ),
        2,
    );
    assert_eq!((c.error_code, c.brokers.len()), (0, 1));
    assert!(!c.brokers[0].is_fenced);
}

#[test]
fn bad_produce_and_fetch_get_kafka_error_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(&dir.path().join("data"), &["--auto-create-topics", "false"]);
    let mut s = b.connect();
    let create = CreateTopicsRequest::default().with_topics(vec![
        kafka_protocol::messages::create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let r: CreateTopicsResponse = roundtrip(&mut s, &request(ApiKey::CreateTopics, 7, &create), 7);
    assert_eq!(r.topics[0].error_code, 0);
    let again: CreateTopicsResponse =
        roundtrip(&mut s, &request(ApiKey::CreateTopics, 7, &create), 7);
    assert_eq!(again.topics[0].error_code, 36, "TOPIC_ALREADY_EXISTS");

    let good = strata::storage::batch::build_batch(0, 1, &[(None, b"ok")]);
    let mut corrupt = good.clone();
    let n = corrupt.len();
    corrupt[n - 1] ^= 0xff;
    let mut old_magic = good.clone();
    old_magic[16] = 1;
    let produce = |topic: &'static str, part: i32, records: Vec<u8>| {
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(topic)))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(part)
                    .with_records(Some(Bytes::from(records)))])])
    };
    let code = |s: &mut TcpStream, req: ProduceRequest| {
        let r: ProduceResponse = roundtrip(s, &request(ApiKey::Produce, 9, &req), 9);
        r.responses[0].partition_responses[0].error_code
    };
    assert_eq!(code(&mut s, produce("t", 0, corrupt)), 2, "CORRUPT_MESSAGE");
    assert_eq!(
        code(&mut s, produce("t", 0, old_magic)),
        87,
        "INVALID_RECORD"
    );
    assert_eq!(
        code(&mut s, produce("t", 0, good[..30].to_vec())),
        87,
        "no whole batch: INVALID_RECORD, as Kafka"
    );
    let mut unknown_magic = good.clone();
    unknown_magic[16] = 3;
    assert_eq!(
        code(&mut s, produce("t", 0, unknown_magic)),
        2,
        "unknown magic: CORRUPT_MESSAGE, as Kafka"
    );
    assert_eq!(
        code(
            &mut s,
            produce("t", 0, [good.clone(), good.clone()].concat())
        ),
        87,
        "two batches for one partition: INVALID_RECORD, as Kafka"
    );
    let mut based = good.clone();
    based[7] = 1;
    assert_eq!(
        code(&mut s, produce("t", 0, based)),
        87,
        "a base offset other than 0: INVALID_RECORD, as Kafka"
    );
    assert_eq!(
        code(&mut s, produce("nope", 0, good.clone())),
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(
        code(&mut s, produce("t", 5, good.clone())),
        3,
        "unknown partition"
    );
    let big = strata::storage::batch::build_batch(0, 1, &[(None, &vec![7u8; 2 * 1024 * 1024])]);
    assert_eq!(code(&mut s, produce("t", 0, big)), 10, "MESSAGE_TOO_LARGE");
    assert_eq!(code(&mut s, produce("t", 0, good.clone())), 0);
    let mut bad_acks = produce("t", 0, good.clone());
    bad_acks.acks = 5;
    assert_eq!(code(&mut s, bad_acks), 21, "INVALID_REQUIRED_ACKS");

    let fetch = |offset: i64| {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])])
    };
    let r: FetchResponse = roundtrip(&mut s, &request(ApiKey::Fetch, 11, &fetch(-5)), 11);
    assert_eq!(
        r.responses[0].partitions[0].error_code, 1,
        "negative offset: OFFSET_OUT_OF_RANGE"
    );
    let r: FetchResponse = roundtrip(&mut s, &request(ApiKey::Fetch, 11, &fetch(99)), 11);
    assert_eq!(
        r.responses[0].partitions[0].error_code, 1,
        "beyond the end: OFFSET_OUT_OF_RANGE"
    );
    assert_eq!(r.responses[0].partitions[0].high_watermark, 1);
    let r: FetchResponse = roundtrip(&mut s, &request(ApiKey::Fetch, 11, &fetch(0)), 11);
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 1));
    let mut records = p.records.clone().expect("records");
    let stored =
        kafka_protocol::records::RecordBatchDecoder::decode(&mut records).expect("decodes");
    assert_eq!(stored.records[0].value.as_deref(), Some(&b"ok"[..]));
}

#[test]
fn group_requests_out_of_turn_get_the_group_error_codes() {
    use join_group_request::JoinGroupRequestProtocol;
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(
        &dir.path().join("data"),
        &["--group-initial-rebalance-delay-ms", "0"],
    );
    let mut s = b.connect();
    let group = |g: &str| GroupId(StrBytes::from_string(g.into()));
    let join = |member: &str, session_ms: i32, g: &str| {
        JoinGroupRequest::default()
            .with_group_id(group(g))
            .with_session_timeout_ms(session_ms)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(StrBytes::from_string(member.into()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(
                    b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
                ))])
    };
    let r: JoinGroupResponse = roundtrip(
        &mut s,
        &request(ApiKey::JoinGroup, 9, &join("", 10_000, "")),
        9,
    );
    assert_eq!(r.error_code, 24, "INVALID_GROUP_ID");
    let r: JoinGroupResponse = roundtrip(
        &mut s,
        &request(ApiKey::JoinGroup, 9, &join("", 10, "g")),
        9,
    );
    assert_eq!(r.error_code, 26, "INVALID_SESSION_TIMEOUT");
    let r: JoinGroupResponse = roundtrip(
        &mut s,
        &request(ApiKey::JoinGroup, 9, &join("", 10_000, "g")),
        9,
    );
    assert_eq!(r.error_code, 79, "MEMBER_ID_REQUIRED");
    let member = r.member_id.to_string();
    assert!(!member.is_empty(), "the id to join with");
    let r: JoinGroupResponse = roundtrip(
        &mut s,
        &request(ApiKey::JoinGroup, 9, &join("stranger", 10_000, "g")),
        9,
    );
    assert_eq!(r.error_code, 25, "UNKNOWN_MEMBER_ID");
    let r: JoinGroupResponse = roundtrip(
        &mut s,
        &request(ApiKey::JoinGroup, 9, &join(&member, 10_000, "g")),
        9,
    );
    assert_eq!((r.error_code, r.generation_id), (0, 1), "joined alone");
    assert_eq!(r.leader.to_string(), member);

    let hb = |generation: i32, m: &str| {
        HeartbeatRequest::default()
            .with_group_id(group("g"))
            .with_generation_id(generation)
            .with_member_id(StrBytes::from_string(m.into()))
    };
    let r: HeartbeatResponse =
        roundtrip(&mut s, &request(ApiKey::Heartbeat, 4, &hb(0, &member)), 4);
    assert_eq!(r.error_code, 22, "ILLEGAL_GENERATION");
    let r: HeartbeatResponse =
        roundtrip(&mut s, &request(ApiKey::Heartbeat, 4, &hb(1, "nobody")), 4);
    assert_eq!(r.error_code, 25, "UNKNOWN_MEMBER_ID");
    let r: HeartbeatResponse =
        roundtrip(&mut s, &request(ApiKey::Heartbeat, 4, &hb(1, &member)), 4);
    assert_eq!(r.error_code, 0, "heartbeat while completing the rebalance");

    let sync = SyncGroupRequest::default()
        .with_group_id(group("g"))
        .with_generation_id(1)
        .with_member_id(StrBytes::from_string(member.clone()))
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(StrBytes::from_string(member.clone()))
                .with_assignment(Bytes::from_static(b"mine")),
        ]);
    let r: SyncGroupResponse = roundtrip(&mut s, &request(ApiKey::SyncGroup, 5, &sync), 5);
    assert_eq!((r.error_code, r.assignment.as_ref()), (0, &b"mine"[..]));

    // A simple commit to a group with members is refused; the member's own commit is not.
    let md = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(StrBytes::from_static_str("t"))))]));
    let _: MetadataResponse = roundtrip(&mut s, &request(ApiKey::Metadata, 12, &md), 12);
    let commit = |generation: i32, m: &str| {
        use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
        OffsetCommitRequest::default()
            .with_group_id(group("g"))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(StrBytes::from_string(m.into()))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(0)])])
    };
    let code = |r: OffsetCommitResponse| r.topics[0].partitions[0].error_code;
    let r: OffsetCommitResponse = roundtrip(
        &mut s,
        &request(ApiKey::OffsetCommit, 8, &commit(-1, "")),
        8,
    );
    assert_eq!(
        code(r),
        25,
        "UNKNOWN_MEMBER_ID for a simple commit to an active group"
    );
    let r: OffsetCommitResponse = roundtrip(
        &mut s,
        &request(ApiKey::OffsetCommit, 8, &commit(0, &member)),
        8,
    );
    assert_eq!(code(r), 22, "ILLEGAL_GENERATION");
    let r: OffsetCommitResponse = roundtrip(
        &mut s,
        &request(ApiKey::OffsetCommit, 8, &commit(1, &member)),
        8,
    );
    assert_eq!(code(r), 0, "the member's commit");

    let del = DeleteGroupsRequest::default().with_groups_names(vec![group("g"), group("ghost")]);
    let r: DeleteGroupsResponse = roundtrip(&mut s, &request(ApiKey::DeleteGroups, 2, &del), 2);
    let codes: Vec<i16> = r.results.iter().map(|x| x.error_code).collect();
    assert_eq!(codes, vec![68, 69], "NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND");
    let desc = DescribeGroupsRequest::default().with_groups(vec![group("ghost"), group("g")]);
    let r: DescribeGroupsResponse =
        roundtrip(&mut s, &request(ApiKey::DescribeGroups, 5, &desc), 5);
    let states: Vec<String> = r.groups.iter().map(|g| g.group_state.to_string()).collect();
    assert_eq!(states, vec!["Dead", "Stable"]);
    assert_eq!(r.groups[1].members[0].member_assignment.as_ref(), b"mine");

    let leave = LeaveGroupRequest::default()
        .with_group_id(group("g"))
        .with_members(vec![leave_group_request::MemberIdentity::default()
            .with_member_id(StrBytes::from_string(member.clone()))]);
    let r: LeaveGroupResponse = roundtrip(&mut s, &request(ApiKey::LeaveGroup, 5, &leave), 5);
    assert_eq!((r.error_code, r.members[0].error_code), (0, 0));
    let r: DeleteGroupsResponse = roundtrip(&mut s, &request(ApiKey::DeleteGroups, 2, &del), 2);
    let codes: Vec<i16> = r.results.iter().map(|x| x.error_code).collect();
    assert_eq!(codes, vec![0, 69], "an empty group can be deleted");
}

#[test]
fn a_group_whose_metadata_exceeds_a_megabyte_is_still_stored() {
    use join_group_request::JoinGroupRequestProtocol;
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(
        &dir.path().join("data"),
        &["--group-initial-rebalance-delay-ms", "0"],
    );
    let mut s = b.connect();
    let big = Bytes::from(vec![0u8; 1536 * 1024]);
    let join = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("big")))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(StrBytes::from_string(member.into()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(big.clone())])
    };
    let r: JoinGroupResponse = roundtrip(&mut s, &request(ApiKey::JoinGroup, 9, &join("")), 9);
    let member = r.member_id.to_string();
    let r: JoinGroupResponse = roundtrip(&mut s, &request(ApiKey::JoinGroup, 9, &join(&member)), 9);
    assert_eq!(r.error_code, 0);
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("big")))
        .with_generation_id(r.generation_id)
        .with_member_id(StrBytes::from_string(member.clone()))
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(StrBytes::from_string(member))
                .with_assignment(big.clone()),
        ]);
    let r: SyncGroupResponse = roundtrip(&mut s, &request(ApiKey::SyncGroup, 5, &sync), 5);
    assert_eq!(r.error_code, 0, "the 3 MiB group record was stored");
    assert_eq!(r.assignment.len(), big.len());
}
