//! The cleaner (log compaction) through the partition, against a model: for every key the
//! log keeps its latest value, offsets only increase and never change, nothing in the active
//! segment is touched, tombstones stay `delete.retention.ms` (injected clock), keyless records
//! are refused at produce time; crash-safe swaps (a failpoint after each step, then a reopen
//! as after a crash); logs larger than the key map are cleaned in passes.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use strata::partition::Partition;
use strata::storage::batch::build_batch_nullable;
use strata::storage::compact::swap::ALL_STEPS;
use strata::storage::compact::{KeyMap, KEY_MAP_ENTRY_BYTES};
use strata::storage::{Clock, LogConfig, ManualClock, PartitionLog};

type Model = BTreeMap<Vec<u8>, Option<Vec<u8>>>;
/// A record read back: offset, key, value (`None`: a tombstone).
type Read = (i64, Vec<u8>, Option<Vec<u8>>);

fn compact_config() -> LogConfig {
    let mut c = LogConfig::default();
    c.set("cleanup.policy", "compact").expect("policy");
    c.set("segment.bytes", "4096").expect("segment.bytes");
    c
}

async fn open_p(dir: &Path, config: LogConfig, clock: Rc<dyn Clock>) -> Rc<Partition> {
    let (log, _) = PartitionLog::open(dir, config, clock).await.expect("open");
    Partition::open(log).await.expect("partition")
}

/// Every record readable, in order: (offset, key, value).
async fn read_log(p: &Partition) -> Vec<Read> {
    let mut out = Vec::new();
    let mut scan = p.scan(p.log_start());
    while let Some(b) = scan.next().await.expect("scan") {
        let mut buf = b.clone();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).expect("decodes");
        for r in set.records {
            out.push((
                r.offset,
                r.key.map(|k| k.to_vec()).unwrap_or_default(),
                r.value.map(|v| v.to_vec()),
            ));
        }
    }
    out
}

/// Checks the log against the model: each key's latest record is the model's (a tombstone
/// may be gone once expired), no key the model lacks, offsets strictly increasing.
async fn check(p: &Partition, model: &Model, tombstones_may_be_gone: bool) -> usize {
    check_with(p, model, &|_| tombstones_may_be_gone).await
}

/// [`check`], where `may_be_gone` says which keys' tombstones may have been removed.
async fn check_with(p: &Partition, model: &Model, may_be_gone: &dyn Fn(&[u8]) -> bool) -> usize {
    let recs = read_log(p).await;
    let mut latest: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    let mut last = -1;
    for (o, k, v) in &recs {
        assert!(*o > last, "offsets increase: {o} after {last}");
        last = *o;
        latest.insert(k.clone(), v.clone());
    }
    for (k, v) in model {
        match (v, latest.get(k)) {
            (Some(v), Some(Some(got))) => assert_eq!(got, v, "key {k:?}"),
            (None, Some(None)) => {}
            (None, None) if may_be_gone(k) => {}
            (want, got) => panic!("key {k:?}: want {want:?}, log has {got:?}"),
        }
    }
    assert!(
        latest.keys().all(|k| model.contains_key(k)),
        "no unknown key"
    );
    recs.len()
}

async fn produce(
    p: &Rc<Partition>,
    model: &mut Model,
    ts: i64,
    batch: &[(Vec<u8>, Option<Vec<u8>>)],
) {
    let recs: Vec<strata::storage::batch::NullableRecord> = batch
        .iter()
        .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
        .collect();
    p.produce(Bytes::from(build_batch_nullable(0, ts, &recs)))
        .await
        .expect("produce");
    for (k, v) in batch {
        model.insert(k.clone(), v.clone());
    }
}

fn value(i: usize) -> Vec<u8> {
    format!("value-{i}-{}", "v".repeat(40)).into_bytes()
}

/// `n` updates of `keys` keys, 5 records a batch.
async fn fill(p: &Rc<Partition>, model: &mut Model, n: usize, keys: usize, ts: i64) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(5) {
        let batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = chunk
            .iter()
            .map(|&i| (format!("key-{}", i % keys).into_bytes(), Some(value(i))))
            .collect();
        produce(p, model, ts, &batch).await;
    }
}

/// Keys written once, at the start: their only record sits in the oldest segments.
async fn singles(p: &Rc<Partition>, model: &mut Model, n: usize) {
    for i in 0..n {
        produce(
            p,
            model,
            0,
            &[(format!("single-{i}").into_bytes(), Some(value(i)))],
        )
        .await;
    }
}

fn big_map() -> KeyMap {
    KeyMap::with_budget(1 << 20)
}

