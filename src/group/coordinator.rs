//! The classic group membership protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) as a
//! state machine over the groups of one `__consumer_offsets` partition. It is pure: time is
//! passed in, waiting requests get a [`Slot`], and what must be persisted is returned to the
//! caller (the shard), which writes it to the log. It knows nothing of the wire format.
//!
//! States, as in Kafka: `Empty` (no members; offsets only) → `PreparingRebalance` (waiting
//! for every known member to (re)join, bounded by the rebalance timeout) → `CompletingRebalance`
//! (generation bumped, waiting for the leader's assignment) → `Stable`. A member is expired
//! when its session timeout passes without a heartbeat, which triggers a rebalance.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::slot::Slot;
pub use super::state::{Group, GroupRecord, GroupState, Member, MemberRecord};
use super::GroupError;

/// Most members one group may hold (Kafka's `group.max.size` is unbounded by default; a bound
/// keeps a misbehaving client from growing the coordinator without limit).
pub const MAX_GROUP_MEMBERS: usize = 10_000;

/// Coordinator settings (Kafka's `group.*` broker configs).
#[derive(Debug, Clone)]
pub struct GroupSettings {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits
    /// for more members, so that consumers started together do not rebalance once each.
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    /// The consumer protocol's (KIP-848) `group.consumer.*` settings.
    pub consumer: super::consumer::Settings,
    /// `offsets.retention.minutes`: how long committed offsets outlive their group's last
    /// member (or their commit, for groups without members' subscriptions): see
    /// `super::expiry`.
    pub offsets_retention: Duration,
    /// `offsets.retention.check.interval.ms`: how often expired offsets are looked for.
    pub offsets_retention_check_interval: Duration,
}

/// Kafka's `offsets.retention.minutes` default: 7 days.
pub const DEFAULT_OFFSETS_RETENTION_MINUTES: u64 = 7 * 24 * 60;
/// Kafka's `offsets.retention.check.interval.ms` default: 10 minutes.
pub const DEFAULT_OFFSETS_RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(600);

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings {
            initial_rebalance_delay: Duration::from_millis(3000),
            min_session_timeout: Duration::from_millis(6000),
            max_session_timeout: Duration::from_millis(1_800_000),
            consumer: super::consumer::Settings::default(),
            offsets_retention: Duration::from_secs(DEFAULT_OFFSETS_RETENTION_MINUTES * 60),
            offsets_retention_check_interval: DEFAULT_OFFSETS_RETENTION_CHECK_INTERVAL,
        }
    }
}

/// What a JoinGroup answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JoinOutcome {
    pub error: Option<GroupError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub skip_assignment: bool,
    /// Only for the leader: every member with its metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    pub(super) fn error(e: GroupError, member_id: &str) -> Self {
        JoinOutcome {
            error: Some(e),
            generation: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

/// What a SyncGroup answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncOutcome {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub(super) fn error(e: GroupError) -> Self {
        SyncOutcome {
            error: Some(e),
            ..Default::default()
        }
    }
}

/// A JoinGroup request, as the coordinator needs it.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a new dynamic member first gets its id with MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
    /// v9+: a static leader rejoining a stable group may skip the assignment (KIP-814).
    pub supports_skip_assignment: bool,
}

#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group: String,
    pub generation: i32,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// What a JoinGroup or SyncGroup call leads to.
pub enum Answer<T> {
    Now(T),
    /// Wait on the slot; it is filled when the rebalance step completes.
    Wait(Slot<T>),
}

/// The groups of one `__consumer_offsets` partition.
#[derive(Default)]
pub struct Coordinator {
    pub settings: GroupSettings,
    groups: HashMap<String, Group>,
}

