//! `strata bench` against a real broker: it sends, counts and reports what it claims.

mod common;

use std::process::Command;

use common::broker::Broker;

fn bench(b: Option<&Broker>, args: &[&str]) -> serde_json::Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.arg("bench");
    if let Some(b) = b {
        cmd.args(["--brokers", &b.bootstrap()]);
    }
    let out = cmd
        .args(args)
        .arg("--json")
        .output()
        .expect("run strata bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?}: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("json summary")
}

#[test]
fn produce_consume_e2e_and_disk_report_what_happened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(&dir.path().join("data"), &[]);
    let p = bench(
        Some(&b),
        &[
            "produce",
            "--topic",
            "bt",
            "--partitions",
            "3",
            "--records",
            "3000",
            "--message-size",
            "100",
            "--producers",
            "2",
        ],
    );
    assert_eq!(p["records"], 3000);
    assert_eq!(p["failed"], 0);
    assert!(p["latency_ms"]["p99"].as_f64().expect("p99") > 0.0);
    let c = bench(Some(&b), &["consume", "--topic", "bt"]);
    assert_eq!(c["records"], 3000, "consumer read every produced record");
    let e = bench(
        Some(&b),
        &[
            "e2e",
            "--topic",
            "be",
            "--rate",
            "500",
            "--duration",
            "2",
            "--message-size",
            "64",
        ],
    );
    assert_eq!(e["records"], 1000);
    assert!(e["latency_ms"]["p50"].as_f64().expect("p50") > 0.0);
    let d = bench(
        None,
        &[
            "disk",
            "--data-dir",
            dir.path().join("disk").to_str().expect("utf8"),
            "--file-mib",
            "16",
            "--seconds",
            "1",
        ],
    );
    assert!(d["seq_write_mb_per_sec"].as_f64().expect("bw") > 0.0);
    assert!(d["syncs"].as_u64().expect("syncs") > 0);
    assert!(
        !dir.path().join("disk/.strata-bench-disk").exists(),
        "scratch file removed"
    );
}
