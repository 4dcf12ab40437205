//! ListOffsets (key 2): earliest (-2), latest (-1), the record with the largest timestamp (-3,
//! v7+) or the first offset whose timestamp is at or after a given time, per partition,
//! answered by the partition's owner.
//!
//! The tiered-storage queries are answered as Kafka answers them for a topic without remote
//! storage (every topic here): the earliest local offset (-4, v8+, KIP-405) is the log start,
//! and the last tiered offset (-5, v9+, KIP-1005) and the earliest offset pending upload (-6,
//! v11+, KIP-1023) are -1 without an error ("nothing tiered", "nothing to upload").
//! The timeout of v10 (KIP-1075) bounds waiting for remote storage, which there is none of.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::Ctx;
use crate::kafka::errors;
use crate::shard::calls::{ListOffset, ListedOffset};
use crate::shard::{OffsetQuery, TopicPartition};

/// Timestamps of ListOffsets with a special meaning.
const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;
/// The record with the largest timestamp (v7+, KIP-734).
const MAX_TIMESTAMP: i64 = -3;
/// The first offset on local disk (v8+, KIP-405).
const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
/// The last offset moved to remote storage (v9+, KIP-1005).
const LATEST_TIERED_TIMESTAMP: i64 = -5;
/// The first offset not yet uploaded to remote storage (v11+, KIP-1023).
const EARLIEST_PENDING_UPLOAD_TIMESTAMP: i64 = -6;

pub async fn handle(
    ctx: &Ctx,
    req: ListOffsetsRequest,
    version: i16,
) -> Option<ListOffsetsResponse> {
    let mut topics = Vec::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let count = ctx.shard.catalog().topic(&name).map(|m| m.partitions);
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
            let query = match p.timestamp {
                LATEST_TIMESTAMP => OffsetQuery::Latest,
                EARLIEST_TIMESTAMP => OffsetQuery::Earliest,
                MAX_TIMESTAMP if version >= 7 => OffsetQuery::MaxTimestamp,
                EARLIEST_LOCAL_TIMESTAMP if version >= 8 => OffsetQuery::Earliest,
                LATEST_TIERED_TIMESTAMP if version >= 9 => {
                    partitions.push(base.with_leader_epoch(-1));
                    continue;
                }
                EARLIEST_PENDING_UPLOAD_TIMESTAMP if version >= 11 => {
                    partitions.push(base.with_leader_epoch(-1));
                    continue;
                }
                ts if ts >= 0 => OffsetQuery::Timestamp(ts),
                // A special timestamp older than the request's version is not a query Kafka
                // knows at that version, nor is any other negative one.
                _ => {
                    partitions.push(base.with_error_code(errors::UNSUPPORTED_VERSION));
                    continue;
                }
            };
            let tp = TopicPartition {
                topic: name.clone(),
                partition: p.partition_index,
            };
            let reply = ctx
                .shard
                .run(ListOffset {
                    tp,
                    query,
                    epoch: p.current_leader_epoch,
                })
                .await
                .unwrap_or_else(|e| Err(e.into()));
            let epoch = |l: &ListedOffset| if version >= 4 { l.leader_epoch } else { -1 };
            partitions.push(match reply {
                Ok(
                    l @ ListedOffset {
                        found: Some((offset, ts)),
                        ..
                    },
                ) => base
                    .with_offset(offset)
                    .with_timestamp(ts)
                    .with_leader_epoch(epoch(&l)),
                Ok(l) => base.with_leader_epoch(epoch(&l)),
                Err(e) => base.with_error_code(errors::shard_code(&e)),
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
