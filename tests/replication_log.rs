//! Replication over the broker's own storage: three replicas of a partition, each a
//! `Replica<LogDevice>` over a real `PartitionLog` (segments, O_DIRECT, the entry index and
//! state files), wired by an in-memory network in one executor.
//!
//! Checked: a leader is elected and its batches reach every replica byte for byte, stamped
//! with their offsets and the term as `partitionLeaderEpoch`; a leader cut off from the
//! others keeps its uncommitted batches only until it hears of the new leader, then its log
//! is truncated (on disk) and takes the new leader's batches; a replica reopened from its
//! files comes back with the same log and the same term.

mod common;

use std::rc::Rc;

use bytes::BytesMut;
use common::*;
use raft::eraftpb::Message;
use strata::replication::{LogDevice, Outcome, Replica, ReplicaSettings, Role};
use strata::storage::batch::{build_batch, BatchHeader};

type R = Replica<LogDevice>;

async fn open_replica(dir: &std::path::Path, id: u64) -> R {
    let log = Rc::new(open(dir, small_segments(16 * 1024)).await);
    let device = LogDevice::open(log).await.expect("device");
    // raft-rs's randomized election timeouts break the tie of replicas ticked together.
    let settings = ReplicaSettings::new(id, vec![1, 2, 3], format!("test-{id}"));
    Replica::open(settings, device).await.expect("replica")
}

/// One round: tick everyone (when asked), process, deliver all messages between nodes that
/// are not cut off.
async fn round(nodes: &mut [Option<R>], tick: bool, cut: Option<u64>) {
    let mut mail: Vec<Message> = Vec::new();
    for n in nodes.iter_mut().flatten() {
        if tick {
            n.tick();
        }
        mail.extend(n.process().await.expect("process"));
    }
    for m in mail {
        if cut.is_some_and(|c| m.from == c || m.to == c) {
            continue;
        }
        if let Some(n) = nodes[(m.to - 1) as usize].as_mut() {
            n.step(m);
        }
    }
}

fn leader(nodes: &[Option<R>], except: Option<u64>) -> Option<usize> {
    (0..nodes.len()).find(|&i| {
        nodes[i]
            .as_ref()
            .is_some_and(|n| n.role() == Role::Leader && Some(n.id()) != except && n.leader_ready())
    })
}

fn batch(value: &str) -> BytesMut {
    BytesMut::from(&build_batch(0, 1_700_000_000_000, &[(None, value.as_bytes())])[..])
}

async fn all_batches(r: &R) -> Vec<bytes::Bytes> {
    read_all(r.device().log(), 0).await
}

#[test]
fn replicas_on_segment_logs_agree_truncate_and_recover() {
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    run(async {
        let mut nodes: Vec<Option<R>> = Vec::new();
        for (i, d) in dirs.iter().enumerate() {
            nodes.push(Some(open_replica(d.path(), i as u64 + 1).await));
        }
        nodes[0]
            .as_mut()
            .expect("node")
            .campaign()
            .expect("campaign");
        let mut l = None;
        for _ in 0..50 {
            round(&mut nodes, false, None).await;
            l = leader(&nodes, None);
            if l.is_some() {
                break;
            }
        }
        let l = l.expect("a leader is elected");
        let term = nodes[l].as_ref().map(|n| n.term()).unwrap_or(0);
        // 300 batches through the leader; all committed.
        let mut proposals = Vec::new();
        for i in 0..300 {
            let n = nodes[l].as_mut().expect("leader");
            proposals.push(n.propose(batch(&format!("one-{i}"))).expect("propose"));
            if i % 7 == 0 {
                round(&mut nodes, false, None).await;
            }
        }
        for _ in 0..20 {
            round(&mut nodes, false, None).await;
        }
        let n = nodes[l].as_ref().expect("leader");
        assert!(proposals.iter().all(|p| n.outcome(p) == Outcome::Committed));
        assert_eq!(n.high_watermark(), 300);
        let reference = all_batches(n).await;
        assert_eq!(reference.len(), 300);
        for (i, b) in reference.iter().enumerate() {
            let h = BatchHeader::parse(b).expect("header");
            assert_eq!(h.base_offset, i as i64);
            assert_eq!(
                h.partition_leader_epoch as u64, term,
                "the term is the leader epoch"
            );
        }
        for r in nodes.iter().flatten() {
            assert!(
                all_batches(r).await == reference,
                "replica {} differs",
                r.id()
            );
        }

        // The leader is cut off; what it accepts now is never committed.
        let old = nodes[l].as_ref().map(|n| n.id()).expect("leader");
        let mut stranded = Vec::new();
        for i in 0..5 {
            let n = nodes[l].as_mut().expect("old leader");
            stranded.push(n.propose(batch(&format!("stranded-{i}"))).expect("propose"));
            round(&mut nodes, false, Some(old)).await;
        }
        assert_eq!(
            nodes[l].as_ref().map(|n| n.device().log().log_end()),
            Some(305)
        );
        let mut new = None;
        for _ in 0..200 {
            round(&mut nodes, true, Some(old)).await;
            new = leader(&nodes, Some(old));
            if new.is_some() {
                break;
            }
        }
        let new = new.expect("the others elect a new leader");
        for i in 0..10 {
            let n = nodes[new].as_mut().expect("new leader");
            n.propose(batch(&format!("two-{i}"))).expect("propose");
            round(&mut nodes, false, Some(old)).await;
        }
        // Healed: the old leader learns of the new one and gives its tail up.
        for _ in 0..60 {
            round(&mut nodes, true, None).await;
        }
        let old_node = nodes[l].as_ref().expect("old leader");
        assert!(stranded
            .iter()
            .all(|p| old_node.outcome(p) == Outcome::Lost));
        let reference = all_batches(nodes[new].as_ref().expect("new leader")).await;
        assert_eq!(reference.len(), 310);
        let text = String::from_utf8_lossy(&reference[305]);
        assert!(
            text.contains("two-5"),
            "offset 305 holds the new leader's batch"
        );
        for r in nodes.iter().flatten() {
            assert!(
                all_batches(r).await == reference,
                "replica {} differs after the heal",
                r.id()
            );
        }

        // Reopened from its files, a replica has the same log and term.
        let victim = (l + 1) % 3;
        let before_term = nodes[victim].as_ref().map(|n| n.term());
        if let Some(r) = nodes[victim].take() {
            r.device().log().close().await.expect("close");
        }
        let r = open_replica(dirs[victim].path(), victim as u64 + 1).await;
        assert_eq!(Some(r.term()), before_term);
        assert!(
            all_batches(&r).await == reference,
            "the reopened replica lost its log"
        );
        nodes[victim] = Some(r);
        for _ in 0..30 {
            round(&mut nodes, true, None).await;
        }
        let n = nodes[new].as_mut().expect("leader");
        if n.role() == Role::Leader {
            let p = n.propose(batch("three")).expect("propose");
            for _ in 0..10 {
                round(&mut nodes, false, None).await;
            }
            assert_eq!(
                nodes[new].as_ref().map(|n| n.outcome(&p)),
                Some(Outcome::Committed)
            );
        }
    });
}

