//! Swapping a cleaned segment in, crash-safely (Kafka's `.cleaned` / `.swap` protocol).
//!
//! A cleaned copy replaces one segment, or a group of consecutive ones merged into one file
//! (Kafka merges small cleaned segments the same way): the segments with base offsets in
//! `[B, E)`, `B` the first one's base (its 20-digit file stem), `E` the next offset of the last.
//! 1. the cleaned copy is written to `B.log.cleaned` and fsynced ([`CleanedFile`]: through
//!    the same O_DIRECT path as segment appends, aligned DMA buffers written by io_uring);
//! 2. it is renamed to `B.log.swap` (one segment) or `B-E.log.swap` (a merge: the name says
//!    which segments it replaces) and the folder fsynced: **the commit point**;
//! 3. the old segments' `.log`, `.index` and `.timeindex` files are deleted;
//! 4. the `.swap` file is renamed to `B.log` and the folder fsynced;
//! 5. the indexes are rebuilt from the new file (derived data: a missing one is rebuilt on
//!    open).
//!
//! Recovery on open ([`finish_swaps`], before segments are listed): a `.cleaned` file is an
//! unfinished copy and is deleted (the old segments are intact: roll back); a `.swap` file is a
//! complete, synced copy, so whatever is left of the segments it replaces is deleted and the
//! swap is renamed into place (roll forward). A crash at any point leaves the old segments or
//! the new one, never a mix and never neither. Each copy is swapped on its own: a crash
//! between two copies of one clean leaves some cleaned and some not, which loses nothing (a
//! record is only dropped when a newer record of its key is kept in a later offset).

use std::path::{Path, PathBuf};

use glommio::io::{DmaFile, OpenOptions};

use crate::storage::error::Result;
use crate::storage::segment::{file_stem, submit_writes};
use crate::storage::stage::{align_up, Stage};

pub const CLEANED_SUFFIX: &str = ".log.cleaned";
pub const SWAP_SUFFIX: &str = ".log.swap";

/// The steps of a swap, after each of which a failpoint may stop it (tests of the crash
/// cases: the log is then dropped and reopened, as after a crash at that point).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SwapStep {
    /// `.cleaned` written and synced; nothing renamed.
    CleanedWritten,
    /// Renamed to `.swap` and the folder synced (committed).
    RenamedToSwap,
    /// Old segment files deleted.
    OldDeleted,
    /// `.swap` renamed to `.log`, folder synced; indexes not yet written.
    RenamedToLog,
}

pub const ALL_STEPS: [SwapStep; 4] = [
    SwapStep::CleanedWritten,
    SwapStep::RenamedToSwap,
    SwapStep::OldDeleted,
    SwapStep::RenamedToLog,
];

pub fn cleaned_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{}{CLEANED_SUFFIX}", file_stem(base)))
}
/// The `.swap` name of a copy replacing the segments in `[base, end)`; `end` is `None` for a
/// copy of the one segment `base`.
pub fn swap_path(dir: &Path, base: i64, end: Option<i64>) -> PathBuf {
    match end {
        None => dir.join(format!("{}{SWAP_SUFFIX}", file_stem(base))),
        Some(end) => dir.join(format!(
            "{}-{}{SWAP_SUFFIX}",
            file_stem(base),
            file_stem(end)
        )),
    }
}

/// The base and, for a merge, the end of a `.swap` file's stem (`B` or `B-E`).
fn parse_swap_stem(stem: &str) -> Option<(i64, Option<i64>)> {
    match stem.split_once('-') {
        None => Some((stem.parse().ok()?, None)),
        Some((b, e)) => Some((b.parse().ok()?, Some(e.parse().ok()?))),
    }
}
pub fn log_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{}.log", file_stem(base)))
}

pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn remove_if_there(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Step 1: the cleaned copy of segment `base`, written as the active segment is: batches are
/// copied into aligned DMA buffers ([`Stage`]) and go out as whole-page O_DIRECT writes
/// through io_uring (glommio's `DmaFile`), never through the page cache or the blocking pool;
/// the partial last page is written padded and rewritten by the next write. The file is
/// allocated ahead (as segments are: a direct write that must allocate is done synchronously
/// by ext4), then cut to its size and synced by [`CleanedFile::finish`].
pub struct CleanedFile {
    file: DmaFile,
    stage: Stage,
}

impl CleanedFile {
    /// Creates (or empties) `B.log.cleaned`, allocating `expected_bytes` ahead (best effort).
    pub async fn create(dir: &Path, base: i64, expected_bytes: u64) -> Result<CleanedFile> {
        let path = cleaned_path(dir, base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(&path)
            .await?;
        if expected_bytes > 0 {
            // Without it the writes are slower, not wrong.
            if let Err(e) = file.pre_allocate(align_up(expected_bytes), false).await {
                tracing::debug!(path = %path.display(), error = %e, "preallocation failed");
            }
        }
        Ok(CleanedFile {
            file,
            stage: Stage::new(0, &[])?,
        })
    }

    /// Stages `bytes` after what is already there (a memory copy, no I/O).
    pub fn push(&mut self, bytes: &[u8]) -> Result<()> {
        self.stage.push(bytes)
    }

    /// Bytes staged and not written yet.
    pub fn pending_bytes(&self) -> u64 {
        self.stage.pending_bytes()
    }

    /// Writes what is staged (whole pages; the last one padded).
    pub async fn write_out(&mut self) -> Result<()> {
        let writes = self.stage.take_writes()?;
        submit_writes(&self.file, writes).await?;
        Ok(())
    }

    /// Writes the rest, cuts the file to its size, syncs and closes it. Returns the size.
    pub async fn finish(mut self) -> Result<u64> {
        self.write_out().await?;
        let size = self.stage.end();
        self.file.truncate(size).await?;
        self.file.fdatasync().await?;
        self.file.close().await?;
        Ok(size)
    }
}

/// Step 2: the commit point. `end`: see [`swap_path`].
pub fn commit(dir: &Path, base: i64, end: Option<i64>) -> Result<()> {
    std::fs::rename(cleaned_path(dir, base), swap_path(dir, base, end))?;
    sync_dir(dir)
}

/// Step 3: the old segments' files go (those with these base offsets).
pub fn delete_old(dir: &Path, bases: &[i64]) -> Result<()> {
    for &base in bases {
        let stem = file_stem(base);
        for ext in ["log", "index", "timeindex"] {
            remove_if_there(&dir.join(format!("{stem}.{ext}")))?;
        }
    }
    Ok(())
}

/// Step 4: the cleaned file takes the (first) segment's name.
pub fn install(dir: &Path, base: i64, end: Option<i64>) -> Result<()> {
    std::fs::rename(swap_path(dir, base, end), log_path(dir, base))?;
    sync_dir(dir)
}

/// The base offsets of the segment files (`.log`, `.index`, `.timeindex`) in `dir` within
/// `[from, to)`: what a merge's swap replaces.
fn segments_within(dir: &Path, from: i64, to: i64) -> Result<Vec<i64>> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        if !matches!(ext, "log" | "index" | "timeindex") {
            continue;
        }
        if let Ok(base) = stem.parse::<i64>() {
            if (from..to).contains(&base) && !bases.contains(&base) {
                bases.push(base);
            }
        }
    }
    Ok(bases)
}

/// Finishes or rolls back every swap a crash interrupted in `dir` (see the module doc).
/// Returns how many were finished.
pub fn finish_swaps(dir: &Path) -> Result<usize> {
    let mut finished = 0;
    let mut changed = false;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let name = entry?.file_name();
        let name = name.to_string_lossy().to_string();
        if let Some(stem) = name.strip_suffix(CLEANED_SUFFIX) {
            tracing::warn!(dir = %dir.display(), segment = stem, "rolling back an unfinished clean");
            remove_if_there(&dir.join(&name))?;
            changed = true;
        } else if let Some(stem) = name.strip_suffix(SWAP_SUFFIX) {
            let Some((base, end)) = parse_swap_stem(stem) else {
                continue;
            };
            tracing::warn!(dir = %dir.display(), segment = base, merged_upto = ?end, "finishing an interrupted swap of a cleaned segment");
            let old = match end {
                None => vec![base],
                Some(end) => segments_within(dir, base, end)?,
            };
            delete_old(dir, &old)?;
            std::fs::rename(swap_path(dir, base, end), log_path(dir, base))?;
            finished += 1;
            changed = true;
        }
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(finished)
}
