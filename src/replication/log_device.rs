//! The broker's [`ReplicaDevice`]: a partition's segment log, plus two files beside it.
//!
//! Batches go to the [`PartitionLog`] as they are (`append_stored`: the leader's bytes, not
//! re-stamped); the entry index is `raft.index` (buffered I/O: records are small and written
//! with the batches, synced by the same `sync`); the hard state is `raft.state`, replaced
//! atomically (tmp, fsync, rename, fsync dir) on glommio's blocking pool.
//!
//! It owns no policy: when to sync is the replica's call ([`super::Replica::process`]).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use glommio::io::{BufferedFile, OpenOptions};

use super::device::{DeviceError, ReplicaDevice};
use crate::storage::PartitionLog;

pub const INDEX_FILE: &str = "raft.index";
pub const STATE_FILE: &str = "raft.state";

pub struct LogDevice {
    log: Rc<PartitionLog>,
    index: BufferedFile,
    index_len: Cell<u64>,
    state_path: PathBuf,
}

fn io(e: impl std::fmt::Display) -> DeviceError {
    DeviceError::Io(e.to_string())
}

impl LogDevice {
    /// The device of the partition whose log is `log` (its folder holds the two files).
    pub async fn open(log: Rc<PartitionLog>) -> Result<LogDevice, DeviceError> {
        let dir: &Path = log.dir();
        let index = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .buffered_open(dir.join(INDEX_FILE))
            .await
            .map_err(io)?;
        let len = index.file_size().await.map_err(io)?;
        let state_path = dir.join(STATE_FILE);
        Ok(LogDevice {
            log,
            index,
            index_len: Cell::new(len),
            state_path,
        })
    }

    pub fn log(&self) -> &Rc<PartitionLog> {
        &self.log
    }
}

impl ReplicaDevice for LogDevice {
    fn batch_end(&self) -> i64 {
        self.log.log_end()
    }

    async fn append_batches(&self, batches: &[Bytes]) -> Result<(), DeviceError> {
        for b in batches {
            self.log.append_stored(b.clone()).await.map_err(io)?;
        }
        Ok(())
    }

    async fn truncate_batches(&self, offset: i64) -> Result<(), DeviceError> {
        self.log.truncate_from(offset).await.map_err(io)
    }

    async fn read_batches(&self, from: i64, max_bytes: usize) -> Result<Vec<Bytes>, DeviceError> {
        let read = self
            .log
            .read(from, max_bytes, self.log.log_end())
            .await
            .map_err(io)?;
        Ok(read.batches())
    }

    async fn append_index(&self, bytes: &[u8]) -> Result<(), DeviceError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let at = self.index_len.get();
        let n = self.index.write_at(bytes.to_vec(), at).await.map_err(io)?;
        if n != bytes.len() {
            return Err(DeviceError::Io(format!(
                "short write to {INDEX_FILE}: {n} of {}",
                bytes.len()
            )));
        }
        self.index_len.set(at + n as u64);
        Ok(())
    }

    async fn truncate_index(&self, len: u64) -> Result<(), DeviceError> {
        self.index.truncate(len).await.map_err(io)?;
        self.index_len.set(len);
        Ok(())
    }

    async fn read_index(&self) -> Result<Vec<u8>, DeviceError> {
        let len = self.index_len.get() as usize;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let chunk = self
                .index
                .read_at(out.len() as u64, (len - out.len()).min(1 << 20))
                .await
                .map_err(io)?;
            if chunk.is_empty() {
                break;
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    async fn sync(&self) -> Result<(), DeviceError> {
        self.log.flush(self.log.log_end()).await.map_err(io)?;
        self.index.fdatasync().await.map_err(io)
    }

    async fn write_state(&self, bytes: &[u8]) -> Result<(), DeviceError> {
        crate::storage::meta::write_atomic_off_core(self.state_path.clone(), bytes.to_vec())
            .await
            .map_err(io)
    }

    async fn read_state(&self) -> Result<Option<Vec<u8>>, DeviceError> {
        crate::storage::meta::read_checked(&self.state_path)
            .map(|o| o.map(|b| b.to_vec()))
            .map_err(|e| DeviceError::Corrupt(format!("{STATE_FILE}: {e}")))
    }
}
