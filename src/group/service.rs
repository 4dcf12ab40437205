//! The group service of one core: each loaded `__consumer_offsets` partition of this core
//! holds the committed offsets and the group coordinator of its groups, rebuilt from the
//! partition's log on first use. Group operations run here, on the owning core (the shard
//! routes them and hands over the partition); whatever they decide to keep (commits, group
//! metadata, tombstones) is appended to the partition before the answer goes out.
//!
//! The service reaches its partitions only through `Partition`'s operations (scan, produce);
//! it never sees the mesh, the catalog or a file.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::group::consumer::{self, records as consumer_records, ConsumerGroups, Topics};
use crate::group::coordinator::{
    Answer, Coordinator, GroupRecord, GroupSettings, GroupState, JoinOutcome,
};
use crate::group::expiry::{self, Expiry};
use crate::group::offsets::{self, Committed, OffsetKey, OffsetsState};
use crate::group::{
    metadata, subscribed_topics, GroupError, GroupOp, GroupReply, GroupSummary, MemberSummary,
};
use crate::partition::{Partition, PartitionError};
use crate::storage::batch::{build_batch_nullable, BatchHeader, NullableRecord};
use crate::storage::clock::Clock;
use crate::storage::{StorageError, SystemClock};

/// Longest a JoinGroup or SyncGroup may park, whatever happens to its group: a safety net, the
/// coordinator answers every waiter well before (rebalance timeout, session expiry).
const MAX_GROUP_WAIT: Duration = Duration::from_secs(30 * 60);

/// One `__consumer_offsets` partition's state, and a turn-taker so that records reach the log
/// in the order the state changed.
struct OffsetsPartition {
    partition: Rc<Partition>,
    offsets: RefCell<OffsetsState>,
    groups: RefCell<Coordinator>,
    /// The KIP-848 consumer-protocol groups of the partition.
    consumer: RefCell<ConsumerGroups>,
    /// When each empty classic group became empty (wall clock, ms): what its offsets' expiry
    /// counts from. Kept from the time of the group record that emptied it.
    empty_since: RefCell<HashMap<String, i64>>,
    clock: Rc<dyn Clock>,
    turn: glommio::sync::Semaphore,
    /// The leader term the state was read in (replicated `__consumer_offsets`: a broker
    /// coordinates the groups of a partition it leads, from the log as of its own term).
    term: u64,
}

/// A record for `__consumer_offsets`: key and value (`None` = tombstone).
type Record = (Bytes, Option<Bytes>);

fn group_record(r: &GroupRecord) -> Record {
    (
        metadata::encode_key(&r.group),
        Some(metadata::encode_value(r)),
    )
}

/// The records of group changes about to be stored, noting which groups they leave empty
/// (and since when) for offset expiry.
fn group_records(held: &OffsetsPartition, changes: &[GroupRecord]) -> Vec<Record> {
    let now = held.clock.now_ms();
    let mut empty_since = held.empty_since.borrow_mut();
    for r in changes {
        if r.members.is_empty() {
            empty_since.insert(r.group.clone(), now);
        } else {
            empty_since.remove(&r.group);
        }
    }
    changes.iter().map(group_record).collect()
}

/// The loaded `__consumer_offsets` partitions of a core, by partition index.
pub struct GroupService {
    settings: GroupSettings,
    loaded: RefCell<HashMap<i32, Rc<OffsetsPartition>>>,
    /// Wall clock for commit ages, empty-group times and the records' timestamps.
    clock: Rc<dyn Clock>,
    /// When expired offsets were last looked for (the first look is one interval after start).
    last_expiry_check: Cell<i64>,
}

impl GroupService {
    pub fn new(settings: GroupSettings) -> GroupService {
        Self::with_clock(settings, Rc::new(SystemClock))
    }

    /// A service reading time from `clock` (tests move it days ahead).
    pub fn with_clock(settings: GroupSettings, clock: Rc<dyn Clock>) -> GroupService {
        let now = clock.now_ms();
        GroupService {
            settings,
            loaded: RefCell::new(HashMap::new()),
            clock,
            last_expiry_check: Cell::new(now),
        }
    }

