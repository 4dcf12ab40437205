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

/// Every record of `topic` read back by librdkafka, in partition order.
fn read_back(b: &Broker, topic: &str) -> Vec<(i32, i64, Vec<u8>)> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    use std::time::{Duration, Instant};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "bench-tool-read-back")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    let mut target = 0;
    for p in md.topics()[0].partitions() {
        let (lo, hi) = c
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .expect("watermarks");
        target += hi - lo;
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
            .expect("add");
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let start = Instant::now();
    while (out.len() as i64) < target {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "read {} of {target}",
            out.len()
        );
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("message");
            out.push((
                m.partition(),
                m.offset(),
                m.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    out
}

#[test]
fn raw_producer_writes_what_librdkafka_reads_and_raw_consumer_counts_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(&dir.path().join("data"), &[]);
    // 1000 records of 1000 bytes, 16 per 16 KiB batch: 62 whole batches and a tail of 8.
    let pid = std::process::id().to_string();
    let p = bench(
        Some(&b),
        &[
            "produce",
            "--client",
            "raw",
            "--topic",
            "raw",
            "--partitions",
            "3",
            "--records",
            "1000",
            "--message-size",
            "1000",
            "--batch-bytes",
            "16384",
            "--connections",
            "2",
            "--window",
            "4",
            "--acks",
            "all",
            "--broker-pid",
            &pid,
        ],
    );
    assert_eq!(p["records"], 1000, "{p}");
    assert_eq!(p["failed"], 0);
    assert_eq!(p["records_per_batch"], 16);
    assert_eq!(p["requests"], 63, "every acks=all answer counted");
    assert_eq!(p["connections"], 2);
    assert_eq!(p["window"], 4);
    assert!(p["latency_ms"]["p99"].as_f64().expect("p99") > 0.0);
    assert!(
        p["cpu"]["client_cpu_s_per_gb"]
            .as_f64()
            .expect("client cpu")
            > 0.0
    );
    assert!(
        p["cpu"]["broker_cpu_s"].as_f64().is_some(),
        "--broker-pid read"
    );
    assert!(p["cpu"]["machine"]["busy_cores"].as_f64().is_some());

    let recs = read_back(&b, "raw");
    assert_eq!(recs.len(), 1000, "librdkafka reads every record");
    assert!(recs.iter().all(|(_, _, v)| v.len() == 1000));
    let distinct: std::collections::HashSet<&Vec<u8>> = recs.iter().map(|(_, _, v)| v).collect();
    assert_eq!(
        distinct.len(),
        1000,
        "payloads are varied, not one repeated buffer"
    );
    let parts: std::collections::HashSet<i32> = recs.iter().map(|(p, _, _)| *p).collect();
    assert_eq!(parts.len(), 3, "spread over every partition");

    let c = bench(
        Some(&b),
        &[
            "consume", "--client", "raw", "--topic", "raw", "--window", "2",
        ],
    );
    assert_eq!(c["records"], 1000, "{c}");
    assert!(c["fetches"].as_u64().expect("fetches") >= 3);
    let c = bench(
        Some(&b),
        &[
            "consume", "--client", "raw", "--topic", "raw", "--offset", "100",
        ],
    );
    assert_eq!(
        c["records"],
        1000 - 3 * 100,
        "from offset 100 in each partition: {c}"
    );
    // The librdkafka tools agree.
    let c = bench(Some(&b), &["consume", "--topic", "raw"]);
    assert_eq!(c["records"], 1000);
}

#[test]
fn raw_idempotent_producer_sequences_are_accepted_without_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(&dir.path().join("data"), &[]);
    let args = [
        "produce",
        "--client",
        "raw",
        "--idempotent",
        "--topic",
        "idem",
        "--partitions",
        "4",
        "--records",
        "5000",
        "--message-size",
        "100",
        "--batch-bytes",
        "4096",
        "--connections",
        "2",
        "--window",
        "8",
        "--pool-bytes",
        "65536",
    ];
    let p = bench(Some(&b), &args);
    assert_eq!(p["records"], 5000, "{p}");
    assert_eq!(p["failed"], 0, "the broker accepted every sequence: {p}");
    assert_eq!(p["idempotent"], true);
    // A second producer (new id, sequences from 0 again) appends as many, this time patching
    // and sending the batches from the memfd pool (sendfile).
    let mut again = args.to_vec();
    again.extend(["--send", "sendfile"]);
    let p = bench(Some(&b), &again);
    assert_eq!(p["send"], "sendfile");
    assert_eq!(p["records"], 5000, "{p}");
    assert_eq!(p["failed"], 0, "{p}");
    let recs = read_back(&b, "idem");
    assert_eq!(recs.len(), 10_000, "no record lost or duplicated");
    let mut offsets: Vec<(i32, i64)> = recs.iter().map(|(p, o, _)| (*p, *o)).collect();
    offsets.sort_unstable();
    offsets.dedup();
    assert_eq!(offsets.len(), 10_000);
    let c = bench(Some(&b), &["consume", "--client", "raw", "--topic", "idem"]);
    assert_eq!(c["records"], 10_000, "{c}");
}

