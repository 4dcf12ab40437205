//! Storage engine micro-benchmarks: batch validation (CRC-32C), index lookup, and
//! append + flush (fdatasync) through glommio direct I/O.
//!
//! Compare append throughput with `fio` on the same disk in the same run:
//! `benches/storage_vs_fio.sh` does both and prints the ratio.

use std::rc::Rc;
use std::time::{Duration, Instant};

/// The broker's allocator, so the benchmark sees the allocation costs the broker sees.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata::storage::batch::{build_batch, validate_batches};
use strata::storage::index::{Index, OffsetEntry};
use strata::storage::{LogConfig, PartitionLog, SystemClock};

/// One batch of `total` bytes made of `record`-byte records.
fn batch_of(total: usize, record: usize) -> Vec<u8> {
    let value = vec![0x42u8; record];
    let n = (total / (record + 8)).max(1);
    let recs: Vec<(Option<&[u8]>, &[u8])> = (0..n).map(|_| (None, value.as_slice())).collect();
    build_batch(0, 1_700_000_000_000, &recs)
}

fn validation(c: &mut Criterion) {
    let mut g = c.benchmark_group("validate_crc32c");
    for size in [16 * 1024, 1024 * 1024] {
        let b = batch_of(size, 1024);
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &b, |bench, b| {
            bench.iter(|| validate_batches(std::hint::black_box(b), 64 << 20).expect("valid"))
        });
    }
    g.finish();
}

fn index_lookup(c: &mut Criterion) {
    // A full 1 GiB segment at the default 4 KiB interval: 262,144 entries.
    let mut idx: Index<OffsetEntry> = Index::default();
    for i in 0..262_144u32 {
        idx.push(OffsetEntry {
            relative_offset: i * 40,
            position: i * 4096,
        });
    }
    idx.seal().expect("seal");
    let mut k = 0i64;
    c.bench_function("index_lookup_sealed_262k", |b| {
        b.iter(|| {
            k = (k + 7_919) % (262_144 * 40);
            std::hint::black_box(idx.floor(k))
        })
    });
}

fn bench_dir() -> tempfile::TempDir {
    // Benchmark on the disk the project lives on (not a tmpfs /tmp).
    let base = std::env::var("STRATA_BENCH_DIR").unwrap_or_else(|_| "target".into());
    std::fs::create_dir_all(&base).expect("bench dir");
    tempfile::tempdir_in(base).expect("tempdir")
}

/// Appends `batch` `iters` times from `writers` concurrent tasks, each syncing before its next
/// append when `sync_each` (concurrent syncs are shared: group commit); returns the elapsed time.
fn append_flush(batch: &[u8], iters: u64, sync_each: bool, writers: u64) -> Duration {
    let dir = bench_dir();
    let batch = batch.to_vec();
    glommio::LocalExecutorBuilder::default()
        .io_memory(64 << 20)
        .make()
        .expect("executor")
        .run(async move {
            let config = LogConfig {
                segment_bytes: 1 << 30,
                max_message_bytes: 4 << 20,
                ..Default::default()
            };
            let (log, _) = PartitionLog::open(dir.path(), config, Rc::new(SystemClock))
                .await
                .expect("open");
            let log = Rc::new(log);
            let batch = Rc::new(batch);
            let start = Instant::now();
            let tasks: Vec<_> = (0..writers)
                .map(|w| {
                    let (log, batch) = (log.clone(), batch.clone());
                    let n = iters / writers + u64::from(w < iters % writers);
                    glommio::spawn_local(async move {
                        for _ in 0..n {
                            let info = log.append(&batch).await.expect("append");
                            if sync_each {
                                log.flush(info.last_offset + 1).await.expect("flush");
                            } else if log.staged_bytes()
                                >= strata::limits::WRITE_BUFFER_BYTES as u64
                            {
                                log.write_out().await.expect("write out");
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await;
            }
            log.flush(log.log_end()).await.expect("flush");
            let t = start.elapsed();
            log.close().await.expect("close");
            t
        })
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_fdatasync");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for size in [4 * 1024, 16 * 1024, 1024 * 1024] {
        let b = batch_of(size, 1024.min(size / 2));
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &b, |bench, b| {
            bench.iter_custom(|iters| append_flush(b, iters, true, 1))
        });
    }
    g.finish();
    // Eight producers on one partition, each waiting for its own sync: group commit.
    let mut g = c.benchmark_group("append_fdatasync_8_writers");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for size in [16 * 1024, 1024 * 1024] {
        let b = batch_of(size, 1024);
        g.throughput(Throughput::Bytes(b.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &b, |bench, b| {
            bench.iter_custom(|iters| append_flush(b, iters, true, 8))
        });
    }
    g.finish();
    // The write path alone: 4 MiB DMA writes, one sync at the end.
    let mut g = c.benchmark_group("append_sync_at_end");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    let b = batch_of(1024 * 1024, 1024);
    g.throughput(Throughput::Bytes(b.len() as u64));
    g.bench_with_input(BenchmarkId::from_parameter(1024 * 1024), &b, |bench, b| {
        bench.iter_custom(|iters| append_flush(b, iters, false, 1))
    });
    g.finish();
}

criterion_group!(benches, validation, index_lookup, append);
criterion_main!(benches);
