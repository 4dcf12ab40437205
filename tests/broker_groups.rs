//! Consumer groups with librdkafka group members (`strata consume --group`, one process each,
//! so one can be killed with SIGKILL): the partitions are shared, a killed member's partitions
//! move to the others within the session timeout with nothing skipped, commits survive a
//! broker crash, and a restarted member resumes from the group's commits.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::broker::Broker;
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::Decodable;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "attendance";
const PARTITIONS: i32 = 12;
const GROUP: &str = "counters";
const SESSION_TIMEOUT_MS: u64 = 6000;

/// (partition, offset)
type Seen = Arc<Mutex<Vec<(i32, i64)>>>;

/// A `strata consume --group` process and what it printed.
struct Member {
    child: Child,
    seen: Seen,
}

impl Member {
    fn spawn(b: &Broker) -> Member {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["consume", TOPIC, "--group", GROUP, "--from-beginning"])
            .args(["--follow", "--verbose", "--brokers", &b.bootstrap()])
            .args(["-X", &format!("session.timeout.ms={SESSION_TIMEOUT_MS}")])
            .args(["-X", "heartbeat.interval.ms=500"])
            .args(["-X", "auto.commit.interval.ms=200"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn consumer");
        let seen: Seen = Arc::default();
        let out = child.stdout.take().expect("stdout");
        let sink = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut f = line.split('\t');
                if let (Some(p), Some(o)) = (f.next(), f.next()) {
                    if let (Ok(p), Ok(o)) = (p.parse(), o.parse()) {
                        sink.lock().expect("lock").push((p, o));
                    }
                }
            }
        });
        Member { child, seen }
    }

    fn seen(&self) -> Vec<(i32, i64)> {
        self.seen.lock().expect("lock").clone()
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn produce(b: &Broker, per_partition: i64) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("producer");
    for i in 0..per_partition * PARTITIONS as i64 {
        p.send(
            BaseRecord::<(), _>::to(TOPIC)
                .partition((i % PARTITIONS as i64) as i32)
                .payload(&format!("{{\"attendees\":{i}}}")),
        )
        .expect("send");
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(30)).expect("flush");
}

fn admin_consumer(b: &Broker) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// Partitions per member, from DescribeGroups.
fn assignment(b: &Broker) -> (String, Vec<usize>) {
    let c = admin_consumer(b);
    let list = c
        .fetch_group_list(Some(GROUP), Duration::from_secs(10))
        .expect("describe group");
    let g = &list.groups()[0];
    let counts = g
        .members()
        .iter()
        .map(|m| {
            let mut a = bytes::Bytes::copy_from_slice(m.assignment().unwrap_or_default());
            let _version = bytes::Buf::get_i16(&mut a);
            ConsumerProtocolAssignment::decode(&mut a, 0)
                .map(|a| {
                    a.assigned_partitions
                        .iter()
                        .map(|t| t.partitions.len())
                        .sum()
                })
                .unwrap_or(0)
        })
        .collect();
    let state = g.state().to_string();
    std::mem::forget(c); // see broker_offsets.rs: rust-rdkafka's drop may block
    (state, counts)
}

/// Waits until `cond` holds, or fails with `what`.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
    start.elapsed()
}

/// Offsets seen per partition, over some members.
fn union(members: &[&Member]) -> BTreeMap<i32, BTreeSet<i64>> {
    let mut out: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
    for m in members {
        for (p, o) in m.seen() {
            out.entry(p).or_default().insert(o);
        }
    }
    out
}

fn complete(seen: &BTreeMap<i32, BTreeSet<i64>>, per_partition: i64) -> bool {
    (0..PARTITIONS).all(|p| {
        seen.get(&p)
            .is_some_and(|s| s.len() as i64 == per_partition)
    })
}

