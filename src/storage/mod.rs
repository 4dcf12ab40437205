//! The storage engine: partition logs of segments on direct I/O.
//!
//! Storage owns everything under a partition's folder and nothing else: it never sees a
//! socket, a Kafka request or another partition. The broker hands it raw RecordBatch v2 bytes
//! and gets back offsets, whole stored batches, and typed errors ([`StorageError`]) that the
//! protocol layer maps to Kafka error codes.
//!
//! - [`batch`]: RecordBatch v2 framing, validation (CRC-32C) and the header fields the broker owns.
//! - [`stage`]: aligned DMA staging of the active segment's tail.
//! - [`segment`]: one `.log` + `.index` + `.timeindex`, including recovery scans.
//! - [`index`]: rkyv offset and time indexes, searched in place.
//! - [`log`]: the partition log (offsets, group commit, rolls, retention, reads, recovery, cleaning).
//! - [`compact`]: the cleaner's mechanisms: records inside batches, the bounded key map, the swap.
//! - [`tail_cache`]: recent batches in memory for tailing consumers.
//! - [`read_ahead`]: the next stretch of a segment file, read while a fetch's answer travels.
//! - [`meta`]: `partition.meta` and atomically replaced metadata files.

pub mod batch;
pub mod clock;
pub mod compact;
pub mod config;
pub mod device_probe;
pub mod error;
pub mod index;
pub mod log;
pub mod meta;
pub mod read_ahead;
pub mod segment;
pub mod stage;
pub mod tail_cache;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{FlushPolicy, LogConfig, TimestampType};
pub use error::{Result, StorageError};
pub use log::{
    AppendInfo, CleanLimits, CleanReport, LogScan, PartitionLog, ReadBatches, RecoveryReport,
    RetentionLimits,
};
pub use tail_cache::CacheBudget;
