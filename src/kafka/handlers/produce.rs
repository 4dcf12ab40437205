//! Produce (key 0): validate, append and (per the flush policy) sync each partition's batches
//! on the core that owns it, all partitions concurrently; answer only after the sync.
//!
//! A produce runs in two stages, as Redpanda's does: [`stage`] returns once every partition
//! has appended the batches (so the connection may read and append its next request, which
//! then lands after this one), and [`Staged::finish`] waits for durability and builds the
//! answer.

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};

use super::Ctx;
use crate::kafka::errors;
use crate::shard::{ProduceCall, ShardReply, TopicPartition};

fn failed(index: i32, code: i16) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
}

/// One partition of a staged produce: refused up front, or appending on its owner.
enum Part {
    Refused(i16),
    Appending(ProduceCall),
}

/// A produce whose batches are appended and whose answer waits for durability.
pub struct Staged {
    acks: i16,
    topics: Vec<StagedTopic>,
}

struct StagedTopic {
    name: TopicName,
    topic_id: uuid::Uuid,
    /// Partition index and how it is going.
    parts: Vec<(i32, Part)>,
}

/// Validates the request, starts every partition's append on its owner and waits until all
/// of them are appended (or refused).
pub async fn stage(ctx: &Ctx, mut req: ProduceRequest, _version: i16) -> Staged {
    let acks = req.acks;
    let bad_acks = !matches!(acks, -1..=1);
    let transactional = req.transactional_id.is_some();
    // Keep only the records (and owned names): nothing else may hold on to the request frame.
    let topic_data = std::mem::take(&mut req.topic_data);
    drop(req);
    let partitions: usize = topic_data.iter().map(|t| t.partition_data.len()).sum();
    let mut topics = Vec::with_capacity(topic_data.len());
    for topic in topic_data {
        let name = topic.name.0.to_string();
        let known = ctx
            .shard
            .catalog
            .read()
            .ok()
            .and_then(|c| c.topic(&name).map(|t| t.partitions));
        let mut parts = Vec::with_capacity(topic.partition_data.len());
        for p in topic.partition_data {
            let refused = if bad_acks {
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
            let part = match (refused, p.records) {
                (None, Some(records)) => {
                    let tp = TopicPartition {
                        topic: name.clone(),
                        partition: p.index,
                    };
                    Part::Appending(ctx.shard.produce(tp, for_append(records, partitions)))
                }
                (code, _) => Part::Refused(code.unwrap_or(errors::NONE)),
            };
            parts.push((p.index, part));
        }
        topics.push(StagedTopic {
            name: TopicName(super::str_bytes(&name)),
            topic_id: topic.topic_id,
            parts,
        });
    }
    for topic in &mut topics {
        for (_, part) in &mut topic.parts {
            if let Part::Appending(call) = part {
                call.appended().await;
            }
        }
    }
    Staged { acks, topics }
}

/// The records to hand to the log, which keeps the buffer it is given in its tail cache. A
/// request's only partition may keep the frame (it is little more than the records); with
/// several, each gets a copy of its own, so that no cached batch pins the others' bytes.
fn for_append(records: Bytes, partitions: usize) -> Bytes {
    if partitions > 1 {
        Bytes::copy_from_slice(&records)
    } else {
        records
    }
}

impl Staged {
    /// Waits for every partition's outcome; `None` for acks=0 (no answer is sent).
    pub async fn finish(self) -> Option<ProduceResponse> {
        let mut responses = Vec::with_capacity(self.topics.len());
        for topic in self.topics {
            let mut partition_responses = Vec::with_capacity(topic.parts.len());
            for (index, part) in topic.parts {
                partition_responses.push(match part {
                    Part::Refused(code) => failed(index, code),
                    Part::Appending(call) => answer(index, call.outcome().await),
                });
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(topic.name)
                    .with_topic_id(topic.topic_id)
                    .with_partition_responses(partition_responses),
            );
        }
        if self.acks == 0 {
            return None;
        }
        Some(ProduceResponse::default().with_responses(responses))
    }
}

fn answer(index: i32, reply: ShardReply) -> PartitionProduceResponse {
    match reply {
        ShardReply::Produced(Ok((info, log_start))) => PartitionProduceResponse::default()
            .with_index(index)
            .with_base_offset(info.base_offset)
            .with_log_append_time_ms(info.log_append_time)
            .with_log_start_offset(log_start),
        ShardReply::Produced(Err(e)) => {
            tracing::debug!(partition = index, error = %e, "produce refused");
            failed(index, errors::shard_code(&e))
                .with_error_message(Some(super::str_bytes(&e.to_string())))
        }
        _ => failed(
            index,
            kafka_protocol::error::ResponseError::UnknownServerError.code(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lone_partition_keeps_the_request_frame() {
        let frame = Bytes::from(vec![1u8; 1000]);
        let lone = for_append(frame.slice(100..900), 1);
        assert_eq!(lone.as_ptr(), frame[100..].as_ptr());
        let one_of_two = for_append(frame.slice(100..500), 2);
        assert_ne!(one_of_two.as_ptr(), frame[100..].as_ptr());
        assert_eq!(one_of_two, frame.slice(100..500));
    }
}