#[test]
fn cleaning_keeps_the_latest_value_of_every_key_and_removes_the_rest() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock: Rc<dyn Clock> = Rc::new(ManualClock::new(1_000_000));
        let p = open_p(dir.path(), compact_config(), clock.clone()).await;
        let mut model = Model::new();
        singles(&p, &mut model, 10).await;
        fill(&p, &mut model, 400, 10, 1_000_000).await;
        let (end, before) = (p.stats().log_end, p.stats().size_bytes);
        let active = p.stats().segments;
        assert!(active > 5);
        let n_before = check(&p, &model, false).await;
        let report = p
            .clean(&mut big_map(), false, None)
            .await
            .expect("clean")
            .expect("a fully dirty log is due");
        assert!(
            report.segments_rewritten > 0 && report.records_removed > 300,
            "{report:?}"
        );
        let n_after = check(&p, &model, false).await;
        assert!(
            n_after < n_before / 4,
            "{n_after} of {n_before} records left"
        );
        assert!(p.stats().size_bytes < before / 2);
        assert_eq!(p.stats().log_end, end, "offsets never change");
        // Nothing new is dirty: a second call has nothing to do.
        assert!(p
            .clean(&mut big_map(), false, None)
            .await
            .expect("clean")
            .is_none());
        p.close().await.expect("close");
        drop(p);
        let p = open_p(dir.path(), compact_config(), clock).await;
        assert_eq!(
            p.cleaner_state().dirty_ratio,
            0.0,
            "the dirty point survives a restart"
        );
        assert!(p
            .clean(&mut big_map(), false, None)
            .await
            .expect("clean")
            .is_none());
        assert_eq!(check(&p, &model, false).await, n_after, "after a reopen");
        assert_eq!(p.stats().log_end, end);
        // The log goes on where it was.
        fill(&p, &mut model, 20, 3, 1_000_000).await;
        assert_eq!(p.stats().log_end, end + 20);
        check(&p, &model, false).await;
    });
}

#[test]
fn a_delete_topic_is_never_compacted_and_keyless_records_are_refused_on_compact_topics() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock: Rc<dyn Clock> = Rc::new(ManualClock::new(0));
        let mut plain = compact_config();
        plain.set("cleanup.policy", "delete").expect("policy");
        let p = open_p(&dir.path().join("plain"), plain, clock.clone()).await;
        let mut model = Model::new();
        fill(&p, &mut model, 100, 3, 0).await;
        assert!(p
            .clean(&mut big_map(), true, None)
            .await
            .expect("clean")
            .is_none());
        // Keyless: accepted on a delete topic, refused (INVALID_RECORD) on a compacted one.
        let keyless = Bytes::from(build_batch_nullable(0, 0, &[(None, Some(b"v"))]));
        p.produce(keyless.clone())
            .await
            .expect("plain topics take keyless records");
        let c = open_p(&dir.path().join("compact"), compact_config(), clock).await;
        let err = c.produce(keyless).await.expect_err("refused");
        assert!(
            matches!(
                err,
                strata::partition::PartitionError::Storage(
                    strata::storage::StorageError::InvalidRecord(_)
                )
            ),
            "{err:?}"
        );
        assert_eq!(c.stats().log_end, 0);
    });
}

#[test]
fn tombstones_stay_delete_retention_ms_then_go() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(10_000);
        let mut config = compact_config();
        config.set("delete.retention.ms", "5000").expect("config");
        let p = open_p(dir.path(), config, Rc::new(clock.clone())).await;
        let mut model = Model::new();
        fill(&p, &mut model, 100, 10, 10_000).await;
        for k in 5..10 {
            produce(
                &p,
                &mut model,
                10_000,
                &[(format!("key-{k}").into_bytes(), None)],
            )
            .await;
        }
        fill(&p, &mut model, 200, 3, 10_000).await; // pushes the tombstones out of the active segment
        p.clean(&mut big_map(), true, None).await.expect("clean");
        let tombstones = |recs: &[Read]| recs.iter().filter(|r| r.2.is_none()).count();
        assert_eq!(
            tombstones(&read_log(&p).await),
            5,
            "kept within delete.retention.ms"
        );
        check(&p, &model, false).await;
        clock.advance(6_000);
        fill(&p, &mut model, 100, 3, 16_000).await; // something dirty again
        p.clean(&mut big_map(), true, None).await.expect("clean");
        assert_eq!(
            tombstones(&read_log(&p).await),
            0,
            "gone after delete.retention.ms"
        );
        check(&p, &model, true).await;
        let recs = read_log(&p).await;
        assert!(
            recs.iter().all(|r| r.1 != b"key-7"),
            "a deleted key stays deleted"
        );
    });
}

#[test]
fn min_compaction_lag_keeps_young_segments() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(100_000);
        let mut config = compact_config();
        config
            .set("min.compaction.lag.ms", "50000")
            .expect("config");
        let p = open_p(dir.path(), config, Rc::new(clock.clone())).await;
        let mut model = Model::new();
        fill(&p, &mut model, 300, 5, 99_000).await;
        let n = read_log(&p).await.len();
        let r = p.clean(&mut big_map(), true, None).await.expect("clean");
        assert!(r.as_ref().is_none_or(|r| r.records_removed == 0), "{r:?}");
        assert_eq!(
            read_log(&p).await.len(),
            n,
            "nothing younger than the lag was touched"
        );
        clock.advance(60_000);
        let r = p
            .clean(&mut big_map(), true, None)
            .await
            .expect("clean")
            .expect("due");
        assert!(r.records_removed > 0);
        check(&p, &model, false).await;
    });
}

