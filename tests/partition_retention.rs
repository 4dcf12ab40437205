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
        version: 8,
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

/// Kafka's timestamp window under CreateTime: `message.timestamp.after.max.ms` (one hour by
/// default) and `message.timestamp.before.max.ms` (unbounded by default) refuse a batch with
/// INVALID_TIMESTAMP; LogAppendTime topics take any.
#[test]
fn batches_outside_the_timestamp_window_are_refused() {
    use strata::partition::PartitionError;
    use strata::storage::StorageError;
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let now = SystemClock.now_ms();
        let refused = |r: Result<_, PartitionError>| {
            matches!(
                r,
                Err(PartitionError::Storage(
                    StorageError::InvalidTimestamp { .. }
                ))
            )
        };
        let p = open_partition_with(&dir.path().join("create"), LogConfig::default()).await;
        let batch = |ts: i64| bytes::Bytes::from(numbered_batch("t", 0, 1, ts));
        assert!(
            refused(p.produce(batch(now + 2 * 3600 * 1000)).await),
            "2 h ahead"
        );
        p.produce(batch(now + 60 * 1000))
            .await
            .expect("a minute ahead");
        p.produce(batch(now - 365 * DAY_MS))
            .await
            .expect("a year old, by default");
        let mut strict = LogConfig::default();
        strict
            .set("message.timestamp.before.max.ms", "86400000")
            .expect("config");
        let p = open_partition_with(&dir.path().join("strict"), strict).await;
        assert!(
            refused(p.produce(batch(now - 2 * DAY_MS)).await),
            "two days old"
        );
        let mut append_time = LogConfig::default();
        append_time
            .set("message.timestamp.type", "LogAppendTime")
            .expect("config");
        let p = open_partition_with(&dir.path().join("append"), append_time).await;
        p.produce(batch(now + 2 * 3600 * 1000))
            .await
            .expect("the broker stamps the time");
    });
}
