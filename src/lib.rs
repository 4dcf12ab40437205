//! # Strata
//!
//! A Kafka-compatible log appliance: a publish-subscribe commit log that speaks the Kafka wire
//! protocol, built thread-per-core on glommio with io_uring direct I/O.
//!
//! Data flows one way: `kafka` (sockets, framing, one handler per API) → `shard` (which core
//! owns a partition; typed calls between cores) → `partition` (every decision about a
//! partition's data: flush policy, high watermark, cleanup policy, producer state, long-poll
//! waiters) → `storage` (the mechanisms: segments on disk). Each layer knows only the one below
//! it: storage never sees a socket, the network never sees a file.
//!
//! Records are stored as the Kafka RecordBatch v2 bytes the producer sent (the broker rewrites
//! only the base offset, and the timestamp under LogAppendTime), so a fetch returns stored
//! bytes without re-encoding them, and large record sets are referenced, not copied, into the
//! response.
//!
//! Consumer groups (`group`) run beside the data path: a group's coordinator is the core that
//! owns the group's partition of `__consumer_offsets`, and its commits and metadata are records
//! of that partition, so they are stored, recovered and replicated (one day) like any data.
//! `cluster` holds the topic catalog, an immutable value each core reads without a lock and one
//! core owns and persists; `config` and `tune` the broker's and the host's settings.
//!
//! A broker started with `--peers` is part of a cluster: each partition of a replicated topic
//! is a Raft group of its replicas (`replication`: raft-rs driven over the partition's own
//! segment log, one entry per stored batch), driven on the partition's core by the core's
//! replication host; `rpc` carries the groups' messages between brokers; the catalog itself
//! is the controller group's log (`shard::controller`). Without `--peers` none of it runs.
//! `rpc` is the transport between the brokers of a cluster (per core, batched, CRC-checked),
//! started only when `--peers` lists them.
//!
//! `stream` is a client of the log, not part of the broker: a stream-processing engine whose
//! tasks keep running aggregates per key and window in bounded memory; `strata stream` drives
//! it through the Kafka protocol.

pub mod cluster;
pub mod config;
pub mod group;
pub mod kafka;
pub mod limits;
pub mod notify;
pub mod partition;
pub mod replication;
pub mod rpc;
pub mod shard;
pub mod storage;
pub mod stream;
pub mod tune;