#[test]
fn a_log_larger_than_the_key_map_is_cleaned_in_passes() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = open_p(dir.path(), compact_config(), Rc::new(ManualClock::new(0))).await;
        let mut model = Model::new();
        fill(&p, &mut model, 600, 60, 0).await;
        let mut map = KeyMap::with_budget(20 * KEY_MAP_ENTRY_BYTES);
        let mut passes = 0;
        let mut dirty_points = Vec::new();
        while let Some(r) = p.clean(&mut map, true, None).await.expect("clean") {
            passes += 1;
            dirty_points.push(r.cleaned_upto);
            check(&p, &model, false).await;
            assert!(passes < 100, "passes make progress: {dirty_points:?}");
            if p.cleaner_state().dirty_ratio == 0.0 {
                break;
            }
        }
        assert!(passes >= 3, "{passes} passes: {dirty_points:?}");
        assert!(dirty_points.windows(2).all(|w| w[1] > w[0]));
        // Every key's older records are gone once every pass is done.
        let n = read_log(&p).await.len();
        assert!(n < 300, "{n} records left of 600");
    });
}

#[test]
fn a_crash_at_any_step_of_a_swap_loses_nothing() {
    for step in ALL_STEPS {
        run(async move {
            let dir = tempfile::tempdir().expect("tempdir");
            let clock: Rc<dyn Clock> = Rc::new(ManualClock::new(0));
            let p = open_p(dir.path(), compact_config(), clock.clone()).await;
            let mut model = Model::new();
            singles(&p, &mut model, 10).await;
            fill(&p, &mut model, 300, 7, 0).await;
            let end = p.stats().log_end;
            let err = p.clean(&mut big_map(), true, Some(step)).await;
            assert!(err.is_err(), "the failpoint after {step:?} stops the clean");
            drop(p); // a crash: no close, no snapshot
            let p = open_p(dir.path(), compact_config(), clock.clone()).await;
            check(&p, &model, false).await;
            assert_eq!(p.stats().log_end, end, "after a crash at {step:?}");
            assert_eq!(p.stats().log_start, 0, "after a crash at {step:?}");
            assert_no_unfinished_swap(dir.path());
            // Cleaning again finishes the job.
            p.clean(&mut big_map(), true, None).await.expect("clean");
            check(&p, &model, false).await;
            drop(p);
            let p = open_p(dir.path(), compact_config(), clock).await;
            check(&p, &model, false).await;
            assert_eq!(p.stats().log_end, end);
        });
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u16),
    Delete(u8),
    Clean,
    Reopen,
    /// The clock moves this many ms (tombstones' horizons pass).
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..12, any::<u16>()).prop_map(|(k, v)| Op::Put(k, v)),
        1 => (0u8..12).prop_map(Op::Delete),
        1 => Just(Op::Clean),
        1 => Just(Op::Reopen),
        1 => (0u16..3000).prop_map(Op::Advance),
    ]
}

/// `delete.retention.ms` of the property test.
const PROP_DELETE_RETENTION_MS: i64 = 2000;

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn the_cleaned_log_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..160)) {
        run(async move {
            let dir = tempfile::tempdir().expect("tempdir");
            let manual = ManualClock::new(0);
            let clock: Rc<dyn Clock> = Rc::new(manual.clone());
            let mut config = compact_config();
            config.set("segment.bytes", "4096").expect("segment.bytes");
            config
                .set("delete.retention.ms", &PROP_DELETE_RETENTION_MS.to_string())
                .expect("delete.retention.ms");
            let mut p = open_p(dir.path(), config.clone(), clock.clone()).await;
            let mut model = Model::new();
            // When each key was last deleted: its tombstone may not go before the retention.
            let mut deleted_at: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
            // Small map: several passes.
            let mut map = KeyMap::with_budget(5 * KEY_MAP_ENTRY_BYTES);
            for op in ops {
                match op {
                    Op::Put(k, v) => {
                        let val = format!("{v}-{}", "p".repeat(v as usize % 300)).into_bytes();
                        produce(&p, &mut model, 0, &[(vec![b'k', k], Some(val))]).await;
                    }
                    Op::Delete(k) => {
                        produce(&p, &mut model, 0, &[(vec![b'k', k], None)]).await;
                        deleted_at.insert(vec![b'k', k], manual.now_ms());
                    }
                    Op::Advance(ms) => manual.advance(ms as i64),
                    Op::Clean => {
                        let before = p.stats().log_end;
                        p.clean(&mut map, true, None).await.expect("clean");
                        assert_eq!(p.stats().log_end, before);
                    }
                    Op::Reopen => {
                        p.close().await.expect("close");
                        drop(p);
                        p = open_p(dir.path(), config.clone(), clock.clone()).await;
                    }
                }
                let now = manual.now_ms();
                check_with(&p, &model, &|k| {
                    deleted_at
                        .get(k)
                        .is_some_and(|t| now - t >= PROP_DELETE_RETENTION_MS)
                })
                .await;
            }
        });
    }
}

/// A batch encoded by a third-party encoder (the kafka-protocol crate) in `codec`.
fn encoded_batch(
    codec: kafka_protocol::records::Compression,
    first: i64,
    recs: &[(Vec<u8>, Option<Vec<u8>>)],
) -> Bytes {
    use kafka_protocol::records::*;
    let records: Vec<Record> = recs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: first + i as i64,
            sequence: -1,
            timestamp: 0,
            key: Some(Bytes::from(k.clone())),
            value: v.clone().map(Bytes::from),
            headers: [(
                kafka_protocol::protocol::StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"header")),
            )]
            .into_iter()
            .collect(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: codec,
        },
    )
    .expect("encode");
    buf.freeze()
}

