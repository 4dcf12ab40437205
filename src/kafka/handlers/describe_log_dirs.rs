//! DescribeLogDirs (key 35): the broker's one log directory (the data dir) with the size of
//! every partition in it, or of the topics asked for. Sizes come from the partitions' owners
//! (one call per core, [`crate::shard::calls::PartitionSizes`]); there are no future replicas
//! and no followers, so every offset lag is 0. The one log dir is never cordoned (v5,
//! KIP-1066: new partitions always go to it).
//!
//! Strata's extension: Kafka has no API for a log cleaner's state, so each partition of a
//! compacted topic carries it in a tagged field of its own ([`CLEANER_TAG`], flexible
//! versions, v2 and later), which Kafka's clients skip as they skip any tag they do not know:
//! the dirty ratio, the dirty point and the last clean ([`CleanerTag`]). `strata topic
//! describe` reads it from each partition's leader.

use std::collections::BTreeMap;
use std::path::Path;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::{str_bytes, Ctx};
use crate::partition::CleanerState;
use crate::shard::TopicPartition;

/// The tag of the cleaner's state in a DescribeLogDirs partition ("ST" as a number: Kafka
/// numbers its own tags from 0 up, so this one stays clear of them).
pub const CLEANER_TAG: i32 = 0x5354;

/// A compacted partition's cleaner as DescribeLogDirs reports it (tag [`CLEANER_TAG`]):
/// version `1 u8`, then big-endian `dirty_ratio f64`, `first_dirty i64`, `last_clean_ms i64`
/// (-1: none since the broker started), `cleaned_upto i64`, `bytes_before u64`,
/// `bytes_after u64`, `records_removed u64` (those four 0 without a clean).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerTag {
    pub dirty_ratio: f64,
    pub first_dirty: i64,
    pub last_clean_ms: i64,
    pub cleaned_upto: i64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
}

const CLEANER_TAG_VERSION: u8 = 1;
const CLEANER_TAG_BYTES: usize = 1 + 7 * 8;

impl CleanerTag {
    pub fn from_state(s: &CleanerState) -> CleanerTag {
        let (ms, r) = match &s.last_clean {
            Some((ms, r)) => (*ms, Some(r)),
            None => (-1, None),
        };
        CleanerTag {
            dirty_ratio: s.dirty_ratio,
            first_dirty: s.first_dirty,
            last_clean_ms: ms,
            cleaned_upto: r.map_or(0, |r| r.cleaned_upto),
            bytes_before: r.map_or(0, |r| r.bytes_before),
            bytes_after: r.map_or(0, |r| r.bytes_after),
            records_removed: r.map_or(0, |r| r.records_removed),
        }
    }

    pub fn encode(&self) -> bytes::Bytes {
        let mut out = Vec::with_capacity(CLEANER_TAG_BYTES);
        out.push(CLEANER_TAG_VERSION);
        out.extend_from_slice(&self.dirty_ratio.to_bits().to_be_bytes());
        for v in [self.first_dirty, self.last_clean_ms, self.cleaned_upto] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        for v in [self.bytes_before, self.bytes_after, self.records_removed] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.into()
    }

    /// `None` for another version or a wrong length (a newer broker's or a corrupt tag).
    pub fn decode(b: &[u8]) -> Option<CleanerTag> {
        if b.len() != CLEANER_TAG_BYTES || b[0] != CLEANER_TAG_VERSION {
            return None;
        }
        let word = |i: usize| -> Option<[u8; 8]> { b.get(1 + 8 * i..9 + 8 * i)?.try_into().ok() };
        Some(CleanerTag {
            dirty_ratio: f64::from_bits(u64::from_be_bytes(word(0)?)),
            first_dirty: i64::from_be_bytes(word(1)?),
            last_clean_ms: i64::from_be_bytes(word(2)?),
            cleaned_upto: i64::from_be_bytes(word(3)?),
            bytes_before: u64::from_be_bytes(word(4)?),
            bytes_after: u64::from_be_bytes(word(5)?),
            records_removed: u64::from_be_bytes(word(6)?),
        })
    }
}

pub async fn handle(ctx: &Ctx, req: DescribeLogDirsRequest) -> Option<DescribeLogDirsResponse> {
    let only: Option<Vec<TopicPartition>> = req.topics.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.topic.0.to_string();
                t.partitions
                    .into_iter()
                    .map(move |partition| TopicPartition {
                        topic: topic.clone(),
                        partition,
                    })
            })
            .collect()
    });
    let dir = &ctx.broker.data_dir;
    let log_dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
    let (total_bytes, usable_bytes) = disk_space(&log_dir).unwrap_or((-1, -1));
    let mut result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(&log_dir.to_string_lossy()))
        .with_total_bytes(total_bytes)
        .with_usable_bytes(usable_bytes);
    match ctx.shard.partition_sizes(only).await {
        Ok(sizes) => {
            let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
            for s in sizes {
                let mut tags = BTreeMap::new();
                if let Some(c) = &s.cleaner {
                    tags.insert(CLEANER_TAG, CleanerTag::from_state(c).encode());
                }
                by_topic.entry(s.tp.topic).or_default().push(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(s.tp.partition)
                        .with_partition_size(i64::try_from(s.size_bytes).unwrap_or(i64::MAX))
                        .with_offset_lag(0)
                        .with_is_future_key(false)
                        .with_unknown_tagged_fields(tags),
                );
            }
            let topics = by_topic
                .into_iter()
                .map(|(name, mut partitions)| {
                    partitions.sort_by_key(|p| p.partition_index);
                    DescribeLogDirsTopic::default()
                        .with_name(TopicName(str_bytes(&name)))
                        .with_partitions(partitions)
                })
                .collect();
            result = result.with_topics(topics);
        }
        Err(e) => {
            tracing::warn!(error = %e, "DescribeLogDirs: a core did not answer");
            result = result
                .with_error_code(kafka_protocol::error::ResponseError::KafkaStorageError.code());
        }
    }
    Some(DescribeLogDirsResponse::default().with_results(vec![result]))
}

/// The file system's size and the bytes available to the broker, as Kafka reports them (v4).
fn disk_space(dir: &Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `statvfs` is plain data, valid when zeroed; the call only writes into it and
    // reads the NUL-terminated path, which outlives the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above: a valid C string and a pointer to a live, writable `statvfs`.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as i64;
    Some((
        (st.f_blocks as i64).saturating_mul(frsize),
        (st.f_bavail as i64).saturating_mul(frsize),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaner_tag_round_trip() {
        let t = CleanerTag {
            dirty_ratio: 0.25,
            first_dirty: 1200,
            last_clean_ms: 1_700_000_000_000,
            cleaned_upto: 1200,
            bytes_before: 10_000,
            bytes_after: 900,
            records_removed: 42,
        };
        let b = t.encode();
        assert_eq!(CleanerTag::decode(&b), Some(t));
        assert_eq!(CleanerTag::decode(&b[1..]), None);
    }
}
