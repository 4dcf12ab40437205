//! Kafka's offset expiry (`offsets.retention.minutes`) through the group service, with the
//! clock injected and moved hours ahead: a classic group's offsets expire the retention after
//! the group became empty (not after their commit), then the group goes too (metadata
//! tombstone); a simple consumer's (no membership) and a stable group's unsubscribed topics'
//! offsets expire the retention after their commit; a stable group's subscribed topics keep
//! theirs; a consumer-protocol group without members loses its offsets the retention after
//! their commit, and then the group. The tombstones are in `__consumer_offsets`: a service rebuilt from the log (a
//! restart) finds the same, and knows when a group emptied from its record's time.

mod common;

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use strata::group::coordinator::{GroupSettings, JoinRequest, SyncRequest};
use strata::group::offsets::Committed;
use strata::group::service::GroupService;
use strata::group::{GroupOp, GroupReply};
use strata::partition::Partition;
use strata::storage::{Clock, LogConfig, ManualClock, SystemClock};

const MINUTE_MS: i64 = 60_000;

fn settings() -> GroupSettings {
    GroupSettings {
        initial_rebalance_delay: Duration::ZERO,
        offsets_retention: Duration::from_secs(3600),
        offsets_retention_check_interval: Duration::from_secs(60),
        ..GroupSettings::default()
    }
}

/// A consumer's JoinGroup metadata subscribing to `topics` (ConsumerProtocolSubscription v0).
fn subscription(topics: &[&str]) -> Bytes {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let s = ConsumerProtocolSubscription::default().with_topics(
        topics
            .iter()
            .map(|t| StrBytes::from_string(t.to_string()))
            .collect(),
    );
    let mut out = bytes::BytesMut::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    s.encode(&mut out, 0).expect("encode");
    out.freeze()
}

struct Groups {
    service: GroupService,
    p: Rc<Partition>,
    clock: ManualClock,
}

impl Groups {
    async fn run(&self, op: GroupOp) -> GroupReply {
        self.service.run(0, self.p.clone(), op).await.expect("op")
    }

    /// Joins a one-member classic consumer group and syncs it; returns (member, generation).
    async fn join(&self, group: &str, topics: &[&str]) -> (String, i32) {
        let joined = match self
            .run(GroupOp::Join(JoinRequest {
                group: group.into(),
                member_id: String::new(),
                instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                session_timeout: Duration::from_secs(600),
                rebalance_timeout: Duration::from_secs(600),
                protocol_type: "consumer".into(),
                protocols: vec![("range".into(), subscription(topics))],
                require_known_member_id: false,
                supports_skip_assignment: false,
            }))
            .await
        {
            GroupReply::Join(o) => o,
            other => panic!("{other:?}"),
        };
        assert_eq!(joined.error, None);
        match self
            .run(GroupOp::Sync(SyncRequest {
                group: group.into(),
                generation: joined.generation,
                member_id: joined.member_id.clone(),
                instance_id: None,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignments: vec![(joined.member_id.clone(), Bytes::new())],
            }))
            .await
        {
            GroupReply::Sync(o) => assert_eq!(o.error, None),
            other => panic!("{other:?}"),
        }
        (joined.member_id, joined.generation)
    }

    async fn commit(&self, group: &str, member: (&str, i32), topic: &str, offset: i64) {
        let op = GroupOp::Commit {
            group: group.into(),
            generation: member.1,
            member_id: member.0.into(),
            instance_id: None,
            version: 8,
            commits: vec![(
                topic.into(),
                0,
                Committed {
                    offset,
                    leader_epoch: -1,
                    commit_time_ms: self.clock.now_ms(),
                    metadata: None,
                },
            )],
        };
        match self.run(op).await {
            GroupReply::Status(Ok(())) => {}
            other => panic!("commit refused: {other:?}"),
        }
    }

    /// The topics `group` has offsets for.
    async fn offsets(&self, group: &str) -> Vec<String> {
        match self
            .run(GroupOp::FetchOffsets {
                group: group.into(),
            })
            .await
        {
            GroupReply::Offsets(v) => v.into_iter().map(|((_, t, _), _)| t).collect(),
            other => panic!("{other:?}"),
        }
    }

    /// A consumer-protocol (KIP-848) member's heartbeat: `epoch` 0 joins, -1 leaves.
    async fn heartbeat(&self, group: &str, member: &str, epoch: i32) -> i32 {
        let req = strata::group::consumer::HeartbeatRequest {
            group: group.into(),
            member_id: member.into(),
            member_epoch: epoch,
            instance_id: None,
            rack_id: None,
            rebalance_timeout_ms: 60_000,
            subscribed_topic_names: (epoch == 0).then(|| vec!["orders".to_string()]),
            subscribed_topic_regex: None,
            server_assignor: None,
            owned: (epoch == 0).then(Default::default),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            client_generates_id: true,
        };
        match self.run(GroupOp::ConsumerHeartbeat(Box::new(req))).await {
            GroupReply::ConsumerHeartbeat(Ok(o)) => o.member_epoch,
            other => panic!("{other:?}"),
        }
    }

    async fn consumer_group_exists(&self, group: &str) -> bool {
        match self
            .run(GroupOp::ConsumerDescribe {
                group: group.into(),
            })
            .await
        {
            GroupReply::ConsumerDescribed(r) => r.is_ok(),
            other => panic!("{other:?}"),
        }
    }

