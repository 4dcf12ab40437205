//! The `strata topic|produce|consume` tools against a running broker.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::broker::Broker;

fn strata(b: &Broker, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .env("STRATA_BROKERS", b.bootstrap())
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(s) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(s.as_bytes())
            .expect("write");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn topic_produce_consume_alter_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(&dir.path().join("data"), &["--auto-create-topics", "false"]);
    let (ok, out) = strata(
        &b,
        &[
            "topic",
            "create",
            "events",
            "--partitions",
            "2",
            "--config",
            "retention.ms=60000",
        ],
        None,
    );
    assert!(ok, "{out}");
    let (ok, out) = strata(&b, &["topic", "list"], None);
    assert!(ok && out.contains("events\t2 partition(s)"), "{out}");
    let (ok, out) = strata(
        &b,
        &[
            "produce",
            "events",
            "--partition",
            "1",
            "--key-separator",
            ":",
        ],
        Some("a:one\nb:two\nc:three\n"),
    );
    assert!(ok, "{out}");
    let (ok, out) = strata(
        &b,
        &["consume", "events", "--from-beginning", "--verbose"],
        None,
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("1\t0\ta\tone\n1\t1\tb\ttwo\n1\t2\tc\tthree\n"),
        "{out}"
    );
    let (ok, out) = strata(
        &b,
        &["consume", "events", "--partition", "1", "--offset", "2"],
        None,
    );
    assert!(ok && out.trim() == "three", "{out}");
    let (ok, out) = strata(
        &b,
        &[
            "topic",
            "alter",
            "events",
            "--config",
            "segment.bytes=1048576",
        ],
        None,
    );
    assert!(ok, "{out}");
    let (ok, out) = strata(&b, &["topic", "describe", "events"], None);
    assert!(ok, "{out}");
    assert!(
        out.contains("retention.ms = 60000  (override)"),
        "earlier override kept: {out}"
    );
    assert!(out.contains("segment.bytes = 1048576  (override)"), "{out}");
    assert!(
        out.contains("partition 1\tleader 0\treplicas 0\tisr 0\tlog start 0\thigh watermark 3"),
        "{out}"
    );
    let (ok, out) = strata(
        &b,
        &["topic", "alter", "events", "--config", "segment.bytes=12"],
        None,
    );
    assert!(!ok, "an invalid config is refused: {out}");
    let (ok, out) = strata(&b, &["topic", "delete", "events"], None);
    assert!(ok, "{out}");
    let (ok, out) = strata(&b, &["topic", "describe", "events"], None);
    assert!(!ok && out.contains("UNKNOWN_TOPIC"), "{out}");
}

/// `strata topic describe` shows each partition's cleaner on a compacted topic (Strata's
/// tagged field in DescribeLogDirs): the dirty ratio, the dirty point and the last clean.
#[test]
fn topic_describe_shows_the_cleaner_of_a_compacted_topic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(
        &dir.path().join("data"),
        &["--log-retention-check-interval-ms", "200"],
    );
    for (name, policy) in [("kv", "compact"), ("plain", "delete")] {
        let cleanup = format!("cleanup.policy={policy}");
        let (ok, out) = strata(
            &b,
            &[
                "topic",
                "create",
                name,
                "--config",
                &cleanup,
                "--config",
                "segment.bytes=4096",
                "--config",
                "min.cleanable.dirty.ratio=0.01",
            ],
            None,
        );
        assert!(ok, "{out}");
    }
    let (ok, out) = strata(&b, &["topic", "describe", "kv"], None);
    assert!(ok, "{out}");
    assert!(
        out.contains("    cleaner\tdirty ratio 0.00\tdirty from offset 0\tlast clean none since the broker started"),
        "{out}"
    );
    // Four produces of 100 updates of 5 keys: batches of ~4 KiB, a segment each.
    for round in 0..4 {
        let lines: String = (0..100)
            .map(|i| format!("k{}:value-{round}-{i}-{}\n", i % 5, "x".repeat(20)))
            .collect();
        for topic in ["kv", "plain"] {
            let (ok, out) = strata(
                &b,
                &["produce", topic, "--key-separator", ":"],
                Some(&lines),
            );
            assert!(ok, "{out}");
        }
    }
    let start = std::time::Instant::now();
    let out = loop {
        let (ok, out) = strata(&b, &["topic", "describe", "kv"], None);
        assert!(ok, "{out}");
        // Cleaned, and nothing dirty left once every segment sealed so far is.
        if out.contains("s ago: up to offset") && out.contains("cleaner\tdirty ratio 0.00") {
            break out;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "no clean shown: {out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let line = out
        .lines()
        .find(|l| l.starts_with("    cleaner\t"))
        .expect("a cleaner line");
    assert!(
        line.contains("dirty ratio 0.00\tdirty from offset "),
        "{line}"
    );
    let removed: u64 = line
        .rsplit_once(" bytes, ")
        .and_then(|(_, r)| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("records removed");
    assert!(removed > 0, "{line}");
    let (ok, out) = strata(&b, &["topic", "describe", "plain"], None);
    assert!(
        ok && !out.contains("cleaner"),
        "no cleaner on a delete topic: {out}"
    );
}
