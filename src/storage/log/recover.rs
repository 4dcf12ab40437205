//! Opening a partition's log: listing its segments, trusting the sealed ones whose indexes
//! agree with their files, re-validating the rest batch by batch and cutting the log after the
//! last good batch, so a torn or zeroed tail is dropped and never served.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use glommio::sync::Semaphore;

use super::{remove_segment_files, PartitionLog, RecoveryReport, State};
use crate::notify::Notify;
use crate::storage::clock::Clock;
use crate::storage::config::LogConfig;
use crate::storage::error::Result;
use crate::storage::meta::PartitionMeta;
use crate::storage::read_ahead::ReadAhead;
use crate::storage::segment::Segment;
use crate::storage::tail_cache::{CacheBudget, TailCache};

fn list_segment_bases(dir: &Path) -> Result<Vec<i64>> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".log") {
            if let Ok(b) = stem.parse::<i64>() {
                bases.push(b);
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

impl PartitionLog {
    /// [`Self::open`], the tail cache drawing on `cache`. Sealed segments before the recovery
    /// point are trusted if their indexes check out; the rest are re-validated batch by batch
    /// and the log is cut after the last good batch.
    pub async fn open_cached(
        dir: &Path,
        config: LogConfig,
        clock: Rc<dyn Clock>,
        cache: Rc<CacheBudget>,
    ) -> Result<(PartitionLog, RecoveryReport)> {
        std::fs::create_dir_all(dir)?;
        crate::storage::device_probe::ensure_probed(dir).await?;
        let now = clock.now_ms();
        // A cleaner's swap cut short by a crash is finished or rolled back first.
        crate::storage::compact::swap::finish_swaps(dir)?;
        let meta = PartitionMeta::load(dir)?;
        let mut bases = list_segment_bases(dir)?;
        let mut report = RecoveryReport::default();
        let log_start_meta = meta.map(|m| m.log_start_offset).unwrap_or(0);
        // Segments wholly below the log start were being deleted by retention: finish that.
        while bases.len() > 1 && bases[1] <= log_start_meta {
            let b = bases.remove(0);
            remove_segment_files(dir, b)?;
            report.removed_segments += 1;
        }
        let mut segments = BTreeMap::new();
        if bases.is_empty() {
            let seg =
                Segment::create(dir, log_start_meta, config.index_interval_bytes, now).await?;
            segments.insert(log_start_meta, seg);
        } else {
            let recovery_point = meta.map(|m| m.recovery_point).unwrap_or(0);
            let last = *bases.last().expect("non-empty");
            let scan_from = recovery_point.min(last);
            let mut i = 0;
            while i < bases.len() {
                let base = bases[i];
                let next_base = bases.get(i + 1).copied();
                let trusted = match next_base {
                    Some(next) if next <= scan_from => {
                        Segment::open_sealed(dir, base, next, config.index_interval_bytes, now)
                            .await?
                    }
                    _ => None,
                };
                if let Some(seg) = trusted {
                    segments.insert(base, seg);
                    i += 1;
                    continue;
                }
                // Sealed segments may have gaps the cleaner left; the last one never has.
                let (mut seg, scan) = Segment::recover_file(
                    dir.join(format!("{}.log", crate::storage::segment::file_stem(base))),
                    base,
                    config.index_interval_bytes,
                    now,
                    next_base.is_some(),
                )
                .await?;
                report.scanned_segments += 1;
                report.cut_bytes += scan.cut_bytes;
                if scan.cut_nonzero || scan.problem.is_some() {
                    tracing::warn!(
                        dir = %dir.display(), segment = base, kept_bytes = scan.valid_bytes, cut_bytes = scan.cut_bytes,
                        reason = scan.problem.as_deref().unwrap_or("trailing bytes"), "recovery cut the log"
                    );
                }
                // A sealed segment read whole may end early: the cleaner removed its last
                // records. One that had to be cut was torn: everything after it goes.
                let clean_scan = scan.cut_bytes == 0 && scan.problem.is_none();
                let continues = next_base
                    .filter(|n| *n == seg.next_offset() || (clean_scan && *n > seg.next_offset()));
                if let Some(next) = continues {
                    seg.end_at(next);
                    seg.seal(dir).await?;
                    segments.insert(base, seg);
                    i += 1;
                    continue;
                }
                // This is the last segment, or the log was cut inside it: everything after goes.
                for later in &bases[i + 1..] {
                    tracing::warn!(dir = %dir.display(), segment = later, "removing segment after the cut");
                    remove_segment_files(dir, *later)?;
                    report.removed_segments += 1;
                }
                seg.file().fdatasync().await?;
                segments.insert(base, seg);
                break;
            }
        }
        report.segments = segments.len();
        let first_base = *segments.keys().next().expect("non-empty");
        let state = State {
            log_start: log_start_meta.max(first_base),
            written_offset: 0,
            tail: TailCache::new(cache),
            unflushed_messages: 0,
            oldest_unflushed_ms: None,
            rolling: false,
            segments,
        };
        let end = state.log_end();
        let log_start = state.log_start.min(end);
        let log = PartitionLog {
            dir: dir.to_path_buf(),
            config: RefCell::new(config),
            clock,
            state: RefCell::new(State {
                written_offset: end,
                log_start,
                ..state
            }),
            io: Semaphore::new(1),
            flushed: Cell::new(end),
            failed: Cell::new(false),
            io_done: Notify::default(),
            read_ahead: ReadAhead::default(),
            disk_reads: Cell::new(0),
            syncs: Cell::new(0),
        };
        log.store_meta().await?;
        Ok((log, report))
    }
}