#[test]
fn compressed_batches_are_cleaned_and_keep_their_codec() {
    use kafka_protocol::records::Compression;
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        run(async move {
            let dir = tempfile::tempdir().expect("tempdir");
            let p = open_p(dir.path(), compact_config(), Rc::new(ManualClock::new(0))).await;
            let mut model = Model::new();
            for round in 0..40usize {
                let batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..8)
                    .map(|i| {
                        let key = format!("key-{}", (round * 8 + i) % 12).into_bytes();
                        let val = (i != 3)
                            .then(|| format!("{round}-{i}-{}", "z".repeat(100)).into_bytes());
                        (key, val)
                    })
                    .collect();
                let first = p.stats().log_end;
                p.produce(encoded_batch(codec, first, &batch))
                    .await
                    .expect("produce");
                for (k, v) in batch {
                    model.insert(k, v);
                }
            }
            let before = read_log(&p).await.len();
            let r = p
                .clean(&mut big_map(), true, None)
                .await
                .expect("clean")
                .expect("due");
            assert!(r.records_removed > 0, "{codec:?}: {r:?}");
            let after = check(&p, &model, false).await;
            assert!(after < before, "{codec:?}: {after} of {before}");
            // Every batch keeps its codec, and records keep their headers.
            let mut scan = p.scan(0);
            while let Some(b) = scan.next().await.expect("scan") {
                let h = strata::storage::batch::BatchHeader::parse(&b).expect("header");
                assert_eq!(h.compression(), codec as i16, "{codec:?}");
                let mut buf = b.clone();
                let set =
                    kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).expect("decodes");
                assert!(set.records.iter().all(|r| r.headers.len() == 1));
            }
        });
    }
}

/// The cleaner's throughput (not run by default): `cargo test --release --test storage_compact
/// cleaner_throughput -- --ignored --nocapture`; `STRATA_CLEAN_MB` sets the log size.
#[test]
#[ignore]
fn cleaner_throughput() {
    run(async {
        let mb: usize = std::env::var("STRATA_CLEAN_MB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256);
        let dir = tempfile::tempdir_in(".").expect("tempdir");
        let mut config = compact_config();
        config
            .set("segment.bytes", &(8 << 20).to_string())
            .expect("segment.bytes");
        config.set("flush.messages", "1000000").expect("flush");
        let p = open_p(dir.path(), config, Rc::new(ManualClock::new(0))).await;
        let value = vec![b'x'; 1000];
        let batches = mb * 1024 / 100; // 100 records of ~1 KiB per batch
        for b in 0..batches {
            let keys: Vec<Vec<u8>> = (0..100)
                .map(|i| format!("key-{}", (b * 100 + i) % 5_000).into_bytes())
                .collect();
            let recs: Vec<strata::storage::batch::NullableRecord> = keys
                .iter()
                .map(|k| (Some(k.as_slice()), Some(value.as_slice())))
                .collect();
            let info = p
                .append(
                    Bytes::from(build_batch_nullable(0, 0, &recs)),
                    strata::partition::Acks::All,
                )
                .await
                .expect("append");
            p.commit(&info).await.expect("commit");
        }
        p.close().await.expect("close");
        drop(p);
        let mut config = compact_config();
        config
            .set("segment.bytes", &(8 << 20).to_string())
            .expect("segment.bytes");
        let p = open_p(dir.path(), config, Rc::new(ManualClock::new(0))).await;
        let size = p.stats().size_bytes;
        let mut map = KeyMap::with_budget(strata::limits::CLEANER_KEY_MAP_BYTES_PER_CORE);
        // A task beside the cleaner that wants the core every 100 µs: how late it gets to run
        // is how long the cleaner held the core at once.
        let done = Rc::new(std::cell::Cell::new(false));
        let probe = {
            let done = done.clone();
            glommio::spawn_local(async move {
                let (mut worst, mut late_1ms, mut wakeups) = (0u128, 0u64, 0u64);
                while !done.get() {
                    let t = std::time::Instant::now();
                    glommio::timer::sleep(std::time::Duration::from_micros(100)).await;
                    let late = t.elapsed().as_micros().saturating_sub(100);
                    worst = worst.max(late);
                    late_1ms += u64::from(late > 1000);
                    wakeups += 1;
                }
                (worst, late_1ms, wakeups)
            })
        };
        // The probe alone first: the timer's own lateness on this machine.
        let idle = std::time::Instant::now();
        let (mut idle_worst, mut idle_late, mut idle_wakeups) = (0u128, 0u64, 0u64);
        while idle.elapsed() < std::time::Duration::from_millis(1000) {
            let t = std::time::Instant::now();
            glommio::timer::sleep(std::time::Duration::from_micros(100)).await;
            let late = t.elapsed().as_micros().saturating_sub(100);
            idle_worst = idle_worst.max(late);
            idle_late += u64::from(late > 1000);
            idle_wakeups += 1;
        }
        println!("alone, the probe's timer was at most {idle_worst} µs late; {idle_late} of {idle_wakeups} wakeups more than 1 ms late");
        let t = std::time::Instant::now();
        let mut report = None;
        while let Some(r) = p.clean(&mut map, true, None).await.expect("clean") {
            report = Some(r);
            if p.cleaner_state().dirty_ratio == 0.0 {
                break;
            }
        }
        let secs = t.elapsed().as_secs_f64();
        done.set(true);
        let (worst, late_1ms, wakeups) = probe.await;
        println!(
            "cleaned a {:.0} MiB log in {secs:.2} s: {:.0} MB/s of log; now {:.0} MiB; last pass {report:?}",
            size as f64 / (1 << 20) as f64,
            size as f64 / 1e6 / secs,
            p.stats().size_bytes as f64 / (1 << 20) as f64
        );
        println!(
            "a task beside it waited at most {worst} µs past its 100 µs timer; {late_1ms} of {wakeups} wakeups more than 1 ms late"
        );
    });
}

#[test]
fn compact_delete_applies_both_delete_records_and_cleaning() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock: Rc<dyn Clock> = Rc::new(ManualClock::new(0));
        let mut config = compact_config();
        config
            .set("cleanup.policy", "compact,delete")
            .expect("policy");
        let p = open_p(dir.path(), config.clone(), clock.clone()).await;
        let mut model = Model::new();
        fill(&p, &mut model, 300, 7, 0).await;
        // A log start inside a segment: that segment is cleaned from there.
        let bases = p.stats();
        let target = 63;
        assert!(bases.segments > 3);
        assert_eq!(
            p.delete_records(target).await.expect("delete records"),
            target
        );
        let r = p
            .clean(&mut big_map(), true, None)
            .await
            .expect("clean")
            .expect("due");
        assert!(r.records_removed > 0, "{r:?}");
        let recs = read_log(&p).await;
        assert!(
            recs.iter().all(|(o, _, _)| *o >= target - 5),
            "nothing from below the log start"
        );
        check(&p, &model, false).await;
        drop(p);
        let p = open_p(dir.path(), config, clock).await;
        assert_eq!(p.log_start(), target);
        check(&p, &model, false).await;
    });
}

