//! Produce (key 0): validate, append and (per the flush policy) sync each partition's batches
//! on the core that owns it, all partitions concurrently; answer only after the sync.

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::Ctx;
use crate::kafka::errors;
use crate::shard::{ShardOp, ShardReply, TopicPartition};

fn failed(index: i32, code: i16) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
}

pub async fn handle(ctx: &Ctx, req: ProduceRequest, _version: i16) -> Option<ProduceResponse> {
    let acks = req.acks;
    let bad_acks = !matches!(acks, -1..=1);
    let transactional = req.transactional_id.is_some();
    let mut pending = Vec::new();
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        let known = ctx
            .shard
            .catalog
            .read()
            .ok()
            .and_then(|c| c.topic(&name).map(|t| t.partitions));
        let mut parts = Vec::new();
        for p in topic.partition_data {
            let early = if bad_acks {
                Some(errors::INVALID_REQUIRED_ACKS)
            } else if transactional {
                Some(errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
            } else if !known.is_some_and(|n| p.index >= 0 && p.index < n) {
                Some(errors::UNKNOWN_TOPIC_OR_PARTITION)
            } else if p.records.is_none() {
                Some(kafka_protocol::error::ResponseError::InvalidRecord.code())
            } else {
                None
            };
            if let Some(code) = early {
                parts.push((p.index, None, code));
                continue;
            }
            let shard = ctx.shard.clone();
            let tp = TopicPartition {
                topic: name.clone(),
                partition: p.index,
            };
            let records = p.records.unwrap_or_default();
            let task =
                glommio::spawn_local(
                    async move { shard.call(ShardOp::Produce { tp, records }).await },
                );
            parts.push((p.index, Some(task), errors::NONE));
        }
        pending.push((topic.name, topic.topic_id, parts));
    }
    let mut responses = Vec::new();
    for (name, topic_id, parts) in pending {
        let mut partition_responses = Vec::new();
        for (index, task, code) in parts {
            let resp = match task {
                None => failed(index, code),
                Some(task) => match task.await {
                    ShardReply::Produced(Ok((info, log_start))) => {
                        PartitionProduceResponse::default()
                            .with_index(index)
                            .with_base_offset(info.base_offset)
                            .with_log_append_time_ms(info.log_append_time)
                            .with_log_start_offset(log_start)
                    }
                    ShardReply::Produced(Err(e)) => {
                        tracing::debug!(partition = index, error = %e, "produce refused");
                        failed(index, errors::shard_code(&e))
                            .with_error_message(Some(super::str_bytes(&e.to_string())))
                    }
                    _ => failed(
                        index,
                        kafka_protocol::error::ResponseError::UnknownServerError.code(),
                    ),
                },
            };
            partition_responses.push(resp);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_topic_id(topic_id)
                .with_partition_responses(partition_responses),
        );
    }
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}
