//! The consumer group state machine, driven with injected time and a fixed topic catalog.

use std::cell::RefCell;
use std::collections::BTreeMap;

use super::*;

const T: TopicId = uuid::Uuid::from_bytes([9; 16]);

/// A fixed catalog: "orders" (id `T`) and whatever a test adds.
struct Catalog(Vec<TopicInfo>);

impl Topics for Catalog {
    fn get(&self, name: &str) -> Option<TopicInfo> {
        self.0.iter().find(|t| t.name == name).cloned()
    }

    fn names(&self) -> Vec<String> {
        self.0.iter().map(|t| t.name.clone()).collect()
    }
}

struct World {
    groups: ConsumerGroups,
    now: Instant,
    partitions: RefCell<i32>,
    /// Topics besides "orders".
    others: RefCell<Vec<TopicInfo>>,
    /// Every record written, in order (what a restart reads back).
    log: Vec<Record>,
}

impl World {
    fn new() -> Self {
        World {
            groups: ConsumerGroups::new(Settings {
                max_size: 3,
                ..Settings::default()
            }),
            now: Instant::now(),
            partitions: RefCell::new(6),
            others: RefCell::new(Vec::new()),
            log: Vec::new(),
        }
    }

    fn hb(&mut self, req: HeartbeatRequest) -> Result<HeartbeatOutcome, Refusal> {
        let mut topics = vec![TopicInfo {
            id: T,
            name: "orders".into(),
            partitions: *self.partitions.borrow(),
        }];
        topics.extend(self.others.borrow().iter().cloned());
        let (r, recs) = self
            .groups
            .heartbeat(req, self.now, &Catalog(topics), || "generated".to_string());
        self.log.extend(recs);
        r
    }

    fn join(&mut self, id: &str) -> Result<HeartbeatOutcome, Refusal> {
        self.hb(join_req(id))
    }

    /// A heartbeat from `id` at `epoch`, reporting it owns `owned`.
    fn beat(&mut self, id: &str, epoch: i32, owned: &[i32]) -> Result<HeartbeatOutcome, Refusal> {
        self.hb(HeartbeatRequest {
            group: "g".into(),
            member_id: id.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            owned: Some(own(owned)),
            client_generates_id: true,
            ..Default::default()
        })
    }

    fn tick(&mut self) {
        let recs = self.groups.tick(self.now);
        self.log.extend(recs);
    }

    fn group(&self) -> &ConsumerGroup {
        self.groups.group("g").expect("group")
    }
}

fn join_req(id: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        group: "g".into(),
        member_id: id.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec!["orders".into()]),
        owned: Some(Assignment::new()),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        client_generates_id: true,
        ..Default::default()
    }
}

fn own(ps: &[i32]) -> Assignment {
    if ps.is_empty() {
        return Assignment::new();
    }
    [(T, ps.iter().copied().collect())].into()
}

fn parts(o: &HeartbeatOutcome) -> Vec<i32> {
    o.assignment
        .as_ref()
        .and_then(|a| a.get(&T))
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default()
}

