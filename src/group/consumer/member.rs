//! A member of a consumer-protocol group and its reconciliation towards the group's target
//! assignment (Kafka's `CurrentAssignmentBuilder`): a member keeps the partitions it owns
//! that are still its target, must first revoke the others (it stays at its epoch meanwhile),
//! then moves to the target epoch and gets the new partitions that no other member still
//! holds; those still held elsewhere come on a later heartbeat, once released.
//! This file knows nothing of records or the wire.

use std::time::{Duration, Instant};

use super::{Assignment, TopicId};

/// Kafka's `MemberState` (the values its records use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    /// Waiting for the member to revoke partitions now targeted at others.
    UnrevokedPartitions,
    /// At the target epoch, waiting for others to release some of its target partitions.
    UnreleasedPartitions,
}

impl MemberState {
    pub fn code(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
        }
    }

    pub fn from_code(c: i8) -> Self {
        match c {
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Stable,
        }
    }
}

/// A consumer-protocol member.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topics: Vec<String>,
    /// A regex subscription, and the topics it matched at the last heartbeat.
    pub subscribed_regex: Option<String>,
    pub regex_topics: Vec<String>,
    pub server_assignor: Option<String>,
    pub rebalance_timeout: Duration,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    /// What the member was last told it owns.
    pub assigned: Assignment,
    /// What it must give up before it may move to the target epoch.
    pub pending_revocation: Assignment,
    /// Removed when it does not heartbeat by then.
    pub deadline: Instant,
    /// Removed when it has not revoked by then (set while `UnrevokedPartitions`).
    pub revoke_deadline: Option<Instant>,
}

/// Whether `owned` (the partitions a heartbeat reports; `None` = not reported, assume still
/// owned) still holds any of `set`.
pub fn still_owns(owned: Option<&Assignment>, set: &Assignment) -> bool {
    let Some(owned) = owned else {
        return set.values().any(|s| !s.is_empty());
    };
    set.iter().any(|(t, ps)| {
        owned
            .get(t)
            .is_some_and(|o| ps.iter().any(|p| o.contains(p)))
    })
}

/// Whether `a` is within `b`.
pub fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .all(|(t, ps)| ps.is_empty() || b.get(t).is_some_and(|o| ps.iter().all(|p| o.contains(p))))
}

fn insert(a: &mut Assignment, t: TopicId, p: i32) {
    a.entry(t).or_default().insert(p);
}

impl Member {
    /// One reconciliation step towards `target` (this member's share of the target at
    /// `target_epoch`). `held_elsewhere` says whether another member still owns a partition.
    /// Returns whether the member changed.
    pub fn reconcile(
        &mut self,
        target_epoch: i32,
        target: &Assignment,
        owned: Option<&Assignment>,
        held_elsewhere: impl Fn(&TopicId, i32) -> bool,
        now: Instant,
    ) -> bool {
        if self.epoch < 0 {
            return false;
        }
        match self.state {
            MemberState::Stable if self.epoch == target_epoch => return false,
            MemberState::UnrevokedPartitions if still_owns(owned, &self.pending_revocation) => {
                return false
            }
            _ => {}
        }
        let before = self.clone();
        let mut kept = Assignment::new();
        let mut revoke = Assignment::new();
        let mut assignable = Assignment::new();
        let mut unreleased = false;
        for (t, ps) in &self.assigned {
            for &p in ps {
                if target.get(t).is_some_and(|s| s.contains(&p)) {
                    insert(&mut kept, *t, p);
                } else {
                    insert(&mut revoke, *t, p);
                }
            }
        }
        for (t, ps) in target {
            for &p in ps {
                if self.assigned.get(t).is_some_and(|s| s.contains(&p)) {
                    continue;
                }
                if held_elsewhere(t, p) {
                    unreleased = true;
                } else {
                    insert(&mut assignable, *t, p);
                }
            }
        }
        if !revoke.is_empty() && still_owns(owned, &revoke) {
            self.state = MemberState::UnrevokedPartitions;
            self.assigned = kept;
            self.pending_revocation = revoke;
            if self.revoke_deadline.is_none() {
                self.revoke_deadline = Some(now + self.rebalance_timeout);
            }
        } else {
            for (t, ps) in assignable {
                kept.entry(t).or_default().extend(ps);
            }
            self.assigned = kept;
            self.pending_revocation = Assignment::new();
            self.revoke_deadline = None;
            if self.epoch != target_epoch {
                self.previous_epoch = self.epoch;
                self.epoch = target_epoch;
            }
            self.state = if unreleased {
                MemberState::UnreleasedPartitions
            } else {
                MemberState::Stable
            };
        }
        self.assigned.retain(|_, s| !s.is_empty());
        *self != before
    }

    /// Every partition the member holds (assigned or still to revoke).
    pub fn holds(&self) -> impl Iterator<Item = (TopicId, i32)> + '_ {
        self.assigned
            .iter()
            .chain(self.pending_revocation.iter())
            .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
    }

    /// The topics the member subscribes to: by name and by regex.
    pub fn topic_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.subscribed_topics
            .iter()
            .chain(self.regex_topics.iter())
            .map(String::as_str)
    }
}