    /// Runs `op` on `__consumer_offsets` partition `index`, which is `partition`, with no
    /// topics to read (a consumer-protocol group then sees none: see [`GroupService::run_with`]).
    pub async fn run(
        &self,
        index: i32,
        partition: Rc<Partition>,
        op: GroupOp,
    ) -> Result<GroupReply, PartitionError> {
        self.run_with(index, partition, op, &consumer::NoTopics)
            .await
    }

    /// [`GroupService::run`], where `topics` reads topics' names, ids and partition counts
    /// (the consumer protocol's assignors and regex subscriptions need them).
    pub async fn run_with(
        &self,
        index: i32,
        partition: Rc<Partition>,
        op: GroupOp,
        topics: &dyn Topics,
    ) -> Result<GroupReply, PartitionError> {
        let held = self.load(index, partition).await?;
        let held = &*held;
        let now = Instant::now();
        match op {
            GroupOp::Join(req)
                if held
                    .consumer
                    .borrow()
                    .group(&req.group)
                    .is_some_and(|g| !g.members.is_empty()) =>
            {
                // No classic members in consumer-protocol groups (no online migration).
                Ok(GroupReply::Join(JoinOutcome {
                    error: Some(GroupError::InconsistentGroupProtocol),
                    generation: -1,
                    member_id: req.member_id,
                    ..Default::default()
                }))
            }
            GroupOp::Join(req) => {
                // An empty consumer-protocol group of that id gives way to the classic group.
                let taken_over = held.consumer.borrow_mut().delete(&req.group);
                if let Ok(tombstones) = taken_over {
                    let records = tombstones.iter().map(consumer_records::Record::encode);
                    append_logged(held, records.collect()).await;
                }
                let client = req.client_id.clone();
                let (answer, record) = held
                    .groups
                    .borrow_mut()
                    .join(req, now, || format!("{client}-{}", uuid::Uuid::new_v4()));
                if let Some(r) = record {
                    append_logged(held, group_records(held, &[r])).await;
                }
                Ok(GroupReply::Join(match answer {
                    Answer::Now(o) => o,
                    Answer::Wait(slot) => wait(slot).await,
                }))
            }
            GroupOp::Sync(req) => {
                let (group, generation) = (req.group.clone(), req.generation);
                let (answer, record) = held.groups.borrow_mut().sync(req, now);
                if let Some(r) = record {
                    let stored = append(held, group_records(held, &[r]))
                        .await
                        .inspect_err(
                            |e| tracing::error!(%group, error = %e, "storing group failed"),
                        )
                        .is_ok();
                    held.groups.borrow_mut().complete_sync(
                        &group,
                        generation,
                        stored,
                        Instant::now(),
                    );
                }
                Ok(GroupReply::Sync(match answer {
                    Answer::Now(o) => o,
                    Answer::Wait(slot) => wait(slot).await,
                }))
            }
            GroupOp::Heartbeat {
                group,
                generation,
                member_id,
                instance_id,
            } => Ok(GroupReply::Status(held.groups.borrow_mut().heartbeat(
                &group,
                generation,
                &member_id,
                instance_id.as_deref(),
                now,
            ))),
            GroupOp::Leave { group, members } => {
                let mut results = Vec::new();
                let mut changes = Vec::new();
                for (id, instance) in members {
                    let (r, rec) =
                        held.groups
                            .borrow_mut()
                            .leave(&group, &id, instance.as_deref(), now);
                    results.push(r);
                    changes.extend(rec);
                }
                if !changes.is_empty() {
                    append_logged(held, group_records(held, &changes)).await;
                }
                Ok(GroupReply::Left(results))
            }
            GroupOp::Commit {
                group,
                generation,
                member_id,
                instance_id,
                commits,
                version,
            } => {
                // A consumer-protocol group checks member epochs, a classic one generations.
                let checked = if held.consumer.borrow().contains(&group) {
                    held.consumer
                        .borrow()
                        .check_commit(&group, &member_id, generation, version)
                } else {
                    held.groups.borrow_mut().check_commit(
                        &group,
                        generation,
                        &member_id,
                        instance_id.as_deref(),
                        now,
                    )
                };
                if let Err(e) = checked {
                    return Ok(GroupReply::Status(Err(e)));
                }
                let records = commits
                    .iter()
                    .map(|(t, p, c)| {
                        (
                            offsets::encode_key(&group, t, *p),
                            Some(offsets::encode_value(c)),
                        )
                    })
                    .collect();
                append(held, records).await?;
                let mut state = held.offsets.borrow_mut();
                for (t, p, c) in commits {
                    state.set((group.clone(), t, p), c);
                }
                Ok(GroupReply::Status(Ok(())))
            }
            GroupOp::FetchOffsets { group } => Ok(GroupReply::Offsets(
                held.offsets
                    .borrow()
                    .of_group(&group)
                    .map(|(k, c)| (k.clone(), c.clone()))
                    .collect(),
            )),
            // A consumer-protocol group is not a classic group: DescribeGroups (v0-5) shows it
            // "Dead", as Kafka does.
            GroupOp::Describe { group } => Ok(GroupReply::Described(
                summary(held, &group)
                    .filter(|s| s.group_type == "classic")
                    .unwrap_or_else(|| GroupSummary {
                        group,
                        state: "Dead",
                        group_type: "classic",
                        protocol_type: String::new(),
                        protocol: String::new(),
                        members: Vec::new(),
                    }),
            )),
            GroupOp::List => {
                let mut names: Vec<String> = held
                    .groups
                    .borrow()
                    .groups()
                    .map(|g| g.id.clone())
                    .collect();
                names.extend(held.offsets.borrow().groups());
                names.extend(held.consumer.borrow().groups().map(|g| g.id.clone()));
                names.sort();
                names.dedup();
                Ok(GroupReply::Listed(
                    names.iter().filter_map(|g| summary(held, g)).collect(),
                ))
            }
            GroupOp::Delete { group } if held.consumer.borrow().contains(&group) => {
                let mut records: Vec<Record> = match held.consumer.borrow_mut().delete(&group) {
                    Ok(r) => r.iter().map(consumer_records::Record::encode).collect(),
                    Err(e) => return Ok(GroupReply::Status(Err(e))),
                };
                records.extend(
                    held.offsets
                        .borrow()
                        .of_group(&group)
                        .map(|((g, t, p), _)| (offsets::encode_key(g, t, *p), None)),
                );
                append(held, records).await?;
                held.offsets.borrow_mut().remove_group(&group);
                Ok(GroupReply::Status(Ok(())))
            }
            GroupOp::Delete { group } => {
                let known = summary(held, &group).is_some();
                if !known {
                    return Ok(GroupReply::Status(Err(GroupError::GroupIdNotFound)));
                }
                if let Err(e) = held.groups.borrow_mut().remove(&group) {
                    return Ok(GroupReply::Status(Err(e)));
                }
                let mut records: Vec<Record> = held
                    .offsets
                    .borrow()
                    .of_group(&group)
                    .map(|((g, t, p), _)| (offsets::encode_key(g, t, *p), None))
                    .collect();
                records.push((metadata::encode_key(&group), None));
                append(held, records).await?;
                held.offsets.borrow_mut().remove_group(&group);
                held.empty_since.borrow_mut().remove(&group);
                Ok(GroupReply::Status(Ok(())))
            }
            GroupOp::DeleteOffsets { group, partitions } => {
                delete_offsets(held, group, partitions).await
            }
            GroupOp::ConsumerHeartbeat(req) => consumer_heartbeat(held, *req, now, topics).await,
            GroupOp::ConsumerDescribe { group } => Ok(GroupReply::ConsumerDescribed(
                // A classic group is not a consumer group either.
                held.consumer
                    .borrow()
                    .group(&group)
                    .map(|g| g.describe())
                    .ok_or(GroupError::GroupIdNotFound),
            )),
            GroupOp::FetchOffsetsAs {
                group,
                member_id,
                member_epoch,
            } => {
                if let Err(e) =
                    held.consumer
                        .borrow()
                        .check_fetch(&group, member_id.as_deref(), member_epoch)
                {
                    return Ok(GroupReply::Status(Err(e)));
                }
                Ok(GroupReply::Offsets(
                    held.offsets
                        .borrow()
                        .of_group(&group)
                        .map(|(k, c)| (k.clone(), c.clone()))
                        .collect(),
                ))
            }
        }
    }
}

