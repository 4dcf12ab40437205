//! The consumer group protocol of KIP-848 (ConsumerGroupHeartbeat): the broker computes the
//! assignment. A state machine over the consumer-protocol groups of one `__consumer_offsets`
//! partition, pure like the classic [`super::coordinator`]: time and the topics' partition
//! counts are passed in, and what must be persisted comes back as [`records::Record`]s for the
//! caller (the shard) to append before it answers.
//!
//! Per group, as in Kafka: the **group epoch** is bumped when membership, a subscription or
//! the subscribed topics' partition counts change; the **target assignment** is recomputed
//! by the server-side assignor (`uniform` default, `range`) for each new group epoch; each
//! member **reconciles** towards its target on its own heartbeats ([`member`]): it revokes
//! first, staying at its epoch, and a partition is given to its new owner only once the old
//! one no longer holds it. Member epochs fence zombies (FENCED_MEMBER_EPOCH) and commits
//! (STALE_MEMBER_EPOCH). Members are expired after the session timeout, or after their
//! rebalance timeout when they do not revoke. Static members (instance id) leave for a while
//! with epoch -2 and come back with a new member id to the same assignment.
//!
//! Regular-expression subscriptions (`subscribed_topic_regex`, RE2 syntax as Kafka's RE2/J,
//! matching whole topic names, never `__consumer_offsets`) are resolved against the catalog on
//! every heartbeat, so a new matching topic joins the subscription on the next one.
//! Not here: rack-aware assignment, client-side assignors, and classic members inside consumer groups (no online
//! migration between the protocols: a heartbeat for a classic group with members gets
//! GROUP_ID_NOT_FOUND, a JoinGroup for a consumer group with members
//! INCONSISTENT_GROUP_PROTOCOL; an empty group of either kind gives way to the other).
//! This module never touches the log, the wire, or the classic coordinator's groups.

pub mod assignor;
pub mod member;
pub mod records;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use super::GroupError;
use member::{Member, MemberState};
use records::{CurrentAssignment, Key, Loaded, MemberMetadata, Record, Value};

pub type TopicId = uuid::Uuid;
/// Partitions by topic id.
pub type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;

/// Member epoch of a member leaving the group.
pub const LEAVE_EPOCH: i32 = -1;
/// Member epoch of a static member leaving for a while (it keeps its assignment).
pub const STATIC_LEAVE_EPOCH: i32 = -2;
/// Most topics one member may subscribe to: bounds the assignor's work per heartbeat.
pub const MAX_SUBSCRIBED_TOPICS: usize = 10_000;
/// The first OffsetCommit version a consumer-protocol member may commit with.
pub const MIN_MEMBER_COMMIT_VERSION: i16 = 9;
/// Longest subscription regex accepted, and the most memory its compiled form may take:
/// a hostile pattern must not make the coordinator compile without bound.
pub const MAX_REGEX_BYTES: usize = 4096;
pub const MAX_REGEX_COMPILED_BYTES: usize = 1 << 20;
/// Longest member id, instance id or rack id accepted (Kafka's strings are i16-long).
pub const MAX_ID_BYTES: usize = i16::MAX as usize;

/// What the state machine reads of the catalog.
pub trait Topics {
    /// A topic's id and partition count.
    fn get(&self, name: &str) -> Option<TopicInfo>;
    /// Every topic's name (regex subscriptions match against them).
    fn names(&self) -> Vec<String>;
}

/// No topics at all (callers without a catalog, such as tests of classic groups).
pub struct NoTopics;

impl Topics for NoTopics {
    fn get(&self, _: &str) -> Option<TopicInfo> {
        None
    }

    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Compiles a subscription regex as Kafka matches it: the whole topic name.
pub fn compile_regex(re: &str) -> Result<regex::Regex, String> {
    if re.len() > MAX_REGEX_BYTES {
        return Err(format!("longer than {MAX_REGEX_BYTES} bytes"));
    }
    regex::RegexBuilder::new(&format!("^(?:{re})$"))
        .size_limit(MAX_REGEX_COMPILED_BYTES)
        .build()
        .map_err(|e| e.to_string())
}

/// A topic as the assignor needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: TopicId,
    pub name: String,
    pub partitions: i32,
}

