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
