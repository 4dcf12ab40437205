//! Makes glommio's io_uring poll-ring probe give the right answer.
//!
//! glommio decides once per thread and device whether reads may use the IOPOLL ring, by
//! reading 512 bytes at offset 0 of the first `DmaFile` opened. If that file is empty the
//! kernel answers "0 bytes read" without touching the device, glommio concludes that polling
//! works, and every later read on a device without poll queues fails with EOPNOTSUPP (seen
//! on kernel 6.18 with virtio disks). So before the first open on a thread, we open a file
//! that has data, on the same filesystem.

use std::cell::Cell;
use std::io::Write;
use std::path::Path;

use super::error::Result;

thread_local!(static PROBED: Cell<bool> = const { Cell::new(false) });

const PROBE_FILE: &str = ".strata-io-probe";

/// Runs the probe for `dir`'s device once per thread.
pub async fn ensure_probed(dir: &Path) -> Result<()> {
    if PROBED.with(|p| p.get()) {
        return Ok(());
    }
    let path = dir.join(PROBE_FILE);
    {
        let mut f = std::fs::File::create(&path)?;
        f.write_all(&[0x5a; crate::limits::IO_ALIGNMENT])?;
        f.sync_all()?;
    }
    let file = glommio::io::DmaFile::open(&path).await?;
    let read = file.read_at_aligned(0, crate::limits::IO_ALIGNMENT).await;
    let _ = file.close().await;
    let _ = std::fs::remove_file(&path);
    read?;
    PROBED.with(|p| p.set(true));
    Ok(())
}