#[test]
fn max_compaction_lag_forces_a_clean_below_the_dirty_ratio_and_rolls_the_active_segment() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(1_000_000);
        let mut config = compact_config();
        config
            .set("min.cleanable.dirty.ratio", "0.9")
            .expect("config");
        config
            .set("max.compaction.lag.ms", "60000")
            .expect("config");
        let p = open_p(dir.path(), config.clone(), Rc::new(clock.clone())).await;
        let mut model = Model::new();
        fill(&p, &mut model, 600, 600, 1_000_000).await; // every key once: all of it stays
        p.clean(&mut big_map(), true, None)
            .await
            .expect("clean")
            .expect("due");
        // A little dirt on a large clean log: far below the ratio.
        fill(&p, &mut model, 100, 10, clock.now_ms()).await;
        let ratio = p.cleaner_state().dirty_ratio;
        assert!(ratio > 0.0 && ratio < 0.9, "{ratio}");
        p.close().await.expect("close");
        drop(p);
        // Reopened: the sealed segments' first timestamps are read from the files.
        let p = open_p(dir.path(), config.clone(), Rc::new(clock.clone())).await;
        clock.advance(70_000);
        let mut cfg_none = config.clone();
        cfg_none
            .set("max.compaction.lag.ms", &i64::MAX.to_string())
            .expect("config");
        p.reconfigure(cfg_none);
        assert!(
            p.clean(&mut big_map(), false, None)
                .await
                .expect("clean")
                .is_none(),
            "without max.compaction.lag.ms the ratio decides"
        );
        p.reconfigure(config.clone());
        let r = p
            .clean(&mut big_map(), false, None)
            .await
            .expect("clean")
            .expect("a dirty segment older than max.compaction.lag.ms is cleaned");
        assert!(r.records_removed > 0, "{r:?}");
        check(&p, &model, false).await;
        // The active segment rolls once its first record is older than the lag, even far
        // below segment.bytes.
        produce(
            &p,
            &mut model,
            clock.now_ms(),
            &[(b"late".to_vec(), Some(value(1)))],
        )
        .await;
        let segments = p.stats().segments;
        clock.advance(30_000);
        produce(
            &p,
            &mut model,
            clock.now_ms(),
            &[(b"late".to_vec(), Some(value(2)))],
        )
        .await;
        assert_eq!(p.stats().segments, segments, "not yet");
        clock.advance(31_000);
        produce(
            &p,
            &mut model,
            clock.now_ms(),
            &[(b"late".to_vec(), Some(value(3)))],
        )
        .await;
        assert_eq!(
            p.stats().segments,
            segments + 1,
            "rolled at max.compaction.lag.ms"
        );
        check(&p, &model, false).await;
    });
}

