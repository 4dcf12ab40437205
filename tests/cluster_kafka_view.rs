//! What Kafka clients see of replication, from the outside.
//!
//! The in-sync replicas under Raft: three brokers (`--cores 1` each,
//! `--replica-lag-time-max-ms 1500`), a topic with three replicas and
//! `min.insync.replicas=3`. With every broker up the ISR is all three, as every broker's
//! Metadata says (the leader tells its followers in its heartbeats), and acks=all is taken.
//! Once a follower is killed the ISR, asked of each live broker over the wire, drops it within
//! the lag time; acks=all is then refused with NOT_ENOUGH_REPLICAS while acks=1 is taken; with
//! the follower back the ISR is whole again and acks=all is taken again.
//!
//! `strata cluster status` says the same: every broker alive and nothing under-replicated, then
//! the killed broker down and the partitions it held under-replicated.
//!
//! Leader epochs (KIP-320): the epoch is the Raft term. After the leader is killed and another
//! leads, OffsetForLeaderEpoch for the old epoch ends where the new term began (the offset of
//! the first record written after the failover), the current epoch ends at the log end, and
//! Fetch, ListOffsets and OffsetForLeaderEpoch with an older `current_leader_epoch` get
//! FENCED_LEADER_EPOCH, with a newer one UNKNOWN_LEADER_EPOCH.
//!
//! Preferred leaders: ElectLeaders makes a partition's first replica its leader (and says
//! ELECTION_NOT_NEEDED once it is); with `--leader-imbalance-check-interval-ms`, a preferred
//! replica that was killed and restarted takes its leadership back by itself.

mod common;

use std::time::{Duration, Instant};

use common::broker::{bootstrap_all, start_cluster_with, Broker};
use common::wire::{request, roundtrip};
use kafka_protocol::messages::describe_topic_partitions_request::TopicRequest;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
    ElectLeadersRequest, ElectLeadersResponse, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

const TOPIC: &str = "in-sync";

fn topic_name(topic: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(topic))
}

/// Leader, leader epoch and ISR of partition 0 of `topic` as broker `b` answers Metadata v9.
fn partition_at(b: &Broker, topic: &'static str) -> Option<(i32, i32, Vec<i32>)> {
    let mut s = std::net::TcpStream::connect(b.bootstrap()).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
    ]));
    let resp: MetadataResponse = roundtrip(&mut s, &request(ApiKey::Metadata, 9, &req), 9);
    let p = resp.topics.first()?.partitions.first()?;
    let mut isr: Vec<i32> = p.isr_nodes.iter().map(|n| n.0).collect();
    isr.sort_unstable();
    Some((p.leader_id.0, p.leader_epoch, isr))
}

/// Leader, epoch and ISR of partition 0 of [`TOPIC`] as `b` answers DescribeTopicPartitions
/// (what the Java Admin client of Kafka 4 describes topics with).
fn described_at(b: &Broker) -> (i32, i32, Vec<i32>) {
    let mut s = b.connect();
    let req = DescribeTopicPartitionsRequest::default()
        .with_topics(vec![TopicRequest::default().with_name(topic_name(TOPIC))])
        .with_response_partition_limit(100);
    let resp: DescribeTopicPartitionsResponse = roundtrip(
        &mut s,
        &request(ApiKey::DescribeTopicPartitions, 0, &req),
        0,
    );
    let p = &resp.topics[0].partitions[0];
    let mut isr: Vec<i32> = p.isr_nodes.iter().map(|n| n.0).collect();
    isr.sort_unstable();
    (p.leader_id.0, p.leader_epoch, isr)
}

/// Leader and ISR of partition 0 as broker `b` answers Metadata v9.
fn isr_at(b: &Broker) -> Option<(i32, Vec<i32>)> {
    partition_at(b, TOPIC).map(|(leader, _, isr)| (leader, isr))
}

