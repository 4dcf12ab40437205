//! Storage engine behaviour through its public API: round trips over many segments,
//! recovery from corruption, rolls, retention and time lookups.

mod common;

use std::rc::Rc;

use common::*;
use strata::storage::{batch, LogConfig, ManualClock, RetentionLimits, StorageError};

#[test]
fn million_records_round_trip_over_many_segments_and_reopen_byte_identical() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut config = small_segments(1 << 20);
        config.flush.messages = 50_000; // sync in groups: the test is about content, not latency
        let log = open(dir.path(), config.clone()).await;
        let per_batch = 100u64;
        let mut expected_offset = 0i64;
        for b in 0..10_000u64 {
            let payload = numbered_batch("r", b * per_batch, per_batch, 1_000 + b as i64);
            let info = log.append(&payload).await.expect("append");
            assert_eq!(info.base_offset, expected_offset, "offsets are dense");
            assert_eq!(info.last_offset, expected_offset + per_batch as i64 - 1);
            expected_offset += per_batch as i64;
            if log.unflushed().0 >= 50_000 {
                log.flush(log.log_end()).await.expect("flush");
            }
        }
        log.flush(log.log_end()).await.expect("flush");
        assert_eq!(log.log_end(), 1_000_000);
        assert!(
            log.segment_count() > 10,
            "expected many segments, got {}",
            log.segment_count()
        );
        let before = read_all(&log, 0).await;
        log.close().await.expect("close");

        let log = open(dir.path(), config).await;
        assert_eq!(log.log_end(), 1_000_000);
        let after = read_all(&log, 0).await;
        assert_eq!(before.len(), after.len());
        assert!(before == after, "stored bytes changed across reopen");
        let vals = values(&after);
        assert_eq!(vals.len(), 1_000_000);
        for (i, (off, v)) in vals.iter().enumerate() {
            assert_eq!(*off, i as i64);
            assert_eq!(v, format!("r-{i}").as_bytes());
        }
        // A read from the middle starts at the batch holding the offset.
        let r = log
            .read(123_456, 1, log.flushed_offset())
            .await
            .expect("read");
        let h = batch::BatchHeader::parse(&r.batches()[0]).expect("header");
        assert!(h.base_offset <= 123_456 && 123_456 <= h.last_offset());
    });
}

/// Writes `n` batches of 10 records over small segments and closes the log.
async fn write_closed_log(dir: &std::path::Path, n: u64, config: &LogConfig) -> Vec<bytes::Bytes> {
    let log = open(dir, config.clone()).await;
    for b in 0..n {
        log.append(&numbered_batch("c", b * 10, 10, 5_000 + b as i64))
            .await
            .expect("append");
        log.flush(log.log_end()).await.expect("flush");
    }
    let all = read_all(&log, 0).await;
    log.close().await.expect("close");
    all
}

fn last_log_file(dir: &std::path::Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("a log file")
}

fn corrupt_and_reopen(
    mutate: impl Fn(&std::path::Path, &[bytes::Bytes]),
) -> (Vec<bytes::Bytes>, Vec<bytes::Bytes>, i64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_segments(8192);
    run(async {
        let before = write_closed_log(dir.path(), 60, &config).await;
        mutate(dir.path(), &before);
        let log = open(dir.path(), config.clone()).await;
        let after = read_all(&log, 0).await;
        let end = log.log_end();
        // The repaired log takes new appends at the cut.
        let info = log
            .append(&numbered_batch("n", 0, 3, 1))
            .await
            .expect("append after recovery");
        assert_eq!(info.base_offset, end);
        log.flush(log.log_end()).await.expect("flush");
        log.close().await.expect("close");
        let again = open(dir.path(), config).await;
        assert_eq!(again.log_end(), end + 3);
        (before, after, end)
    })
}

#[test]
fn flipped_byte_in_last_batch_is_cut_and_everything_before_survives() {
    let (before, after, end) = corrupt_and_reopen(|dir, _| {
        let p = last_log_file(dir);
        let mut b = std::fs::read(&p).expect("read");
        let n = b.len();
        b[n - 3] ^= 0x40;
        std::fs::write(&p, b).expect("write");
    });
    assert_eq!(after.len(), before.len() - 1);
    assert!(after[..] == before[..before.len() - 1]);
    assert_eq!(end, 590);
}

#[test]
fn truncation_mid_batch_is_cut_to_the_last_whole_batch() {
    let (before, after, end) = corrupt_and_reopen(|dir, _| {
        let p = last_log_file(dir);
        let len = std::fs::metadata(&p).expect("meta").len();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .expect("open");
        f.set_len(len - 20).expect("truncate");
    });
    assert_eq!(after.len(), before.len() - 1);
    assert_eq!(end, 590);
}

