//! OffsetCommit (key 8): store a group's offsets in `__consumer_offsets`, on the core that owns
//! the group's partition. Without group membership (not implemented yet) only simple commits
//! are accepted: generation -1 and no member id; a member id gets UNKNOWN_MEMBER_ID.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::Ctx;
use crate::group::offsets::{Committed, MAX_METADATA_BYTES};
use crate::group::{ensure_offsets_topic, group_partition};
use crate::kafka::errors;
use crate::shard::{ShardOp, ShardReply};

pub async fn handle(ctx: &Ctx, req: OffsetCommitRequest) -> Option<OffsetCommitResponse> {
    let group = req.group_id.0.to_string();
    let now = crate::storage::clock::Clock::now_ms(&crate::storage::SystemClock);
    // Per partition: Ok(commit) to store, or the error code to answer with.
    let mut plan: Vec<(
        kafka_protocol::messages::TopicName,
        Vec<(i32, Result<Committed, i16>)>,
    )> = Vec::new();
    let request_error = if group.is_empty() {
        Some(errors::INVALID_GROUP_ID)
    } else if !req.member_id.is_empty() || req.generation_id_or_member_epoch >= 0 {
        Some(errors::UNKNOWN_MEMBER_ID)
    } else {
        ensure_offsets_topic(&ctx.shard.catalog)
            .err()
            .map(|e| errors::catalog_code(&e))
    };
    {
        let cat = ctx.shard.catalog.read().ok()?;
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
        match ctx
            .shard
            .call(ShardOp::CommitOffsets {
                tp: group_partition(&group),
                group,
                commits,
            })
            .await
        {
            ShardReply::Done(Ok(())) => errors::NONE,
            ShardReply::Done(Err(e)) => errors::shard_code(&e),
            _ => kafka_protocol::error::ResponseError::UnknownServerError.code(),
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