/// Broker settings of the consumer protocol (Kafka's `group.consumer.*`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `group.consumer.heartbeat.interval.ms`
    pub heartbeat_interval: Duration,
    /// `group.consumer.session.timeout.ms`
    pub session_timeout: Duration,
    /// `group.consumer.max.size`
    pub max_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            heartbeat_interval: Duration::from_millis(5000),
            session_timeout: Duration::from_millis(45_000),
            max_size: super::coordinator::MAX_GROUP_MEMBERS,
        }
    }
}

/// A ConsumerGroupHeartbeat, as the state machine needs it. `None` fields did not change
/// since the member's last heartbeat.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    pub group: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
    /// v1+: the client generates its member id (KIP-1082); v0: the broker does.
    pub client_generates_id: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatOutcome {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's partitions, when it must learn them.
    pub assignment: Option<Assignment>,
}

/// A refused heartbeat: its error and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: GroupError,
    pub message: String,
}

fn refuse<T>(error: GroupError, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        error,
        message: message.into(),
    })
}

/// One consumer-protocol group.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    pub id: String,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, Member>,
    /// The target assignment of `assignment_epoch`, per member.
    pub targets: HashMap<String, Assignment>,
    /// The subscribed topics as last seen, by name.
    pub topics: BTreeMap<String, TopicInfo>,
    /// Compiled subscription regexes, by pattern.
    regexes: HashMap<String, regex::Regex>,
}

/// A consumer group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct Described {
    pub group: String,
    pub state: &'static str,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    /// Each member with its target.
    pub members: Vec<(Member, Assignment)>,
    pub topic_names: HashMap<TopicId, String>,
}

impl ConsumerGroup {
    fn new(id: &str) -> Self {
        ConsumerGroup {
            id: id.to_string(),
            epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            targets: HashMap::new(),
            topics: BTreeMap::new(),
            regexes: HashMap::new(),
        }
    }