/// A ConsumerGroupHeartbeat: refused for a classic group with members (no online migration;
/// an empty classic group is taken over), else run by the consumer groups and its records
/// stored before the answer.
async fn consumer_heartbeat(
    held: &OffsetsPartition,
    req: consumer::HeartbeatRequest,
    now: Instant,
    topics: &dyn Topics,
) -> Result<GroupReply, PartitionError> {
    let mut records: Vec<Record> = Vec::new();
    let classic_state = held.groups.borrow().group(&req.group).map(|g| g.state);
    match classic_state {
        Some(GroupState::Empty) if held.groups.borrow_mut().remove(&req.group).is_ok() => {
            records.push((metadata::encode_key(&req.group), None));
        }
        Some(GroupState::Empty) | None => {}
        Some(_) => {
            return Ok(GroupReply::ConsumerHeartbeat(Err(consumer::Refusal {
                error: GroupError::GroupIdNotFound,
                message: format!("Group {} is not a consumer group.", req.group),
            })))
        }
    }
    let (answer, changes) = held
        .consumer
        .borrow_mut()
        .heartbeat(req, now, topics, || uuid::Uuid::new_v4().to_string());
    records.extend(changes.iter().map(consumer_records::Record::encode));
    if !records.is_empty() {
        if let Err(e) = append(held, records).await {
            tracing::error!(error = %e, "storing consumer group failed");
            return Ok(GroupReply::ConsumerHeartbeat(Err(consumer::Refusal {
                error: GroupError::CoordinatorNotAvailable,
                message: "the group's records could not be stored".into(),
            })));
        }
    }
    Ok(GroupReply::ConsumerHeartbeat(answer))
}

