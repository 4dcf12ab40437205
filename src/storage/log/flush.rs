//! Writing staged bytes to the active segment's file and syncing them: group commit (whoever
//! holds the I/O permit syncs for everyone waiting), and the I/O permit itself.

use super::{IoGuard, PartitionLog};
use crate::storage::error::{Result, StorageError};
use crate::storage::segment::submit_writes;

impl PartitionLog {
    /// Makes every offset below `upto` durable. Concurrent callers share syncs: whoever holds
    /// the I/O permit syncs everything staged so far, and the others find their data covered.
    pub async fn flush(&self, upto: i64) -> Result<()> {
        loop {
            if self.flushed.get() >= upto {
                return Ok(());
            }
            self.check_writable()?;
            let done = self.io_done.notified();
            match self.io.try_acquire_permit(1) {
                Ok(permit) => {
                    let _guard = IoGuard {
                        _permit: permit,
                        done: &self.io_done,
                    };
                    self.write_staged(true).await?;
                }
                Err(glommio::GlommioError::Closed(_)) => return Err(StorageError::Closed),
                // Someone else holds the permit: wait for a flush to finish, not for the permit.
                // A flusher that keeps re-acquiring the permit must not starve callers whose
                // data it already made durable.
                Err(_) => done.await,
            }
        }
    }

    /// The I/O permit (flush, roll, retention, close); waiters are told when it is let go.
    pub(super) async fn io_permit(&self) -> Result<IoGuard<'_>> {
        let permit = self
            .io
            .acquire_permit(1)
            .await
            .map_err(|_| StorageError::Closed)?;
        Ok(IoGuard {
            _permit: permit,
            done: &self.io_done,
        })
    }

    /// Writes staged bytes out without a sync (bounds memory under a relaxed flush policy).
    pub async fn write_out(&self) -> Result<()> {
        self.check_writable()?;
        let _permit = self.io_permit().await?;
        self.write_staged(false).await
    }

    /// Writes the active segment's staged bytes, and syncs when asked. Caller holds the permit.
    pub(super) async fn write_staged(&self, sync: bool) -> Result<()> {
        let (file, writes, target, allocate) = {
            let mut st = self.state.borrow_mut();
            let target = st.log_end();
            let active = st.active_mut();
            let (file, writes) = active.take_writes()?;
            let allocate = active.allocation_for(&writes);
            (file, writes, target, allocate)
        };
        let result = async {
            if let Some(size) = allocate {
                // Best effort: without it writes are slower, not wrong (and a full disk is
                // reported by the write itself).
                if let Err(e) = file.pre_allocate(size, false).await {
                    tracing::debug!(dir = %self.dir.display(), error = %e, "preallocation failed");
                }
            }
            let end = submit_writes(&file, writes).await?;
            if sync {
                file.fdatasync().await?;
                self.syncs.set(self.syncs.get() + 1);
            }
            Ok::<_, StorageError>(end)
        }
        .await;
        let end = match result {
            Ok(end) => end,
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "write failed; partition refuses writes until reopened");
                self.failed.set(true);
                return Err(e);
            }
        };
        let mut st = self.state.borrow_mut();
        if let Some(end) = end {
            st.active_mut().mark_written(end);
        }
        st.written_offset = target;
        if sync {
            self.flushed.set(self.flushed.get().max(target));
            st.unflushed_messages = 0;
            st.oldest_unflushed_ms = None;
        }
        let written = st.written_offset;
        st.tail.evict(written);
        assert!(
            self.flushed.get() <= written && written <= st.log_end(),
            "flushed {} <= written {written} <= end {}",
            self.flushed.get(),
            st.log_end()
        );
        Ok(())
    }
}
