//! What every group handler does first: make sure `__consumer_offsets` exists, then run the
//! operation on the core owning the group's partition, turning failures into error codes.

use super::Ctx;
use crate::group::offsets::{OFFSETS_PARTITIONS, OFFSETS_TOPIC};
use crate::group::{group_partition, offsets_topic_configs, GroupOp, GroupReply};
use crate::kafka::errors;
use crate::partition::PartitionError;
use crate::shard::calls::Group;
use crate::shard::{ShardError, TopicPartition};

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
    ensure_offsets_topic(ctx).await?;
    match ctx.shard.run(Group { tp, op }).await {
        Ok(Ok(r)) => Ok(r),
        // Clustered: this broker does not lead the group's partition (any more).
        Ok(Err(ShardError::Partition(
            PartitionError::NotLeader { .. }
            | PartitionError::LeaderNotReady
            | PartitionError::Replication(_),
        ))) => Err(errors::NOT_COORDINATOR),
        Ok(Err(e)) => Err(errors::shard_code(&e)),
        Err(_) => Err(errors::COORDINATOR_NOT_AVAILABLE),
    }
}

/// Creates `__consumer_offsets` the first time a group needs it.
pub async fn ensure_offsets_topic(ctx: &Ctx) -> Result<(), i16> {
    ctx.shard
        .ensure_topic(OFFSETS_TOPIC, OFFSETS_PARTITIONS, offsets_topic_configs())
        .await
        .map_err(|e| match e {
            // Clustered: only the controller creates it; the client retries elsewhere.
            crate::cluster::CatalogError::NotController(_) => errors::COORDINATOR_NOT_AVAILABLE,
            e => errors::catalog_code(&e),
        })
}

/// Every `__consumer_offsets` partition (ListGroups asks them all).
pub fn all_partitions() -> impl Iterator<Item = TopicPartition> {
    (0..OFFSETS_PARTITIONS).map(|partition| TopicPartition {
        topic: OFFSETS_TOPIC.into(),
        partition,
    })
}