/// KIP-534: the first clean that keeps a tombstone writes `now + delete.retention.ms` into its
/// batch; the tombstone goes at the first clean after that, however old its record or its
/// segment (the old rule, by the segment's newest timestamp, removed these at once).
#[test]
fn a_tombstone_lives_delete_retention_ms_from_the_clean_that_first_kept_it() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(1_000_000);
        let mut config = compact_config();
        config.set("delete.retention.ms", "5000").expect("config");
        let p = open_p(dir.path(), config.clone(), Rc::new(clock.clone())).await;
        let mut model = Model::new();
        fill(&p, &mut model, 100, 10, 0).await; // records from long ago
        for k in 5..9 {
            produce(
                &p,
                &mut model,
                0,
                &[(format!("key-{k}").into_bytes(), None)],
            )
            .await;
        }
        fill(&p, &mut model, 200, 3, 0).await; // other keys
        p.clean(&mut big_map(), true, None).await.expect("clean");
        let tombstones = |recs: &[Read]| recs.iter().filter(|r| r.2.is_none()).count();
        assert_eq!(
            tombstones(&read_log(&p).await),
            4,
            "kept by the first clean"
        );
        // Their batches carry the horizon; the records keep their timestamps.
        let mut stamped = 0;
        let mut scan = p.scan(0);
        while let Some(b) = scan.next().await.expect("scan") {
            let h = strata::storage::batch::BatchHeader::parse(&b).expect("header");
            let mut buf = b.clone();
            let set =
                kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).expect("decodes");
            let has_tombstone = set.records.iter().any(|r| r.value.is_none());
            if has_tombstone {
                assert_eq!(h.delete_horizon(), Some(1_005_000));
                assert!(set
                    .records
                    .iter()
                    .all(|r| r.timestamp == 0 && r.delete_horizon));
                stamped += 1;
            } else {
                assert_eq!(h.delete_horizon(), None, "no tombstone, no horizon");
            }
        }
        assert_eq!(stamped, 4);
        // The horizon is in the batch: it survives a restart.
        p.close().await.expect("close");
        drop(p);
        let p = open_p(dir.path(), config.clone(), Rc::new(clock.clone())).await;
        clock.advance(4_000);
        fill(&p, &mut model, 100, 3, 0).await;
        p.clean(&mut big_map(), true, None).await.expect("clean");
        assert_eq!(tombstones(&read_log(&p).await), 4, "before the horizon");
        check(&p, &model, false).await;
        clock.advance(1_000);
        fill(&p, &mut model, 100, 3, 0).await;
        p.clean(&mut big_map(), true, None).await.expect("clean");
        assert_eq!(tombstones(&read_log(&p).await), 0, "at the horizon");
        check(&p, &model, true).await;
    });
}

/// An idempotent batch from producer `pid` (epoch 0) starting at sequence `seq`.
fn idempotent(pid: i64, seq: i32, keys: &[&str]) -> Bytes {
    let values: Vec<Vec<u8>> = (0..keys.len()).map(|i| value(seq as usize + i)).collect();
    let recs: Vec<strata::storage::batch::NullableRecord> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_slice())))
        .collect();
    let mut b = build_batch_nullable(0, 0, &recs);
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&0i16.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = strata::storage::batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// Every stored batch of producer `pid`: (base offset, last offset, record count, base sequence).
async fn batches_of(p: &Partition, pid: i64) -> Vec<(i64, i64, i32, i32)> {
    let mut out = Vec::new();
    let mut scan = p.scan(p.log_start());
    while let Some(b) = scan.next().await.expect("scan") {
        let h = strata::storage::batch::check_frame(&b).expect("valid batch");
        if h.producer_id == pid {
            out.push((
                h.base_offset,
                h.last_offset(),
                h.record_count,
                h.base_sequence,
            ));
        }
    }
    out
}

/// Kafka's RETAIN_EMPTY: a batch emptied by the cleaner stays, as a header with no record,
/// when it holds its producer's last sequence, so that producer state rebuilt from the log
/// (here: the snapshot lost in a crash) still answers the producer's retry as a duplicate;
/// once the producer has written again, the old empty batch goes.
#[test]
fn a_producers_last_batch_stays_empty_so_a_retry_after_a_rebuild_is_a_duplicate() {
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock: Rc<dyn Clock> = Rc::new(ManualClock::new(0));
        let p = open_p(dir.path(), compact_config(), clock.clone()).await;
        let mut model = Model::new();
        p.produce(idempotent(42, 0, &["key-0", "key-1"]))
            .await
            .expect("produce");
        p.produce(idempotent(42, 2, &["key-2"]))
            .await
            .expect("produce");
        let last = p
            .produce(idempotent(42, 3, &["key-0", "key-1"]))
            .await
            .expect("produce");
        fill(&p, &mut model, 300, 3, 0).await; // every key of producer 42 written again
        p.clean(&mut big_map(), true, None).await.expect("clean");
        check(&p, &model, false).await;
        assert_eq!(
            batches_of(&p, 42).await,
            vec![(last.base_offset, last.last_offset, 0, 3)],
            "only the last batch, empty, with its offsets and sequence"
        );
        // A fetch there does not answer with the empty batch alone.
        let fetched = p.fetch(last.base_offset, 1 << 20, -1).await.expect("fetch");
        let counts: Vec<i32> = fetched
            .chunks
            .iter()
            .flat_map(|c| {
                strata::storage::batch::iter_batches(c)
                    .map(|(_, h)| h.record_count)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(
            counts.first() == Some(&0) && counts.iter().any(|n| *n > 0),
            "{counts:?}"
        );
        // A crash that loses the producer snapshot: state is rebuilt from the log.
        drop(p);
        std::fs::remove_file(
            dir.path()
                .join(strata::partition::producer_state::SNAPSHOT_FILE),
        )
        .expect("snapshot");
        let p = open_p(dir.path(), compact_config(), clock.clone()).await;
        let end = p.stats().log_end;
        let retry = p
            .produce(idempotent(42, 3, &["key-0", "key-1"]))
            .await
            .expect("a retry is answered");
        assert_eq!(
            (retry.base_offset, p.stats().log_end),
            (last.base_offset, end),
            "a duplicate: its original offset, nothing written"
        );
        assert!(
            p.produce(idempotent(42, 9, &["key-0"])).await.is_err(),
            "a gap is refused: the sequence is known"
        );
        let next = p
            .produce(idempotent(42, 5, &["key-0"]))
            .await
            .expect("the sequence goes on");
        fill(&p, &mut model, 300, 3, 0).await;
        p.clean(&mut big_map(), true, None).await.expect("clean");
        assert_eq!(
            batches_of(&p, 42).await,
            vec![(next.base_offset, next.last_offset, 0, 5)],
            "the older empty batch went"
        );
        check(&p, &model, false).await;
    });
}

