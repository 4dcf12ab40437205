//! Typed storage errors. Each variant maps to exactly one Kafka error code in the protocol
//! layer; storage itself knows nothing of Kafka error numbers.

use thiserror::Error;

/// What can go wrong in the storage engine.
#[derive(Debug, Error)]
pub enum StorageError {
    /// A batch failed its CRC-32C or its framing (Kafka: CORRUPT_MESSAGE).
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    /// A batch is larger than the topic's `max.message.bytes` (Kafka: MESSAGE_TOO_LARGE).
    #[error("record batch of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// A batch is well framed but its content is not acceptable (Kafka: INVALID_RECORD).
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),
    /// A CreateTime batch's timestamp is outside the topic's `message.timestamp.before.max.ms` /
    /// `message.timestamp.after.max.ms` window (Kafka: INVALID_TIMESTAMP).
    #[error("timestamp {timestamp} is outside [{earliest}, {latest}] (message.timestamp.before/after.max.ms)")]
    InvalidTimestamp {
        timestamp: i64,
        earliest: i64,
        latest: i64,
    },
    /// A read asked for an offset the log does not hold (Kafka: OFFSET_OUT_OF_RANGE).
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    /// The log was closed or deleted while a request was in flight.
    #[error("partition log is closed")]
    Closed,
    /// A file on disk is unreadable in a way recovery cannot repair (e.g. bad metadata).
    #[error("bad on-disk file {path}: {reason}")]
    BadFile { path: String, reason: String },
    /// Configuration out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// An index or metadata file could not be encoded: a broker fault, never the client's.
    #[error("cannot encode {what}: {reason}")]
    Encode { what: &'static str, reason: String },
    /// Disk I/O failure (full disk, permissions, device error).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<glommio::GlommioError<()>> for StorageError {
    fn from(e: glommio::GlommioError<()>) -> Self {
        StorageError::Io(e.into())
    }
}

/// Result alias for storage operations.
pub type Result<T> = std::result::Result<T, StorageError>;
