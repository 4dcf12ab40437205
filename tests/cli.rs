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
