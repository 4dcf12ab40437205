//! What a replica needs from the disk, and nothing more.
//!
//! A [`ReplicaDevice`] holds three things of one partition: its stored batches (the segment
//! log), the entry index (the sidecar of entry records, opaque bytes here) and the Raft hard
//! state. Appends may be lost in a crash until [`ReplicaDevice::sync`] returns; a state write
//! is durable when it returns. The broker's device is the partition's segment log; the
//! simulation's keeps bytes in memory and drops the unsynced tail when it "crashes".

use bytes::Bytes;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DeviceError {
    #[error("replica storage I/O: {0}")]
    Io(String),
    #[error("replica storage is corrupt: {0}")]
    Corrupt(String),
}

#[allow(async_fn_in_trait)]
pub trait ReplicaDevice {
    /// Offset right after the last stored batch (the first offset when there is none).
    fn batch_end(&self) -> i64;
    /// Appends whole stored batches at [`Self::batch_end`], in order.
    async fn append_batches(&self, batches: &[Bytes]) -> Result<(), DeviceError>;
    /// Drops every batch at or above `offset` (a batch boundary).
    async fn truncate_batches(&self, offset: i64) -> Result<(), DeviceError>;
    /// Whole batches from `from` (a batch boundary) up to about `max_bytes` (at least one),
    /// in offset order with none left out between them. Batches below the partition's
    /// cleanable limit may have been compacted: fewer records, or gone entirely (the answer
    /// then starts with the next batch that is there; nothing at all means no batch from
    /// `from` to [`Self::batch_end`]).
    async fn read_batches(&self, from: i64, max_bytes: usize) -> Result<Vec<Bytes>, DeviceError>;
    /// Appends bytes to the entry index.
    async fn append_index(&self, bytes: &[u8]) -> Result<(), DeviceError>;
    /// Cuts the entry index to `len` bytes.
    async fn truncate_index(&self, len: u64) -> Result<(), DeviceError>;
    /// The whole entry index as stored.
    async fn read_index(&self) -> Result<Vec<u8>, DeviceError>;
    /// Makes every appended batch and index byte durable (batches first).
    async fn sync(&self) -> Result<(), DeviceError>;
    /// Replaces the hard state atomically; durable on return.
    async fn write_state(&self, bytes: &[u8]) -> Result<(), DeviceError>;
    /// The hard state last written, if any.
    async fn read_state(&self) -> Result<Option<Vec<u8>>, DeviceError>;
}