    /// Kafka's state name: Empty, Assigning, Reconciling or Stable.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.epoch != self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// The assignor most members ask for; `uniform` when none does.
    pub fn assignor(&self) -> &str {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.server_assignor.as_deref() {
                *votes.entry(a).or_default() += 1;
            }
        }
        let best = votes.values().copied().max().unwrap_or(0);
        assignor::ASSIGNORS
            .iter()
            .copied()
            .find(|a| best > 0 && votes.get(a) == Some(&best))
            .unwrap_or(assignor::UNIFORM)
    }

    pub fn describe(&self) -> Described {
        Described {
            group: self.id.clone(),
            state: self.state(),
            epoch: self.epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor().to_string(),
            members: self
                .members
                .values()
                .map(|m| {
                    let t = self.targets.get(&m.id).cloned().unwrap_or_default();
                    (m.clone(), t)
                })
                .collect(),
            topic_names: self
                .topics
                .values()
                .map(|t| (t.id, t.name.clone()))
                .collect(),
        }
    }

    fn member_of_instance(&self, instance: &str) -> Option<&Member> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance))
    }

    fn member_record(&self, m: &Member) -> Record {
        Record::put(
            Key::MemberMetadata(self.id.clone(), m.id.clone()),
            Value::Member(MemberMetadata {
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topics: m.subscribed_topics.clone(),
                subscribed_regex: m.subscribed_regex.clone(),
                rebalance_timeout_ms: m.rebalance_timeout.as_millis().min(i32::MAX as u128) as i32,
                server_assignor: m.server_assignor.clone(),
            }),
        )
    }

    fn current_record(&self, m: &Member) -> Record {
        Record::put(
            Key::CurrentAssignment(self.id.clone(), m.id.clone()),
            Value::Current(CurrentAssignment {
                epoch: m.epoch,
                previous_epoch: m.previous_epoch,
                state: m.state,
                assigned: m.assigned.clone(),
                pending_revocation: m.pending_revocation.clone(),
            }),
        )
    }

    fn bump(&mut self, records: &mut Vec<Record>) {
        self.epoch += 1;
        records.push(Record::put(
            Key::GroupMetadata(self.id.clone()),
            Value::GroupEpoch(self.epoch),
        ));
    }

    /// Re-reads the subscribed topics (resolving regexes against the catalog); whether any
    /// appeared, vanished or changed size, or a member's regex now matches other topics.
    fn refresh_topics(&mut self, catalog: &dyn Topics, records: &mut Vec<Record>) -> bool {
        let mut regex_changed = false;
        let patterns: BTreeSet<String> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_regex.clone())
            .collect();
        self.regexes.retain(|p, _| patterns.contains(p));
        if !patterns.is_empty() {
            let all = catalog.names();
            for p in &patterns {
                if !self.regexes.contains_key(p) {
                    // Checked when the member sent it; a pattern that fails now matches nothing.
                    if let Ok(re) = compile_regex(p) {
                        self.regexes.insert(p.clone(), re);
                    }
                }
            }
            for m in self.members.values_mut() {
                let matched: Vec<String> = match m
                    .subscribed_regex
                    .as_ref()
                    .and_then(|p| self.regexes.get(p))
                {
                    Some(re) => all
                        .iter()
                        .filter(|n| n.as_str() != super::offsets::OFFSETS_TOPIC && re.is_match(n))
                        .cloned()
                        .collect(),
                    None => Vec::new(),
                };
                if matched != m.regex_topics {
                    m.regex_topics = matched;
                    regex_changed = true;
                }
            }
        } else {
            for m in self.members.values_mut() {
                regex_changed |= !m.regex_topics.is_empty();
                m.regex_topics.clear();
            }
        }
        let names: BTreeSet<&str> = self
            .members
            .values()
            .flat_map(|m| m.topic_names())
            .collect();
        let fresh: BTreeMap<String, TopicInfo> = names
            .into_iter()
            .filter_map(|n| catalog.get(n).map(|t| (n.to_string(), t)))
            .collect();
        if fresh == self.topics {
            return regex_changed;
        }
        self.topics = fresh;
        records.push(Record::put(
            Key::PartitionMetadata(self.id.clone()),
            Value::Topics(self.topics.values().cloned().collect()),
        ));
        true
    }

    /// Computes the target assignment of the current group epoch.
    fn compute_target(&mut self, records: &mut Vec<Record>) {
        let by_id: BTreeMap<TopicId, TopicInfo> =
            self.topics.values().map(|t| (t.id, t.clone())).collect();
        let empty = Assignment::new();
        let inputs: Vec<assignor::AssignorMember> = self
            .members
            .values()
            .map(|m| assignor::AssignorMember {
                id: &m.id,
                topics: m
                    .topic_names()
                    .filter_map(|n| self.topics.get(n).map(|t| t.id))
                    .collect(),
                previous: self.targets.get(&m.id).unwrap_or(&empty),
            })
            .collect();
        let mut fresh = assignor::assign(self.assignor(), &inputs, &by_id);
        for (id, a) in fresh.iter_mut() {
            a.retain(|_, s| !s.is_empty());
            if self.targets.get(id) != Some(a) {
                records.push(Record::put(
                    Key::TargetMember(self.id.clone(), id.clone()),
                    Value::Target(a.clone()),
                ));
            }
        }
        for id in self.targets.keys() {
            if !fresh.contains_key(id) {
                records.push(Record::tombstone(Key::TargetMember(
                    self.id.clone(),
                    id.clone(),
                )));
            }
        }
        self.targets = fresh;
        self.assignment_epoch = self.epoch;
        records.push(Record::put(
            Key::TargetMetadata(self.id.clone()),
            Value::TargetEpoch(self.assignment_epoch),
        ));
    }

    /// One reconciliation step of `member_id`; whether it changed.
    fn reconcile(
        &mut self,
        member_id: &str,
        owned: Option<&Assignment>,
        now: Instant,
        records: &mut Vec<Record>,
    ) -> bool {
        let elsewhere: HashSet<(TopicId, i32)> = self
            .members
            .values()
            .filter(|m| m.id != member_id)
            .flat_map(|m| m.holds())
            .collect();
        let empty = Assignment::new();
        let target = self.targets.get(member_id).unwrap_or(&empty);
        let epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(member_id) else {
            return false;
        };
        let changed = m.reconcile(
            epoch,
            target,
            owned,
            |t, p| elsewhere.contains(&(*t, p)),
            now,
        );
        if changed {
            let m = m.clone();
            records.push(self.current_record(&m));
        }
        changed
    }

    /// Removes a member: its partitions are free, the group epoch moves on.
    fn remove_member(&mut self, id: &str, records: &mut Vec<Record>) {
        if self.members.remove(id).is_none() {
            return;
        }
        for key in [
            Key::MemberMetadata(self.id.clone(), id.to_string()),
            Key::TargetMember(self.id.clone(), id.to_string()),
            Key::CurrentAssignment(self.id.clone(), id.to_string()),
        ] {
            records.push(Record::tombstone(key));
        }
        self.targets.remove(id);
        self.bump(records);
        self.compute_target(records);
    }
}

