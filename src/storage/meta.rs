//! Small metadata files (`partition.meta`, and the broker's `cluster.meta` through
//! [`write_atomic`]): an rkyv archive followed by a CRC-32C, replaced atomically
//! (write tmp, fsync, rename, fsync the directory) so a crash leaves the old or the new file,
//! never a mix.

use std::io::Write;
use std::path::{Path, PathBuf};

use rkyv::{rancor, util::AlignedVec, Archive, Deserialize, Serialize};

use super::error::{Result, StorageError};

/// Durable per-partition state.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionMeta {
    /// First offset consumers may read; moves forward with retention.
    pub log_start_offset: i64,
    /// Every batch below this offset was synced and validated; recovery starts here.
    pub recovery_point: i64,
}

pub const PARTITION_META_FILE: &str = "partition.meta";

/// Writes `bytes` + CRC-32C to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.write_all(&crc32c::crc32c(bytes).to_le_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// [`write_atomic`] on glommio's blocking thread pool: its fsyncs (tens of milliseconds on a
/// busy ext4 journal) must not stall the core, which serves every other partition and
/// connection meanwhile. Must run inside a glommio executor.
pub async fn write_atomic_off_core(path: PathBuf, bytes: Vec<u8>) -> Result<()> {
    glommio::executor()
        .spawn_blocking(move || write_atomic(&path, &bytes))
        .await
}

/// Reads a file written by [`write_atomic`]; `Ok(None)` if it does not exist.
pub fn read_checked(path: &Path) -> Result<Option<AlignedVec>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let bad = |reason: &str| StorageError::BadFile {
        path: path.display().to_string(),
        reason: reason.into(),
    };
    let body_len = bytes
        .len()
        .checked_sub(4)
        .ok_or_else(|| bad("shorter than its checksum"))?;
    let (body, crc) = bytes.split_at(body_len);
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return Err(bad("checksum mismatch"));
    }
    let mut aligned = AlignedVec::with_capacity(body.len());
    aligned.extend_from_slice(body);
    Ok(Some(aligned))
}

impl PartitionMeta {
    pub fn store(&self, dir: &Path) -> Result<()> {
        write_atomic(&dir.join(PARTITION_META_FILE), &self.encode()?)
    }

    /// [`PartitionMeta::store`] off the core (see [`write_atomic_off_core`]).
    pub async fn store_off_core(&self, dir: &Path) -> Result<()> {
        write_atomic_off_core(dir.join(PARTITION_META_FILE), self.encode()?).await
    }

    fn encode(&self) -> Result<Vec<u8>> {
        rkyv::to_bytes::<rancor::Error>(self)
            .map(|b| b.to_vec())
            .map_err(|e| StorageError::Encode {
                what: "partition.meta",
                reason: e.to_string(),
            })
    }

    /// Loads the meta of a partition; `Ok(None)` when there is none yet.
    pub fn load(dir: &Path) -> Result<Option<PartitionMeta>> {
        let path = dir.join(PARTITION_META_FILE);
        let Some(bytes) = read_checked(&path)? else {
            return Ok(None);
        };
        let archived =
            rkyv::access::<ArchivedPartitionMeta, rancor::Error>(&bytes).map_err(|e| {
                StorageError::BadFile {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }
            })?;
        Ok(Some(PartitionMeta {
            log_start_offset: archived.log_start_offset.to_native(),
            recovery_point: archived.recovery_point.to_native(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trips_and_detects_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            PartitionMeta::load(dir.path()).expect("absent is fine"),
            None
        );
        let m = PartitionMeta {
            log_start_offset: 7,
            recovery_point: 99,
        };
        m.store(dir.path()).expect("store");
        assert_eq!(PartitionMeta::load(dir.path()).expect("load"), Some(m));
        let p = dir.path().join(PARTITION_META_FILE);
        let mut b = std::fs::read(&p).expect("read");
        b[2] ^= 0xff;
        std::fs::write(&p, b).expect("write");
        assert!(PartitionMeta::load(dir.path()).is_err());
    }
}