#[test]
fn raw_producer_runs_for_a_duration_and_at_a_rate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(&dir.path().join("data"), &[]);
    // 2000 records/s of 1000 bytes in batches of 10 records: 200 requests/s for 2 s.
    let p = bench(
        Some(&b),
        &[
            "produce",
            "--client",
            "raw",
            "--topic",
            "rate",
            "--duration",
            "2",
            "--rate",
            "2000",
            "--message-size",
            "1000",
            "--batch-bytes",
            "10240",
            "--acks",
            "1",
        ],
    );
    assert_eq!(p["records_per_batch"], 10, "{p}");
    let n = p["records"].as_u64().expect("records");
    assert!(
        (3600..=4020).contains(&n),
        "about 2 s x 2000 records/s: {p}"
    );
    assert!(p["latency_ms"]["p50"].as_f64().expect("p50") > 0.0);
    let p = bench(
        Some(&b),
        &[
            "produce",
            "--client",
            "raw",
            "--topic",
            "rate",
            "--records",
            "500",
            "--acks",
            "0",
            "--message-size",
            "100",
        ],
    );
    assert_eq!(p["records"], 500, "acks=0 counts what was sent: {p}");
}

/// `--keys`: the records carry keys, so a compacted topic takes them (it refuses keyless
/// records with INVALID_RECORD, which the tool counts as failed).
#[test]
fn keyed_records_are_what_a_compacted_topic_takes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(
        &dir.path().join("data"),
        &["--topic-default", "cleanup.policy=compact"],
    );
    let args = |topic: &'static str, keys: &'static str| {
        [
            "produce",
            "--topic",
            topic,
            "--partitions",
            "1",
            "--records",
            "500",
            "--message-size",
            "100",
            "--keys",
            keys,
        ]
    };
    let keyed = bench(Some(&b), &args("keyed", "7"));
    assert_eq!(keyed["records"], 500);
    assert_eq!(keyed["failed"], 0);
    let keys: std::collections::BTreeSet<Vec<u8>> = read_keys(&b, "keyed");
    assert_eq!(keys.len(), 7, "{keys:?}");
    let keyless = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["bench", "--brokers", &b.bootstrap()])
        .args(args("keyless", "0"))
        .output()
        .expect("run strata bench");
    let err = String::from_utf8_lossy(&keyless.stderr);
    assert!(
        !keyless.status.success() && err.contains("500 records were not acknowledged"),
        "{err}"
    );
}

fn read_keys(b: &Broker, topic: &str) -> std::collections::BTreeSet<Vec<u8>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "keys")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    let mut keys = std::collections::BTreeSet::new();
    let mut n = 0;
    let start = std::time::Instant::now();
    while n < 500 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "read {n}"
        );
        if let Some(m) = c.poll(std::time::Duration::from_millis(100)) {
            let m = m.expect("message");
            keys.insert(m.key().expect("keyed").to_vec());
            n += 1;
        }
    }
    keys
}
