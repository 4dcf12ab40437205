//! Replication: one Raft group per partition, the partition's log being the Raft log.
//!
//! Consensus is TiKV's `raft` crate (raft-rs), a pure state machine: this module drives it
//! (`tick`, `step`, `ready`) and owns everything it leaves to its user, which is storage
//! and the order of I/O. The network and time belong to the caller: a [`Replica`] is handed
//! messages and ticks and hands back the messages to send, so the same code runs under the
//! broker's transport and under the deterministic simulation in `tests/replication_sim.rs`.
//!
//! How Raft entries map onto a partition's log ([`entries`], [`store`]):
//! - one data entry is one stored RecordBatch; the leader stamps the batch's base offset and
//!   its `partitionLeaderEpoch` (= the Raft term) before proposing it, so every replica
//!   stores byte-identical batches at identical offsets;
//! - entries that are not data (the empty entry a new leader appends, configuration changes)
//!   take no Kafka offset; they live only in the entry index;
//! - the entry index is a sidecar of fixed records (index, term, kind, offsets, CRC) beside
//!   the segments, so a Raft index finds its batch and a term finds its first offset (the
//!   leader-epoch lookup);
//! - a batch and its entry record are synced before Raft is told the entry is persisted, and
//!   the term and vote are synced before any message of that term leaves; the commit index is
//!   not synced (Raft recovers it), so replication adds no fsync per produce.
//!
//! What it must not touch: sockets (the caller sends [`Replica::process`]'s messages), Kafka
//! semantics (error codes, acks: the partition layer decides them from
//! [`Replica::outcome`] and [`Replica::high_watermark`]), and the segment files' format
//! (reached only through [`ReplicaDevice`]).

pub mod codec;
pub mod device;
pub mod entries;
pub mod host;
pub mod in_sync;
pub mod log_device;
mod logger;
pub mod replica;
pub mod store;

pub use device::{DeviceError, ReplicaDevice};
pub use entries::{EntryKind, EntryMeta};
pub use log_device::LogDevice;
pub use replica::{Outcome, Proposed, Replica, ReplicaError, ReplicaSettings, Role};
pub use store::EntryStore;

/// A Raft node id: the broker id of the replica.
pub type NodeId = u64;