/// A compressed batch whose records decompress beyond `limits::MAX_DECOMPRESSED_BATCH_BYTES`
/// is never decompressed by the broker: the cleaner keeps it whole (uncleaned: its keys count
/// for nothing, so nothing else is dropped for them) and cleans the rest; a compacted topic
/// refuses it at produce time (INVALID_RECORD).
#[test]
fn a_batch_beyond_the_decompression_bound_is_left_uncleaned_and_refused_by_compacted_topics() {
    use kafka_protocol::records::Compression;
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock: Rc<dyn Clock> = Rc::new(ManualClock::new(0));
        let mut plain = compact_config();
        plain.set("cleanup.policy", "delete").expect("policy");
        let p = open_p(dir.path(), plain, clock.clone()).await;
        let huge = vec![0u8; strata::limits::MAX_DECOMPRESSED_BATCH_BYTES + 1];
        let bomb = encoded_batch(Compression::Zstd, 0, &[(b"key-0".to_vec(), Some(huge))]);
        assert!(bomb.len() < 64 * 1024, "{} bytes compressed", bomb.len());
        let placed = p
            .produce(bomb.clone())
            .await
            .expect("a delete topic stores it as sent");
        let mut model = Model::new();
        fill(&p, &mut model, 300, 3, 0).await; // key-0..key-2 written again
        p.reconfigure(compact_config());
        let r = p
            .clean(&mut big_map(), true, None)
            .await
            .expect("the clean goes on")
            .expect("due");
        assert!(r.records_removed > 200, "{r:?}");
        check(&p, &model, false).await;
        let first = read_log(&p).await.into_iter().next().expect("records");
        assert_eq!(
            (first.0, first.1.as_slice()),
            (placed.base_offset, &b"key-0"[..]),
            "the batch beyond the bound is kept, though key-0 was written again"
        );
        let err = p.produce(bomb).await.expect_err("refused");
        assert!(
            matches!(
                err,
                strata::partition::PartitionError::Storage(
                    strata::storage::StorageError::InvalidRecord(_)
                )
            ),
            "{err:?}"
        );
    });
}

/// After a reopen, no `.cleaned` or `.swap` file is left: each was rolled back or forward.
fn assert_no_unfinished_swap(dir: &Path) {
    let leftovers: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The segment files (`.log`) in a partition's folder.
fn log_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .count()
}

/// A first clean leaves the old segments nearly empty; the next one merges consecutive
/// segments whose sizes add up to at most `segment.bytes` into one (Kafka's cleaner groups
/// segments the same way), through the same crash-safe swap: a crash after any step of a
/// merge's swap leaves the old segments or the merged one, every key's latest value readable.
#[test]
fn small_cleaned_segments_are_merged_and_a_crash_inside_a_merge_loses_nothing() {
    for step in std::iter::once(None).chain(ALL_STEPS.into_iter().map(Some)) {
        run(async move {
            let dir = tempfile::tempdir().expect("tempdir");
            let clock: Rc<dyn Clock> = Rc::new(ManualClock::new(0));
            let p = open_p(dir.path(), compact_config(), clock.clone()).await;
            let mut model = Model::new();
            singles(&p, &mut model, 3).await;
            fill(&p, &mut model, 400, 5, 0).await;
            p.clean(&mut big_map(), true, None)
                .await
                .expect("first clean");
            let small = p.stats().segments;
            assert!(small > 5, "{small} segments");
            fill(&p, &mut model, 40, 5, 0).await;
            let end = p.stats().log_end;
            let result = p.clean(&mut big_map(), true, step).await;
            let p = match step {
                None => {
                    let report = result.expect("clean").expect("forced");
                    assert!(report.segments_merged > 0, "{report:?}");
                    p
                }
                Some(step) => {
                    assert!(
                        result.is_err(),
                        "the failpoint after {step:?} stops the merge"
                    );
                    drop(p); // a crash: no close
                    let p = open_p(dir.path(), compact_config(), clock.clone()).await;
                    check(&p, &model, false).await;
                    assert_eq!(p.stats().log_end, end, "after a crash at {step:?}");
                    assert_no_unfinished_swap(dir.path());
                    p.clean(&mut big_map(), true, None)
                        .await
                        .expect("clean again");
                    p
                }
            };
            check(&p, &model, false).await;
            let merged = p.stats().segments;
            assert!(
                merged < small / 2,
                "{merged} segments after the merge, {small} before"
            );
            assert_eq!(
                log_files(dir.path()),
                merged,
                "the merged-away files are gone"
            );
            drop(p);
            let p = open_p(dir.path(), compact_config(), clock).await;
            check(&p, &model, false).await;
            assert_eq!(p.stats().segments, merged, "after a reopen");
            assert_eq!(p.stats().log_end, end);
            // The log goes on where it was.
            fill(&p, &mut model, 20, 3, 0).await;
            assert_eq!(p.stats().log_end, end + 20);
            check(&p, &model, false).await;
        });
    }
}