#[test]
fn appended_zeros_are_dropped_without_losing_data() {
    let (before, after, end) = corrupt_and_reopen(|dir, _| {
        let p = last_log_file(dir);
        let mut b = std::fs::read(&p).expect("read");
        b.extend(std::iter::repeat_n(0u8, 10_000));
        std::fs::write(&p, b).expect("write");
    });
    assert!(before == after);
    assert_eq!(end, 600);
}

#[test]
fn deleted_or_corrupt_index_is_rebuilt_identically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = small_segments(16 * 1024);
    config.index_interval_bytes = 512;
    run(async {
        let before = write_closed_log(dir.path(), 400, &config).await;
        let log = open(dir.path(), config.clone()).await;
        let indexes = log.index_entries();
        assert!(indexes.len() > 3);
        assert!(
            indexes.iter().any(|(_, o, t)| o.len() > 5 && !t.is_empty()),
            "indexes have entries"
        );
        log.close().await.expect("close");
        drop(log);
        let first = format!("{:020}", 0);
        std::fs::remove_file(dir.path().join(format!("{first}.index"))).expect("delete index");
        let second = indexes[1].0;
        let tp = dir.path().join(format!("{second:020}.timeindex"));
        let mut t = std::fs::read(&tp).expect("timeindex");
        t[0] ^= 0xff;
        std::fs::write(&tp, t).expect("write");

        let log = open(dir.path(), config.clone()).await;
        assert_eq!(
            log.index_entries(),
            indexes,
            "rebuilt indexes equal the originals"
        );
        assert!(
            std::fs::metadata(dir.path().join(format!("{first}.index"))).is_ok(),
            "index file rewritten"
        );
        let after = read_all(&log, 0).await;
        assert!(before == after);
        for probe in [0i64, 1, 9, 10, 777, 2_345, 3_999] {
            let r = log
                .read(probe, 1, log.flushed_offset())
                .await
                .expect("read");
            let h = batch::BatchHeader::parse(&r.batches()[0]).expect("header");
            assert!(h.base_offset <= probe && probe <= h.last_offset());
        }
    });
}

#[test]
fn rolls_by_size_and_by_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let clock = ManualClock::new(1_000_000);
        let mut config = small_segments(16 * 1024);
        config.segment_ms = 60_000;
        let log = open_with(dir.path(), config, Rc::new(clock.clone())).await;
        let payload = numbered_batch("s", 0, 10, 1);
        let one = payload.len() as u64;
        let per_segment = (16 * 1024) / one;
        for _ in 0..per_segment {
            log.append(&payload).await.expect("append");
        }
        assert_eq!(log.segment_count(), 1, "fits in one segment");
        log.append(&payload).await.expect("append");
        assert_eq!(log.segment_count(), 2, "size roll");
        clock.advance(59_999);
        log.append(&payload).await.expect("append");
        assert_eq!(log.segment_count(), 2);
        clock.advance(1);
        log.append(&payload).await.expect("append");
        assert_eq!(log.segment_count(), 3, "time roll once segment.ms passed");
        for w in log.segment_bases().windows(2) {
            assert!(w[0] < w[1]);
        }
    });
}

#[test]
fn retention_by_time_and_by_size_deletes_whole_old_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let day = 24 * 3600 * 1000i64;
        let clock = ManualClock::new(100 * day);
        let mut config = small_segments(1 << 20);
        config.retention_ms = 7 * day;
        config.segment_ms = day;
        let log = open_with(dir.path(), config.clone(), Rc::new(clock.clone())).await;
        // Ten days of data, 20 batches a day; segment.ms = 1 day makes one segment per day.
        for d in 0..10 {
            let ts = (90 + d) * day;
            clock.set(ts);
            for _ in 0..20 {
                log.append(&numbered_batch("t", 0, 10, ts))
                    .await
                    .expect("append");
            }
        }
        assert_eq!(log.segment_count(), 10);
        clock.set(100 * day);
        log.flush(log.log_end()).await.expect("flush");
        assert_eq!(log.log_start(), 0);
        let limits = |c: &LogConfig| RetentionLimits {
            ms: c.retention_ms,
            bytes: c.retention_bytes,
        };
        let removed = log
            .enforce_retention(limits(&config))
            .await
            .expect("retention");
        // now = day 100: days 90, 91, 92 are older than 7 days; day 93 is exactly 7 days old.
        assert_eq!(removed, 3, "segments older than retention.ms go");
        let start = log.log_start();
        assert_eq!(start, 600);
        assert_eq!(start, log.segment_bases()[0]);
        assert!(matches!(
            log.read(0, 100, log.flushed_offset()).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        assert_eq!(
            values(
                &log.read(start, 100, log.flushed_offset())
                    .await
                    .expect("read")
                    .batches()
            )[0]
            .0,
            600
        );

        // By size: keep at most three segments' bytes besides the active one.
        let seg_bytes = log.size_bytes() / 7;
        let mut c2 = config.clone();
        c2.retention_ms = -1;
        c2.retention_bytes = (3 * seg_bytes) as i64;
        log.set_config(c2.clone());
        assert_eq!(
            log.enforce_retention(limits(&c2)).await.expect("retention"),
            4
        );
        assert_eq!(log.segment_count(), 3);
        assert!(log.size_bytes() <= 3 * seg_bytes);
        let start = log.log_start();
        log.close().await.expect("close");
        let log = open_with(dir.path(), c2, Rc::new(clock.clone())).await;
        assert_eq!(log.log_start(), start, "log start offset persisted");
    });
}

