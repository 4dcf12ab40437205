//! Offset expiry (Kafka's `offsets.retention.minutes`): which committed offsets of a group
//! have outlived the retention, by Kafka 4's rules (`offsetExpirationCondition` of its classic
//! and consumer groups):
//! - a classic group that has members' protocol type and is `Empty`: every offset, once the
//!   retention has passed since the group became empty (since its commit when that moment is
//!   unknown);
//! - a classic `consumer` group that is `Stable`, and a consumer-protocol (KIP-848) group: the
//!   offsets of topics no member subscribes to, the retention after their commit (KIP-496);
//! - a group that only commits (no membership, "simple" consumers): every offset, the
//!   retention after its commit;
//! - a classic group rebalancing: none.
//!
//! Pure: the group service (`super::service`) says what it knows of the group and writes the
//! tombstones; a group left with no offset and no member is then deleted too.

use super::offsets::{OffsetKey, OffsetsState};

/// How a group's offsets expire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    /// None of them now.
    Never,
    /// Each one the retention after its commit, unless a member subscribes to its topic.
    AfterCommit { subscribed: Vec<String> },
    /// All of them the retention after the group became empty (`None`: not known, so after
    /// each one's commit, as Kafka does for groups stored without that time).
    AfterEmpty { since_ms: Option<i64> },
}

/// The offsets of `group` that `expiry` says are gone at `now_ms`.
pub fn expired(
    offsets: &OffsetsState,
    group: &str,
    expiry: &Expiry,
    now_ms: i64,
    retention_ms: i64,
) -> Vec<OffsetKey> {
    let due = |base: i64| now_ms.saturating_sub(base) >= retention_ms;
    offsets
        .of_group(group)
        .filter(|((_, topic, _), c)| match expiry {
            Expiry::Never => false,
            Expiry::AfterCommit { subscribed } => {
                !subscribed.contains(topic) && due(c.commit_time_ms)
            }
            Expiry::AfterEmpty { since_ms } => due(since_ms.unwrap_or(c.commit_time_ms)),
        })
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::offsets::Committed;

    fn state() -> OffsetsState {
        let mut s = OffsetsState::default();
        for (topic, time) in [("a", 100), ("b", 1_000)] {
            s.set(
                ("g".into(), topic.into(), 0),
                Committed {
                    offset: 1,
                    leader_epoch: -1,
                    commit_time_ms: time,
                    metadata: None,
                },
            );
        }
        s
    }

    fn topics(v: Vec<OffsetKey>) -> Vec<String> {
        v.into_iter().map(|(_, t, _)| t).collect()
    }

    #[test]
    fn offsets_expire_by_kafkas_conditions() {
        let s = state();
        let after_commit = |subscribed: &[&str], now| {
            let e = Expiry::AfterCommit {
                subscribed: subscribed.iter().map(|t| t.to_string()).collect(),
            };
            topics(expired(&s, "g", &e, now, 500))
        };
        assert_eq!(after_commit(&[], 599), Vec::<String>::new());
        assert_eq!(after_commit(&[], 600), vec!["a"]);
        assert_eq!(after_commit(&[], 1_500), vec!["a", "b"]);
        assert_eq!(after_commit(&["a"], 1_500), vec!["b"], "subscribed: kept");
        let empty =
            |since_ms, now| topics(expired(&s, "g", &Expiry::AfterEmpty { since_ms }, now, 500));
        assert_eq!(
            empty(Some(2_000), 2_499),
            Vec::<String>::new(),
            "new commits or not, the empty time counts"
        );
        assert_eq!(empty(Some(2_000), 2_500), vec!["a", "b"]);
        assert_eq!(empty(None, 600), vec!["a"], "unknown: by commit");
        assert!(expired(&s, "g", &Expiry::Never, i64::MAX, 0).is_empty());
        assert!(expired(
            &s,
            "other",
            &Expiry::AfterEmpty { since_ms: Some(0) },
            10_000,
            1
        )
        .is_empty());
    }
}
