//! Kafka's in-sync replicas under Raft, from the outside: three brokers (`--cores 1` each,
//! `--replica-lag-time-max-ms 1500`), a topic with three replicas and
//! `min.insync.replicas=3`. With every broker up the ISR is all three, as every broker's
//! Metadata says (the leader tells its followers in its heartbeats), and acks=all is taken.
//! Once a follower is killed the ISR, asked of each live broker over the wire, drops it within
//! the lag time; acks=all is then refused with NOT_ENOUGH_REPLICAS while acks=1 is taken; with
//! the follower back the ISR is whole again and acks=all is taken again.

mod common;

use std::time::{Duration, Instant};

use common::broker::{start_cluster_with, Broker};
use common::wire::{request, roundtrip};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

const TOPIC: &str = "in-sync";

/// Leader and ISR of partition 0 as broker `b` answers Metadata v9.
fn isr_at(b: &Broker) -> Option<(i32, Vec<i32>)> {
    let mut s = std::net::TcpStream::connect(b.bootstrap()).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))]));
    let resp: MetadataResponse = roundtrip(&mut s, &request(ApiKey::Metadata, 9, &req), 9);
    let p = resp.topics.first()?.partitions.first()?;
    let mut isr: Vec<i32> = p.isr_nodes.iter().map(|n| n.0).collect();
    isr.sort_unstable();
    Some((p.leader_id.0, isr))
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
    let all: String = brokers
        .iter()
        .map(|b| b.bootstrap())
        .collect::<Vec<_>>()
        .join(",");
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

    // Kill a follower: the ISR drops it on every live broker within the lag time.
    let victim = (1..=3).find(|id| *id != leader).expect("a follower");
    brokers[victim as usize - 1].kill9();
    let alive: Vec<i32> = (1..=3).filter(|id| *id != victim).collect();
    let asked: Vec<&Broker> = alive.iter().map(|id| &brokers[*id as usize - 1]).collect();
    wait_for_isr(&asked, &alive, &brokers);
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
