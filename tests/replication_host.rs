//! The per-core replication host: three hosts (one per "broker") in one executor, linked by
//! an in-memory transport, each driving a replica of one group on a real segment log.
//! Proposals go through the group's handle: the leader answers acks=all once a majority has
//! the batch, a follower answers "not the leader" naming the leader; after the leader's host
//! stops, the others elect a new leader that has every acknowledged batch.

mod common;

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use strata::replication::host::{Ack, GroupHandle, Host, Transport};
use strata::replication::{LogDevice, NodeId, Replica, ReplicaError, ReplicaSettings, Role};
use strata::storage::batch::build_batch;

type H = Host<LogDevice>;

/// Delivers straight into the other hosts, unless the sender or receiver is down.
struct Loopback {
    hosts: RefCell<Vec<Weak<H>>>,
    down: RefCell<Vec<NodeId>>,
    from: NodeId,
}

impl Transport for Loopback {
    fn send(&self, to: NodeId, group: u64, payload: Bytes) {
        let down = self.down.borrow();
        if down.contains(&to) || down.contains(&self.from) {
            return;
        }
        if let Some(h) = self
            .hosts
            .borrow()
            .get((to - 1) as usize)
            .and_then(|h| h.upgrade())
        {
            h.deliver(group, &payload);
        }
    }
}

fn batch(v: &str) -> BytesMut {
    BytesMut::from(&build_batch(0, 1_700_000_000_000, &[(None, v.as_bytes())])[..])
}

async fn wait_leader(handles: &[Rc<GroupHandle>], except: Option<usize>) -> usize {
    for _ in 0..400 {
        for (i, h) in handles.iter().enumerate() {
            let p = h.published();
            if Some(i) != except && p.role == Role::Leader && p.leader_ready {
                return i;
            }
        }
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    panic!("no leader");
}

#[test]
fn hosts_replicate_answer_acks_and_fail_over() {
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    run(async {
        let mut hosts = Vec::new();
        let mut transports = Vec::new();
        let mut handles = Vec::new();
        for i in 0..3u64 {
            let t = Rc::new(Loopback {
                hosts: RefCell::new(Vec::new()),
                down: RefCell::new(Vec::new()),
                from: i + 1,
            });
            transports.push(t.clone());
            let host: Rc<H> = Host::new(t, Duration::from_millis(10));
            let log = Rc::new(open(dirs[i as usize].path(), small_segments(1 << 20)).await);
            let device = LogDevice::open(log).await.expect("device");
            let replica = Replica::open(ReplicaSettings::new(i + 1, vec![1, 2, 3], "g"), device)
                .await
                .expect("replica");
            handles.push(host.add(7, replica));
            glommio::spawn_local(host.clone().run()).detach();
            hosts.push(host);
        }
        for t in &transports {
            *t.hosts.borrow_mut() = hosts.iter().map(Rc::downgrade).collect();
        }
        let l = wait_leader(&handles, None).await;
        let follower = (l + 1) % 3;
        match handles[follower].propose(batch("x"), Ack::Quorum).await {
            Err(ReplicaError::NotLeader { leader }) => assert_eq!(leader, Some(l as u64 + 1)),
            other => panic!("a follower accepted a proposal: {other:?}"),
        }
        let mut acked = Vec::new();
        for i in 0..50 {
            let p = handles[l]
                .propose(batch(&format!("v{i}")), Ack::Quorum)
                .await
                .expect("acks=all");
            acked.push(p.base_offset);
        }
        assert_eq!(acked, (0..50).collect::<Vec<i64>>());
        assert!(handles[l].published().high_watermark >= 50);

        // The leader goes silent; another takes over with everything acknowledged.
        for t in &transports {
            t.down.borrow_mut().push(l as u64 + 1);
        }
        hosts[l].stop();
        let n = wait_leader(&handles, Some(l)).await;
        let p = handles[n]
            .propose(batch("after"), Ack::Quorum)
            .await
            .expect("acks=all");
        assert_eq!(
            p.base_offset, 50,
            "the new leader continues after every acknowledged batch"
        );
        let ack1 = handles[n]
            .propose(batch("one"), Ack::Leader)
            .await
            .expect("acks=1");
        assert_eq!(ack1.base_offset, 51);
        for h in &hosts {
            h.stop();
        }
    });
}