#[test]
fn lookup_by_timestamp_finds_first_record_at_or_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut config = small_segments(8 * 1024);
        config.index_interval_bytes = 256;
        let log = open(dir.path(), config).await;
        // Batch b has timestamp 10_000 + 10*b.
        for b in 0..500u64 {
            log.append(&numbered_batch("ts", b * 5, 5, 10_000 + 10 * b as i64))
                .await
                .expect("append");
        }
        log.flush(log.log_end()).await.expect("flush");
        assert!(log.segment_count() > 3);
        for b in [0u64, 1, 77, 250, 499] {
            let ts = 10_000 + 10 * b as i64;
            assert_eq!(
                log.offset_for_timestamp(ts, log.flushed_offset())
                    .await
                    .expect("lookup"),
                Some(((b * 5) as i64, ts))
            );
            // Between two batches: the later batch.
            if b < 499 {
                assert_eq!(
                    log.offset_for_timestamp(ts + 1, log.flushed_offset())
                        .await
                        .expect("lookup"),
                    Some((((b + 1) * 5) as i64, ts + 10))
                );
            }
        }
        assert_eq!(
            log.offset_for_timestamp(0, log.flushed_offset())
                .await
                .expect("lookup"),
            Some((0, 10_000))
        );
        assert_eq!(
            log.offset_for_timestamp(99_999, log.flushed_offset())
                .await
                .expect("lookup"),
            None
        );
    });
}

#[test]
fn bad_batches_are_refused_whole_and_reads_out_of_range_are_typed() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let log = open(dir.path(), LogConfig::default()).await;
        let good = numbered_batch("g", 0, 2, 1);
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        let mut both = good.clone();
        both.extend_from_slice(&bad);
        assert!(matches!(
            log.append(&both).await,
            Err(StorageError::Corrupt(_))
        ));
        assert_eq!(log.log_end(), 0, "nothing of a half-bad request is written");
        let big = numbered_batch("x", 0, 1, 1);
        let c = LogConfig {
            max_message_bytes: (big.len() - 1) as u32,
            ..Default::default()
        };
        log.set_config(c);
        assert!(matches!(
            log.append(&big).await,
            Err(StorageError::TooLarge { .. })
        ));
        log.set_config(LogConfig::default());
        log.append(&good).await.expect("append");
        log.flush(2).await.expect("flush");
        assert!(matches!(
            log.read(3, 10, 2).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        assert!(matches!(
            log.read(-1, 10, 2).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        assert!(log.read(2, 10, 2).await.expect("at end").is_empty());
    });
}

#[test]
fn log_append_time_is_stamped_by_the_broker() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let clock = ManualClock::new(42_000);
        let c = LogConfig {
            timestamp_type: strata::storage::TimestampType::LogAppendTime,
            ..Default::default()
        };
        let log = open_with(dir.path(), c, Rc::new(clock)).await;
        let info = log
            .append(&numbered_batch("l", 0, 3, 7))
            .await
            .expect("append");
        assert_eq!(info.log_append_time, 42_000);
        log.flush(log.log_end()).await.expect("flush");
        let b = read_all(&log, 0).await;
        let h = batch::check_frame(&b[0]).expect("valid crc after stamping");
        assert_eq!(h.max_timestamp, 42_000);
    });
}