/// Two members end up with three partitions each, the second getting its share only after
/// the first revoked it.
fn two_members(w: &mut World) -> (Vec<i32>, Vec<i32>) {
    let a = w.join("a").unwrap();
    assert_eq!(a.member_epoch, 1);
    assert_eq!(parts(&a), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(w.group().state(), "Stable");
    let b = w.join("b").unwrap();
    assert_eq!(b.member_epoch, 2, "b is at the new epoch");
    assert!(parts(&b).is_empty(), "its partitions are still a's");
    assert_eq!(w.group().state(), "Reconciling");
    // a learns its new assignment and must revoke first: it stays at epoch 1.
    let a = w.beat("a", 1, &[0, 1, 2, 3, 4, 5]).unwrap();
    assert_eq!(a.member_epoch, 1);
    let a_keeps = parts(&a);
    assert_eq!(a_keeps.len(), 3);
    // b asks again before a revoked: still nothing.
    let b = w.beat("b", 2, &[]).unwrap();
    assert!(parts(&b).is_empty(), "pending revocation is not given away");
    // a revoked: it moves to epoch 2.
    let a = w.beat("a", 1, &a_keeps).unwrap();
    assert_eq!(a.member_epoch, 2);
    let b = w.beat("b", 2, &[]).unwrap();
    let b_got = parts(&b);
    assert_eq!(b_got.len(), 3);
    assert!(b_got.iter().all(|p| !a_keeps.contains(p)));
    assert_eq!(w.group().state(), "Stable");
    (a_keeps, b_got)
}

#[test]
fn members_share_partitions_and_revoke_before_reassignment() {
    let mut w = World::new();
    two_members(&mut w);
    assert_eq!(w.group().epoch, 2);
    assert_eq!(w.group().assignment_epoch, 2);
}

#[test]
fn leaving_hands_everything_to_the_rest() {
    let mut w = World::new();
    let (_, b_got) = two_members(&mut w);
    let left = w
        .hb(HeartbeatRequest {
            member_epoch: LEAVE_EPOCH,
            ..join_req("a")
        })
        .unwrap();
    assert_eq!(left.member_epoch, LEAVE_EPOCH);
    assert_eq!(w.group().epoch, 3);
    let b = w.beat("b", 2, &b_got).unwrap();
    assert_eq!(b.member_epoch, 3);
    assert_eq!(parts(&b), vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn epochs_fence_zombies_but_accept_a_lost_bump() {
    let mut w = World::new();
    let (a_keeps, _) = two_members(&mut w);
    let e = w.beat("a", 3, &a_keeps).unwrap_err();
    assert_eq!(e.error, GroupError::FencedMemberEpoch, "a future epoch");
    // The previous epoch with a subset of the assignment: the bump's answer was lost.
    assert_eq!(w.beat("a", 1, &a_keeps).unwrap().member_epoch, 2);
    let e = w.beat("a", 1, &[0, 1, 2, 3, 4, 5]).unwrap_err();
    assert_eq!(
        e.error,
        GroupError::FencedMemberEpoch,
        "owns more than assigned"
    );
    let e = w
        .hb(HeartbeatRequest {
            owned: None,
            ..HeartbeatRequest {
                member_epoch: 1,
                ..join_req("a")
            }
        })
        .unwrap_err();
    assert_eq!(
        e.error,
        GroupError::FencedMemberEpoch,
        "previous epoch, no owned list"
    );
    let e = w.beat("zz", 2, &[]).unwrap_err();
    assert_eq!(e.error, GroupError::UnknownMemberId);
}

#[test]
fn silent_members_expire_and_slow_revokers_are_removed() {
    let mut w = World::new();
    let (a_keeps, _) = two_members(&mut w);
    w.now += Duration::from_secs(30);
    w.beat("a", 2, &a_keeps).unwrap();
    w.now += Duration::from_secs(20);
    w.tick();
    assert!(w.group().members.contains_key("a"));
    assert!(
        !w.group().members.contains_key("b"),
        "b was silent for 50 s"
    );
    let a = w.beat("a", 2, &a_keeps).unwrap();
    assert_eq!(a.member_epoch, 3);
    assert_eq!(parts(&a).len(), 6);
    // c joins; a must revoke three but never does.
    w.join("c").unwrap();
    let a = w.beat("a", 3, &[0, 1, 2, 3, 4, 5]).unwrap();
    assert_eq!(a.member_epoch, 3, "revoking");
    w.now += Duration::from_secs(31);
    w.beat("c", 4, &[]).unwrap();
    w.beat("a", 3, &[0, 1, 2, 3, 4, 5]).unwrap();
    w.tick();
    assert!(
        !w.group().members.contains_key("a"),
        "a kept partitions past its rebalance timeout"
    );
    let c = w.beat("c", 4, &[]).unwrap();
    assert_eq!(parts(&c).len(), 6);
}

#[test]
fn a_new_topic_size_bumps_the_group_epoch() {
    let mut w = World::new();
    let a = w.join("a").unwrap();
    assert_eq!(parts(&a).len(), 6);
    *w.partitions.borrow_mut() = 8;
    let a = w.beat("a", 1, &parts(&a)).unwrap();
    assert_eq!(a.member_epoch, 2);
    assert_eq!(parts(&a).len(), 8);
}

#[test]
fn static_members_come_back_to_their_partitions_without_a_rebalance() {
    let mut w = World::new();
    let static_join = |id: &str| HeartbeatRequest {
        instance_id: Some("i1".into()),
        ..join_req(id)
    };
    w.hb(static_join("s1")).unwrap();
    w.join("b").unwrap();
    let s = w.beat("s1", 1, &[0, 1, 2, 3, 4, 5]).unwrap();
    let s = w.beat("s1", 1, &parts(&s)).unwrap();
    assert_eq!(s.member_epoch, 2);
    let kept = parts(&s);
    let e = w.hb(static_join("s2")).unwrap_err();
    assert_eq!(e.error, GroupError::UnreleasedInstanceId);
    let left = w
        .hb(HeartbeatRequest {
            member_epoch: STATIC_LEAVE_EPOCH,
            ..static_join("s1")
        })
        .unwrap();
    assert_eq!(left.member_epoch, STATIC_LEAVE_EPOCH);
    let epoch = w.group().epoch;
    let s2 = w.hb(static_join("s2")).unwrap();
    assert_eq!(w.group().epoch, epoch, "no rebalance");
    assert_eq!(s2.member_epoch, epoch);
    assert_eq!(parts(&s2), kept);
    assert!(!w.group().members.contains_key("s1"));
}

#[test]
fn requests_are_validated_as_kafka_does() {
    let mut w = World::new();
    let bad = [
        HeartbeatRequest {
            rebalance_timeout_ms: -1,
            ..join_req("a")
        },
        HeartbeatRequest {
            owned: None,
            ..join_req("a")
        },
        HeartbeatRequest {
            subscribed_topic_names: None,
            ..join_req("a")
        },
        HeartbeatRequest {
            member_id: String::new(),
            ..join_req("a")
        },
        HeartbeatRequest {
            member_epoch: -3,
            ..join_req("a")
        },
    ];
    for req in bad {
        let e = w.hb(req.clone()).unwrap_err();
        assert_eq!(e.error, GroupError::InvalidRequest, "{req:?}");
    }
    let e = w
        .hb(HeartbeatRequest {
            subscribed_topic_regex: Some("ord(".into()),
            ..join_req("a")
        })
        .unwrap_err();
    assert_eq!(e.error, GroupError::InvalidRegularExpression);
    let e = w
        .hb(HeartbeatRequest {
            server_assignor: Some("sticky".into()),
            ..join_req("a")
        })
        .unwrap_err();
    assert_eq!(e.error, GroupError::UnsupportedAssignor);
    // v0: the broker names the member.
    let v0 = w
        .hb(HeartbeatRequest {
            member_id: String::new(),
            client_generates_id: false,
            ..join_req("")
        })
        .unwrap();
    assert_eq!(v0.member_id, "generated");
    for id in ["b", "c"] {
        w.join(id).unwrap();
    }
    let e = w.join("d").unwrap_err();
    assert_eq!(e.error, GroupError::GroupMaxSizeReached);
    let e = w
        .hb(HeartbeatRequest {
            group: "other".into(),
            member_epoch: 3,
            ..join_req("a")
        })
        .unwrap_err();
    assert_eq!(e.error, GroupError::UnknownMemberId);
}

#[test]
fn the_most_asked_for_assignor_is_used() {
    let mut w = World::new();
    let range = |id: &str| HeartbeatRequest {
        server_assignor: Some("range".into()),
        ..join_req(id)
    };
    w.hb(range("b")).unwrap();
    w.hb(range("a")).unwrap();
    assert_eq!(w.group().assignor(), "range");
    let t = &w.group().targets;
    assert_eq!(
        t["a"][&T].iter().copied().collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(
        t["b"][&T].iter().copied().collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
}

#[test]
fn commits_and_fetches_check_member_epochs() {
    let mut w = World::new();
    two_members(&mut w);
    let g = &w.groups;
    assert_eq!(g.check_commit("g", "a", 2, 9), Ok(()));
    assert_eq!(
        g.check_commit("g", "a", 1, 9),
        Err(GroupError::StaleMemberEpoch)
    );
    assert_eq!(
        g.check_commit("g", "a", 3, 9),
        Err(GroupError::FencedMemberEpoch)
    );
    assert_eq!(
        g.check_commit("g", "x", 2, 9),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        g.check_commit("g", "", -1, 9),
        Err(GroupError::UnknownMemberId),
        "no simple commits while the group has members"
    );
    assert_eq!(
        g.check_commit("g", "a", 2, 8),
        Err(GroupError::UnsupportedVersion),
        "members commit with v9+"
    );
    assert_eq!(g.check_fetch("g", None, -1), Ok(()));
    assert_eq!(
        g.check_fetch("g", Some("a"), 1),
        Err(GroupError::StaleMemberEpoch)
    );
    assert_eq!(
        g.check_fetch("g", Some("x"), 1),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(g.check_fetch("g", Some("b"), 2), Ok(()));
}

#[test]
fn a_restart_restores_groups_from_their_records() {
    let mut w = World::new();
    let (a_keeps, b_got) = two_members(&mut w);
    w.join("c").unwrap();
    // a is now revoking: its pending revocation must survive too.
    w.beat("a", 2, &a_keeps).unwrap();
    let mut loader = records::Loader::default();
    for r in &w.log {
        let (k, v) = r.encode();
        loader.apply(records::decode_key(k).expect("key"), v);
    }
    let mut restored = ConsumerGroups::new(Settings::default());
    for (id, l) in loader.finish() {
        restored.restore(id, l, w.now);
    }
    let (before, after) = (w.group(), restored.group("g").expect("restored"));
    assert_eq!(after.epoch, before.epoch);
    assert_eq!(after.assignment_epoch, before.assignment_epoch);
    assert_eq!(after.targets, before.targets);
    assert_eq!(after.topics, before.topics);
    let strip =
        |g: &ConsumerGroup| -> BTreeMap<String, (i32, i32, Assignment, Assignment, Vec<String>)> {
            g.members
                .values()
                .map(|m| {
                    (
                        m.id.clone(),
                        (
                            m.epoch,
                            m.previous_epoch,
                            m.assigned.clone(),
                            m.pending_revocation.clone(),
                            m.subscribed_topics.clone(),
                        ),
                    )
                })
                .collect()
        };
    assert_eq!(strip(after), strip(before));
    assert_eq!(after.state(), before.state());
    assert_eq!(after.members["a"].state, MemberState::UnrevokedPartitions);
    assert!(
        after.members["a"].revoke_deadline.is_some(),
        "a restored revoker is still bounded by its rebalance timeout"
    );
    // The restored group goes on: b keeps working at its epoch.
    w.groups = restored;
    let b = w.beat("b", 2, &b_got).unwrap();
    assert!(b.member_epoch >= 2);
    // Deleting is refused while members remain, and leaves nothing behind once empty.
    assert_eq!(w.groups.delete("g").unwrap_err(), GroupError::NonEmptyGroup);
}

#[test]
fn regex_subscriptions_follow_the_catalog() {
    let mut w = World::new();
    let other = uuid::Uuid::from_bytes([3; 16]);
    w.others.borrow_mut().extend([
        TopicInfo {
            id: other,
            name: "orders-eu".into(),
            partitions: 2,
        },
        TopicInfo {
            id: uuid::Uuid::from_bytes([4; 16]),
            name: "payments".into(),
            partitions: 2,
        },
        TopicInfo {
            id: uuid::Uuid::from_bytes([5; 16]),
            name: "__consumer_offsets".into(),
            partitions: 50,
        },
    ]);
    let a = w
        .hb(HeartbeatRequest {
            subscribed_topic_names: None,
            subscribed_topic_regex: Some("orders.*|__.*".into()),
            ..join_req("a")
        })
        .unwrap();
    let got = a.assignment.expect("assignment");
    assert_eq!(got[&T].len(), 6);
    assert_eq!(got[&other].len(), 2);
    assert_eq!(
        got.len(),
        2,
        "whole names only, never payments or __consumer_offsets"
    );
    // A new matching topic joins the subscription on the next heartbeat.
    let epoch = a.member_epoch;
    let late = uuid::Uuid::from_bytes([6; 16]);
    w.others.borrow_mut().push(TopicInfo {
        id: late,
        name: "orders-us".into(),
        partitions: 1,
    });
    let owned: Assignment = got.clone();
    let a = w
        .hb(HeartbeatRequest {
            member_id: "a".into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            owned: Some(owned),
            client_generates_id: true,
            group: "g".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(a.member_epoch, epoch + 1);
    assert!(a.assignment.expect("assignment").contains_key(&late));
    // The pattern is kept as the member's subscription (and persisted with it).
    let g = w.group();
    assert_eq!(
        g.members["a"].subscribed_regex.as_deref(),
        Some("orders.*|__.*")
    );
}
