//! One group's state and the steps of the classic protocol on it: members (with their
//! sessions and the requests parked waiting for the rebalance), the generation, the chosen
//! protocol and leader; starting a rebalance, completing the join phase, removing a member.
//! [`super::coordinator::Coordinator`] decides when each step happens; this file knows
//! nothing of requests or the wire.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::coordinator::{GroupSettings, JoinOutcome, SyncOutcome};
use super::slot::Slot;
use super::GroupError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// The name Kafka's ListGroups and DescribeGroups use.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// A member of a group.
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// When the member is expired unless it heartbeats.
    pub(super) deadline: Instant,
    pub(super) join: Option<Slot<JoinOutcome>>,
    pub(super) sync: Option<Slot<SyncOutcome>>,
}

impl Member {
    /// The member's metadata for `protocol` (its subscription).
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    pub(super) fn waiting(&self) -> bool {
        self.join.is_some() || self.sync.is_some()
    }
}

/// One consumer group.
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// In join order: the first is the leader when a new one must be picked.
    pub members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, awaiting their join, until when.
    pub(super) pending: HashMap<String, Instant>,
    /// When the current rebalance completes even if members are missing.
    pub(super) rebalance_deadline: Option<Instant>,
    /// The first rebalance of an empty group does not complete before this.
    pub(super) initial_delay_until: Option<Instant>,
}

/// A group's persisted form, written when a generation is assigned or the group empties.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    pub group: String,
    pub protocol_type: Option<String>,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<MemberRecord>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberRecord {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

impl Group {
    pub(super) fn new(id: &str) -> Self {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending: HashMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
        }
    }

    pub(super) fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    pub(super) fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    pub(super) fn member_of_instance(&self, instance: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.instance_id.as_deref() == Some(instance))
    }

    /// Checks that `member_id` is a member and not fenced by a newer member of its instance.
    pub(super) fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if let Some(instance) = instance_id {
            if let Some(m) = self.member_of_instance(instance) {
                if m.id != member_id {
                    return Err(GroupError::FencedInstanceId);
                }
            }
        }
        if self.member(member_id).is_none() {
            return Err(GroupError::UnknownMemberId);
        }
        Ok(())
    }

    /// The protocol every member supports that most members prefer (Kafka's vote).
    pub(super) fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .iter()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .collect();
        let mut votes: Vec<(&String, usize)> = candidates.iter().map(|c| (*c, 0)).collect();
        for m in &self.members {
            if let Some((name, _)) = m.protocols.iter().find(|(p, _)| candidates.contains(&p)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| *c == name) {
                    v.1 += 1;
                }
            }
        }
        // Ties go to the earliest candidate in the first member's preference order.
        let best = votes.iter().map(|(_, n)| *n).max()?;
        votes
            .into_iter()
            .find(|(_, n)| *n == best)
            .map(|(c, _)| c.clone())
    }

    /// Whether a joining member's protocols fit the group's.
    pub(super) fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        // Some protocol must be supported by everyone, the newcomer included.
        protocols.iter().any(|(p, _)| {
            self.members
                .iter()
                .all(|m| m.protocols.iter().any(|(q, _)| q == p))
        })
    }

    pub(super) fn all_joined(&self, now: Instant) -> bool {
        self.pending.is_empty()
            && self.members.iter().all(|m| m.join.is_some())
            && self.initial_delay_until.is_none_or(|t| now >= t)
    }

    pub(super) fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .iter()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// Starts a rebalance: members must rejoin; pending syncs learn it now.
    pub(super) fn prepare_rebalance(&mut self, now: Instant, settings: &GroupSettings) {
        // Pending syncs learn it now: those of CompletingRebalance, and those of a generation
        // whose assignment was still being stored when the rebalance began (state Stable).
        for m in &mut self.members {
            if let Some(s) = m.sync.take() {
                s.fill(SyncOutcome::error(GroupError::RebalanceInProgress));
            }
        }
        let timeout = self.max_rebalance_timeout();
        if self.state == GroupState::Empty {
            let delay = settings.initial_rebalance_delay.min(timeout);
            self.initial_delay_until = Some(now + delay);
        }
        self.rebalance_deadline = Some(now + timeout);
        self.state = GroupState::PreparingRebalance;
    }

    /// Ends the join phase: members that did not rejoin are dropped, the generation is bumped
    /// and every waiting member gets its answer (the leader with the member list).
    pub(super) fn complete_join(&mut self) -> Option<GroupRecord> {
        debug_assert_eq!(self.state, GroupState::PreparingRebalance);
        self.members.retain(|m| m.join.is_some());
        self.pending.clear();
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return Some(self.record());
        }
        self.protocol = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| self.member(l).is_none())
        {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
        self.state = GroupState::CompletingRebalance;
        // Every member rejoined (the others were dropped above): each gets the generation,
        // the leader with the member list.
        let leader = self.leader.clone().unwrap_or_default();
        let answers: Vec<JoinOutcome> = self
            .members
            .iter()
            .map(|m| self.current_generation(&m.id, m.id == leader, false))
            .collect();
        // Each member keeps its assignment of the last generation until the leader's new one
        // arrives (SyncGroup), as in Kafka: DescribeGroups shows it meanwhile.
        for (m, answer) in self.members.iter_mut().zip(answers) {
            if let Some(slot) = m.join.take() {
                slot.fill(answer);
            }
        }
        None
    }

    /// The current generation as a JoinGroup answer for `member_id`, with the member list
    /// (what the leader assigns from) when asked.
    pub(super) fn current_generation(
        &self,
        member_id: &str,
        with_members: bool,
        skip_assignment: bool,
    ) -> JoinOutcome {
        let protocol = self.protocol.clone().unwrap_or_default();
        JoinOutcome {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            skip_assignment,
            members: if with_members {
                self.members
                    .iter()
                    .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol)))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    pub(super) fn maybe_complete_join(&mut self, now: Instant) -> Option<GroupRecord> {
        if self.state == GroupState::PreparingRebalance
            && (self.all_joined(now) || self.rebalance_deadline.is_some_and(|d| now >= d))
        {
            return self.complete_join();
        }
        None
    }

    /// Removes a member (left or expired) and rebalances the rest.
    pub(super) fn remove_member(
        &mut self,
        id: &str,
        now: Instant,
        settings: &GroupSettings,
    ) -> Option<GroupRecord> {
        let pos = self.members.iter().position(|m| m.id == id)?;
        let m = self.members.remove(pos);
        if let Some(s) = m.join {
            s.fill(JoinOutcome::error(GroupError::UnknownMemberId, id));
        }
        if let Some(s) = m.sync {
            s.fill(SyncOutcome::error(GroupError::UnknownMemberId));
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, settings);
                self.maybe_complete_join(now)
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now),
            GroupState::Empty => None,
        }
    }

    /// The group as it is persisted.
    pub fn record(&self) -> GroupRecord {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupRecord {
            group: self.id.clone(),
            protocol_type: self.protocol_type.clone(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            members: self
                .members
                .iter()
                .map(|m| MemberRecord {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}
