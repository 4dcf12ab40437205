//! What every group handler does first: make sure `__consumer_offsets` exists, then run the
//! operation on the core owning the group's partition, turning failures into error codes.

use super::Ctx;
use crate::group::offsets::{OFFSETS_PARTITIONS, OFFSETS_TOPIC};
use crate::group::{ensure_offsets_topic, group_partition, GroupOp, GroupReply};
use crate::kafka::errors;
use crate::shard::{ShardOp, ShardReply, TopicPartition};

/// Runs `op` on its group's coordinator partition.
pub async fn call(ctx: &Ctx, op: GroupOp) -> Result<GroupReply, i16> {
    let Some(group) = op.group() else {
        return Err(errors::INVALID_REQUEST);
    };
    if group.is_empty() {
        return Err(errors::INVALID_GROUP_ID);
    }
    let tp = group_partition(group);
    call_on(ctx, tp, op).await
}

/// Runs `op` on a given `__consumer_offsets` partition.
pub async fn call_on(ctx: &Ctx, tp: TopicPartition, op: GroupOp) -> Result<GroupReply, i16> {
    ensure_offsets_topic(&ctx.shard.catalog).map_err(|e| errors::catalog_code(&e))?;
    match ctx.shard.call(ShardOp::Group { tp, op }).await {
        ShardReply::Group(Ok(r)) => Ok(r),
        ShardReply::Group(Err(e)) => Err(errors::shard_code(&e)),
        _ => Err(errors::UNKNOWN_SERVER_ERROR),
    }
}

/// Every `__consumer_offsets` partition (ListGroups asks them all).
pub fn all_partitions() -> impl Iterator<Item = TopicPartition> {
    (0..OFFSETS_PARTITIONS).map(|partition| TopicPartition {
        topic: OFFSETS_TOPIC.into(),
        partition,
    })
}