fn keyed(key: &str, value: &str) -> BytesMut {
    BytesMut::from(
        &build_batch(
            0,
            1_700_000_000_000,
            &[(Some(key.as_bytes()), value.as_bytes())],
        )[..],
    )
}

async fn open_compacted(dir: &std::path::Path, id: u64) -> R {
    let config = strata::storage::LogConfig {
        cleanup_policy: "compact".into(),
        ..small_segments(4096)
    };
    let log = Rc::new(open(dir, config).await);
    let device = LogDevice::open(log).await.expect("device");
    let settings = ReplicaSettings::new(id, vec![1, 2, 3], format!("test-{id}"));
    Replica::open(settings, device).await.expect("replica")
}

/// Key → latest value over stored batches (decoded by a third-party decoder).
fn latest_per_key(batches: &[bytes::Bytes]) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for b in batches {
        let mut buf = b.clone();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).expect("batch");
        for r in set.records {
            let k = r.key.map(|k| String::from_utf8_lossy(&k).to_string());
            let v = r.value.map(|v| String::from_utf8_lossy(&v).to_string());
            out.insert(k.unwrap_or_default(), v.unwrap_or_default());
        }
    }
    out
}

/// Compaction under replication: the leader reports nothing cleanable while a peer has not
/// acknowledged anything (its matched index is the floor), until that peer has been silent
/// for `RAFT_CLEANER_PEER_TIMEOUT_TICKS`; a follower releases its applied point; that follower cleans (whole batches drop: every record superseded), restarts (so
/// nothing is served from memory), leads, and the peer that was cut off catches up from the
/// cleaned log: cleaned batches as they
/// are, dropped ones as empty batches over the same offsets, so its entries still line up
/// with its offsets (it reopens from its files) and it holds the latest value of every key.
#[test]
fn a_peer_behind_catches_up_from_a_compacted_log() {
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    run(async {
        let mut nodes: Vec<Option<R>> = Vec::new();
        for (i, d) in dirs.iter().enumerate() {
            nodes.push(Some(open_compacted(d.path(), i as u64 + 1).await));
        }
        nodes[0]
            .as_mut()
            .expect("node")
            .campaign()
            .expect("campaign");
        for _ in 0..50 {
            round(&mut nodes, false, None).await;
            if leader(&nodes, None).is_some() {
                break;
            }
        }
        assert_eq!(leader(&nodes, None), Some(0), "node 1 leads");
        // Node 3 is cut off; 400 updates of 5 keys are committed by nodes 1 and 2.
        let mut expected = std::collections::BTreeMap::new();
        for i in 0..400 {
            let (k, v) = (format!("k{}", i % 5), format!("v{i}"));
            let n = nodes[0].as_mut().expect("leader");
            n.propose(keyed(&k, &v)).expect("propose");
            expected.insert(k, v);
            if i % 7 == 0 {
                round(&mut nodes, false, Some(3)).await;
            }
        }
        for _ in 0..20 {
            round(&mut nodes, false, Some(3)).await;
        }
        let hw = nodes[0].as_ref().map(|n| n.high_watermark());
        assert_eq!(hw, Some(400));
        assert_eq!(
            nodes[0].as_ref().map(|n| n.raft_needs_from()),
            Some(0),
            "the leader keeps what node 3 still needs: all of it"
        );
        // Not heard from for a while, node 3 stops holding the leader's cleaner back.
        for _ in 0..=strata::limits::RAFT_CLEANER_PEER_TIMEOUT_TICKS {
            round(&mut nodes, true, Some(3)).await;
        }
        assert_eq!(leader(&nodes, None), Some(0), "node 1 still leads");
        assert_eq!(nodes[0].as_ref().map(|n| n.raft_needs_from()), Some(400));
        let follower = nodes[1].as_ref().expect("node 2");
        assert_eq!(follower.role(), Role::Follower);
        assert_eq!(follower.raft_needs_from(), follower.high_watermark());

        // Node 2 cleans below what it reports.
        let log = follower.device().log().clone();
        let before = log.size_bytes();
        let limits = strata::storage::CleanLimits {
            upto: follower.raft_needs_from().min(log.active_base()),
            first_dirty: 0,
            min_compaction_lag_ms: 0,
            delete_retention_ms: 0,
            last_batches: Default::default(),
        };
        assert!(
            limits.upto > 200,
            "most of the log is cleanable: {limits:?}"
        );
        let mut map = strata::storage::compact::KeyMap::with_budget(1 << 20);
        let report = log.clean(&limits, &mut map, None).await.expect("clean");
        assert!(report.records_removed > 100, "{report:?}");
        let cleaned = read_all(&log, 0).await;
        assert!(
            cleaned.len() < 300 && log.size_bytes() < before / 2,
            "batches dropped: {} left, {} of {before} bytes",
            cleaned.len(),
            log.size_bytes()
        );
        assert_eq!(latest_per_key(&cleaned), expected);
        // Restarted, node 2 has no batch in memory: what it sends, it reads from its log.
        if let Some(r) = nodes[1].take() {
            r.device().log().close().await.expect("close");
        }
        nodes[1] = Some(open_compacted(dirs[1].path(), 2).await);
        assert!(read_all(nodes[1].as_ref().expect("node 2").device().log(), 0).await == cleaned);

        // Node 1 goes; node 2 (the longer log) leads; node 3 returns and catches up.
        let mut new = None;
        for _ in 0..300 {
            round(&mut nodes, true, Some(1)).await;
            new = leader(&nodes, Some(1));
            if new.is_some() {
                break;
            }
        }
        assert_eq!(new, Some(1), "node 2 leads");
        for i in 0..5 {
            let n = nodes[1].as_mut().expect("new leader");
            n.propose(keyed("k0", &format!("after-{i}")))
                .expect("propose");
            round(&mut nodes, false, Some(1)).await;
        }
        expected.insert("k0".into(), "after-4".into());
        for _ in 0..100 {
            round(&mut nodes, true, Some(1)).await;
            if nodes[2].as_ref().map(|n| n.high_watermark()) == Some(405) {
                break;
            }
        }
        let peer = nodes[2].as_ref().expect("node 3");
        assert_eq!(peer.high_watermark(), 405, "node 3 caught up");
        let caught = read_all(peer.device().log(), 0).await;
        assert_eq!(latest_per_key(&caught), expected);
        // Every entry's batch is there, at its offsets: the dropped ones as empty batches.
        let mut next = 0;
        for b in &caught {
            let h = BatchHeader::parse(b).expect("header");
            assert_eq!(h.base_offset, next, "offsets line up");
            next = h.next_offset();
        }
        assert_eq!(next, 405);
        assert!(caught
            .iter()
            .any(|b| BatchHeader::parse(b).is_some_and(|h| h.record_count == 0)));

        // Reopened from its files, node 3 has the same log, and takes new batches.
        if let Some(r) = nodes[2].take() {
            r.device().log().close().await.expect("close");
        }
        let r = open_compacted(dirs[2].path(), 3).await;
        assert!(read_all(r.device().log(), 0).await == caught);
        nodes[2] = Some(r);
        for _ in 0..30 {
            round(&mut nodes, true, Some(1)).await;
        }
        if let Some(n) = nodes[1].as_mut().filter(|n| n.role() == Role::Leader) {
            let p = n.propose(keyed("k1", "last")).expect("propose");
            for _ in 0..10 {
                round(&mut nodes, false, Some(1)).await;
            }
            assert_eq!(
                nodes[1].as_ref().map(|n| n.outcome(&p)),
                Some(Outcome::Committed)
            );
            assert_eq!(nodes[2].as_ref().map(|n| n.high_watermark()), Some(406));
        }
    });
}
