//! Kafka's rule for retention and the cleanup policy, through the partition: a `compact`-only
//! topic is never deleted by time or size retention, so `__consumer_offsets` keeps a group's
//! commits however old they are; `delete` (and `compact,delete`) topics lose old segments.
//! The clock is injected and moved days ahead.

mod common;

use std::rc::Rc;

use common::*;
use strata::group::coordinator::GroupSettings;
use strata::group::offsets::Committed;
use strata::group::service::GroupService;
use strata::group::{GroupOp, GroupReply};
use strata::partition::Partition;
use strata::storage::{Clock, LogConfig, ManualClock, SystemClock};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn offsets_like(policy: &str) -> LogConfig {
    let mut c = LogConfig::default();
    c.set("cleanup.policy", policy).expect("policy");
    c.retention_ms = 1000;
    c.segment_ms = 1000;
    c
}

async fn commit(service: &GroupService, p: &Rc<Partition>, partition: i32, offset: i64) {
    let op = GroupOp::Commit {
        group: "g".into(),
        generation: -1,
        member_id: String::new(),
        instance_id: None,
        commits: vec![(
            "orders".into(),
            partition,
            Committed {
                offset,
                leader_epoch: -1,
                commit_time_ms: 0,
                metadata: None,
            },
        )],
    };
    match service.run(0, p.clone(), op).await.expect("commit") {
        GroupReply::Status(Ok(())) => {}
        other => panic!("commit refused: {other:?}"),
    }
}

/// Commits for three partitions a day apart, then a retention pass ten days later; returns
/// the segments retention deleted and the offsets a freshly loaded group service finds.
async fn commits_after_retention(policy: &str) -> (usize, Vec<(i32, i64)>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(SystemClock.now_ms());
    let log = open_with(dir.path(), offsets_like(policy), Rc::new(clock.clone())).await;
    let p = Partition::open(log).await.expect("partition");
    let service = GroupService::new(GroupSettings::default());
    for partition in 0..3 {
        commit(&service, &p, partition, 100 + partition as i64).await;
        // A day later the next commit rolls the segment: each commit sits in its own.
        clock.advance(DAY_MS);
    }
    assert!(
        p.stats().segments >= 3,
        "the commits were rolled into sealed segments"
    );
    clock.advance(10 * DAY_MS);
    let deleted = p.enforce_retention().await.expect("retention");
    // A restarted broker rebuilds its groups from what is left of the partition.
    let reloaded = GroupService::new(GroupSettings::default());
    let found = match reloaded
        .run(0, p.clone(), GroupOp::FetchOffsets { group: "g".into() })
        .await
        .expect("fetch")
    {
        GroupReply::Offsets(v) => {
            let mut v: Vec<(i32, i64)> =
                v.into_iter().map(|((_, _, p), c)| (p, c.offset)).collect();
            v.sort();
            v
        }
        other => panic!("unexpected reply {other:?}"),
    };
    (deleted, found)
}

#[test]
fn a_compact_topic_keeps_every_commit_through_retention() {
    run(async {
        let (deleted, found) = commits_after_retention("compact").await;
        assert_eq!(deleted, 0, "retention never deletes a compact-only topic");
        assert_eq!(found, vec![(0, 100), (1, 101), (2, 102)]);
    });
}

#[test]
fn delete_and_compact_delete_topics_lose_old_segments() {
    run(async {
        for policy in ["delete", "compact,delete"] {
            let (deleted, found) = commits_after_retention(policy).await;
            assert!(deleted >= 2, "{policy}: old segments deleted ({deleted})");
            assert!(
                !found.contains(&(0, 100)),
                "{policy}: the oldest commit went with its segment: {found:?}"
            );
        }
    });
}
