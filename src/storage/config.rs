//! Per-topic log settings (Kafka's topic configs that the storage engine obeys), with Kafka's
//! names and defaults. Parsing from strings lives here so that the broker's configs API and
//! the command line share one definition.

use super::error::{Result, StorageError};
use crate::limits;

/// When an appended batch becomes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// `flush.messages`: fsync after this many records (1 = before every acknowledgement).
    pub messages: u64,
    /// `flush.ms`: fsync when the oldest unsynced record is this old.
    pub ms: i64,
}

impl FlushPolicy {
    /// True when every append must be synced before it is acknowledged.
    pub fn syncs_every_append(&self) -> bool {
        self.messages <= 1
    }
}

/// Whether timestamps come from the producer or the broker (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The storage-relevant configuration of one topic.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    /// `retention.ms`; negative means unlimited.
    pub retention_ms: i64,
    /// `retention.bytes`; negative means unlimited.
    pub retention_bytes: i64,
    pub index_interval_bytes: u32,
    pub max_message_bytes: u32,
    pub flush: FlushPolicy,
    pub timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms`: under CreateTime, how far in the past a batch's
    /// timestamps may be (Kafka's default: unbounded).
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: under CreateTime, how far in the future (Kafka 4's
    /// default: one hour).
    pub timestamp_after_max_ms: i64,
    /// `cleanup.policy`: `delete`, `compact` or both. A `compact`-only topic is never deleted
    /// by retention; `compact` topics are cleaned (the latest record per key stays).
    pub cleanup_policy: String,
    /// `delete.retention.ms`: how long a tombstone stays in a compacted log.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: the share of the cleanable log not cleaned yet above which
    /// the cleaner takes the partition.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records newer than this are never compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a record not compacted after this long is compacted whatever
    /// the dirty ratio, and the active segment of a compacted topic rolls at this age (Kafka's
    /// default: never, `i64::MAX`).
    pub max_compaction_lag_ms: i64,
    /// `min.insync.replicas`: on a replicated partition, an acks=all produce is refused
    /// (NOT_ENOUGH_REPLICAS) while fewer replicas are in sync. Storage does not read it; it
    /// is here because it is a topic config like the others.
    pub min_insync_replicas: i32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: limits::DEFAULT_SEGMENT_BYTES,
            segment_ms: limits::DEFAULT_SEGMENT_MS,
            retention_ms: limits::DEFAULT_RETENTION_MS,
            retention_bytes: -1,
            index_interval_bytes: limits::DEFAULT_INDEX_INTERVAL_BYTES,
            max_message_bytes: limits::DEFAULT_MAX_MESSAGE_BYTES,
            flush: FlushPolicy {
                messages: 1,
                ms: i64::MAX,
            },
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: limits::DEFAULT_TIMESTAMP_AFTER_MAX_MS,
            cleanup_policy: "delete".into(),
            delete_retention_ms: limits::DEFAULT_DELETE_RETENTION_MS,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_insync_replicas: 1,
        }
    }
}

/// Names of the topic configs Strata understands, in the order it reports them.
pub const CONFIG_NAMES: &[&str] = &[
    "cleanup.policy",
    "delete.retention.ms",
    "flush.messages",
    "flush.ms",
    "index.interval.bytes",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.ms",
];

fn parse_num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T> {
    v.trim()
        .parse::<T>()
        .map_err(|_| StorageError::InvalidConfig(format!("{name}: '{v}' is not a valid number")))
}

impl LogConfig {
    /// Sets one config by its Kafka name, validating the value.
    pub fn set(&mut self, name: &str, value: &str) -> Result<()> {
        match name {
            "segment.bytes" => {
                let v: u64 = parse_num(name, value)?;
                if !(limits::MIN_SEGMENT_BYTES..=limits::MAX_SEGMENT_BYTES).contains(&v) {
                    return Err(StorageError::InvalidConfig(format!(
                        "segment.bytes must be in [{}, {}]",
                        limits::MIN_SEGMENT_BYTES,
                        limits::MAX_SEGMENT_BYTES
                    )));
                }
                self.segment_bytes = v;
            }
            "segment.ms" => self.segment_ms = positive(name, parse_num(name, value)?)?,
            "retention.ms" => self.retention_ms = parse_num(name, value)?,
            "retention.bytes" => self.retention_bytes = parse_num(name, value)?,
            "index.interval.bytes" => self.index_interval_bytes = parse_num(name, value)?,
            "max.message.bytes" => {
                let v: u32 = parse_num(name, value)?;
                if v > limits::MAX_BATCH_BYTES || v < crate::storage::batch::HEADER_BYTES as u32 {
                    return Err(StorageError::InvalidConfig(format!(
                        "max.message.bytes must be in [61, {}]",
                        limits::MAX_BATCH_BYTES
                    )));
                }
                self.max_message_bytes = v;
            }
            "flush.messages" => self.flush.messages = parse_num::<u64>(name, value)?.max(1),
            "message.timestamp.before.max.ms" => {
                self.timestamp_before_max_ms = non_negative(name, parse_num(name, value)?)?
            }
            "message.timestamp.after.max.ms" => {
                self.timestamp_after_max_ms = non_negative(name, parse_num(name, value)?)?
            }
            "flush.ms" => self.flush.ms = positive(name, parse_num(name, value)?)?,
            "message.timestamp.type" => {
                self.timestamp_type = match value {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => {
                        return Err(StorageError::InvalidConfig(format!(
                            "message.timestamp.type: '{value}'"
                        )))
                    }
                }
            }
            "delete.retention.ms" => {
                self.delete_retention_ms = non_negative(name, parse_num(name, value)?)?
            }
            "min.compaction.lag.ms" => {
                self.min_compaction_lag_ms = non_negative(name, parse_num(name, value)?)?
            }
            "max.compaction.lag.ms" => {
                self.max_compaction_lag_ms = positive(name, parse_num(name, value)?)?
            }
            "min.insync.replicas" => {
                let v: i32 = parse_num(name, value)?;
                if v < 1 {
                    return Err(StorageError::InvalidConfig(format!(
                        "min.insync.replicas must be at least 1, not {value}"
                    )));
                }
                self.min_insync_replicas = v;
            }
            "min.cleanable.dirty.ratio" => {
                let v: f64 = parse_num(name, value)?;
                if !(0.0..=1.0).contains(&v) {
                    return Err(StorageError::InvalidConfig(format!(
                        "min.cleanable.dirty.ratio must be in [0, 1], not {value}"
                    )));
                }
                self.min_cleanable_dirty_ratio = v;
            }
            "cleanup.policy" => match value {
                "delete" | "compact" | "compact,delete" | "delete,compact" => {
                    self.cleanup_policy = value.into()
                }
                _ => {
                    return Err(StorageError::InvalidConfig(format!(
                        "cleanup.policy: '{value}'"
                    )))
                }
            },
            _ => {
                return Err(StorageError::InvalidConfig(format!(
                    "unknown topic config '{name}'"
                )))
            }
        }
        Ok(())
    }

    /// The current value of a config by its Kafka name.
    pub fn get(&self, name: &str) -> Option<String> {
        Some(match name {
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "flush.messages" => self.flush.messages.to_string(),
            "flush.ms" => self.flush.ms.to_string(),
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms.to_string(),
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms.to_string(),
            "message.timestamp.type" => match self.timestamp_type {
                TimestampType::CreateTime => "CreateTime".into(),
                TimestampType::LogAppendTime => "LogAppendTime".into(),
            },
            "cleanup.policy" => self.cleanup_policy.clone(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "max.compaction.lag.ms" => self.max_compaction_lag_ms.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            _ => return None,
        })
    }

    /// Whether `cleanup.policy` lets time and size retention delete old segments: `delete`
    /// and `compact,delete` do; `compact` alone never loses a key's latest record to them.
    pub fn retention_deletes(&self) -> bool {
        self.cleanup_policy.split(',').any(|p| p.trim() == "delete")
    }

    /// Whether `cleanup.policy` asks for compaction (`compact` or `compact,delete`).
    pub fn compacts(&self) -> bool {
        self.cleanup_policy
            .split(',')
            .any(|p| p.trim() == "compact")
    }

    /// The age at which the active segment rolls: `segment.ms`, or `max.compaction.lag.ms`
    /// when that is shorter on a compacted topic (Kafka's `LogConfig.maxSegmentMs`), so that
    /// an overdue record leaves the active segment and can be cleaned.
    pub fn max_segment_ms(&self) -> i64 {
        if self.compacts() {
            self.segment_ms.min(self.max_compaction_lag_ms)
        } else {
            self.segment_ms
        }
    }
}

fn non_negative(name: &str, v: i64) -> Result<i64> {
    if v < 0 {
        return Err(StorageError::InvalidConfig(format!(
            "{name} must not be negative"
        )));
    }
    Ok(v)
}

fn positive(name: &str, v: i64) -> Result<i64> {
    if v <= 0 {
        return Err(StorageError::InvalidConfig(format!(
            "{name} must be positive"
        )));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_config_round_trips_and_bad_values_are_refused() {
        let mut c = LogConfig::default();
        for name in CONFIG_NAMES {
            let v = c.get(name).expect("known");
            c.set(name, &v).expect("own value accepted");
        }
        assert!(c.set("segment.bytes", "12").is_err());
        assert!(c.set("retention.ms", "soon").is_err());
        assert!(c.set("no.such", "1").is_err());
        assert!(
            c.set("max.compaction.lag.ms", "0").is_err(),
            "at least 1, as Kafka"
        );
        assert_eq!(
            c.max_segment_ms(),
            c.segment_ms,
            "a delete topic rolls at segment.ms"
        );
        c.set("max.compaction.lag.ms", "5000").expect("valid");
        assert_eq!(c.max_segment_ms(), c.segment_ms, "still a delete topic");
        c.set("cleanup.policy", "compact").expect("valid");
        assert_eq!(c.max_segment_ms(), 5000);
        c.set("retention.ms", "-1").expect("unlimited");
        assert_eq!(c.retention_ms, -1);
    }
}