    async fn state(&self, group: &str) -> &'static str {
        match self
            .run(GroupOp::Describe {
                group: group.into(),
            })
            .await
        {
            GroupReply::Described(s) => s.state,
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn offsets_expire_after_offsets_retention_as_kafka_and_the_tombstones_survive_a_restart() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(SystemClock.now_ms());
        let mut config = LogConfig::default();
        config.set("cleanup.policy", "compact").expect("policy");
        let log = open_with(dir.path(), config, Rc::new(clock.clone())).await;
        let p = Partition::open(log).await.expect("partition");
        let g = Groups {
            service: GroupService::with_clock(settings(), Rc::new(clock.clone())),
            p: p.clone(),
            clock: clock.clone(),
        };
        let simple = ("", -1);
        // T0: a simple consumer commits; a stable group commits a subscribed topic and one it
        // no longer subscribes to; a group that will empty later commits.
        g.commit("simple", simple, "orders", 1).await;
        let (m, gen) = g.join("stable", &["orders"]).await;
        g.commit("stable", (&m, gen), "orders", 2).await;
        g.commit("stable", (&m, gen), "old", 3).await;
        let (left, left_gen) = g.join("left", &["orders"]).await;
        g.commit("left", (&left, left_gen), "orders", 4).await;
        let epoch = g.heartbeat("kip848", "cm", 0).await;
        let op = GroupOp::Commit {
            group: "kip848".into(),
            generation: epoch,
            member_id: "cm".into(),
            instance_id: None,
            version: 9,
            commits: vec![(
                "orders".into(),
                0,
                Committed {
                    offset: 5,
                    leader_epoch: -1,
                    commit_time_ms: clock.now_ms(),
                    metadata: None,
                },
            )],
        };
        assert!(matches!(g.run(op).await, GroupReply::Status(Ok(()))));
        // T0+30 min: "left" empties.
        clock.advance(30 * MINUTE_MS);
        g.service.tick().await;
        match g
            .run(GroupOp::Leave {
                group: "left".into(),
                members: vec![(left.clone(), None)],
            })
            .await
        {
            GroupReply::Left(r) => assert!(r.iter().all(|r| r.is_ok()), "{r:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(g.state("left").await, "Empty");
        assert_eq!(g.heartbeat("kip848", "cm", -1).await, -1);
        // T0+59 min: nothing is an hour old.
        clock.advance(29 * MINUTE_MS);
        g.service.tick().await;
        assert_eq!(g.offsets("simple").await, vec!["orders"]);
        assert_eq!(g.offsets("stable").await, vec!["old", "orders"]);
        assert_eq!(g.offsets("kip848").await, vec!["orders"]);
        // T0+61 min: commits an hour old expire, unless subscribed by a stable group; the
        // empty group's count from when it emptied.
        clock.advance(2 * MINUTE_MS);
        g.service.tick().await;
        assert!(
            g.offsets("simple").await.is_empty(),
            "simple consumer's offset expired"
        );
        assert_eq!(
            g.offsets("stable").await,
            vec!["orders"],
            "unsubscribed topic expired"
        );
        assert_eq!(
            g.offsets("left").await,
            vec!["orders"],
            "empty for 31 min only"
        );
        assert_eq!(g.state("simple").await, "Dead");
        // A consumer-protocol group without members: its offsets expire an hour after their
        // commit (Kafka 4's rule for consumer groups), and the group goes with them.
        assert!(g.offsets("kip848").await.is_empty());
        assert!(
            !g.consumer_group_exists("kip848").await,
            "deleted once empty of offsets"
        );
        // A restart: the state is rebuilt from the log (tombstones included), and the time
        // "left" emptied from its record.
        let g = Groups {
            service: GroupService::with_clock(settings(), Rc::new(clock.clone())),
            p: p.clone(),
            clock: clock.clone(),
        };
        assert!(g.offsets("simple").await.is_empty());
        assert!(g.offsets("kip848").await.is_empty());
        assert!(!g.consumer_group_exists("kip848").await);
        assert_eq!(g.offsets("stable").await, vec!["orders"]);
        assert_eq!(g.offsets("left").await, vec!["orders"]);
        // T0+91 min: "left" has been empty for 61 min: its offsets and the group go.
        clock.advance(30 * MINUTE_MS);
        g.service.tick().await;
        assert!(
            g.offsets("left").await.is_empty(),
            "expired an hour after emptying"
        );
        assert_eq!(
            g.state("left").await,
            "Dead",
            "the empty group went with its offsets"
        );
        assert_eq!(
            g.offsets("stable").await,
            vec!["orders"],
            "a stable group's subscribed topic stays"
        );
        assert_eq!(g.state("stable").await, "Stable");
        let g = Groups {
            service: GroupService::with_clock(settings(), Rc::new(clock.clone())),
            p: p.clone(),
            clock: clock.clone(),
        };
        assert!(g.offsets("left").await.is_empty());
        assert_eq!(
            g.state("left").await,
            "Dead",
            "the group's tombstone is stored"
        );
        assert_eq!(g.offsets("stable").await, vec!["orders"]);
    });
}
