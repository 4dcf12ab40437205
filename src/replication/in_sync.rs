//! Kafka's in-sync replicas (ISR) under Raft: which replicas of a group are caught up.
//!
//! Raft needs no ISR (a majority decides), but Kafka's clients and tools read one from
//! Metadata, and `min.insync.replicas` is judged against it. The definition is Kafka's
//! (`replica.lag.time.max.ms`): the leader, plus every follower that, within the lag time,
//! was heard from and had everything the leader held one tick earlier. Time is counted in
//! Raft ticks, so the simulation replays it from its seed.
//!
//! Only the leader can judge; it tells its followers what it judged in the context of its
//! heartbeats (a field raft-rs leaves to its user outside ReadIndex, which Strata does not
//! use), so any replica's broker answers Metadata with the leader's ISR. A replica that has not
//! heard its leader's ISR in the current term reports none ([`InSync::members`] is `None`):
//! the broker then lists every replica, as it cannot know better.
//!
//! It must not touch Raft's decisions: nothing here changes what is committed or who leads.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::NodeId;

/// The first byte of a heartbeat context that carries an ISR.
const TAG: u8 = b'I';

/// Most replicas a heartbeat's ISR may name (anything longer is not one of ours).
const MAX_MEMBERS: usize = 1024;

#[derive(Debug)]
pub struct InSync {
    me: NodeId,
    /// `replica.lag.time.max.ms` in ticks.
    lag_ticks: u64,
    now: u64,
    /// The term the leader side was last judged in (a new term starts everyone in sync).
    term: u64,
    /// Per follower, the tick it was last caught up.
    caught_up: BTreeMap<NodeId, u64>,
    /// The leader's last index at the previous tick.
    prev_last: u64,
    /// What the leader of `term` last said (on a follower).
    heard: Option<(u64, Vec<NodeId>)>,
}

impl InSync {
    pub fn new(me: NodeId, lag_ticks: u64) -> InSync {
        InSync {
            me,
            lag_ticks: lag_ticks.max(1),
            now: 0,
            term: 0,
            caught_up: BTreeMap::new(),
            prev_last: 0,
            heard: None,
        }
    }

    /// One tick of a leader in `term` whose log ends at `last_index`; `peers` are the
    /// followers' (id, matched index, heard from since the last quorum check).
    pub fn leader_tick(
        &mut self,
        term: u64,
        last_index: u64,
        peers: impl Iterator<Item = (NodeId, u64, bool)>,
    ) {
        self.now += 1;
        let fresh = term != self.term;
        self.term = term;
        let mut seen = Vec::new();
        for (id, matched, active) in peers {
            if id == self.me {
                continue;
            }
            seen.push(id);
            let entry = self.caught_up.entry(id).or_insert(self.now);
            if fresh || (active && matched >= self.prev_last) {
                *entry = self.now;
            }
        }
        self.caught_up.retain(|id, _| seen.contains(id));
        self.prev_last = last_index;
        self.heard = None;
    }

    /// One tick of a replica that does not lead.
    pub fn follower_tick(&mut self) {
        self.now += 1;
        self.term = 0;
    }

    /// The in-sync replicas as this replica knows them in `term` (`leading`: judged here),
    /// sorted; `None` when it does not know.
    pub fn members(&self, term: u64, leading: bool) -> Option<Vec<NodeId>> {
        if leading {
            if self.term != term {
                return None;
            }
            let mut out: Vec<NodeId> = self
                .caught_up
                .iter()
                .filter(|(_, at)| self.now - **at <= self.lag_ticks)
                .map(|(id, _)| *id)
                .collect();
            out.push(self.me);
            out.sort_unstable();
            return Some(out);
        }
        match &self.heard {
            Some((t, ids)) if *t == term => Some(ids.clone()),
            _ => None,
        }
    }

    /// The context a leader's heartbeat carries: its ISR in `term`.
    pub fn context(&self, term: u64) -> Option<Bytes> {
        let ids = self.members(term, true)?;
        let mut b = BytesMut::with_capacity(1 + 8 + 2 + 8 * ids.len());
        b.put_u8(TAG);
        b.put_u64(term);
        b.put_u16(ids.len() as u16);
        for id in ids {
            b.put_u64(id);
        }
        Some(b.freeze())
    }

    /// Takes an ISR out of a heartbeat's context; false if the context is not one.
    pub fn hear(&mut self, mut context: &[u8]) -> bool {
        if context.len() < 11 || context[0] != TAG {
            return false;
        }
        context.advance(1);
        let term = context.get_u64();
        let n = context.get_u16() as usize;
        if n > MAX_MEMBERS || context.len() != n * 8 {
            return false;
        }
        let ids = (0..n).map(|_| context.get_u64()).collect();
        self.heard = Some((term, ids));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_falls_out_after_the_lag_and_comes_back_once_caught_up() {
        let mut s = InSync::new(1, 3);
        s.leader_tick(5, 10, [(2, 10, true), (3, 10, true)].into_iter());
        assert_eq!(s.members(5, true), Some(vec![1, 2, 3]));
        // Node 3 stops answering: in sync for the lag, then out.
        for last in 11..=14 {
            s.leader_tick(5, last, [(2, last - 1, true), (3, 10, false)].into_iter());
        }
        assert_eq!(s.members(5, true), Some(vec![1, 2]));
        // It catches up to what the leader held a tick earlier.
        s.leader_tick(5, 15, [(2, 14, true), (3, 14, true)].into_iter());
        assert_eq!(s.members(5, true), Some(vec![1, 2, 3]));
        assert_eq!(s.members(6, true), None, "another term is not judged yet");
    }

    #[test]
    fn a_dead_follower_leaves_even_when_nothing_is_written() {
        let mut s = InSync::new(1, 2);
        s.leader_tick(1, 4, [(2, 4, true)].into_iter());
        for _ in 0..3 {
            s.leader_tick(1, 4, [(2, 4, false)].into_iter());
        }
        assert_eq!(s.members(1, true), Some(vec![1]));
    }

    #[test]
    fn the_leaders_word_travels_in_a_heartbeat_context() {
        let mut leader = InSync::new(1, 10);
        leader.leader_tick(7, 3, [(2, 3, true), (3, 3, true)].into_iter());
        let ctx = leader.context(7).expect("judged");
        let mut follower = InSync::new(2, 10);
        assert!(follower.hear(&ctx));
        assert_eq!(follower.members(7, false), Some(vec![1, 2, 3]));
        assert_eq!(follower.members(8, false), None);
        assert!(!follower.hear(b"read-index-ctx"));
        assert!(!follower.hear(&ctx[..ctx.len() - 1]), "torn");
    }
}