async fn delete_offsets(
    held: &OffsetsPartition,
    group: String,
    partitions: Vec<(String, i32)>,
) -> Result<GroupReply, PartitionError> {
    // A consumer-protocol group's subscribed topics keep their offsets while it has members.
    let consumer_subscribed: Option<Vec<String>> = held.consumer.borrow().group(&group).map(|g| {
        g.members
            .values()
            .flat_map(|m| m.topic_names().map(String::from))
            .collect()
    });
    let subscribed: Option<Vec<String>> = if consumer_subscribed.is_some() {
        consumer_subscribed
    } else {
        let groups = held.groups.borrow();
        match groups.group(&group) {
            Some(g) if g.state != GroupState::Empty => {
                if g.protocol_type.as_deref() != Some("consumer") {
                    return Ok(GroupReply::OffsetsDeleted(Err(GroupError::NonEmptyGroup)));
                }
                let protocol = g.protocol.clone().unwrap_or_default();
                Some(
                    g.members
                        .iter()
                        .flat_map(|m| subscribed_topics(&m.metadata(&protocol)))
                        .collect(),
                )
            }
            Some(_) => None,
            None if held.offsets.borrow().of_group(&group).next().is_some() => None,
            None => return Ok(GroupReply::OffsetsDeleted(Err(GroupError::GroupIdNotFound))),
        }
    };
    let mut results = Vec::new();
    let mut records = Vec::new();
    for (t, p) in partitions {
        if subscribed.as_ref().is_some_and(|s| s.contains(&t)) {
            results.push((t, p, Err(GroupError::GroupSubscribedToTopic)));
        } else {
            records.push((offsets::encode_key(&group, &t, p), None));
            results.push((t, p, Ok(())));
        }
    }
    if !records.is_empty() {
        append(held, records).await?;
        let mut state = held.offsets.borrow_mut();
        for (t, p, r) in &results {
            if r.is_ok() {
                state.remove(&group, t, *p);
            }
        }
    }
    Ok(GroupReply::OffsetsDeleted(Ok(results)))
}

