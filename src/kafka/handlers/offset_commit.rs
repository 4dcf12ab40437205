//! OffsetCommit (key 8, v2–v10): store a group's offsets in `__consumer_offsets`, on the core
//! that owns the group's partition. Members commit with their generation (checked by the
//! coordinator: ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS,
//! FENCED_INSTANCE_ID); simple consumers (generation -1, no member id) only while the group
//! has no members. For a consumer-protocol (KIP-848) group the same field is the member epoch
//! (v9+): an older one gets STALE_MEMBER_EPOCH, a newer one FENCED_MEMBER_EPOCH; such a
//! member committing with an older version gets UNSUPPORTED_VERSION, as in Kafka. From v10
//! topics are given by id (an unknown id: UNKNOWN_TOPIC_ID for each of its partitions).

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};

use super::{group_call, Ctx};
use crate::group::offsets::{Committed, MAX_METADATA_BYTES};
use crate::group::{GroupOp, GroupReply};
use crate::kafka::errors;

/// The first version that names topics by id (KIP-848).
const TOPIC_IDS_FROM: i16 = 10;

/// A request topic's name ("" for an unknown id), id and, per partition, the commit to store
/// or the error code to answer with.
type PlannedTopic = (String, uuid::Uuid, Vec<(i32, Result<Committed, i16>)>);

pub async fn handle(
    ctx: &Ctx,
    req: OffsetCommitRequest,
    version: i16,
) -> Option<OffsetCommitResponse> {
    let group = req.group_id.0.to_string();
    let now = crate::storage::clock::Clock::now_ms(&crate::storage::SystemClock);
    // Per topic (its name, or "" for an unknown id, and its id) and partition: Ok(commit) to
    // store, or the error code to answer with.
    let mut plan: Vec<PlannedTopic> = Vec::new();
    let request_error = group.is_empty().then_some(errors::INVALID_GROUP_ID);
    {
        let cat = ctx.shard.catalog();
        for t in &req.topics {
            let meta = if version >= TOPIC_IDS_FROM {
                cat.topic_by_id(t.topic_id.as_bytes())
            } else {
                cat.topic(&t.name.0)
            };
            let name = meta.map_or_else(
                || {
                    if version >= TOPIC_IDS_FROM {
                        String::new()
                    } else {
                        t.name.0.to_string()
                    }
                },
                |m| m.name.clone(),
            );
            let unknown_id = version >= TOPIC_IDS_FROM && meta.is_none();
            let count = meta.map(|m| m.partitions);
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    let outcome = match request_error {
                        Some(code) => Err(code),
                        None if unknown_id => Err(errors::UNKNOWN_TOPIC_ID),
                        None if !count
                            .is_some_and(|n| p.partition_index >= 0 && p.partition_index < n) =>
                        {
                            Err(errors::UNKNOWN_TOPIC_OR_PARTITION)
                        }
                        None if p
                            .committed_metadata
                            .as_ref()
                            .is_some_and(|m| m.len() > MAX_METADATA_BYTES) =>
                        {
                            Err(errors::OFFSET_METADATA_TOO_LARGE)
                        }
                        None => Ok(Committed {
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            commit_time_ms: now,
                            metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        }),
                    };
                    (p.partition_index, outcome)
                })
                .collect();
            plan.push((name, t.topic_id, parts));
        }
    }
    let commits: Vec<(String, i32, Committed)> = plan
        .iter()
        .flat_map(|(t, _, parts)| {
            parts
                .iter()
                .filter_map(move |(p, o)| o.as_ref().ok().map(|c| (t.clone(), *p, c.clone())))
        })
        .collect();
    let stored = if commits.is_empty() {
        errors::NONE
    } else {
        let op = GroupOp::Commit {
            group,
            generation: req.generation_id_or_member_epoch,
            member_id: req.member_id.to_string(),
            instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
            commits,
            version,
        };
        match group_call::call(ctx, op).await {
            Ok(GroupReply::Status(r)) => errors::group_result(r.err()),
            Ok(_) => errors::UNKNOWN_SERVER_ERROR,
            Err(code) => code,
        }
    };
    let topics = plan
        .into_iter()
        .map(|(name, topic_id, parts)| {
            let partitions = parts
                .into_iter()
                .map(|(p, o)| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p)
                        .with_error_code(o.map(|_| stored).unwrap_or_else(|c| c))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(TopicName(super::str_bytes(&name)))
                .with_topic_id(topic_id)
                .with_partitions(partitions)
        })
        .collect();
    Some(OffsetCommitResponse::default().with_topics(topics))
}