impl Coordinator {
    pub fn new(settings: GroupSettings) -> Self {
        Coordinator {
            settings,
            groups: HashMap::new(),
        }
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// Restores a group from its persisted record (at load): members get a fresh session, so
    /// that consumers that outlive a broker restart keep their assignment if they come back in
    /// time.
    pub fn restore(&mut self, r: GroupRecord, now: Instant) {
        if r.members.is_empty() && r.protocol_type.is_none() && r.generation == 0 {
            self.groups.remove(&r.group);
            return;
        }
        let mut g = Group::new(&r.group);
        g.generation = r.generation;
        g.protocol_type = r.protocol_type;
        g.protocol = r.protocol.clone();
        g.leader = r.leader;
        let protocol = r.protocol.unwrap_or_default();
        g.members = r
            .members
            .into_iter()
            .map(|m| {
                let session = Duration::from_millis(m.session_timeout_ms.max(0) as u64);
                Member {
                    id: m.id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout: session,
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocols: vec![(protocol.clone(), m.subscription)],
                    assignment: m.assignment,
                    deadline: now + session,
                    join: None,
                    sync: None,
                }
            })
            .collect();
        g.state = if g.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        self.groups.insert(g.id.clone(), g);
    }

    /// Forgets a group (deleted).
    pub fn remove(&mut self, id: &str) -> Result<(), GroupError> {
        match self.groups.get(id) {
            Some(g) if g.state != GroupState::Empty => Err(GroupError::NonEmptyGroup),
            _ => {
                self.groups.remove(id);
                Ok(())
            }
        }
    }

    pub fn join(
        &mut self,
        req: JoinRequest,
        now: Instant,
        new_member_id: impl FnOnce() -> String,
    ) -> (Answer<JoinOutcome>, Option<GroupRecord>) {
        let settings = self.settings.clone();
        let now_answer = |e: GroupError| (Answer::Now(JoinOutcome::error(e, &req.member_id)), None);
        if req.session_timeout < settings.min_session_timeout
            || req.session_timeout > settings.max_session_timeout
        {
            return now_answer(GroupError::InvalidSessionTimeout);
        }
        if !req.member_id.is_empty() && !self.groups.contains_key(&req.group) {
            return now_answer(GroupError::UnknownMemberId);
        }
        let g = self
            .groups
            .entry(req.group.clone())
            .or_insert_with(|| Group::new(&req.group));
        if !g.supports(&req.protocol_type, &req.protocols) {
            return now_answer(GroupError::InconsistentGroupProtocol);
        }
        if req.member_id.is_empty() {
            if g.members.len() + g.pending.len() >= MAX_GROUP_MEMBERS {
                return now_answer(GroupError::GroupMaxSizeReached);
            }
            let id = new_member_id();
            if let Some(instance) = req.instance_id.clone() {
                if let Some(old) = g.member_of_instance(&instance).map(|m| m.id.clone()) {
                    return Self::replace_static(g, &old, id, req, now, &settings);
                }
            } else if req.require_known_member_id {
                g.pending.insert(id.clone(), now + req.session_timeout);
                return now_answer_with_id(GroupError::MemberIdRequired, id);
            }
            return Self::add_member(g, id, req, now, &settings);
        }
        if g.pending.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            return Self::add_member(g, id, req, now, &settings);
        }
        if let Err(e) = g.check_member(&req.member_id, req.instance_id.as_deref()) {
            return now_answer(e);
        }
        Self::rejoin(g, req, now, &settings)
    }

    fn add_member(
        g: &mut Group,
        id: String,
        req: JoinRequest,
        now: Instant,
        settings: &GroupSettings,
    ) -> (Answer<JoinOutcome>, Option<GroupRecord>) {
        let slot = Slot::default();
        if g.members.is_empty() {
            g.protocol_type = Some(req.protocol_type.clone());
        }
        g.members.push(Member {
            id,
            instance_id: req.instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout: req.session_timeout,
            rebalance_timeout: req.rebalance_timeout,
            protocols: req.protocols,
            assignment: Bytes::new(),
            deadline: now + req.session_timeout,
            join: Some(slot.clone()),
            sync: None,
        });
        if g.state == GroupState::PreparingRebalance {
            // A newcomer to a group's first rebalance extends the wait for more, up to the
            // rebalance timeout (Kafka's InitialDelayedJoin).
            if let Some(until) = g.initial_delay_until.as_mut() {
                let cap = g.rebalance_deadline.unwrap_or(now);
                *until = (now + settings.initial_rebalance_delay).min(cap);
            }
        } else {
            g.prepare_rebalance(now, settings);
        }
        let record = g.maybe_complete_join(now);
        (Answer::Wait(slot), record)
    }