/// The consumer-protocol groups of one `__consumer_offsets` partition.
#[derive(Debug, Default)]
pub struct ConsumerGroups {
    pub settings: Settings,
    groups: HashMap<String, ConsumerGroup>,
}

fn check_id(what: &str, s: Option<&str>) -> Result<(), Refusal> {
    match s {
        Some("") => refuse(
            GroupError::InvalidRequest,
            format!("{what} can't be empty."),
        ),
        Some(s) if s.len() > MAX_ID_BYTES => {
            refuse(GroupError::InvalidRequest, format!("{what} is too long."))
        }
        _ => Ok(()),
    }
}

/// Kafka's checks of a heartbeat's fields (`throwIfConsumerGroupHeartbeatRequestIsInvalid`).
fn validate(req: &HeartbeatRequest) -> Result<(), Refusal> {
    check_id("GroupId", Some(&req.group))?;
    check_id("InstanceId", req.instance_id.as_deref())?;
    check_id("RackId", req.rack_id.as_deref())?;
    if req.member_id.len() > MAX_ID_BYTES {
        return refuse(GroupError::InvalidRequest, "MemberId is too long.");
    }
    if req.member_id.is_empty() && (req.client_generates_id || req.member_epoch != 0) {
        return refuse(GroupError::InvalidRequest, "MemberId can't be empty.");
    }
    match req.member_epoch {
        0 => {
            if req.rebalance_timeout_ms == -1 {
                return refuse(
                    GroupError::InvalidRequest,
                    "RebalanceTimeoutMs must be provided in first request.",
                );
            }
            if req.owned.as_ref().is_none_or(|o| !o.is_empty()) {
                return refuse(
                    GroupError::InvalidRequest,
                    "TopicPartitions must be empty when (re-)joining.",
                );
            }
            let names = req
                .subscribed_topic_names
                .as_ref()
                .is_some_and(|n| !n.is_empty());
            let regex = req
                .subscribed_topic_regex
                .as_ref()
                .is_some_and(|r| !r.is_empty());
            if !names && !regex {
                return refuse(
                    GroupError::InvalidRequest,
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                );
            }
        }
        STATIC_LEAVE_EPOCH if req.instance_id.is_none() => {
            return refuse(GroupError::InvalidRequest, "InstanceId can't be null.");
        }
        e if e < STATIC_LEAVE_EPOCH => {
            return refuse(GroupError::InvalidRequest, "MemberEpoch is invalid.")
        }
        _ => {}
    }
    if let Some(r) = req
        .subscribed_topic_regex
        .as_deref()
        .filter(|r| !r.is_empty())
    {
        if let Err(e) = compile_regex(r) {
            return refuse(
                GroupError::InvalidRegularExpression,
                format!("SubscribedTopicRegex `{r}` is not a valid regular expression: {e}"),
            );
        }
    }
    if req
        .subscribed_topic_names
        .as_ref()
        .is_some_and(|n| n.len() > MAX_SUBSCRIBED_TOPICS)
    {
        return refuse(
            GroupError::InvalidRequest,
            "SubscribedTopicNames has too many topics.",
        );
    }
    if let Some(a) = &req.server_assignor {
        if !assignor::ASSIGNORS.contains(&a.as_str()) {
            return refuse(
                GroupError::UnsupportedAssignor,
                format!(
                    "ServerAssignor {a} is not supported. Supported assignors: {}.",
                    assignor::ASSIGNORS.join(", ")
                ),
            );
        }
    }
    Ok(())
}