#[test]
fn concurrent_appenders_share_syncs() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let log = Rc::new(open(dir.path(), LogConfig::default()).await);
        let before = log.sync_count();
        let writers = 16u64;
        let per_writer = 20u64;
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let log = log.clone();
                glommio::spawn_local(async move {
                    for i in 0..per_writer {
                        let info = log
                            .append(&numbered_batch("g", w * 1000 + i, 1, 1))
                            .await
                            .expect("append");
                        log.flush(info.last_offset + 1).await.expect("flush");
                        assert!(
                            log.flushed_offset() > info.last_offset,
                            "acknowledged only once durable"
                        );
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        let syncs = log.sync_count() - before;
        let appends = writers * per_writer;
        assert_eq!(log.log_end() as u64, appends);
        assert!(
            syncs * 2 <= appends,
            "group commit: {syncs} syncs for {appends} appends"
        );
    });
}

#[test]
fn active_segment_is_allocated_ahead_and_trimmed_on_close_and_after_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_len = run(async {
        let log = open(dir.path(), LogConfig::default()).await;
        let value = vec![b'x'; 64 * 1024];
        for _ in 0..48 {
            let b = batch::build_batch(0, 1, &[(None, value.as_slice())]);
            log.append(&b).await.expect("append");
        }
        log.flush(log.log_end()).await.expect("flush");
        let data: usize = read_all(&log, 0).await.iter().map(|b| b.len()).sum();
        let on_disk = std::fs::metadata(last_log_file(dir.path()))
            .expect("stat")
            .len();
        assert!(
            on_disk >= data as u64 + strata::limits::MIN_PREALLOCATE_BYTES,
            "{on_disk} bytes allocated for {data} bytes of data"
        );
        // Not closed: as after kill -9, the preallocated zeros are still there.
        data
    });
    run(async {
        let log = open(dir.path(), LogConfig::default()).await;
        assert_eq!(
            log.log_end(),
            48,
            "recovery stops at the preallocated zeros"
        );
        let data: usize = read_all(&log, 0).await.iter().map(|b| b.len()).sum();
        assert_eq!(data, data_len);
        log.close().await.expect("close");
    });
    let on_disk = std::fs::metadata(last_log_file(dir.path()))
        .expect("stat")
        .len();
    assert_eq!(
        on_disk, data_len as u64,
        "a clean close trims the allocation"
    );
}

#[test]
fn an_append_that_owns_its_buffer_is_cached_in_place_and_a_shared_one_is_copied() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let log = open(dir.path(), LogConfig::default()).await;
        log.append(&numbered_batch("a", 0, 3, 1))
            .await
            .expect("append");
        // Owned: the tail cache serves the very buffer that was appended, stamped in place.
        let owned = bytes::Bytes::from(numbered_batch("b", 0, 2, 1));
        let at = owned.as_ptr();
        let info = log.append_bytes(owned).await.expect("append");
        assert_eq!(info.base_offset, 3);
        let read = log.read(3, 1 << 20, log.log_end()).await.expect("read");
        assert_eq!(read.chunks[0].as_ptr(), at, "no copy of an owned buffer");
        assert_eq!(
            batch::BatchHeader::parse(&read.chunks[0])
                .expect("header")
                .base_offset,
            3
        );
        // Shared: whoever else holds the bytes keeps seeing them unchanged.
        let shared = bytes::Bytes::from(numbered_batch("c", 0, 1, 1));
        let kept = shared.clone();
        let info = log.append_bytes(shared).await.expect("append");
        assert_eq!(info.base_offset, 5);
        assert_eq!(
            batch::BatchHeader::parse(&kept)
                .expect("header")
                .base_offset,
            0
        );
        let read = log.read(5, 1 << 20, log.log_end()).await.expect("read");
        assert_ne!(read.chunks[0].as_ptr(), kept.as_ptr());
        log.flush(log.log_end()).await.expect("flush");
        let values: Vec<Vec<u8>> = values(&read_all(&log, 0).await)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(
            values,
            ["a-0", "a-1", "a-2", "b-0", "b-1", "c-0"].map(|v| v.as_bytes().to_vec())
        );
    });
}

