//! DeleteRecords (key 21): moves partitions' log start offsets up, making the records below
//! unreadable (Kafka's `kafka-delete-records`, `Admin.deleteRecords`). Each partition is asked
//! on its owner; the answer's low watermark is the log start afterwards. The rules (only on a
//! topic whose cleanup policy includes `delete`, never beyond the high watermark, -1 meaning
//! the high watermark) are the partition's.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::Ctx;
use crate::kafka::errors;
use crate::shard::calls::DeleteRecords;
use crate::shard::TopicPartition;

pub async fn handle(ctx: &Ctx, req: DeleteRecordsRequest) -> Option<DeleteRecordsResponse> {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let count = ctx.shard.catalog().topic(&name).map(|m| m.partitions);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let base = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            if !count.is_some_and(|n| p.partition_index >= 0 && p.partition_index < n) {
                partitions.push(base.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            }
            let tp = TopicPartition {
                topic: name.clone(),
                partition: p.partition_index,
            };
            let call = DeleteRecords {
                tp: tp.clone(),
                offset: p.offset,
            };
            let reply = ctx.shard.run(call).await.unwrap_or_else(|e| Err(e.into()));
            partitions.push(match reply {
                Ok(low_watermark) => base.with_low_watermark(low_watermark),
                Err(e) => {
                    tracing::debug!(topic = %tp.topic, partition = tp.partition, offset = p.offset, error = %e, "DeleteRecords refused");
                    base.with_error_code(errors::shard_code(&e))
                }
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    Some(DeleteRecordsResponse::default().with_topics(topics))
}
