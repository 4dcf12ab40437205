//! `strata bench disk`: the physical ceiling of the data dir's disk on Strata's own I/O path
//! (O_DIRECT through io_uring, as fio's `--ioengine=io_uring --direct=1`): sequential 1 MiB
//! writes, and the latency of a 4 KiB write followed by fdatasync. Every Strata number is
//! reported as a ratio of these.

use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use io_uring::{opcode, types, IoUring};

#[derive(clap::Args)]
pub struct DiskBench {
    /// Folder on the disk to measure (a scratch file is created there and removed).
    #[arg(long, default_value = "strata-data")]
    pub data_dir: PathBuf,
    /// Size of the scratch file, MiB (the sequential test wraps around it).
    #[arg(long, default_value_t = 1024)]
    pub file_mib: u64,
    /// Seconds for each of the two tests.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Sequential writes in flight.
    #[arg(long, default_value_t = 4)]
    pub queue_depth: u32,
    #[arg(long)]
    pub json: bool,
}

const SEQ_BLOCK: usize = 1 << 20;
const SYNC_BLOCK: usize = 4096;

/// A zeroed, 4 KiB-aligned buffer for O_DIRECT.
struct Aligned {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl Aligned {
    fn new(len: usize) -> Result<Aligned> {
        let layout = std::alloc::Layout::from_size_align(len, 4096).context("layout")?;
        // SAFETY: non-zero size; freed in Drop with the same layout.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            bail!("out of memory");
        }
        // SAFETY: `ptr` points to `len` writable bytes we own.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }.fill(0x5a);
        Ok(Aligned { ptr, layout })
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

fn check(res: i32, what: &str) -> Result<()> {
    if res < 0 {
        bail!("{what}: {}", std::io::Error::from_raw_os_error(-res));
    }
    Ok(())
}

pub fn run(a: DiskBench) -> Result<()> {
    std::fs::create_dir_all(&a.data_dir)?;
    let path = a.data_dir.join(".strata-bench-disk");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .with_context(|| format!("O_DIRECT open in {}", a.data_dir.display()))?;
    let result = measure(&a, &file);
    let _ = std::fs::remove_file(&path);
    let (seq_mb_s, lat) = result?;
    let us = |q: f64| lat.value_at_quantile(q) as f64;
    if a.json {
        println!(
            "{}",
            serde_json::json!({"seq_write_mb_per_sec": seq_mb_s, "sync_4k_us": {"p50": us(0.5), "p90": us(0.9), "p99": us(0.99), "p999": us(0.999), "max": lat.max()}, "syncs": lat.len()})
        );
    } else {
        println!(
            "sequential 1 MiB O_DIRECT writes (io_uring, depth {}): {seq_mb_s:.0} MB/s",
            a.queue_depth
        );
        println!(
            "4 KiB write + fdatasync: p50 {:.0} us, p90 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, max {} us ({} samples)",
            us(0.5), us(0.9), us(0.99), us(0.999), lat.max(), lat.len()
        );
    }
    Ok(())
}

fn measure(a: &DiskBench, file: &std::fs::File) -> Result<(f64, Histogram<u64>)> {
    let fd = types::Fd(file.as_raw_fd());
    let depth = a.queue_depth.clamp(1, 64);
    let mut ring = IoUring::new(depth.max(2) * 2).context("io_uring")?;
    let blocks = (a.file_mib.max(1) * (1 << 20) / SEQ_BLOCK as u64).max(1);
    let bufs: Vec<Aligned> = (0..depth)
        .map(|_| Aligned::new(SEQ_BLOCK))
        .collect::<Result<_>>()?;

    // Sequential writes, `depth` in flight, wrapping around the file.
    let deadline = Duration::from_secs(a.seconds.max(1));
    let start = Instant::now();
    let (mut next, mut inflight, mut done) = (0u64, 0u32, 0u64);
    while start.elapsed() < deadline || inflight > 0 {
        while inflight < depth && start.elapsed() < deadline {
            let buf = &bufs[(next % depth as u64) as usize];
            let e = opcode::Write::new(fd, buf.ptr, SEQ_BLOCK as u32)
                .offset((next % blocks) * SEQ_BLOCK as u64)
                .build()
                .user_data(next);
            // SAFETY: the buffer outlives the operation (we wait for every completion below).
            unsafe { ring.submission().push(&e) }
                .map_err(|_| anyhow::anyhow!("submission queue full"))?;
            next += 1;
            inflight += 1;
        }
        ring.submit_and_wait(1)?;
        for cqe in ring.completion() {
            check(cqe.result(), "write")?;
            inflight -= 1;
            done += 1;
        }
    }
    let seq = done as f64 * SEQ_BLOCK as f64 / start.elapsed().as_secs_f64() / 1e6;
    // SAFETY: fsync(2) on an fd we own.
    unsafe { libc::fsync(file.as_raw_fd()) };

    // 4 KiB write, then fdatasync, one at a time: the latency an acknowledged produce pays.
    let mut lat = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let small = Aligned::new(SYNC_BLOCK)?;
    let start = Instant::now();
    let mut i = 0u64;
    while start.elapsed() < deadline {
        let t = Instant::now();
        let w = opcode::Write::new(fd, small.ptr, SYNC_BLOCK as u32)
            .offset((i % 16384) * SYNC_BLOCK as u64)
            .build();
        // SAFETY: `small` outlives the operation; we wait for its completion.
        unsafe { ring.submission().push(&w) }
            .map_err(|_| anyhow::anyhow!("submission queue full"))?;
        ring.submit_and_wait(1)?;
        for cqe in ring.completion() {
            check(cqe.result(), "write")?;
        }
        let s = opcode::Fsync::new(fd)
            .flags(types::FsyncFlags::DATASYNC)
            .build();
        // SAFETY: no buffer involved.
        unsafe { ring.submission().push(&s) }
            .map_err(|_| anyhow::anyhow!("submission queue full"))?;
        ring.submit_and_wait(1)?;
        for cqe in ring.completion() {
            check(cqe.result(), "fdatasync")?;
        }
        lat.record(t.elapsed().as_micros().max(1) as u64)?;
        i += 1;
    }
    Ok((seq, lat))
}