fn committed(b: &Broker) -> Vec<Offset> {
    let c = admin_consumer(b);
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(TOPIC, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    let out = got.elements().iter().map(|e| e.offset()).collect();
    std::mem::forget(c);
    out
}

#[test]
fn members_share_partitions_take_over_from_a_killed_one_and_resume_from_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start(
        &dir.path().join("data"),
        &[
            "--default-partitions",
            &PARTITIONS.to_string(),
            "--group-initial-rebalance-delay-ms",
            "1500",
        ],
    );
    produce(&b, 100);

    // Three members share the twelve partitions, four each.
    let mut members: Vec<Member> = (0..3).map(|_| Member::spawn(&b)).collect();
    wait_for("the first 1200 records", Duration::from_secs(60), || {
        complete(&union(&members.iter().collect::<Vec<_>>()), 100)
    });
    wait_for("a stable group of three", Duration::from_secs(30), || {
        assignment(&b) == ("Stable".into(), vec![4, 4, 4])
    });
    for (i, m) in members.iter().enumerate() {
        assert!(!m.seen().is_empty(), "member {i} got no share");
    }

    // One is killed; the others take its partitions once its session expires.
    members[0].kill9();
    produce(&b, 100);
    let survivors = || union(&[&members[1], &members[2]]);
    let took = wait_for(
        "the survivors to read the second 1200 records",
        Duration::from_secs(60),
        || {
            let s = survivors();
            (0..PARTITIONS).all(|p| s.get(&p).is_some_and(|s| s.range(100..).count() == 100))
        },
    );
    assert!(
        took < Duration::from_millis(SESSION_TIMEOUT_MS) * 3,
        "takeover took {took:?} with a {SESSION_TIMEOUT_MS} ms session timeout"
    );
    wait_for("a stable group of two", Duration::from_secs(30), || {
        assignment(&b) == ("Stable".into(), vec![6, 6])
    });
    // At least once, none skipped: every offset of every partition was printed by someone.
    let all = union(&members.iter().collect::<Vec<_>>());
    for p in 0..PARTITIONS {
        let want: BTreeSet<i64> = (0..200).collect();
        assert_eq!(all.get(&p), Some(&want), "partition {p}");
    }

    // Auto-commits reach the log end; they survive a broker crash.
    let at_end = vec![Offset::Offset(200); PARTITIONS as usize];
    wait_for("commits at the log end", Duration::from_secs(30), || {
        committed(&b) == at_end
    });
    drop(members);
    b.kill9();
    b.start_again();
    assert_eq!(committed(&b), at_end, "commits after kill -9 of the broker");

    // A member started now resumes from the commits: it sees only the new records.
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("producer");
    for part in 0..PARTITIONS {
        p.send(
            BaseRecord::<(), _>::to(TOPIC)
                .partition(part)
                .payload("late"),
        )
        .expect("send");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    let m = Member::spawn(&b);
    wait_for(
        "the new member to read the new records",
        Duration::from_secs(60),
        || m.seen().len() >= PARTITIONS as usize,
    );
    std::thread::sleep(Duration::from_secs(1));
    let mut got = m.seen();
    got.sort();
    let want: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, 200)).collect();
    assert_eq!(
        got,
        want,
        "exactly the records after the commits\n{}",
        b.log_tail(20)
    );
}

