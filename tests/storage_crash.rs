//! Crash safety: a child process appends and flushes in a loop, printing each flushed offset;
//! the parent kills it with SIGKILL at random moments, twenty times over the same directory,
//! and after each kill reopens the log and checks that every reported offset is intact.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use strata::storage::LogConfig;

const CHILD_ENV: &str = "STRATA_CRASH_CHILD_DIR";

fn config() -> LogConfig {
    small_segments(256 * 1024)
}

/// Entry point of the child process (a no-op in a normal test run).
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    run(async move {
        let log = open(std::path::Path::new(&dir), config()).await;
        let mut next = log.log_end() as u64;
        loop {
            let n = 1 + next % 7;
            let info = log
                .append(&numbered_batch("k", next, n, next as i64))
                .await
                .expect("append");
            assert_eq!(
                info.base_offset as u64, next,
                "child resumes at the log end"
            );
            log.flush(info.last_offset + 1).await.expect("flush");
            next = info.last_offset as u64 + 1;
            println!("FLUSHED {}", info.last_offset);
        }
    });
}

#[test]
fn acknowledged_batches_survive_twenty_kill_9s() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut seed = 0x2545_f491_4f6c_dd1du64 ^ std::process::id() as u64;
    let mut highest_acked: i64 = -1;
    for round in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let run_for = Duration::from_millis(30 + seed % 250);
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut last = -1i64;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(v) = line.strip_prefix("FLUSHED ") {
                    last = v.trim().parse().expect("offset");
                }
            }
            last
        });
        let start = Instant::now();
        while start.elapsed() < run_for {
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let acked = reader.join().expect("reader");
        highest_acked = highest_acked.max(acked);
        // Reopen: every acknowledged offset is there, values intact and in order.
        let dir_path = dir.path().to_path_buf();
        let end = run(async move {
            let log = open(&dir_path, config()).await;
            let vals = values(&read_all(&log, 0).await);
            for (i, (off, v)) in vals.iter().enumerate() {
                assert_eq!(*off, i as i64);
                assert_eq!(v, format!("k-{i}").as_bytes(), "record {i} intact");
            }
            log.log_end()
        });
        assert!(
            end > highest_acked,
            "round {round}: acknowledged offset {highest_acked} lost (log end {end})"
        );
    }
    assert!(
        highest_acked > 100,
        "the child made progress ({highest_acked})"
    );
}