/// Waits until every broker of `asked` reports `want` as the ISR; returns the leader.
fn wait_for_isr(asked: &[&Broker], want: &[i32], all: &[Broker]) -> i32 {
    let start = Instant::now();
    loop {
        let seen: Vec<Option<(i32, Vec<i32>)>> = asked.iter().map(|b| isr_at(b)).collect();
        if seen
            .iter()
            .all(|s| s.as_ref().is_some_and(|(l, isr)| *l >= 0 && isr == want))
        {
            return seen[0].as_ref().map_or(-1, |s| s.0);
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the ISR did not become {want:?}: {seen:?}\n{}",
            all.iter()
                .map(|b| b.log_tail(20))
                .collect::<Vec<_>>()
                .join("\n----\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What `strata cluster status` prints.
fn cluster_status(bootstrap: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["cluster", "status", "--brokers", bootstrap])
        .output()
        .expect("strata cluster status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// One record with `acks`; `retries=0`, so the broker's answer is what the delivery reports
/// (librdkafka would retry NOT_ENOUGH_REPLICAS, a retriable error, until it times out).
fn produce(bootstrap: &str, acks: &str, value: &str) -> Result<(), KafkaError> {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("retries", "0")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "4000")
        .create()
        .expect("producer");
    let r = futures_lite::future::block_on(p.send(
        FutureRecord::<(), _>::to(TOPIC).partition(0).payload(value),
        Duration::from_secs(10),
    ));
    r.map(|_| ()).map_err(|(e, _)| e)
}

#[test]
fn the_isr_follows_the_followers_and_min_insync_replicas_guards_acks_all() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut brokers = start_cluster_with(dir.path(), 3, &["--replica-lag-time-max-ms", "1500"]);
    let all = bootstrap_all(&brokers);
    let start = Instant::now();
    loop {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &all)
            .create()
            .expect("admin");
        let t = NewTopic::new(TOPIC, 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "3");
        let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        match futures_lite::future::block_on(admin.create_topics([&t], &opts)).as_deref() {
            Ok([Ok(_)]) => break,
            other => {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "create: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    let leader = wait_for_isr(&brokers.iter().collect::<Vec<_>>(), &[1, 2, 3], &brokers);
    produce(&all, "all", "whole").expect("acks=all with every replica in sync");
    let status = cluster_status(&all);
    assert!(status.contains("3 broker(s)"), "{status}");
    assert!(
        status.contains(" 0 under-replicated, 0 offline"),
        "{status}"
    );
    // `__consumer_offsets` (50) and this topic's one, every one led by someone.
    assert!(status.contains("partitions: 51 total,"), "{status}");
    assert_eq!(status.matches("\talive\t").count(), 3, "{status}");

    // Kill a follower: the ISR drops it on every live broker within the lag time.
    let victim = (1..=3).find(|id| *id != leader).expect("a follower");
    brokers[victim as usize - 1].kill9();
    let alive: Vec<i32> = (1..=3).filter(|id| *id != victim).collect();
    let asked: Vec<&Broker> = alive.iter().map(|id| &brokers[*id as usize - 1]).collect();
    wait_for_isr(&asked, &alive, &brokers);
    for b in &asked {
        let (l, epoch, isr) = described_at(b);
        let (_, md_epoch, _) = partition_at(b, TOPIC).expect("metadata");
        assert_eq!(
            (l, epoch, isr),
            (leader, md_epoch, alive.clone()),
            "DescribeTopicPartitions"
        );
    }
    let status = cluster_status(&all);
    assert!(
        status.contains(&format!("broker {victim}\t")) && status.contains("\tdown\t"),
        "{status}"
    );
    assert!(
        status.contains(&format!("under-replicated {TOPIC}-0\tleader {leader}\t")),
        "{status}"
    );
    match produce(&all, "all", "short") {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicas)) => {}
        other => panic!("acks=all below min.insync.replicas: {other:?}"),
    }
    produce(&all, "1", "leader-only").expect("acks=1 needs the leader alone");

    // Back: caught up, in sync again, acks=all taken again.
    brokers[victim as usize - 1].start_again();
    wait_for_isr(&brokers.iter().collect::<Vec<_>>(), &[1, 2, 3], &brokers);
    produce(&all, "all", "whole-again").expect("acks=all once the ISR is whole");
}

const EPOCHS: &str = "epochs";

/// Creates `topic` (one partition, three replicas) through whichever broker is the controller.
fn create(all: &str, topic: &str) {
    let start = Instant::now();
    loop {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", all)
            .create()
            .expect("admin");
        let t = NewTopic::new(topic, 1, TopicReplication::Fixed(3));
        let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        match futures_lite::future::block_on(admin.create_topics([&t], &opts)).as_deref() {
            Ok([Ok(_)]) => return,
            other => {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "create: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

/// Writes `n` records to partition 0 of `topic` with acks=all (retrying through elections).
fn write(all: &str, topic: &str, n: usize) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", all)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer");
    for i in 0..n {
        let v = format!("r{i}");
        futures_lite::future::block_on(p.send(
            FutureRecord::<(), _>::to(topic).partition(0).payload(&v),
            Duration::from_secs(60),
        ))
        .map_err(|(e, _)| e)
        .expect("acknowledged");
    }
}

/// Waits until a live broker names a leader of partition 0 with an epoch; (leader, epoch).
fn leader_and_epoch(b: &Broker, topic: &'static str, not: Option<i32>) -> (i32, i32) {
    let start = Instant::now();
    loop {
        if let Some((leader, epoch, _)) = partition_at(b, topic) {
            if leader >= 0 && Some(leader) != not {
                return (leader, epoch);
            }
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no new leader");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn epoch_end(b: &Broker, current: i32, epoch: i32) -> (i16, i32, i64) {
    let mut s = b.connect();
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(topic_name(EPOCHS))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current)
                .with_leader_epoch(epoch)])]);
    let resp: OffsetForLeaderEpochResponse =
        roundtrip(&mut s, &request(ApiKey::OffsetForLeaderEpoch, 4, &req), 4);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.leader_epoch, p.end_offset)
}

fn fetch_code(b: &Broker, current: i32) -> i16 {
    let mut s = b.connect();
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(EPOCHS))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(current)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let resp: FetchResponse = roundtrip(&mut s, &request(ApiKey::Fetch, 12, &req), 12);
    resp.responses[0].partitions[0].error_code
}

