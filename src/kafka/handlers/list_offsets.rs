//! ListOffsets (key 2): earliest (-2), latest (-1) or the first offset whose timestamp is at
//! or after a given time, per partition, answered by the partition's owner.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::Ctx;
use crate::kafka::errors;
use crate::shard::{ShardOp, ShardReply, TopicPartition, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};

pub async fn handle(
    ctx: &Ctx,
    req: ListOffsetsRequest,
    version: i16,
) -> Option<ListOffsetsResponse> {
    let mut topics = Vec::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let count = ctx
            .shard
            .catalog
            .read()
            .ok()?
            .topic(&name)
            .map(|m| m.partitions);
        let mut partitions = Vec::new();
        for p in t.partitions {
            let base = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(if version >= 4 { 0 } else { -1 });
            if !count.is_some_and(|n| p.partition_index >= 0 && p.partition_index < n) {
                partitions.push(base.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            }
            if p.timestamp < 0
                && p.timestamp != LATEST_TIMESTAMP
                && p.timestamp != EARLIEST_TIMESTAMP
            {
                // -3 (max timestamp, KIP-734) and others are not implemented: versions ≤ 6 never send them.
                partitions.push(base.with_error_code(errors::UNSUPPORTED_VERSION));
                continue;
            }
            let tp = TopicPartition {
                topic: name.clone(),
                partition: p.partition_index,
            };
            let reply = ctx
                .shard
                .call(ShardOp::ListOffset {
                    tp,
                    timestamp: p.timestamp,
                })
                .await;
            partitions.push(match reply {
                ShardReply::Offset(Ok(Some((offset, ts)))) => {
                    base.with_offset(offset).with_timestamp(ts)
                }
                ShardReply::Offset(Ok(None)) => base,
                ShardReply::Offset(Err(e)) => base.with_error_code(errors::shard_code(&e)),
                _ => base.with_error_code(
                    kafka_protocol::error::ResponseError::UnknownServerError.code(),
                ),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    Some(ListOffsetsResponse::default().with_topics(topics))
}
