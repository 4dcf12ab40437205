//! OffsetCommit (key 8, v2–v9): store a group's offsets in `__consumer_offsets`, on the core
//! that owns the group's partition. Members commit with their generation (checked by the
//! coordinator: ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS,
//! FENCED_INSTANCE_ID); simple consumers (generation -1, no member id) only while the group
//! has no members. For a consumer-protocol (KIP-848) group the same field is the member epoch
//! (v9+): an older one gets STALE_MEMBER_EPOCH, a newer one FENCED_MEMBER_EPOCH; such a
//! member committing with an older version gets UNSUPPORTED_VERSION, as in Kafka.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::{group_call, Ctx};
use crate::group::offsets::{Committed, MAX_METADATA_BYTES};
use crate::group::{GroupOp, GroupReply};
use crate::kafka::errors;

pub async fn handle(
    ctx: &Ctx,
    req: OffsetCommitRequest,
    version: i16,
) -> Option<OffsetCommitResponse> {
    let group = req.group_id.0.to_string();
    let now = crate::storage::clock::Clock::now_ms(&crate::storage::SystemClock);
    // Per partition: Ok(commit) to store, or the error code to answer with.
    let mut plan: Vec<(
        kafka_protocol::messages::TopicName,
        Vec<(i32, Result<Committed, i16>)>,
    )> = Vec::new();
    let request_error = group.is_empty().then_some(errors::INVALID_GROUP_ID);
    {
        let cat = ctx.shard.catalog();
        for t in &req.topics {
            let count = cat.topic(&t.name.0).map(|m| m.partitions);
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    let outcome = match request_error {
                        Some(code) => Err(code),
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
            plan.push((t.name.clone(), parts));
        }
    }
    let commits: Vec<(String, i32, Committed)> = plan
        .iter()
        .flat_map(|(t, parts)| {
            parts
                .iter()
                .filter_map(move |(p, o)| o.as_ref().ok().map(|c| (t.0.to_string(), *p, c.clone())))
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
        .map(|(name, parts)| {
            let partitions = parts
                .into_iter()
                .map(|(p, o)| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p)
                        .with_error_code(o.map(|_| stored).unwrap_or_else(|c| c))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    Some(OffsetCommitResponse::default().with_topics(topics))
}
