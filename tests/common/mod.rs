//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod broker;
pub mod wire;

use std::future::Future;
use std::path::Path;
use std::rc::Rc;

use strata::storage::{batch, Clock, LogConfig, PartitionLog, SystemClock};

/// Runs a future on a fresh glommio executor on this thread.
pub fn run<T>(fut: impl Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("glommio executor")
        .run(fut)
}

/// A batch of `n` records whose values are `"<tag>-<i>"` for `i` in `first..first+n`.
pub fn numbered_batch(tag: &str, first: u64, n: u64, ts: i64) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (first..first + n)
        .map(|i| format!("{tag}-{i}").into_bytes())
        .collect();
    let recs: Vec<(Option<&[u8]>, &[u8])> = values.iter().map(|v| (None, v.as_slice())).collect();
    batch::build_batch(0, ts, &recs)
}

pub async fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    open_with(dir, config, Rc::new(SystemClock)).await
}

/// A partition over a log opened in `dir` with `config`.
pub async fn open_partition_with(
    dir: &Path,
    config: LogConfig,
) -> Rc<strata::partition::Partition> {
    strata::partition::Partition::open(open(dir, config).await)
        .await
        .expect("partition")
}

pub async fn open_with(dir: &Path, config: LogConfig, clock: Rc<dyn Clock>) -> PartitionLog {
    PartitionLog::open(dir, config, clock)
        .await
        .expect("open log")
        .0
}

/// Reads every batch from `from` to the high watermark.
pub async fn read_all(log: &PartitionLog, from: i64) -> Vec<bytes::Bytes> {
    let hw = log.flushed_offset();
    let mut out = Vec::new();
    let mut offset = from;
    while offset < hw {
        let r = log.read(offset, 1 << 20, hw).await.expect("read");
        assert!(!r.is_empty(), "no progress at offset {offset} (hw {hw})");
        for b in r.batches() {
            let h = batch::BatchHeader::parse(&b).expect("header");
            assert!(h.next_offset() > offset);
            offset = h.next_offset();
            out.push(b);
        }
    }
    out
}

/// Record values of stored batches, decoded with the kafka-protocol crate (a third-party decoder).
pub fn values(batches: &[bytes::Bytes]) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    for b in batches {
        let mut buf = b.clone();
        let set =
            kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).expect("decodable batch");
        for r in set.records {
            out.push((r.offset, r.value.map(|v| v.to_vec()).unwrap_or_default()));
        }
    }
    out
}

pub fn small_segments(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        ..Default::default()
    }
}
