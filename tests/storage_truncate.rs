//! Cutting a log's tail (a replica giving up entries a new leader does not have): the
//! batches from an offset on are gone from reads, from the files and from the tail cache;
//! appends continue at that offset; a reopen sees the cut log.

mod common;

use common::*;

#[test]
fn truncation_across_segments_then_appends_continue_and_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let config = small_segments(16 * 1024);
        let log = open(dir.path(), config.clone()).await;
        for b in 0..400u64 {
            log.append(&numbered_batch("a", b * 10, 10, 1_000 + b as i64))
                .await
                .expect("append");
        }
        log.flush(log.log_end()).await.expect("flush");
        assert!(log.segment_count() > 3, "{} segments", log.segment_count());
        let bases = log.segment_bases();
        // Into the middle of the second segment, on a batch boundary.
        let cut = bases[1] + 50;
        assert_eq!(cut % 10, 0);
        log.truncate_from(cut).await.expect("truncate");
        assert_eq!(log.log_end(), cut);
        assert_eq!(log.segment_count(), 2);
        let vals = values(&read_all(&log, 0).await);
        assert_eq!(vals.len() as i64, cut);
        assert_eq!(vals.last().map(|(o, _)| *o), Some(cut - 1));
        // Appends go on at the cut, with other values.
        for b in 0..20u64 {
            let info = log
                .append(&numbered_batch("b", b * 10, 10, 5_000))
                .await
                .expect("append after cut");
            assert_eq!(info.base_offset, cut + b as i64 * 10);
        }
        log.flush(log.log_end()).await.expect("flush");
        let before = read_all(&log, 0).await;
        log.close().await.expect("close");

        let log = open(dir.path(), config.clone()).await;
        assert_eq!(log.log_end(), cut + 200);
        let after = read_all(&log, 0).await;
        assert!(before == after, "the cut log changed across reopen");
        let vals = values(&after);
        for (i, (off, v)) in vals.iter().enumerate() {
            assert_eq!(*off, i as i64, "offsets stay dense");
            let expected = if (i as i64) < cut {
                format!("a-{i}")
            } else {
                format!("b-{}", i as i64 - cut)
            };
            assert_eq!(v, expected.as_bytes());
        }
        // A cut at the very start of the log empties it.
        log.truncate_from(0).await.expect("truncate all");
        assert_eq!(log.log_end(), 0);
        assert!(read_all(&log, 0).await.is_empty());
        // Not at a batch boundary: refused, nothing lost.
        log.append(&numbered_batch("c", 0, 10, 1))
            .await
            .expect("append");
        log.flush(log.log_end()).await.expect("flush");
        assert!(log.truncate_from(5).await.is_err());
    });
}
