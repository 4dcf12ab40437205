//! Produce (key 0): validate, append and (per the flush policy) sync each partition's batches
//! on the core that owns it, all partitions concurrently; answer only after the sync.
//!
//! A produce runs in two stages, as Redpanda's does: [`stage`] returns once every partition
//! has appended the batches (so the connection may read and append its next request, which
//! then lands after this one), and [`Staged::finish`] waits for durability and builds the
//! answer.
//!
//! As in Kafka: a transactional batch in a request without a transactional id gets
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED, one with it INVALID_TXN_STATE (there are no
//! transactions yet, so its partition is never in one); a transactional id with ordinary
//! batches is accepted; Kafka's internal topics get INVALID_TOPIC_EXCEPTION.
//!
//! Topics are named (v3–v12) or given by id (v13, KIP-516: an unknown id is UNKNOWN_TOPIC_ID).
//! v10–v12 change nothing this broker answers: their `CurrentLeader`/`NodeEndpoints` (KIP-951)
//! come only with NOT_LEADER_OR_FOLLOWER, which the only broker never answers, and
//! TRANSACTION_ABORTABLE (KIP-890) only with transactions.

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};

use super::Ctx;
use crate::kafka::errors;
use crate::shard::calls::Produced;
use crate::shard::{ProduceCall, ShardError, TopicPartition};

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
pub async fn stage(ctx: &Ctx, req: ProduceRequest, version: i16) -> Staged {
    let acks = req.acks;
    let bad_acks = !matches!(acks, -1..=1);
    let has_transactional_id = req.transactional_id.is_some();
    let topic_data = owned_parts(req);
    let partitions: usize = topic_data.iter().map(|t| t.partitions.len()).sum();
    let mut topics = Vec::with_capacity(topic_data.len());
    for topic in topic_data {
        let (name, known) = {
            let cat = ctx.shard.catalog();
            let meta = if version >= TOPIC_IDS_FROM {
                cat.topic_by_id(topic.topic_id.as_bytes())
            } else {
                cat.topic(&topic.name)
            };
            match meta {
                Some(m) => (m.name.clone(), Some(m.partitions)),
                None => (topic.name, None),
            }
        };
        let unknown = if version >= TOPIC_IDS_FROM {
            errors::UNKNOWN_TOPIC_ID
        } else {
            errors::UNKNOWN_TOPIC_OR_PARTITION
        };
        let mut parts = Vec::with_capacity(topic.partitions.len());
        for (index, records) in topic.partitions {
            let transactional = records.as_deref().is_some_and(is_transactional);
            let refused = if bad_acks {
                Some(errors::INVALID_REQUIRED_ACKS)
            } else if transactional && !has_transactional_id {
                Some(errors::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
            } else if KAFKA_INTERNAL_TOPICS.contains(&name.as_str()) {
                Some(errors::INVALID_TOPIC_EXCEPTION)
            } else if known.is_none() {
                Some(unknown)
            } else if !known.is_some_and(|n| index >= 0 && index < n) {
                Some(errors::UNKNOWN_TOPIC_OR_PARTITION)
            } else if records.is_none() {
                Some(kafka_protocol::error::ResponseError::InvalidRecord.code())
            } else if let Some(code) = records.as_deref().and_then(precheck) {
                Some(code)
            } else if transactional {
                // No transactions yet: no partition is ever part of one.
                Some(errors::INVALID_TXN_STATE)
            } else {
                None
            };
            let part = match (refused, records) {
                (None, Some(records)) => {
                    let tp = TopicPartition {
                        topic: name.clone(),
                        partition: index,
                    };
                    Part::Appending(ctx.shard.produce(
                        tp,
                        for_append(records, partitions),
                        crate::partition::Acks::from_kafka(acks),
                    ))
                }
                (code, _) => Part::Refused(code.unwrap_or(errors::NONE)),
            };
            parts.push((index, part));
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

/// The first version that names topics by id (KIP-516).
const TOPIC_IDS_FROM: i16 = 13;

/// Kafka's internal topics, which clients may not write to (the group coordinator writes
/// `__consumer_offsets` itself, not through Produce).
pub const KAFKA_INTERNAL_TOPICS: &[&str] = &[
    crate::group::offsets::OFFSETS_TOPIC,
    "__transaction_state",
    "__share_group_state",
];

/// Whether the first batch of `records` is transactional (attributes bit 4).
fn is_transactional(records: &[u8]) -> bool {
    const ATTRIBUTES_AT: usize = 21;
    records
        .get(ATTRIBUTES_AT..ATTRIBUTES_AT + 2)
        .is_some_and(|a| u16::from_be_bytes([a[0], a[1]]) & 0x10 != 0)
}

const INVALID_RECORD: i16 = kafka_protocol::error::ResponseError::InvalidRecord.code();
const CORRUPT_MESSAGE: i16 = kafka_protocol::error::ResponseError::CorruptMessage.code();

/// Kafka's checks of one partition's records in a produce (v3+) before they reach the log, in
/// its order: the first whole batch must exist and have magic 2, and be the only one; a batch
/// header too short to be one, or with an unknown magic, is corrupt. The base offset must be
/// 0, as the broker assigns offsets. The code to refuse the records with, if any.
fn precheck(records: &[u8]) -> Option<i16> {
    /// Base offset and length fields before a batch's body, and the smallest body (v0).
    const LOG_OVERHEAD: usize = 12;
    const MIN_BODY: usize = 14;
    const MAGIC_AT: usize = 16;
    // The batch starting at `at`: its end, Ok(None) when the bytes left hold no whole batch.
    let next = |at: usize| -> Result<Option<usize>, i16> {
        let Some(header) = records.get(at..at + LOG_OVERHEAD) else {
            return Ok(None);
        };
        let size = i32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        let size = usize::try_from(size).map_err(|_| CORRUPT_MESSAGE)?;
        if size < MIN_BODY {
            return Err(CORRUPT_MESSAGE);
        }
        let end = at + LOG_OVERHEAD + size;
        if end > records.len() {
            return Ok(None);
        }
        match records.get(at + MAGIC_AT) {
            Some(&magic) if magic <= 2 => Ok(Some(end)),
            _ => Err(CORRUPT_MESSAGE),
        }
    };
    let end = match next(0) {
        Err(code) => return Some(code),
        Ok(None) => return Some(INVALID_RECORD),
        Ok(Some(end)) => end,
    };
    if records[MAGIC_AT] != 2 {
        return Some(INVALID_RECORD);
    }
    match next(end) {
        Err(code) => return Some(code),
        Ok(Some(_)) => return Some(INVALID_RECORD),
        Ok(None) => {}
    }
    let base_offset = records
        .get(..8)
        .map(|b| b.iter().fold(0i64, |a, &x| a << 8 | x as i64));
    (base_offset != Some(0)).then_some(INVALID_RECORD)
}

/// A request topic with nothing left of the request frame but the records.
struct OwnedTopic {
    name: String,
    topic_id: uuid::Uuid,
    /// Partition index and records.
    partitions: Vec<(i32, Option<Bytes>)>,
}

/// Takes the records out of the request and drops the rest of it (names, tagged fields), all
/// slices of the request frame: an append on this core then finds the frame referenced by the
/// records alone and keeps it without a copy.
fn owned_parts(req: ProduceRequest) -> Vec<OwnedTopic> {
    req.topic_data
        .into_iter()
        .map(|t| OwnedTopic {
            name: t.name.0.to_string(),
            topic_id: t.topic_id,
            partitions: t
                .partition_data
                .into_iter()
                .map(|p| (p.index, p.records))
                .collect(),
        })
        .collect()
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

fn answer(index: i32, reply: Result<Produced, ShardError>) -> PartitionProduceResponse {
    match reply {
        Ok(Produced { info, log_start }) => PartitionProduceResponse::default()
            .with_index(index)
            .with_base_offset(info.base_offset)
            .with_log_append_time_ms(info.log_append_time)
            .with_log_start_offset(log_start),
        Err(e) => {
            tracing::debug!(partition = index, error = %e, "produce refused");
            failed(index, errors::shard_code(&e))
                .with_error_message(Some(super::str_bytes(&e.to_string())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_taken_from_a_request_are_the_only_reference_to_its_frame() {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::protocol::{Decodable, Encodable};
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(super::super::str_bytes("t")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(vec![7u8; 4096])))])]);
        let mut buf = bytes::BytesMut::new();
        req.encode(&mut buf, 9).unwrap();
        let mut frame = buf.freeze();
        let decoded = ProduceRequest::decode(&mut frame, 9).unwrap();
        drop(frame);
        let mut topics = owned_parts(decoded);
        let records = topics[0].partitions[0].1.take().unwrap();
        // `BytesMut::from` reuses the buffer only when nothing else references it (the topic
        // name, say, while the other partitions are still being handed out).
        let ptr = records.as_ptr();
        assert_eq!(bytes::BytesMut::from(records).as_ptr(), ptr);
        assert_eq!(topics[0].name, "t");
    }

    #[test]
    fn records_are_checked_as_kafka_checks_a_produce() {
        let good = crate::storage::batch::build_batch(0, 1, &[(None, b"ok")]);
        assert_eq!(precheck(&good), None);
        let two = [good.clone(), good.clone()].concat();
        assert_eq!(
            precheck(&two),
            Some(INVALID_RECORD),
            "one batch per partition"
        );
        assert_eq!(
            precheck(&good[..30]),
            Some(INVALID_RECORD),
            "no whole batch"
        );
        assert_eq!(precheck(&[]), Some(INVALID_RECORD), "no batch at all");
        let mut magic = good.clone();
        magic[16] = 1;
        assert_eq!(precheck(&magic), Some(INVALID_RECORD), "old magic");
        magic[16] = 3;
        assert_eq!(precheck(&magic), Some(CORRUPT_MESSAGE), "unknown magic");
        let mut short = good.clone();
        short[8..12].copy_from_slice(&5i32.to_be_bytes());
        assert_eq!(
            precheck(&short),
            Some(CORRUPT_MESSAGE),
            "length below any batch's"
        );
        short[8..12].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(precheck(&short), Some(CORRUPT_MESSAGE), "negative length");
        let mut base = good.clone();
        base[7] = 9;
        assert_eq!(precheck(&base), Some(INVALID_RECORD), "base offset not 0");
        let mut second_bad = two.clone();
        second_bad[good.len() + 16] = 7;
        assert_eq!(
            precheck(&second_bad),
            Some(CORRUPT_MESSAGE),
            "corrupt second batch"
        );
        // Bytes after the batch too few to be a batch are left to the log to judge.
        assert_eq!(precheck(&[good.clone(), vec![0; 5]].concat()), None);
    }

    #[test]
    fn transactional_batches_are_recognised_by_their_attributes() {
        let mut b = crate::storage::batch::build_batch(0, 1, &[(None, b"ok")]);
        assert!(!is_transactional(&b));
        b[22] |= 0x10;
        assert!(is_transactional(&b));
        assert!(!is_transactional(&b[..20]));
    }

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