fn list_offsets(b: &Broker, current: i32) -> (i16, i64, i32) {
    let mut s = b.connect();
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(EPOCHS))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_current_leader_epoch(current)
                .with_timestamp(-1)])]);
    let resp: ListOffsetsResponse = roundtrip(&mut s, &request(ApiKey::ListOffsets, 7, &req), 7);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset, p.leader_epoch)
}

const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

#[test]
fn leader_epochs_are_raft_terms_and_fence_stale_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut brokers = start_cluster_with(dir.path(), 3, &[]);
    let all = bootstrap_all(&brokers);
    create(&all, EPOCHS);
    write(&all, EPOCHS, 5);
    let (old_leader, old_epoch) = leader_and_epoch(&brokers[0], EPOCHS, None);
    assert!(old_epoch > 0, "the epoch is a Raft term");

    brokers[old_leader as usize - 1].kill9();
    let other = (1..=3)
        .find(|id| *id != old_leader)
        .expect("another broker");
    let (leader, epoch) = leader_and_epoch(&brokers[other as usize - 1], EPOCHS, Some(old_leader));
    assert!(
        epoch > old_epoch,
        "a new leader, a new epoch: {old_epoch} -> {epoch}"
    );
    write(&all, EPOCHS, 3);
    let lb = &brokers[leader as usize - 1];

    // The old epoch ended where the new term began: after the first five records.
    assert_eq!(epoch_end(lb, -1, old_epoch), (0, old_epoch, 5));
    assert_eq!(
        epoch_end(lb, epoch, epoch),
        (0, epoch, 8),
        "the current epoch ends at the log end"
    );
    assert_eq!(
        epoch_end(lb, -1, epoch + 1),
        (0, -1, -1),
        "a later epoch is not known"
    );
    assert_eq!(epoch_end(lb, old_epoch, old_epoch).0, FENCED_LEADER_EPOCH);
    assert_eq!(epoch_end(lb, epoch + 1, epoch).0, UNKNOWN_LEADER_EPOCH);

    assert_eq!(fetch_code(lb, epoch), 0);
    assert_eq!(fetch_code(lb, -1), 0);
    assert_eq!(fetch_code(lb, old_epoch), FENCED_LEADER_EPOCH);
    assert_eq!(fetch_code(lb, epoch + 1), UNKNOWN_LEADER_EPOCH);
    assert_eq!(list_offsets(lb, epoch), (0, 8, epoch));
    assert_eq!(list_offsets(lb, old_epoch).0, FENCED_LEADER_EPOCH);
    assert_eq!(list_offsets(lb, epoch + 1).0, UNKNOWN_LEADER_EPOCH);
}

const PREFERRED: &str = "preferred";

/// The preferred replica (first of the assignment) and the leader of partition 0.
fn preferred_and_leader(b: &Broker) -> Option<(i32, i32)> {
    let mut s = std::net::TcpStream::connect(b.bootstrap()).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name(PREFERRED)))
    ]));
    let resp: MetadataResponse = roundtrip(&mut s, &request(ApiKey::Metadata, 9, &req), 9);
    let p = resp.topics.first()?.partitions.first()?;
    Some((p.replica_nodes.first()?.0, p.leader_id.0))
}

/// ElectLeaders v2 at `b`: the code per asked partition (`None`: every partition), in order.
fn elect(b: &Broker, election_type: i8, partitions: Option<&[i32]>) -> Vec<i16> {
    elect_all(b, election_type, partitions)
        .into_iter()
        .map(|(_, code)| code)
        .collect()
}