#[test]
fn a_consumer_reading_the_disk_in_order_is_served_by_the_read_ahead() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let log = open(dir.path(), LogConfig::default()).await;
        let value = vec![7u8; 100_000];
        for _ in 0..20 {
            log.append(&batch::build_batch(0, 1, &[(None, value.as_slice())]))
                .await
                .expect("append");
        }
        log.close().await.expect("close");
        // Reopened, nothing is cached: every read goes to the segment file.
        let log = open(dir.path(), LogConfig::default()).await;
        let (mut offset, end) = (0, log.log_end());
        // A fetch whose answer outgrew the request's limit asks again for the same bytes.
        log.read(0, 250_000, end).await.expect("read");
        assert_eq!(log.disk_read_count(), 1);
        let mut reads = 0;
        while offset < end {
            let r = log.read(offset, 250_000, end).await.expect("read");
            for b in r.batches() {
                offset = batch::BatchHeader::parse(&b).expect("header").next_offset();
            }
            reads += 1;
        }
        assert!(reads >= 10, "{reads} reads");
        assert_eq!(
            log.disk_read_count(),
            1,
            "only the first read waits for the disk; the others find their bytes read ahead"
        );
        // Out of order, the read-ahead does not help (and does not mislead).
        let r = log.read(3, 300_000, end).await.expect("read");
        assert_eq!(
            batch::BatchHeader::parse(&r.chunks[0])
                .expect("header")
                .base_offset,
            3
        );
        assert_eq!(log.disk_read_count(), 2);
    });
}

#[test]
fn max_timestamp_lookup_finds_the_first_record_with_the_largest_timestamp() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let config = small_segments(4096);
        let log = open(dir.path(), config.clone()).await;
        assert_eq!(log.offset_of_max_timestamp(0).await.expect("empty"), None);
        // Batches of 5 records at these times, over several segments: the largest, 9_000,
        // first appears in batch 3 (offsets 15..20) and again later.
        for (b, ts) in [1_000, 5_000, 2_000, 9_000, 3_000, 9_000, 4_000]
            .iter()
            .enumerate()
        {
            log.append(&numbered_batch("m", b as u64 * 5, 5, *ts))
                .await
                .expect("append");
        }
        log.flush(log.log_end()).await.expect("flush");
        let want = Some((15, 9_000));
        assert_eq!(
            log.offset_of_max_timestamp(log.flushed_offset())
                .await
                .expect("lookup"),
            want
        );
        // Below the bound only: the 9_000 batch at 15 is not readable below 15.
        assert_eq!(
            log.offset_of_max_timestamp(15).await.expect("lookup"),
            Some((5, 5_000))
        );
        log.close().await.expect("close");
        let log = open(dir.path(), config).await;
        assert_eq!(
            log.offset_of_max_timestamp(log.flushed_offset())
                .await
                .expect("after reopen"),
            want
        );
        // Records deleted below 20 (DeleteRecords): the first 9_000 is gone, the second counts.
        log.advance_log_start(20).await.expect("delete records");
        assert_eq!(
            log.offset_of_max_timestamp(log.flushed_offset())
                .await
                .expect("after delete"),
            Some((25, 9_000))
        );
    });
}

/// While a roll seals the full segment (truncate, sync, indexes: I/O the append waits for),
/// the log still has it: its end stays where it was, its records stay readable (a consumer
/// fetching there used to get OFFSET_OUT_OF_RANGE, and librdkafka then resets to the end,
/// skipping records; with a single segment the log had none at all and a read panicked).
/// Deterministic: the rolling append is polled step by step, the log checked between steps.
#[test]
fn a_roll_in_progress_keeps_the_sealed_segment_readable() {
    common::run(async {
        for segments_before in [1usize, 3] {
            let dir = tempfile::tempdir().expect("tempdir");
            let log = common::open(dir.path(), common::small_segments(4096)).await;
            let mut next = 0u64;
            // `segments_before` segments, the active one not empty.
            while next == 0 || log.segment_count() < segments_before {
                log.append(&common::numbered_batch("v", next, 10, 0))
                    .await
                    .expect("append");
                next += 10;
                log.flush(log.log_end()).await.expect("flush");
            }
            let end = log.log_end();
            let count = log.segment_count();
            // Larger than what is left of the segment: it rolls.
            let big = common::numbered_batch(&"w".repeat(400), next, 10, 0);
            let mut rolling = Box::pin(log.append(&big));
            let mut steps = 0;
            loop {
                if futures_lite::future::poll_once(&mut rolling)
                    .await
                    .is_some()
                {
                    break;
                }
                steps += 1;
                assert!(steps < 10_000, "the roll ends");
                assert!(
                    log.log_end() >= end,
                    "mid-roll, the log end went back from {end}"
                );
                let r = log.read(end - 1, 1, end).await.expect("mid-roll read");
                assert!(!r.is_empty(), "mid-roll, offset {} is readable", end - 1);
                glommio::timer::sleep(std::time::Duration::from_micros(50)).await;
            }
            assert!(steps > 0, "the roll waited for I/O");
            assert!(log.segment_count() > count, "it rolled");
            assert_eq!(log.log_end(), end + 10);
        }
    });
}
