//! Facts that only the running host can tell: the data dir's filesystem and block device,
//! whether O_DIRECT and io_uring work there.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::HostFacts;

/// Gathers the live facts for a data dir (created if missing).
pub fn facts(data_dir: &Path, cores: usize, memlock_needed: u64) -> HostFacts {
    let _ = std::fs::create_dir_all(data_dir);
    HostFacts {
        filesystem: filesystem(data_dir),
        o_direct: Some(o_direct(data_dir)),
        io_uring: Some(
            io_uring::IoUring::new(8)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        ),
        block_device: std::fs::metadata(data_dir).ok().map(|m| {
            let dev = m.dev();
            format!("{}:{}", libc::major(dev), libc::minor(dev))
        }),
        cores,
        memlock_needed,
        // SAFETY: geteuid has no preconditions.
        privileged: unsafe { libc::geteuid() } == 0,
    }
}

fn filesystem(dir: &Path) -> Option<String> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statfs writes into a zeroed struct we own; `path` is a valid C string.
    let magic = unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        if libc::statfs(path.as_ptr(), &mut s) != 0 {
            return None;
        }
        s.f_type as i64
    };
    Some(
        match magic {
            0xEF53 => "ext4",
            0x5846_5342 => "xfs",
            0x0102_1994 => "tmpfs",
            0x9123_683E => "btrfs",
            0x2FC1_2FC1 => "zfs",
            0x6969 => "nfs",
            0x794c_7630 => "overlayfs",
            other => return Some(format!("unknown (magic {other:#x})")),
        }
        .to_string(),
    )
}

fn o_direct(dir: &Path) -> Result<(), String> {
    use std::io::Write;
    let path = dir.join(".strata-tune-odirect");
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)?;
        let layout =
            std::alloc::Layout::from_size_align(4096, 4096).map_err(std::io::Error::other)?;
        // SAFETY: the layout is non-zero sized; the buffer is freed below and only used as bytes.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(std::io::Error::other("out of memory"));
        }
        // SAFETY: `ptr` points to 4096 initialised (zeroed) bytes that we own.
        let buf = unsafe { std::slice::from_raw_parts(ptr, 4096) };
        let r = f.write_all(buf);
        // SAFETY: allocated above with the same layout.
        unsafe { std::alloc::dealloc(ptr, layout) };
        r
    })();
    let _ = std::fs::remove_file(&path);
    result.map_err(|e| e.to_string())
}