/// [`elect`] with the topic of each answer.
fn elect_all(b: &Broker, election_type: i8, partitions: Option<&[i32]>) -> Vec<(String, i16)> {
    let mut s = b.connect();
    let req = ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_timeout_ms(20_000)
        .with_topic_partitions(partitions.map(|ps| {
            vec![TopicPartitions::default()
                .with_topic(topic_name(PREFERRED))
                .with_partitions(ps.to_vec())]
        }));
    let resp: ElectLeadersResponse = roundtrip(&mut s, &request(ApiKey::ElectLeaders, 2, &req), 2);
    resp.replica_election_results
        .iter()
        .flat_map(|t| {
            t.partition_result
                .iter()
                .map(|p| (t.topic.0.to_string(), p.error_code))
        })
        .collect()
}

fn wait_for_leader(b: &Broker, want: i32, what: &str, all: &[Broker]) {
    let start = Instant::now();
    loop {
        let now = preferred_and_leader(b);
        if now.is_some_and(|(_, l)| l == want) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what}: leader is not {want}: {now:?}\n{}",
            all.iter()
                .map(|b| b.log_tail(20))
                .collect::<Vec<_>>()
                .join("\n----\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

const ELECTION_NOT_NEEDED: i16 = 84;

#[test]
fn elect_leaders_hands_leadership_to_the_preferred_replica() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut brokers = start_cluster_with(dir.path(), 3, &[]);
    let all = bootstrap_all(&brokers);
    create(&all, PREFERRED);
    write(&all, PREFERRED, 3);
    let (preferred, _) = preferred_and_leader(&brokers[0]).expect("metadata");
    // Make sure another replica leads: stop the preferred one, wait for a new leader.
    brokers[preferred as usize - 1].kill9();
    let other = (1..=3).find(|id| *id != preferred).expect("another");
    let start = Instant::now();
    let led_by = loop {
        if let Some((_, l)) = preferred_and_leader(&brokers[other as usize - 1]) {
            if l > 0 && l != preferred {
                break l;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no new leader");
        std::thread::sleep(Duration::from_millis(200));
    };
    write(&all, PREFERRED, 3);
    brokers[preferred as usize - 1].start_again();
    // Nobody asks (the automatic return is every 300 s by default): the leader stays.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(preferred_and_leader(&brokers[0]).map(|x| x.1), Some(led_by));
    // Asked at any replica's broker (here one that does not lead): the preferred one leads.
    let asked_at = (1..=3).find(|id| *id != led_by).expect("a follower");
    assert_eq!(
        elect(&brokers[asked_at as usize - 1], 0, Some(&[0])),
        vec![0]
    );
    wait_for_leader(&brokers[0], preferred, "after ElectLeaders", &brokers);
    assert_eq!(elect(&brokers[0], 0, Some(&[0])), vec![ELECTION_NOT_NEEDED]);
    // Every partition: the others (`__consumer_offsets`, whose leaders moved with the kill)
    // are elected, this one, led by its preferred replica, is not reported.
    let every = elect_all(&brokers[0], 0, None);
    assert!(
        every.iter().all(|(t, code)| t != PREFERRED && *code == 0),
        "{every:?}"
    );
    assert_eq!(
        elect(&brokers[0], 1, Some(&[0])),
        vec![ELECTION_NOT_NEEDED],
        "unclean"
    );
    assert_eq!(
        elect(&brokers[0], 0, Some(&[7])),
        vec![3],
        "unknown partition"
    );
    write(&all, PREFERRED, 1);
}

#[test]
fn a_returning_preferred_replica_takes_its_leadership_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut brokers = start_cluster_with(
        dir.path(),
        3,
        &["--leader-imbalance-check-interval-ms", "1000"],
    );
    let all = bootstrap_all(&brokers);
    create(&all, PREFERRED);
    write(&all, PREFERRED, 3);
    let (preferred, _) = preferred_and_leader(&brokers[0]).expect("metadata");
    wait_for_leader(&brokers[0], preferred, "at first", &brokers);
    brokers[preferred as usize - 1].kill9();
    let other = (1..=3).find(|id| *id != preferred).expect("another");
    let start = Instant::now();
    loop {
        if preferred_and_leader(&brokers[other as usize - 1])
            .is_some_and(|(_, l)| l > 0 && l != preferred)
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no new leader");
        std::thread::sleep(Duration::from_millis(200));
    }
    write(&all, PREFERRED, 3);
    brokers[preferred as usize - 1].start_again();
    wait_for_leader(
        &brokers[other as usize - 1],
        preferred,
        "after its return",
        &brokers,
    );
    write(&all, PREFERRED, 1);
}