fn strata(b: &Broker, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .args(["--brokers", &b.bootstrap()])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run strata");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn group_cli_describes_lag_resets_offsets_and_deletes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = Broker::start(
        &dir.path().join("data"),
        &["--group-initial-rebalance-delay-ms", "0"],
    );
    let (ok, out) = strata(&b, &["topic", "create", "visits", "--partitions", "2"]);
    assert!(ok, "{out}");
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("producer");
    for i in 0..10 {
        p.send(
            BaseRecord::<(), _>::to("visits")
                .partition(i % 2)
                .payload("v"),
        )
        .expect("send");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    let consume = ["consume", "visits", "--group", "web", "--from-beginning"];
    let (ok, out) = strata(&b, &consume);
    assert!(ok, "{out}");
    assert_eq!(out.lines().filter(|l| *l == "v").count(), 10, "{out}");

    let (ok, out) = strata(&b, &["group", "list"]);
    assert!(
        ok && out
            .lines()
            .any(|l| l.starts_with("web ") && l.contains("Empty")),
        "{out}"
    );
    let lag = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.starts_with("visits "))
            .map(|l| l.split_whitespace().nth(4).unwrap_or("?").to_string())
            .collect()
    };
    let (ok, out) = strata(&b, &["group", "describe", "web"]);
    assert!(ok, "{out}");
    assert_eq!(lag(&out), ["0", "0"], "caught up after the commit:\n{out}");

    let (ok, out) = strata(
        &b,
        &[
            "group",
            "reset-offsets",
            "web",
            "--topic",
            "visits",
            "--to-earliest",
        ],
    );
    assert!(ok, "{out}");
    let (_, out) = strata(&b, &["group", "describe", "web"]);
    assert_eq!(lag(&out), ["5", "5"], "reset to the start:\n{out}");
    let (ok, out) = strata(&b, &consume);
    assert!(
        ok && out.lines().filter(|l| *l == "v").count() == 10,
        "re-read after reset: {out}"
    );

    let (ok, out) = strata(&b, &["group", "delete", "web"]);
    assert!(ok, "{out}");
    let (_, out) = strata(&b, &["group", "list"]);
    assert!(!out.lines().any(|l| l.starts_with("web ")), "{out}");
    let (ok, _) = strata(&b, &["group", "delete", "web"]);
    assert!(!ok, "deleting a missing group fails");
}

#[test]
fn members_keep_their_assignment_across_a_broker_restart() {
    use rdkafka::message::Message;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::start(
        &dir.path().join("data"),
        &[
            "--default-partitions",
            "4",
            "--group-initial-rebalance-delay-ms",
            "500",
        ],
    );
    let send = |b: &Broker, tag: &str| {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", b.bootstrap())
            .create()
            .expect("producer");
        for i in 0..400 {
            p.send(
                BaseRecord::<(), _>::to("steady")
                    .partition(i % 4)
                    .payload(&format!("{tag}-{i}")),
            )
            .expect("send");
        }
        p.flush(Duration::from_secs(30)).expect("flush");
    };
    send(&b, "before");
    let members: Vec<BaseConsumer> = (0..2)
        .map(|_| {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", b.bootstrap())
                .set("group.id", "steady")
                .set("auto.offset.reset", "earliest")
                .set("session.timeout.ms", "10000")
                .set("heartbeat.interval.ms", "500")
                .set("auto.commit.interval.ms", "200")
                .create()
                .expect("consumer");
            c.subscribe(&["steady"]).expect("subscribe");
            c
        })
        .collect();
    let mut seen: Vec<String> = Vec::new();
    let mut pump = |until: &mut dyn FnMut(&[String]) -> bool, what: &str| {
        let start = Instant::now();
        while !until(&seen) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out: {what}"
            );
            for c in &members {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(20)) {
                    seen.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into());
                }
            }
        }
    };
    pump(&mut |s| s.len() >= 400, "the first 400 records");
    let ids = |b: &Broker| -> Vec<String> {
        let c = admin_consumer(b);
        let list = c
            .fetch_group_list(Some("steady"), Duration::from_secs(10))
            .expect("describe");
        let mut ids: Vec<String> = list.groups()[0]
            .members()
            .iter()
            .map(|m| m.id().to_string())
            .collect();
        ids.sort();
        std::mem::forget(c);
        ids
    };
    let before = ids(&b);
    assert_eq!(before.len(), 2);

    b.restart();
    send(&b, "after");
    pump(
        &mut |s| s.len() >= 800,
        "the 400 records produced after the restart",
    );
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(1) {
        for c in &members {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(20)) {
                seen.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into());
            }
        }
    }
    let distinct: BTreeSet<&String> = seen.iter().collect();
    assert_eq!((seen.len(), distinct.len()), (800, 800), "each record once");
    assert_eq!(
        ids(&b),
        before,
        "the restored group kept its members: no rebalance"
    );
    for c in members {
        std::mem::forget(c);
    }
}