impl GroupService {
    /// The offsets and groups of a `__consumer_offsets` partition, read from its log the first
    /// time they are needed on this core.
    async fn load(
        &self,
        index: i32,
        partition: Rc<Partition>,
    ) -> Result<Rc<OffsetsPartition>, PartitionError> {
        // Clustered: only the leader of the partition coordinates its groups, and a leader of
        // a new term reads them anew (another broker led them meanwhile).
        let term = match partition.leadership() {
            Some(l) if l.role != crate::replication::Role::Leader => {
                return Err(PartitionError::NotLeader { leader: l.leader })
            }
            Some(l) if !l.leader_ready => return Err(PartitionError::LeaderNotReady),
            Some(l) => l.term,
            None => 0,
        };
        if let Some(o) = self.loaded.borrow().get(&index) {
            if o.term == term && Rc::ptr_eq(&o.partition, &partition) {
                return Ok(o.clone());
            }
        }
        self.loaded.borrow_mut().remove(&index);
        let mut offsets_state = OffsetsState::default();
        // Each group's latest record, with the time it was written.
        let mut groups: HashMap<String, (Option<GroupRecord>, i64)> = HashMap::new();
        let mut consumer_loader = consumer_records::Loader::default();
        let mut scan = partition.scan(partition.log_start());
        while let Some(batch) = scan.next().await? {
            if BatchHeader::parse(&batch).is_none() {
                continue;
            }
            let mut b = batch.clone();
            let Ok(set) = kafka_protocol::records::RecordBatchDecoder::decode(&mut b) else {
                continue;
            };
            for r in set.records {
                if let Some(g) = r.key.clone().and_then(metadata::decode_key) {
                    let rec = r.value.and_then(|v| metadata::decode_value(g.clone(), v));
                    groups.insert(g, (rec, r.timestamp));
                } else if let Some(k) = r.key.clone().and_then(consumer_records::decode_key) {
                    consumer_loader.apply(k, r.value);
                } else {
                    offsets_state.apply(r.key, r.value);
                }
            }
        }
        let mut coordinator = Coordinator::new(self.settings.clone());
        let now = Instant::now();
        let mut empty_since = HashMap::new();
        for (rec, written) in groups.into_values() {
            let Some(rec) = rec else { continue };
            if rec.members.is_empty() {
                empty_since.insert(rec.group.clone(), written);
            }
            coordinator.restore(rec, now);
        }
        let mut consumer_groups = ConsumerGroups::new(self.settings.consumer.clone());
        for (id, loaded) in consumer_loader.finish() {
            consumer_groups.restore(id, loaded, now);
        }
        // Another task may have built it while we read: keep the first.
        let built = Rc::new(OffsetsPartition {
            partition,
            offsets: RefCell::new(offsets_state),
            groups: RefCell::new(coordinator),
            consumer: RefCell::new(consumer_groups),
            empty_since: RefCell::new(empty_since),
            clock: self.clock.clone(),
            turn: glommio::sync::Semaphore::new(1),
            term,
        });
        Ok(self
            .loaded
            .borrow_mut()
            .entry(index)
            .or_insert(built)
            .clone())
    }

