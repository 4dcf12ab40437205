//! # Strata
//!
//! A Kafka-compatible log appliance: a publish-subscribe commit log that speaks the Kafka wire
//! protocol, built thread-per-core on glommio with io_uring direct I/O.
//!
//! Data flows one way: `kafka` (sockets, framing, one handler per API) → `shard` (which core
//! owns a partition) → `partition` (high watermark, long-poll waiters) → `storage` (segments on
//! disk). Each layer knows only the one below it: storage never sees a socket, the network
//! never sees a file.
//!
//! Records are stored as the Kafka RecordBatch v2 bytes the producer sent (the broker rewrites
//! only the base offset, and the timestamp under LogAppendTime), so a fetch returns stored
//! bytes without re-encoding them.

pub mod cluster;
pub mod config;
pub mod group;
pub mod kafka;
pub mod limits;
pub mod partition;
pub mod shard;
pub mod storage;
pub mod stream;
pub mod tune;