    /// A static member came back with a new member id: fence the old one and, if the group is
    /// stable and its new protocols would not change the group's selected protocol, hand back
    /// the current generation without a rebalance (KIP-345; Kafka's rule since KAFKA-13435: a
    /// restarted consumer's subscription metadata differs, as it owns no partitions yet, and
    /// that alone must not rebalance the group). Before JoinGroup v9 the answer names the old
    /// leader id, so that a returning leader does not assign again for a stable group.
    fn replace_static(
        g: &mut Group,
        old: &str,
        id: String,
        req: JoinRequest,
        now: Instant,
        settings: &GroupSettings,
    ) -> (Answer<JoinOutcome>, Option<GroupRecord>) {
        let stable = g.state == GroupState::Stable;
        let Some(m) = g.member_mut(old) else {
            return (
                Answer::Now(JoinOutcome::error(GroupError::UnknownMemberId, "")),
                None,
            );
        };
        if let Some(s) = m.join.take() {
            s.fill(JoinOutcome::error(GroupError::FencedInstanceId, old));
        }
        if let Some(s) = m.sync.take() {
            s.fill(SyncOutcome::error(GroupError::FencedInstanceId));
        }
        m.protocols = req.protocols.clone();
        m.id = id.clone();
        m.client_id = req.client_id.clone();
        m.client_host = req.client_host.clone();
        m.session_timeout = req.session_timeout;
        m.rebalance_timeout = req.rebalance_timeout;
        m.deadline = now + req.session_timeout;
        let current_leader = g.leader.clone().unwrap_or_default();
        if g.leader.as_deref() == Some(old) {
            g.leader = Some(id.clone());
        }
        if stable && g.select_protocol() == g.protocol {
            let is_leader = g.leader.as_deref() == Some(id.as_str());
            let skip = is_leader && req.supports_skip_assignment;
            let mut outcome = g.current_generation(&id, skip, skip);
            if !req.supports_skip_assignment {
                outcome.leader = current_leader;
            }
            return (Answer::Now(outcome), Some(g.record()));
        }
        let mut req = req;
        req.member_id = id;
        Self::rejoin(g, req, now, settings)
    }

    /// A known member joins again.
    fn rejoin(
        g: &mut Group,
        req: JoinRequest,
        now: Instant,
        settings: &GroupSettings,
    ) -> (Answer<JoinOutcome>, Option<GroupRecord>) {
        let unknown = || {
            (
                Answer::Now(JoinOutcome::error(
                    GroupError::UnknownMemberId,
                    &req.member_id,
                )),
                None,
            )
        };
        let Some(m) = g.member_mut(&req.member_id) else {
            return unknown();
        };
        let unchanged = m.protocols == req.protocols;
        m.deadline = now + req.session_timeout;
        m.session_timeout = req.session_timeout;
        m.rebalance_timeout = req.rebalance_timeout;
        let state = g.state;
        let is_leader = g.leader.as_deref() == Some(req.member_id.as_str());
        // A follower whose metadata did not change just gets the current generation back.
        let current = matches!(state, GroupState::Stable | GroupState::CompletingRebalance)
            && unchanged
            && (!is_leader || state == GroupState::CompletingRebalance);
        if current {
            let outcome = g.current_generation(&req.member_id, is_leader, false);
            return (Answer::Now(outcome), None);
        }
        let Some(m) = g.member_mut(&req.member_id) else {
            return unknown();
        };
        m.protocols = req.protocols;
        let slot = Slot::default();
        if let Some(old) = m.join.replace(slot.clone()) {
            old.fill(JoinOutcome::error(
                GroupError::RebalanceInProgress,
                &req.member_id,
            ));
        }
        if state != GroupState::PreparingRebalance {
            g.prepare_rebalance(now, settings);
        }
        let record = g.maybe_complete_join(now);
        (Answer::Wait(slot), record)
    }