    /// Expires members and completes due rebalances in every loaded group of this core; every
    /// `offsets.retention.check.interval.ms`, expires offsets ([`expire_offsets`]).
    pub async fn tick(&self) {
        let held: Vec<Rc<OffsetsPartition>> = self.loaded.borrow().values().cloned().collect();
        let now_ms = self.clock.now_ms();
        let interval = self.settings.offsets_retention_check_interval.as_millis() as i64;
        let check_expiry = now_ms.saturating_sub(self.last_expiry_check.get()) >= interval;
        if check_expiry {
            self.last_expiry_check.set(now_ms);
        }
        let retention_ms = self.settings.offsets_retention.as_millis() as i64;
        for o in held {
            let changes = o.groups.borrow_mut().tick(Instant::now());
            let mut records: Vec<Record> = group_records(&o, &changes);
            records.extend(
                o.consumer
                    .borrow_mut()
                    .tick(Instant::now())
                    .iter()
                    .map(consumer_records::Record::encode),
            );
            if !records.is_empty() {
                append_logged(&o, records).await;
            }
            if check_expiry {
                if let Err(e) = expire_offsets(&o, retention_ms).await {
                    tracing::error!(error = %e, "expiring offsets failed");
                }
            }
        }
    }
}

/// What goes when a group's last offset expires.
enum WhenGone {
    /// An empty classic group: its metadata (tombstone) too.
    Classic,
    /// An empty consumer-protocol group: its records (tombstones) too.
    Consumer,
    /// Nothing more: a group of offsets only, or one with members.
    Nothing,
}

/// How `group`'s offsets expire now (see `super::expiry`), and what goes with the last.
fn expiry_of(held: &OffsetsPartition, group: &str) -> (Expiry, WhenGone) {
    if let Some(g) = held.consumer.borrow().group(group) {
        let subscribed = g
            .members
            .values()
            .flat_map(|m| m.topic_names().map(String::from))
            .collect();
        let gone = if g.members.is_empty() {
            WhenGone::Consumer
        } else {
            WhenGone::Nothing
        };
        return (Expiry::AfterCommit { subscribed }, gone);
    }
    let groups = held.groups.borrow();
    let Some(g) = groups.group(group) else {
        return (
            Expiry::AfterCommit { subscribed: vec![] },
            WhenGone::Nothing,
        );
    };
    let empty = g.state == GroupState::Empty;
    let gone = if empty {
        WhenGone::Classic
    } else {
        WhenGone::Nothing
    };
    match (g.protocol_type.as_deref(), g.state) {
        (None, _) => (Expiry::AfterCommit { subscribed: vec![] }, gone),
        (Some(_), GroupState::Empty) => (
            Expiry::AfterEmpty {
                since_ms: held.empty_since.borrow().get(group).copied(),
            },
            gone,
        ),
        (Some("consumer"), GroupState::Stable) => {
            let protocol = g.protocol.clone().unwrap_or_default();
            let per_member: Vec<Vec<String>> = g
                .members
                .iter()
                .map(|m| subscribed_topics(&m.metadata(&protocol)))
                .collect();
            // A subscription that cannot be read must not make its topics look unsubscribed.
            if per_member.iter().any(Vec::is_empty) {
                return (Expiry::Never, gone);
            }
            let subscribed = per_member.into_iter().flatten().collect();
            (Expiry::AfterCommit { subscribed }, gone)
        }
        _ => (Expiry::Never, gone),
    }
}

