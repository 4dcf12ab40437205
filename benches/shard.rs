//! Cross-core forwarding: the round trip of a call from core 0 to a partition owned by core 1
//! over glommio's channel mesh (a ListOffsets "latest", so the storage work is negligible).

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use glommio::{LocalExecutorBuilder, Placement};
use strata::cluster::Catalog;
use strata::shard::calls::ListOffset;
use strata::shard::{self, owner_of, OffsetQuery, Shard, ShardSettings, TopicPartition};
use strata::storage::LogConfig;

/// Idle polling of the executors, as `--idle-spin-us` sets it: the broker's default, and a
/// setting for cores Strata has to itself.
const IDLE_SPINS_US: [u64; 2] = [0, 100];
/// Tail cache per core: the round trip reads nothing, so any budget does.
const CACHE_BYTES: usize = 64 << 20;

fn cross_core(c: &mut Criterion) {
    for spin in IDLE_SPINS_US {
        round_trip(c, spin);
    }
}

fn round_trip(c: &mut Criterion, idle_spin_us: u64) {
    let dir = tempfile::tempdir_in("target").expect("tempdir");
    let mut catalog = Catalog::load(dir.path(), LogConfig::default()).expect("catalog");
    catalog.create_topic("t", 16, vec![]).expect("topic");
    let catalog = Arc::new(catalog);
    // A partition that core 1 owns.
    let remote = (0..16)
        .map(|p| TopicPartition {
            topic: "t".into(),
            partition: p,
        })
        .find(|tp| owner_of(tp, 2) == 1)
        .expect("some partition on core 1");
    let mesh = shard::mesh(2);
    let (runs_tx, runs_rx) = mpsc::channel::<u64>();
    let (took_tx, took_rx) = mpsc::channel::<Duration>();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (mut runs_rx, mut stop_rx) = (Some(runs_rx), Some(stop_rx));
    let mut handles = Vec::new();
    for core in 0..2usize {
        let (catalog, mesh, data) = (catalog.clone(), mesh.clone(), dir.path().to_path_buf());
        let remote = remote.clone();
        // Core 0 drives the calls; core 1 owns the partition and answers.
        let runs_rx = if core == 0 { runs_rx.take() } else { None };
        let stop = if core == 1 { stop_rx.take() } else { None };
        let took_tx = took_tx.clone();
        handles.push(
            LocalExecutorBuilder::new(Placement::Fixed(core))
                .spin_before_park(Duration::from_micros(idle_spin_us))
                .spawn(move || async move {
                    let settings = ShardSettings {
                        data_dir: data,
                        groups: Default::default(),
                        cache_bytes: CACHE_BYTES,
                        replication: None,
                    };
                    let shard = Shard::start(core, 2, catalog, settings, mesh)
                        .await
                        .expect("shard");
                    if let Some(runs) = runs_rx {
                        while let Ok(n) = runs.recv() {
                            let start = Instant::now();
                            for _ in 0..n {
                                let _ = std::hint::black_box(
                                    shard
                                        .run(ListOffset {
                                            tp: remote.clone(),
                                            query: OffsetQuery::Latest,
                                            epoch: -1,
                                        })
                                        .await,
                                );
                            }
                            took_tx.send(start.elapsed()).expect("report");
                        }
                    }
                    if let Some(stop) = stop {
                        // Serve calls until the benchmark is over.
                        while stop.try_recv().is_err() {
                            glommio::timer::sleep(Duration::from_millis(5)).await;
                        }
                    }
                })
                .expect("executor"),
        );
    }
    let name = format!("cross_core_call_round_trip/idle_spin_{idle_spin_us}us");
    c.bench_function(&name, |b| {
        b.iter_custom(|iters| {
            runs_tx.send(iters).expect("run");
            took_rx.recv().expect("took")
        })
    });
    drop(runs_tx);
    let _ = stop_tx.send(());
    for h in handles {
        let _ = h.join();
    }
}

criterion_group!(benches, cross_core);
criterion_main!(benches);
