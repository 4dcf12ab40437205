//! Producer state across segment rolls and reopen (clean and after a crash): a retried batch
//! is still recognised, and the sequence continues where it stopped.

mod common;

use common::*;
use strata::partition::producer_state::SNAPSHOT_FILE;
use strata::partition::{Partition, PartitionError};

/// An idempotent batch of one record from producer 42, epoch 0, with sequence `seq`.
fn idem(seq: i32) -> Vec<u8> {
    let mut b = numbered_batch("p", seq as u64, 1, 1);
    b[43..51].copy_from_slice(&42i64.to_be_bytes());
    b[51..53].copy_from_slice(&0i16.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = strata::storage::batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

async fn open_partition(dir: &std::path::Path) -> std::rc::Rc<Partition> {
    open_partition_with(dir, small_segments(4096)).await
}

#[test]
fn duplicates_are_recognised_after_rolls_close_and_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let p = open_partition(dir.path()).await;
        for seq in 0..200 {
            let info = p.produce(idem(seq).into()).await.expect("append");
            assert_eq!(info.base_offset, seq as i64);
        }
        assert!(p.stats().segments > 3, "rolled");
        assert!(
            dir.path().join(SNAPSHOT_FILE).exists(),
            "snapshot written at a roll"
        );
        let dup = p
            .produce(idem(198).into())
            .await
            .expect("a retry is answered");
        assert_eq!(dup.base_offset, 198, "with its original offset");
        assert_eq!(p.stats().log_end, 200, "and not written again");
        assert!(
            matches!(
                p.produce(idem(205).into()).await,
                Err(PartitionError::Sequence(_))
            ),
            "a gap is refused"
        );
        p.close().await.expect("close");
    });
    run(async {
        // Clean reopen: the snapshot written at close.
        let p = open_partition(dir.path()).await;
        assert_eq!(
            p.produce(idem(199).into())
                .await
                .expect("retry")
                .base_offset,
            199
        );
        for seq in 200..260 {
            assert_eq!(
                p.produce(idem(seq).into())
                    .await
                    .expect("continues")
                    .base_offset,
                seq as i64
            );
        }
        // No close: the next open must rebuild from the last roll's snapshot plus a scan.
    });
    run(async {
        let p = open_partition(dir.path()).await;
        assert_eq!(p.stats().log_end, 260);
        assert_eq!(
            p.produce(idem(257).into())
                .await
                .expect("retry after crash")
                .base_offset,
            257
        );
        assert_eq!(p.stats().log_end, 260);
        assert_eq!(
            p.produce(idem(260).into()).await.expect("next").base_offset,
            260
        );
    });
    // A snapshot that is corrupt or ahead of the log is ignored: rebuild from the log alone.
    std::fs::write(dir.path().join(SNAPSHOT_FILE), b"garbage").expect("write");
    run(async {
        let p = open_partition(dir.path()).await;
        assert_eq!(
            p.produce(idem(259).into())
                .await
                .expect("retry")
                .base_offset,
            259
        );
        assert_eq!(
            p.produce(idem(261).into()).await.expect("next").base_offset,
            261
        );
    });
}
