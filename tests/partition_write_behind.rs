//! A partition whose flush policy does not sync every append writes full write buffers out
//! behind the acknowledgements, and makes producers wait only when the disk falls behind.

mod common;

use std::time::{Duration, Instant};

use common::*;
use strata::limits::{MAX_WRITE_BEHIND_BYTES, WRITE_BUFFER_BYTES};
use strata::storage::{batch, LogConfig};

/// One batch of a single record of `bytes` bytes.
fn big_batch(bytes: usize) -> Vec<u8> {
    let value = vec![b'v'; bytes];
    batch::build_batch(0, 1, &[(None, value.as_slice())])
}

/// Syncs only when asked to (by time or count, both far away).
fn relaxed() -> LogConfig {
    let mut c = LogConfig::default();
    c.flush.messages = u64::MAX;
    c.flush.ms = i64::MAX / 2;
    c
}

#[test]
fn a_full_write_buffer_is_written_behind_the_acknowledgement() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let p = open_partition_with(dir.path(), relaxed()).await;
        let batch = big_batch(512 * 1024);
        // The produce that fills the write buffer is acknowledged with its bytes taken from the
        // buffer (staged: none) but not yet in the file.
        let mut in_flight_at_ack = None;
        while (p.stats().log_end as usize) * batch.len() < 2 * WRITE_BUFFER_BYTES {
            p.produce(bytes::Bytes::from(batch.clone()))
                .await
                .expect("produce");
            if p.stats().staged_bytes == 0 && p.stats().written < p.stats().log_end {
                in_flight_at_ack.get_or_insert(p.stats().log_end);
            }
        }
        let end = in_flight_at_ack.expect("a produce was acknowledged before its write-out ended");
        let deadline = Instant::now() + Duration::from_secs(10);
        while p.stats().written < end && Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
        assert!(p.stats().written >= end, "the write-out finished");
        assert_eq!(p.stats().flushed, 0, "written out, not synced");
        p.close().await.expect("close");
    });
}

#[test]
fn a_producer_waits_for_the_write_out_once_the_disk_is_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let p = open_partition_with(dir.path(), relaxed()).await;
        let batch = bytes::Bytes::from(big_batch(512 * 1024));
        // Appends alone stage bytes without writing them (as concurrent producers would).
        let mut last = None;
        while p.stats().staged_bytes < MAX_WRITE_BEHIND_BYTES as u64 {
            last = Some(
                p.append(batch.clone(), strata::partition::Acks::All)
                    .await
                    .expect("append"),
            );
        }
        let last = last.expect("appended");
        p.commit(&last).await.expect("commit");
        assert_eq!(
            p.stats().written,
            last.last_offset + 1,
            "the commit wrote the backlog out before it returned"
        );
        p.close().await.expect("close");
    });
}
