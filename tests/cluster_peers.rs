//! `strata serve --node-id N --peers ...`: three broker processes find each other over the
//! inter-broker transport, and bad cluster settings stop the broker with a clear message.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::broker::{free_port, start_cluster, Broker};

/// The broker's log without terminal colour codes.
fn plain_log(b: &Broker) -> String {
    let raw = b.log_tail(10_000);
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn three_brokers_learn_each_others_kafka_listeners() {
    let dir = tempfile::tempdir().expect("tempdir");
    let brokers = start_cluster(dir.path(), 3);
    let start = Instant::now();
    for (i, b) in brokers.iter().enumerate() {
        for (j, other) in brokers.iter().enumerate().filter(|(j, _)| *j != i) {
            let line = format!(
                "learned a peer broker's Kafka listener core=0 node={} kafka_listener=\"{}\"",
                j + 1,
                other.bootstrap()
            );
            while !plain_log(b).contains(&line) {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "broker {} never learned broker {}: {}",
                    i + 1,
                    j + 1,
                    plain_log(b)
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        assert!(plain_log(b).contains(&format!("inter-broker transport listening node={}", i + 1)));
    }
    // A broker alone runs no transport at all.
    let alone = Broker::start(&dir.path().join("alone"), &["--cores", "1"]);
    drop(brokers);
    let log = plain_log(&alone);
    assert!(log.contains("strata is serving"), "{log}");
    assert!(!log.contains("inter-broker"), "{log}");
}

/// Runs `strata serve` expecting it to refuse its settings; returns its error output.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run strata");
    assert!(!out.status.success(), "started with {args:?} {env:?}");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn bad_cluster_settings_stop_the_broker_with_the_reason() {
    const LIST: &str = "1=127.0.0.1:1,2=127.0.0.1:2";
    assert!(refused(&["--peers", LIST], &[]).contains("--peers needs --node-id"));
    assert!(refused(&["--node-id", "3", "--peers", LIST], &[])
        .contains("node id 3 is not in the peers list (1, 2)"));
    assert!(refused(
        &[],
        &[
            ("STRATA_PEERS", "1=127.0.0.1:1,1=127.0.0.1:2"),
            ("STRATA_NODE_ID", "1")
        ]
    )
    .contains("node 1 is listed twice"));
    assert!(refused(
        &[
            "--node-id",
            "1",
            "--peers",
            "1=127.0.0.1:1,2=not-an-address"
        ],
        &[]
    )
    .contains("cannot resolve the address 'not-an-address' of node 2"));
    assert!(refused(&["--rpc-listen", "127.0.0.1:1"], &[]).contains("--rpc-listen needs --peers"));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("strata.toml");
    std::fs::write(&file, format!("node-id = 5\npeers = \"{LIST}\"\n")).expect("write");
    let file = file.to_string_lossy().to_string();
    assert!(refused(&["--config", &file], &[]).contains("node id 5 is not in the peers list"));
    // The flag wins over the file; the file's peers are used.
    assert!(refused(&["--config", &file, "--node-id", "7"], &[]).contains("node id 7 is not"));
}
