//! DescribeLogDirs (key 35): the broker's one log directory (the data dir) with the size of
//! every partition in it, or of the topics asked for. Sizes come from the partitions' owners
//! (one call per core, [`crate::shard::calls::PartitionSizes`]); there are no future replicas
//! and no followers, so every offset lag is 0. The one log dir is never cordoned (v5,
//! KIP-1066: new partitions always go to it).

use std::collections::BTreeMap;
use std::path::Path;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::{str_bytes, Ctx};
use crate::shard::TopicPartition;

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
                by_topic.entry(s.tp.topic).or_default().push(
                    DescribeLogDirsPartition::default()
                        .with_partition_index(s.tp.partition)
                        .with_partition_size(i64::try_from(s.size_bytes).unwrap_or(i64::MAX))
                        .with_offset_lag(0)
                        .with_is_future_key(false),
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