/// Kafka's offset expiry on one `__consumer_offsets` partition: tombstones for every offset
/// past `offsets.retention.minutes` (see `super::expiry`), and for the groups left empty with
/// no offset (Kafka's group metadata tombstone), written before the state forgets them. An
/// offset committed again meanwhile is kept (it is only forgotten if unchanged).
async fn expire_offsets(held: &OffsetsPartition, retention_ms: i64) -> Result<(), PartitionError> {
    let now = held.clock.now_ms();
    let mut names: Vec<String> = held.offsets.borrow().groups().collect();
    names.extend(held.groups.borrow().groups().map(|g| g.id.clone()));
    names.extend(held.consumer.borrow().groups().map(|g| g.id.clone()));
    names.sort();
    names.dedup();
    let mut records: Vec<Record> = Vec::new();
    let mut gone: Vec<(OffsetKey, Committed)> = Vec::new();
    let mut classic_gone = Vec::new();
    for group in names {
        let (rule, when_gone) = expiry_of(held, &group);
        let (keys, left) = {
            let state = held.offsets.borrow();
            let keys = expiry::expired(&state, &group, &rule, now, retention_ms);
            let left = state.of_group(&group).count() - keys.len();
            for k in &keys {
                if let Some(c) = state.get(&k.0, &k.1, k.2) {
                    gone.push((k.clone(), c.clone()));
                }
            }
            (keys, left)
        };
        records.extend(
            keys.iter()
                .map(|(g, t, p)| (offsets::encode_key(g, t, *p), None)),
        );
        if left > 0 {
            continue;
        }
        match when_gone {
            WhenGone::Classic => {
                records.push((metadata::encode_key(&group), None));
                classic_gone.push(group.clone());
            }
            WhenGone::Consumer => {
                if let Ok(tombstones) = held.consumer.borrow_mut().delete(&group) {
                    records.extend(tombstones.iter().map(consumer_records::Record::encode));
                }
            }
            WhenGone::Nothing => {}
        }
        if !keys.is_empty() || !matches!(when_gone, WhenGone::Nothing) {
            tracing::info!(%group, offsets = keys.len(), "expired offsets (offsets.retention.minutes)");
        }
    }
    if records.is_empty() {
        return Ok(());
    }
    append(held, records).await?;
    let mut state = held.offsets.borrow_mut();
    for ((g, t, p), c) in gone {
        if state.get(&g, &t, p) == Some(&c) {
            state.remove(&g, &t, p);
        }
    }
    for group in classic_gone {
        // Refused if a member joined meanwhile: the group's next record brings it back.
        if held.groups.borrow_mut().remove(&group).is_ok() {
            held.empty_since.borrow_mut().remove(&group);
        }
    }
    Ok(())
}

/// Appends records to a `__consumer_offsets` partition, in turn with other appends to it.
async fn append(held: &OffsetsPartition, records: Vec<Record>) -> Result<(), PartitionError> {
    let _turn = held
        .turn
        .acquire_permit(1)
        .await
        .map_err(|_| StorageError::Closed)?;
    let refs: Vec<NullableRecord> = records
        .iter()
        .map(|(k, v)| (Some(k.as_ref()), v.as_deref()))
        .collect();
    let batch = build_batch_nullable(0, held.clock.now_ms(), &refs);
    held.partition.produce(bytes::Bytes::from(batch)).await?;
    Ok(())
}

/// [`append`] for group metadata whose loss only costs a rebalance after a restart:
/// a failure is logged, the operation goes on.
async fn append_logged(held: &OffsetsPartition, records: Vec<Record>) {
    if let Err(e) = append(held, records).await {
        tracing::error!(error = %e, "storing group metadata failed");
    }
}

async fn wait<T: Default>(slot: crate::group::slot::Slot<T>) -> T {
    let timeout = async {
        glommio::timer::sleep(MAX_GROUP_WAIT).await;
        None
    };
    futures_lite::future::or(slot.wait(), timeout)
        .await
        .unwrap_or_default()
}

/// A group as listed or described: from the coordinator, or `Empty` if only offsets exist.
fn summary(held: &OffsetsPartition, group: &str) -> Option<GroupSummary> {
    if let Some(g) = held.consumer.borrow().group(group) {
        return Some(GroupSummary {
            group: group.to_string(),
            state: g.state(),
            group_type: "consumer",
            protocol_type: "consumer".into(),
            protocol: g.assignor().to_string(),
            members: Vec::new(),
        });
    }
    if let Some(g) = held.groups.borrow().group(group) {
        let protocol = g.protocol.clone().unwrap_or_default();
        return Some(GroupSummary {
            group: group.to_string(),
            state: g.state.name(),
            group_type: "classic",
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if g.state == GroupState::Stable || g.state == GroupState::CompletingRebalance
            {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .iter()
                .map(|m| MemberSummary {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        });
    }
    held.offsets
        .borrow()
        .of_group(group)
        .next()
        .map(|_| GroupSummary {
            group: group.to_string(),
            state: "Empty",
            group_type: "classic",
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        })
}