    /// SyncGroup. When the leader's assignment arrives the group becomes stable and the
    /// returned record must be persisted before [`Coordinator::complete_sync`] answers.
    pub fn sync(
        &mut self,
        req: SyncRequest,
        now: Instant,
    ) -> (Answer<SyncOutcome>, Option<GroupRecord>) {
        let err = |e| (Answer::Now(SyncOutcome::error(e)), None);
        let Some(g) = self.groups.get_mut(&req.group) else {
            return err(GroupError::UnknownMemberId);
        };
        if let Err(e) = g.check_member(&req.member_id, req.instance_id.as_deref()) {
            return err(e);
        }
        if req.generation != g.generation {
            return err(GroupError::IllegalGeneration);
        }
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != g.protocol_type.as_ref())
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|p| Some(p) != g.protocol.as_ref())
        {
            return err(GroupError::InconsistentGroupProtocol);
        }
        let outcome = |g: &Group, assignment: Bytes| SyncOutcome {
            error: None,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol.clone(),
            assignment,
        };
        match g.state {
            GroupState::Empty => err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => err(GroupError::RebalanceInProgress),
            GroupState::Stable => {
                let Some(m) = g.member_mut(&req.member_id) else {
                    return err(GroupError::UnknownMemberId);
                };
                m.deadline = now + m.session_timeout;
                let a = m.assignment.clone();
                (Answer::Now(outcome(g, a)), None)
            }
            GroupState::CompletingRebalance => {
                let slot = Slot::default();
                let is_leader = g.leader.as_deref() == Some(req.member_id.as_str());
                if let Some(m) = g.member_mut(&req.member_id) {
                    m.deadline = now + m.session_timeout;
                    if let Some(old) = m.sync.replace(slot.clone()) {
                        old.fill(SyncOutcome::error(GroupError::RebalanceInProgress));
                    }
                }
                if !is_leader {
                    return (Answer::Wait(slot), None);
                }
                for m in &mut g.members {
                    m.assignment = req
                        .assignments
                        .iter()
                        .find(|(id, _)| *id == m.id)
                        .map(|(_, a)| a.clone())
                        .unwrap_or_default();
                }
                g.state = GroupState::Stable;
                (Answer::Wait(slot), Some(g.record()))
            }
        }
    }

    /// Answers the syncs of `generation` once its record is stored (or could not be: then
    /// the members are told to rejoin).
    pub fn complete_sync(&mut self, group: &str, generation: i32, stored: bool, now: Instant) {
        let settings = self.settings.clone();
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        if g.generation != generation || g.state != GroupState::Stable {
            return;
        }
        if !stored {
            for m in &mut g.members {
                if let Some(s) = m.sync.take() {
                    s.fill(SyncOutcome::error(GroupError::CoordinatorNotAvailable));
                }
            }
            g.prepare_rebalance(now, &settings);
            return;
        }
        let (pt, pn) = (g.protocol_type.clone(), g.protocol.clone());
        for m in &mut g.members {
            if let Some(s) = m.sync.take() {
                s.fill(SyncOutcome {
                    error: None,
                    protocol_type: pt.clone(),
                    protocol_name: pn.clone(),
                    assignment: m.assignment.clone(),
                });
            }
        }
    }

    pub fn heartbeat(
        &mut self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
    ) -> Result<(), GroupError> {
        let g = self
            .groups
            .get_mut(group)
            .ok_or(GroupError::UnknownMemberId)?;
        g.check_member(member_id, instance_id)?;
        if generation != g.generation {
            return Err(GroupError::IllegalGeneration);
        }
        let state = g.state;
        if let Some(m) = g.member_mut(member_id) {
            m.deadline = now + m.session_timeout;
        }
        match state {
            GroupState::Empty => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
        }
    }

    /// LeaveGroup for one member (by id, or by instance id when the id is empty).
    pub fn leave(
        &mut self,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
    ) -> (Result<(), GroupError>, Option<GroupRecord>) {
        let settings = self.settings.clone();
        let Some(g) = self.groups.get_mut(group) else {
            return (Err(GroupError::UnknownMemberId), None);
        };
        let id = match (member_id.is_empty(), instance_id) {
            (true, Some(instance)) => match g.member_of_instance(instance) {
                Some(m) => m.id.clone(),
                None => return (Err(GroupError::UnknownMemberId), None),
            },
            _ => {
                if let Err(e) = g.check_member(member_id, instance_id) {
                    return (Err(e), None);
                }
                member_id.to_string()
            }
        };
        let record = g.remove_member(&id, now, &settings);
        (Ok(()), record)
    }

    /// Whether an offset commit from this member may be stored now (Kafka's rules: simple
    /// consumers only while the group has no members; members with their current generation,
    /// not while the assignment is being handed out).
    pub fn check_commit(
        &mut self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
    ) -> Result<(), GroupError> {
        let simple = generation < 0 && member_id.is_empty();
        let Some(g) = self.groups.get_mut(group) else {
            return if simple {
                Ok(())
            } else if member_id.is_empty() {
                Err(GroupError::IllegalGeneration)
            } else {
                Err(GroupError::UnknownMemberId)
            };
        };
        if simple && g.state == GroupState::Empty {
            return Ok(());
        }
        if g.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        g.check_member(member_id, instance_id)?;
        if generation != g.generation {
            return Err(GroupError::IllegalGeneration);
        }
        if let Some(m) = g.member_mut(member_id) {
            m.deadline = now + m.session_timeout;
        }
        Ok(())
    }

    /// Expires silent members and completes rebalances whose time has come. Returns the
    /// records to persist.
    pub fn tick(&mut self, now: Instant) -> Vec<GroupRecord> {
        let settings = self.settings.clone();
        let mut out = Vec::new();
        for g in self.groups.values_mut() {
            g.pending.retain(|_, until| *until > now);
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|m| !m.waiting() && m.deadline <= now)
                .map(|m| m.id.clone())
                .collect();
            for id in expired {
                tracing::info!(group = %g.id, member = %id, "member session expired");
                out.extend(g.remove_member(&id, now, &settings));
            }
            out.extend(g.maybe_complete_join(now));
        }
        out
    }
}

