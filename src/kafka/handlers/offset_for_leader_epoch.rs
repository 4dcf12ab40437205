//! OffsetForLeaderEpoch (key 23, v2–v4): where a leader epoch ends in each asked partition,
//! which a client asks to validate its position after a leader change (KIP-320), answered by
//! the partition's leader from its entry index (`Partition::epoch_end`): the current epoch
//! ends at the log end, an older one where the next began, with the latest epoch at or below
//! the one asked; a later or undefined epoch has no end (-1, -1), as Kafka answers an epoch
//! its cache does not know. A `current_leader_epoch` older than the leader's is
//! FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH (-1 asks for no check). A broker
//! alone has led every partition in epoch 0, which ends at the high watermark.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::Ctx;
use crate::kafka::errors;
use crate::shard::calls::EpochEnd;
use crate::shard::TopicPartition;

pub async fn handle(
    ctx: &Ctx,
    req: OffsetForLeaderEpochRequest,
) -> Option<OffsetForLeaderEpochResponse> {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.topic.0.to_string();
        let count = ctx.shard.catalog().topic(&name).map(|m| m.partitions);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let base = EpochEndOffset::default().with_partition(p.partition);
            if !count.is_some_and(|n| p.partition >= 0 && p.partition < n) {
                partitions.push(base.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            }
            let tp = TopicPartition {
                topic: name.clone(),
                partition: p.partition,
            };
            let end = ctx
                .shard
                .run(EpochEnd {
                    tp,
                    current: p.current_leader_epoch,
                    leader_epoch: p.leader_epoch,
                })
                .await
                .unwrap_or_else(|e| Err(e.into()));
            partitions.push(match end {
                Ok(Some((epoch, offset))) => base.with_leader_epoch(epoch).with_end_offset(offset),
                Ok(None) => base,
                Err(e) => base.with_error_code(errors::shard_code(&e)),
            });
        }
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions),
        );
    }
    Some(OffsetForLeaderEpochResponse::default().with_topics(topics))
}