/// A read in flight on a segment's file while the cleaner swaps a merged copy in under the same
/// base offset (a consumer fetching while a pass runs, as after a broker restart): what it read
/// is the old file's bytes, and must never be served later as the new file's. Here the old
/// first segment is larger than the merged one that replaces it, so its bytes "cover" the new
/// file: taken for the new file's, a read of the offsets the merged-in segments brought finds
/// nothing there and goes on in the next segment, skipping them (a consumer misses their
/// records; the cleaner's next pass reads the merged segment the same way). Deterministic: the
/// read is polled once (its disk read submitted), the pass runs to its end, then the read ends.
#[test]
fn a_read_in_flight_across_a_merge_never_serves_the_replaced_file() {
    use strata::storage::CleanLimits;
    run(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock: Rc<dyn Clock> = Rc::new(ManualClock::new(0));
        let log = PartitionLog::open(dir.path(), compact_config(), clock.clone())
            .await
            .expect("open")
            .0;
        let mut model = Model::new();
        let put = |key: String, val: Vec<u8>| {
            build_batch_nullable(0, 0, &[(Some(key.as_bytes()), Some(val.as_slice()))])
        };
        let append = async |model: &mut Model, key: String, val: Vec<u8>| {
            log.append(&put(key.clone(), val.clone()))
                .await
                .expect("append");
            log.flush(log.log_end()).await.expect("flush");
            model.insert(key.into_bytes(), Some(val));
        };
        // The first segment: keys written once, updated later (the second pass empties it).
        for i in 0..25 {
            append(&mut model, format!("h-{i}"), value(i)).await;
        }
        // Then many segments of one key updated over and over, with a key written once in
        // each stretch (what the first pass leaves of them: small segments, merged next).
        for i in 0..400 {
            let key = if i % 30 == 0 {
                format!("s-{i}")
            } else {
                "f".to_string()
            };
            append(&mut model, key, value(i)).await;
        }
        let mut first_dirty = 0;
        let mut map = big_map();
        let mut pass = async |log: &PartitionLog, first_dirty: &mut i64| {
            let limits = CleanLimits {
                upto: log.flushed_offset().min(log.active_base()),
                first_dirty: *first_dirty,
                min_compaction_lag_ms: 0,
                delete_retention_ms: i64::MAX,
                last_batches: Default::default(),
            };
            let report = log.clean(&limits, &mut map, None).await.expect("clean");
            *first_dirty = report.cleaned_upto;
            report
        };
        let first = pass(&log, &mut first_dirty).await;
        assert!(first.segments_rewritten > 5, "{first:?}");
        let bases = log.segment_bases();
        assert_eq!(bases[0], 0);
        // The keys of the first segment updated: the second pass empties it and merges the
        // small ones after it into it.
        for i in 0..25 {
            append(&mut model, format!("h-{i}"), value(1000 + i)).await;
        }
        // The first segment's bytes out of the read-ahead: the read below goes to the disk.
        let hw = log.flushed_offset();
        for b in &bases[1..3] {
            log.read(*b, 1, hw).await.expect("read");
        }
        let mut in_flight = Box::pin(log.read(0, 1, hw));
        assert!(
            futures_lite::future::poll_once(&mut in_flight)
                .await
                .is_none(),
            "the read waits for the disk"
        );
        let second = pass(&log, &mut first_dirty).await;
        assert!(second.segments_merged > 0, "{second:?}");
        assert_eq!(
            log.segment_bases()[0],
            0,
            "the merged segment took the first base"
        );
        let old = in_flight.await.expect("the read in flight ends");
        assert!(!old.is_empty(), "it read the old file");
        check_records(&read_log_of(&log).await, &model, "after the merge");
        // The cleaner's next pass reads the merged segment too: nothing of it may go.
        append(&mut model, "f".to_string(), value(5000)).await;
        pass(&log, &mut first_dirty).await;
        check_records(&read_log_of(&log).await, &model, "after the next pass");
        drop(log);
        let (log, _) = PartitionLog::open(dir.path(), compact_config(), clock)
            .await
            .expect("reopen");
        check_records(&read_log_of(&log).await, &model, "after a reopen");
    });
}

/// Every record of `log` up to its flushed offset: (offset, key, value).
async fn read_log_of(log: &PartitionLog) -> Vec<Read> {
    let mut out = Vec::new();
    let mut scan = log.scan(log.log_start(), log.flushed_offset());
    while let Some(b) = scan.next().await.expect("scan") {
        let mut buf = b.clone();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).expect("decodes");
        for r in set.records {
            out.push((
                r.offset,
                r.key.map(|k| k.to_vec()).unwrap_or_default(),
                r.value.map(|v| v.to_vec()),
            ));
        }
    }
    out
}

/// Every key of the model has its latest value among `recs`, offsets strictly increase.
fn check_records(recs: &[Read], model: &Model, what: &str) {
    let mut latest: BTreeMap<&[u8], &Option<Vec<u8>>> = BTreeMap::new();
    let mut last = -1;
    for (o, k, v) in recs {
        assert!(*o > last, "{what}: offsets increase: {o} after {last}");
        last = *o;
        latest.insert(k, v);
    }
    for (k, v) in model {
        assert_eq!(
            latest.get(k.as_slice()).copied(),
            Some(v),
            "{what}: key {}",
            String::from_utf8_lossy(k)
        );
    }
}