fn now_answer_with_id(
    e: GroupError,
    member_id: String,
) -> (Answer<JoinOutcome>, Option<GroupRecord>) {
    (Answer::Now(JoinOutcome::error(e, &member_id)), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GroupSettings {
        GroupSettings {
            initial_rebalance_delay: Duration::ZERO,
            ..Default::default()
        }
    }

    fn join_req(member: &str, instance: Option<&str>) -> JoinRequest {
        JoinRequest {
            group: "g".into(),
            member_id: member.into(),
            instance_id: instance.map(String::from),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: vec![
                ("range".into(), Bytes::from_static(b"r")),
                ("roundrobin".into(), Bytes::from_static(b"rr")),
            ],
            require_known_member_id: true,
            supports_skip_assignment: false,
        }
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("m{n}")
        }
    }

    fn wait<T>(a: Answer<T>) -> Slot<T> {
        match a {
            Answer::Wait(s) => s,
            Answer::Now(_) => panic!("expected to wait"),
        }
    }

    fn now<T>(a: Answer<T>) -> T {
        match a {
            Answer::Now(t) => t,
            Answer::Wait(s) => s.take().expect("answered"),
        }
    }

    /// Joins a new dynamic member through MEMBER_ID_REQUIRED; returns its id and slot.
    fn join_new(
        c: &mut Coordinator,
        t: Instant,
        next: &mut impl FnMut() -> String,
    ) -> (String, Slot<JoinOutcome>) {
        let first = now(c.join(join_req("", None), t, &mut *next).0);
        assert_eq!(first.error, Some(GroupError::MemberIdRequired));
        let id = first.member_id;
        let slot = wait(c.join(join_req(&id, None), t, &mut *next).0);
        (id, slot)
    }

    fn sync(
        c: &mut Coordinator,
        id: &str,
        generation: i32,
        assign: &[(&str, &str)],
        t: Instant,
    ) -> (Answer<SyncOutcome>, Option<GroupRecord>) {
        c.sync(
            SyncRequest {
                group: "g".into(),
                generation,
                member_id: id.into(),
                instance_id: None,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignments: assign
                    .iter()
                    .map(|(m, a)| (m.to_string(), Bytes::copy_from_slice(a.as_bytes())))
                    .collect(),
            },
            t,
        )
    }

    #[test]
    fn two_members_join_sync_and_rebalance_when_one_expires() {
        let mut c = Coordinator::new(settings());
        let t0 = Instant::now();
        let mut next = ids();
        let (a, sa) = join_new(&mut c, t0, &mut next);
        // Alone in the group: the join completes at once (no initial delay here).
        let ja = sa.take().expect("a joined");
        assert_eq!((ja.generation, ja.leader.as_str()), (1, a.as_str()));
        assert_eq!(ja.protocol_name.as_deref(), Some("range"));
        // b arrives during CompletingRebalance: a new rebalance; a's pending sync is told.
        let (b, sb) = join_new(&mut c, t0, &mut next);
        assert!(!sb.is_filled(), "b waits for a to rejoin");
        assert_eq!(
            c.group("g").map(|g| g.state),
            Some(GroupState::PreparingRebalance)
        );
        assert_eq!(
            c.heartbeat("g", 1, &a, None, t0),
            Err(GroupError::RebalanceInProgress)
        );
        let sa2 = wait(c.join(join_req(&a, None), t0, &mut next).0);
        let (ja2, jb) = (sa2.take().expect("a"), sb.take().expect("b"));
        assert_eq!((ja2.generation, jb.generation), (2, 2));
        assert_eq!(ja2.members.len(), 2, "the leader gets the members");
        assert!(jb.members.is_empty(), "followers do not");
        // Follower syncs first and waits; the leader's sync makes the group stable.
        let fb = wait(sync(&mut c, &b, 2, &[], t0).0);
        assert!(!fb.is_filled());
        let (fa, record) = sync(&mut c, &a, 2, &[(&a, "A"), (&b, "B")], t0);
        let record = record.expect("stable group is persisted");
        assert_eq!(record.members.len(), 2);
        c.complete_sync("g", 2, true, t0);
        assert_eq!(
            wait(fa).take().map(|o| o.assignment),
            Some(Bytes::from("A"))
        );
        assert_eq!(fb.take().map(|o| o.assignment), Some(Bytes::from("B")));
        assert_eq!(c.heartbeat("g", 2, &b, None, t0), Ok(()));
        assert_eq!(
            c.heartbeat("g", 1, &b, None, t0),
            Err(GroupError::IllegalGeneration)
        );
        assert_eq!(
            c.check_commit("g", 1, &b, None, t0),
            Err(GroupError::IllegalGeneration)
        );
        assert_eq!(c.check_commit("g", 2, &b, None, t0), Ok(()));
        assert_eq!(
            c.check_commit("g", -1, "", None, t0),
            Err(GroupError::UnknownMemberId)
        );
        // a keeps heartbeating, b goes silent: after its session b is expired.
        let t1 = t0 + Duration::from_secs(8);
        assert_eq!(c.heartbeat("g", 2, &a, None, t1), Ok(()));
        let t2 = t0 + Duration::from_secs(11);
        c.tick(t2);
        assert_eq!(
            c.group("g").map(|g| g.state),
            Some(GroupState::PreparingRebalance)
        );
        assert_eq!(
            c.heartbeat("g", 2, &b, None, t2),
            Err(GroupError::UnknownMemberId)
        );
        let ja3 = now(c.join(join_req(&a, None), t2, &mut next).0);
        assert_eq!((ja3.generation, ja3.members.len()), (3, 1));
        // Until the leader's next assignment arrives, a keeps its last one (as in Kafka,
        // whose DescribeGroups shows it during CompletingRebalance).
        let g = c.group("g").expect("group");
        assert_eq!(g.state, GroupState::CompletingRebalance);
        let kept: Vec<Bytes> = g.members.iter().map(|m| m.assignment.clone()).collect();
        assert_eq!(kept, vec![Bytes::from("A")]);
        let (fa3, _) = sync(&mut c, &a, 3, &[(&a, "A3")], t2);
        c.complete_sync("g", 3, true, t2);
        assert_eq!(
            wait(fa3).take().map(|o| o.assignment),
            Some(Bytes::from("A3"))
        );
    }

    #[test]
    fn a_join_while_the_assignment_is_being_stored_answers_the_waiting_syncs() {
        let mut c = Coordinator::new(settings());
        let t0 = Instant::now();
        let mut next = ids();
        let (a, sa) = join_new(&mut c, t0, &mut next);
        sa.take();
        // The leader's sync makes the group stable; its record is not stored yet.
        let (fa, record) = sync(&mut c, &a, 1, &[(&a, "A")], t0);
        assert!(record.is_some());
        let fa = wait(fa);
        // A newcomer starts a rebalance before `complete_sync`.
        let (_, _sb) = join_new(&mut c, t0, &mut next);
        assert_eq!(
            fa.take().and_then(|o| o.error),
            Some(GroupError::RebalanceInProgress),
            "the leader's sync is answered, not left hanging"
        );
        c.complete_sync("g", 1, true, t0); // too late: a no-op
        assert_eq!(
            c.group("g").map(|g| g.state),
            Some(GroupState::PreparingRebalance)
        );
    }

    #[test]
    fn rebalance_timeout_drops_members_that_do_not_rejoin() {
        let mut c = Coordinator::new(settings());
        let t0 = Instant::now();
        let mut next = ids();
        let (a, sa) = join_new(&mut c, t0, &mut next);
        sa.take();
        let (_, sb) = join_new(&mut c, t0, &mut next);
        // a never rejoins (and keeps no heartbeat): b is answered at the rebalance deadline.
        c.tick(t0 + Duration::from_secs(5));
        assert!(!sb.is_filled());
        c.tick(t0 + Duration::from_secs(31));
        let jb = sb.take().expect("completed by the deadline");
        assert_eq!(jb.members.len(), 1);
        assert_eq!(jb.leader, jb.member_id);
        assert!(c.group("g").is_some_and(|g| g.member(&a).is_none()));
    }

    #[test]
    fn initial_delay_gathers_members_started_together() {
        let mut c = Coordinator::new(GroupSettings {
            initial_rebalance_delay: Duration::from_secs(3),
            ..Default::default()
        });
        let t0 = Instant::now();
        let mut next = ids();
        let (_, sa) = join_new(&mut c, t0, &mut next);
        let (_, sb) = join_new(&mut c, t0 + Duration::from_secs(1), &mut next);
        c.tick(t0 + Duration::from_secs(2));
        assert!(!sa.is_filled() && !sb.is_filled(), "still within the delay");
        c.tick(t0 + Duration::from_secs(5));
        let (ja, jb) = (sa.take().expect("a"), sb.take().expect("b"));
        assert_eq!((ja.generation, jb.generation), (1, 1));
    }

    #[test]
    fn leave_empties_the_group_and_unknown_members_are_refused() {
        let mut c = Coordinator::new(settings());
        let t0 = Instant::now();
        let mut next = ids();
        let (a, sa) = join_new(&mut c, t0, &mut next);
        sa.take();
        let (f, rec) = sync(&mut c, &a, 1, &[(&a, "A")], t0);
        assert!(rec.is_some());
        c.complete_sync("g", 1, true, t0);
        assert!(wait(f).take().is_some());
        assert_eq!(
            c.leave("g", "nope", None, t0).0,
            Err(GroupError::UnknownMemberId)
        );
        let (r, record) = c.leave("g", &a, None, t0);
        assert_eq!(r, Ok(()));
        let record = record.expect("the empty group is persisted");
        assert!(record.members.is_empty());
        assert_eq!(c.group("g").map(|g| g.state), Some(GroupState::Empty));
        assert_eq!(
            c.check_commit("g", -1, "", None, t0),
            Ok(()),
            "simple commit to empty group"
        );
        assert_eq!(
            now(c.join(join_req("ghost", None), t0, &mut next).0).error,
            Some(GroupError::UnknownMemberId)
        );
        assert_eq!(c.remove("g"), Ok(()));
    }

    #[test]
    fn static_member_rejoining_a_stable_group_keeps_its_assignment_and_fences_the_old_id() {
        let mut c = Coordinator::new(settings());
        let t0 = Instant::now();
        let mut next = ids();
        let sa = wait(c.join(join_req("", Some("i1")), t0, &mut next).0);
        let a = sa.take().expect("joined").member_id;
        let (f, _) = sync(&mut c, &a, 1, &[(&a, "A")], t0);
        c.complete_sync("g", 1, true, t0);
        assert!(wait(f).take().is_some());
        let j = now(c.join(join_req("", Some("i1")), t0, &mut next).0);
        assert_eq!(j.error, None);
        assert_eq!(j.generation, 1, "no rebalance");
        assert_ne!(j.member_id, a);
        assert_eq!(
            c.heartbeat("g", 1, &a, Some("i1"), t0),
            Err(GroupError::FencedInstanceId)
        );
        let (f2, _) = sync(&mut c, &j.member_id, 1, &[], t0);
        assert_eq!(now(f2).assignment, Bytes::from("A"));
        // Back once more with other subscription metadata (a restarted consumer owns no
        // partitions yet) but the same protocols: still no rebalance; the answer names the old
        // leader id (JoinGroup before v9), so the returning leader does not assign again.
        let mut again = join_req("", Some("i1"));
        again.protocols = vec![
            ("range".into(), Bytes::from_static(b"r, owning nothing")),
            ("roundrobin".into(), Bytes::from_static(b"rr")),
        ];
        let j2 = now(c.join(again, t0, &mut next).0);
        assert_eq!((j2.error, j2.generation), (None, 1), "no rebalance");
        assert_eq!(j2.leader, j.member_id, "the old leader id");
        assert_eq!(c.group("g").map(|g| g.state), Some(GroupState::Stable));
        // Protocols that change the group's choice do rebalance.
        let mut other = join_req("", Some("i1"));
        other.protocols = vec![("roundrobin".into(), Bytes::from_static(b"rr"))];
        let _ = c.join(other, t0, &mut next);
        assert_ne!(c.group("g").map(|g| g.state), Some(GroupState::Stable));
    }

    #[test]
    fn protocols_must_match_and_session_timeout_is_bounded() {
        let mut c = Coordinator::new(settings());
        let t0 = Instant::now();
        let mut next = ids();
        let (_, sa) = join_new(&mut c, t0, &mut next);
        sa.take();
        let mut other = join_req("", None);
        other.protocols = vec![("sticky".into(), Bytes::new())];
        assert_eq!(
            now(c.join(other, t0, &mut next).0).error,
            Some(GroupError::InconsistentGroupProtocol)
        );
        let mut short = join_req("", None);
        short.session_timeout = Duration::from_millis(10);
        assert_eq!(
            now(c.join(short, t0, &mut next).0).error,
            Some(GroupError::InvalidSessionTimeout)
        );
    }

    #[test]
    fn restored_group_accepts_heartbeats_of_its_generation() {
        let mut c = Coordinator::new(settings());
        let t0 = Instant::now();
        c.restore(
            GroupRecord {
                group: "g".into(),
                protocol_type: Some("consumer".into()),
                generation: 7,
                protocol: Some("range".into()),
                leader: Some("m1".into()),
                members: vec![MemberRecord {
                    id: "m1".into(),
                    instance_id: None,
                    client_id: "c".into(),
                    client_host: "h".into(),
                    session_timeout_ms: 10_000,
                    rebalance_timeout_ms: 30_000,
                    subscription: Bytes::from("s"),
                    assignment: Bytes::from("A"),
                }],
            },
            t0,
        );
        assert_eq!(c.heartbeat("g", 7, "m1", None, t0), Ok(()));
        c.tick(t0 + Duration::from_secs(11));
        assert_eq!(c.group("g").map(|g| g.state), Some(GroupState::Empty));
    }
}