impl ConsumerGroups {
    pub fn new(settings: Settings) -> Self {
        ConsumerGroups {
            settings,
            groups: HashMap::new(),
        }
    }

    pub fn group(&self, id: &str) -> Option<&ConsumerGroup> {
        self.groups.get(id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.groups.contains_key(id)
    }

    pub fn groups(&self) -> impl Iterator<Item = &ConsumerGroup> {
        self.groups.values()
    }

    /// One ConsumerGroupHeartbeat. `lookup` reads a topic from the catalog; `new_member_id`
    /// makes a member id when the broker must (v0 joins). The records must be stored before
    /// the answer goes out.
    pub fn heartbeat(
        &mut self,
        req: HeartbeatRequest,
        now: Instant,
        lookup: &dyn Topics,
        new_member_id: impl FnOnce() -> String,
    ) -> (Result<HeartbeatOutcome, Refusal>, Vec<Record>) {
        let mut records = Vec::new();
        let group = req.group.clone();
        let r = self.heartbeat_inner(req, now, lookup, new_member_id, &mut records);
        // A refused first join leaves no empty group behind.
        if r.is_err()
            && self
                .groups
                .get(&group)
                .is_some_and(|g| g.members.is_empty() && g.epoch == 0)
        {
            self.groups.remove(&group);
        }
        (r, records)
    }

    fn heartbeat_inner(
        &mut self,
        req: HeartbeatRequest,
        now: Instant,
        lookup: &dyn Topics,
        new_member_id: impl FnOnce() -> String,
        records: &mut Vec<Record>,
    ) -> Result<HeartbeatOutcome, Refusal> {
        validate(&req)?;
        let settings = self.settings.clone();
        let interval = settings
            .heartbeat_interval
            .as_millis()
            .min(i32::MAX as u128) as i32;
        if req.member_epoch != 0 && !self.groups.contains_key(&req.group) {
            return refuse(
                GroupError::UnknownMemberId,
                format!("Consumer group {} not found.", req.group),
            );
        }
        let g = self
            .groups
            .entry(req.group.clone())
            .or_insert_with(|| ConsumerGroup::new(&req.group));
        if req.member_epoch == LEAVE_EPOCH || req.member_epoch == STATIC_LEAVE_EPOCH {
            return Self::leave(g, &req, interval, now, records);
        }
        let mut bump = false;
        let mut metadata_changed = false;
        let member_id = if req.member_epoch == 0 {
            let member_id = if req.member_id.is_empty() {
                new_member_id()
            } else {
                req.member_id.clone()
            };
            if let Some(instance) = req.instance_id.as_deref() {
                if let Some(old) = g.member_of_instance(instance).cloned() {
                    if old.id != member_id {
                        if old.epoch != STATIC_LEAVE_EPOCH {
                            return refuse(
                                GroupError::UnreleasedInstanceId,
                                format!(
                                    "Static member {} with instance id {instance} is still active.",
                                    old.id
                                ),
                            );
                        }
                        // The static member is back under a new id: it takes over its
                        // predecessor's partitions and target, the group does not rebalance.
                        for key in [
                            Key::MemberMetadata(g.id.clone(), old.id.clone()),
                            Key::TargetMember(g.id.clone(), old.id.clone()),
                            Key::CurrentAssignment(g.id.clone(), old.id.clone()),
                        ] {
                            records.push(Record::tombstone(key));
                        }
                        g.members.remove(&old.id);
                        let target = g.targets.remove(&old.id).unwrap_or_default();
                        records.push(Record::put(
                            Key::TargetMember(g.id.clone(), member_id.clone()),
                            Value::Target(target.clone()),
                        ));
                        g.targets.insert(member_id.clone(), target);
                        let mut m = old;
                        m.id = member_id.clone();
                        m.epoch = 0;
                        m.state = MemberState::Stable;
                        g.members.insert(member_id.clone(), m);
                        metadata_changed = true;
                    }
                }
            }
            match g.members.get_mut(&member_id) {
                Some(m) if m.epoch != 0 => {
                    // A known member joins again: it owns nothing now.
                    m.assigned.clear();
                    m.pending_revocation.clear();
                    m.previous_epoch = m.epoch;
                    m.epoch = 0;
                    m.state = MemberState::Stable;
                    m.revoke_deadline = None;
                }
                Some(_) => {}
                None => {
                    if g.members.len() >= settings.max_size {
                        return refuse(
                            GroupError::GroupMaxSizeReached,
                            format!(
                                "The consumer group has reached its maximum capacity of {} members.",
                                settings.max_size
                            ),
                        );
                    }
                    g.members.insert(
                        member_id.clone(),
                        Member {
                            id: member_id.clone(),
                            instance_id: None,
                            rack_id: None,
                            client_id: String::new(),
                            client_host: String::new(),
                            subscribed_topics: Vec::new(),
                            subscribed_regex: None,
                            regex_topics: Vec::new(),
                            server_assignor: None,
                            rebalance_timeout: Duration::ZERO,
                            epoch: 0,
                            previous_epoch: -1,
                            state: MemberState::Stable,
                            assigned: Assignment::new(),
                            pending_revocation: Assignment::new(),
                            deadline: now,
                            revoke_deadline: None,
                        },
                    );
                    bump = true;
                    metadata_changed = true;
                }
            }
            member_id
        } else {
            let Some(m) = g.members.get(&req.member_id) else {
                return refuse(
                    GroupError::UnknownMemberId,
                    format!(
                        "Member {} is not a member of group {}.",
                        req.member_id, req.group
                    ),
                );
            };
            if let (Some(i), Some(mine)) = (req.instance_id.as_deref(), m.instance_id.as_deref()) {
                if i != mine {
                    return refuse(
                        GroupError::FencedInstanceId,
                        "The member's instance id does not match.",
                    );
                }
            }
            let fenced = req.member_epoch > m.epoch
                || (req.member_epoch < m.epoch
                    && (req.member_epoch != m.previous_epoch
                        || !req
                            .owned
                            .as_ref()
                            .is_some_and(|o| member::is_subset(o, &m.assigned))));
            if fenced {
                return refuse(
                    GroupError::FencedMemberEpoch,
                    format!(
                        "The consumer group member has a smaller or larger member epoch ({}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                        req.member_epoch, m.epoch
                    ),
                );
            }
            req.member_id.clone()
        };
        let Some(m) = g.members.get_mut(&member_id) else {
            return refuse(GroupError::UnknownMemberId, "member vanished");
        };
        m.deadline = now + settings.session_timeout;
        if let Some(mut names) = req.subscribed_topic_names.clone() {
            names.sort_unstable();
            names.dedup();
            if names != m.subscribed_topics {
                m.subscribed_topics = names;
                bump = true;
                metadata_changed = true;
            }
        }
        if let Some(r) = &req.subscribed_topic_regex {
            // An empty pattern clears the regex subscription.
            let r = Some(r.clone()).filter(|r| !r.is_empty());
            if r != m.subscribed_regex {
                m.subscribed_regex = r;
                bump = true;
                metadata_changed = true;
            }
        }
        if req.server_assignor.is_some() && req.server_assignor != m.server_assignor {
            m.server_assignor = req.server_assignor.clone();
            bump = true;
            metadata_changed = true;
        }
        if req.rebalance_timeout_ms >= 0 {
            let t = Duration::from_millis(req.rebalance_timeout_ms as u64);
            metadata_changed |= t != m.rebalance_timeout;
            m.rebalance_timeout = t;
        }
        for (field, value) in [
            (&mut m.instance_id, &req.instance_id),
            (&mut m.rack_id, &req.rack_id),
        ] {
            if value.is_some() && *value != *field {
                field.clone_from(value);
                metadata_changed = true;
            }
        }
        if m.client_id != req.client_id || m.client_host != req.client_host {
            m.client_id.clone_from(&req.client_id);
            m.client_host.clone_from(&req.client_host);
            metadata_changed = true;
        }
        if metadata_changed {
            let m = m.clone();
            records.push(g.member_record(&m));
        }
        bump |= g.refresh_topics(lookup, records);
        if bump {
            g.bump(records);
        }
        if g.epoch != g.assignment_epoch {
            g.compute_target(records);
        }
        let before = g
            .members
            .get(&member_id)
            .map(|m| (m.epoch, m.assigned.clone()));
        let changed = g.reconcile(&member_id, req.owned.as_ref(), now, records);
        let Some(m) = g.members.get(&member_id) else {
            return refuse(GroupError::UnknownMemberId, "member vanished");
        };
        let send = req.member_epoch == 0
            || req.owned.is_some()
            || (changed && before.as_ref() != Some(&(m.epoch, m.assigned.clone())));
        Ok(HeartbeatOutcome {
            member_id,
            member_epoch: m.epoch,
            heartbeat_interval_ms: interval,
            assignment: send.then(|| m.assigned.clone()),
        })
    }

    /// Epoch -1 (leave) or -2 (a static member leaves for a while, keeping its partitions).
    fn leave(
        g: &mut ConsumerGroup,
        req: &HeartbeatRequest,
        interval: i32,
        _now: Instant,
        records: &mut Vec<Record>,
    ) -> Result<HeartbeatOutcome, Refusal> {
        let by_instance = req
            .instance_id
            .as_deref()
            .and_then(|i| g.member_of_instance(i))
            .map(|m| m.id.clone());
        let id = match (g.members.contains_key(&req.member_id), by_instance) {
            (true, Some(i)) if i != req.member_id => {
                return refuse(
                    GroupError::FencedInstanceId,
                    "The instance id belongs to another member.",
                )
            }
            (true, _) => req.member_id.clone(),
            (false, Some(i)) if req.member_epoch == LEAVE_EPOCH => i,
            (false, _) => {
                return refuse(
                    GroupError::UnknownMemberId,
                    format!(
                        "Member {} is not a member of group {}.",
                        req.member_id, req.group
                    ),
                )
            }
        };
        if req.member_epoch == STATIC_LEAVE_EPOCH {
            if let Some(m) = g.members.get_mut(&id) {
                if m.epoch != STATIC_LEAVE_EPOCH {
                    m.previous_epoch = m.epoch;
                }
                m.epoch = STATIC_LEAVE_EPOCH;
                m.pending_revocation.clear();
                m.state = MemberState::Stable;
                m.revoke_deadline = None;
                let m = m.clone();
                records.push(g.current_record(&m));
            }
        } else {
            g.remove_member(&id, records);
        }
        Ok(HeartbeatOutcome {
            member_id: id,
            member_epoch: req.member_epoch,
            heartbeat_interval_ms: interval,
            assignment: None,
        })
    }

    /// Expires members silent past the session timeout, and members that did not revoke
    /// within their rebalance timeout.
    pub fn tick(&mut self, now: Instant) -> Vec<Record> {
        let mut records = Vec::new();
        for g in self.groups.values_mut() {
            let expired: Vec<String> = g
                .members
                .values()
                .filter(|m| m.deadline <= now || m.revoke_deadline.is_some_and(|d| d <= now))
                .map(|m| m.id.clone())
                .collect();
            for id in expired {
                tracing::info!(group = %g.id, member = %id, "consumer group member expired");
                g.remove_member(&id, &mut records);
            }
        }
        records
    }

    /// Whether a commit (OffsetCommit `version`) from `member_id` at `member_epoch` may store
    /// offsets of group `group` (Kafka's `ConsumerGroup.validateOffsetCommit`): members must
    /// use v9+, which carries the member epoch.
    pub fn check_commit(
        &self,
        group: &str,
        member_id: &str,
        member_epoch: i32,
        version: i16,
    ) -> Result<(), GroupError> {
        let Some(g) = self.groups.get(group) else {
            return Err(GroupError::GroupIdNotFound);
        };
        if member_epoch < 0 && g.members.is_empty() {
            return Ok(());
        }
        let m = g
            .members
            .get(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if version < MIN_MEMBER_COMMIT_VERSION {
            return Err(GroupError::UnsupportedVersion);
        }
        check_epoch(member_epoch, m.epoch)
    }

    /// Whether an OffsetFetch v9+ naming a member may read (`validateOffsetFetch`): without a
    /// member id and with epoch -1 (admin clients) it always may.
    pub fn check_fetch(
        &self,
        group: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), GroupError> {
        let Some(g) = self.groups.get(group) else {
            return Ok(());
        };
        let Some(id) = member_id.filter(|_| member_epoch >= 0) else {
            return Ok(());
        };
        let m = g.members.get(id).ok_or(GroupError::UnknownMemberId)?;
        check_epoch(member_epoch, m.epoch)
    }

    /// Deletes an empty group; the records to store (tombstones).
    pub fn delete(&mut self, group: &str) -> Result<Vec<Record>, GroupError> {
        let g = self.groups.get(group).ok_or(GroupError::GroupIdNotFound)?;
        if !g.members.is_empty() {
            return Err(GroupError::NonEmptyGroup);
        }
        self.groups.remove(group);
        Ok(vec![
            Record::tombstone(Key::PartitionMetadata(group.to_string())),
            Record::tombstone(Key::TargetMetadata(group.to_string())),
            Record::tombstone(Key::GroupMetadata(group.to_string())),
        ])
    }

    /// Rebuilds a group from its records (at load); members get a fresh session.
    pub fn restore(&mut self, id: String, l: Loaded, now: Instant) {
        let mut g = ConsumerGroup::new(&id);
        g.epoch = l.epoch.unwrap_or(0);
        g.assignment_epoch = l.target_epoch;
        g.topics = l.topics.into_iter().map(|t| (t.name.clone(), t)).collect();
        for (mid, meta) in l.members {
            let cur = l.current.get(&mid).cloned().unwrap_or(CurrentAssignment {
                epoch: 0,
                previous_epoch: -1,
                state: MemberState::Stable,
                assigned: Assignment::new(),
                pending_revocation: Assignment::new(),
            });
            let meta_timeout = meta.clone();
            g.members.insert(
                mid.clone(),
                Member {
                    id: mid.clone(),
                    rebalance_timeout: records::rebalance_timeout(&meta),
                    instance_id: meta.instance_id,
                    rack_id: meta.rack_id,
                    client_id: meta.client_id,
                    client_host: meta.client_host,
                    subscribed_topics: meta.subscribed_topics,
                    subscribed_regex: meta.subscribed_regex,
                    regex_topics: Vec::new(),
                    server_assignor: meta.server_assignor,
                    epoch: cur.epoch,
                    previous_epoch: cur.previous_epoch,
                    state: cur.state,
                    assigned: cur.assigned,
                    pending_revocation: cur.pending_revocation,
                    deadline: now + self.settings.session_timeout,
                    // A member still revoking gets its rebalance timeout again.
                    revoke_deadline: (cur.state == MemberState::UnrevokedPartitions)
                        .then(|| now + records::rebalance_timeout(&meta_timeout)),
                },
            );
        }
        g.targets = l
            .targets
            .into_iter()
            .filter(|(m, _)| g.members.contains_key(m))
            .collect();
        self.groups.insert(id, g);
    }
}

/// Kafka's `validateMemberEpoch` for the consumer protocol.
fn check_epoch(received: i32, expected: i32) -> Result<(), GroupError> {
    if received > expected {
        Err(GroupError::FencedMemberEpoch)
    } else if received < expected {
        Err(GroupError::StaleMemberEpoch)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
