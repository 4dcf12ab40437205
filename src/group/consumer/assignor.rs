//! The server-side assignors of the consumer group protocol (KIP-848): `uniform` (Kafka's
//! default: balanced within one partition per member, sticky to the previous target) and
//! `range` (per topic, contiguous ranges of partitions to the members subscribed to it, in
//! member id order). They are pure functions from the members' subscriptions and the topics'
//! partition counts to a target assignment; they know nothing of epochs or members' progress.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Assignment, TopicId, TopicInfo};

/// Kafka's name of the default assignor (`group.consumer.assignors`' first).
pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";
/// Every assignor the coordinator knows, default first.
pub const ASSIGNORS: &[&str] = &[UNIFORM, RANGE];

/// A member as an assignor sees it.
pub struct AssignorMember<'a> {
    pub id: &'a str,
    pub topics: BTreeSet<TopicId>,
    /// Its previous target (stickiness).
    pub previous: &'a Assignment,
}

/// Runs the assignor `name` (an unknown name is the default's).
pub fn assign(
    name: &str,
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<TopicId, TopicInfo>,
) -> HashMap<String, Assignment> {
    match name {
        RANGE => range(members, topics),
        _ => uniform(members, topics),
    }
}

/// Per topic, members subscribed to it in id order each get a contiguous range; the first
/// `partitions % members` get one more.
pub fn range(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<TopicId, TopicInfo>,
) -> HashMap<String, Assignment> {
    let mut out: HashMap<String, Assignment> = members
        .iter()
        .map(|m| (m.id.to_string(), Assignment::new()))
        .collect();
    for (id, info) in topics {
        let mut subscribed: Vec<&str> = members
            .iter()
            .filter(|m| m.topics.contains(id))
            .map(|m| m.id)
            .collect();
        subscribed.sort_unstable();
        if subscribed.is_empty() || info.partitions <= 0 {
            continue;
        }
        let n = subscribed.len() as i32;
        let (per, extra) = (info.partitions / n, info.partitions % n);
        let mut start = 0;
        for (i, m) in subscribed.iter().enumerate() {
            let count = per + i32::from((i as i32) < extra);
            if count > 0 {
                if let Some(a) = out.get_mut(*m) {
                    a.insert(*id, (start..start + count).collect());
                }
            }
            start += count;
        }
    }
    out
}

/// Balanced and sticky: each member keeps what it had in the previous target (of topics it
/// still subscribes to), unowned partitions go to the least loaded member that may take
/// them, then partitions move from a member to one with at least two fewer until none can.
/// With identical subscriptions every member ends within one partition of every other.
pub fn uniform(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<TopicId, TopicInfo>,
) -> HashMap<String, Assignment> {
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by_key(|&i| members[i].id);
    // Partition → member index; per member its partitions.
    let mut owner: HashMap<(TopicId, i32), usize> = HashMap::new();
    let mut held: Vec<BTreeSet<(TopicId, i32)>> = vec![BTreeSet::new(); members.len()];
    for &i in &order {
        for (t, ps) in members[i].previous {
            let Some(info) = topics.get(t) else { continue };
            if !members[i].topics.contains(t) {
                continue;
            }
            for &p in ps {
                if p >= 0 && p < info.partitions && !owner.contains_key(&(*t, p)) {
                    owner.insert((*t, p), i);
                    held[i].insert((*t, p));
                }
            }
        }
    }
    // Unowned partitions, in (topic, partition) order, to the least loaded eligible member.
    for (t, info) in topics {
        let eligible: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| members[i].topics.contains(t))
            .collect();
        if eligible.is_empty() {
            continue;
        }
        for p in 0..info.partitions.max(0) {
            if owner.contains_key(&(*t, p)) {
                continue;
            }
            if let Some(&i) = eligible.iter().min_by_key(|&&i| held[i].len()) {
                owner.insert((*t, p), i);
                held[i].insert((*t, p));
            }
        }
    }
    // Balance: each move lowers the sum of squared loads, so this ends; the bound is a
    // safety net.
    let total: usize = held.iter().map(BTreeSet::len).sum();
    for _ in 0..=total {
        let mut moved = false;
        let mut by_load = order.clone();
        by_load.sort_by_key(|&i| std::cmp::Reverse(held[i].len()));
        'members: for &a in &by_load {
            let parts: Vec<(TopicId, i32)> = held[a].iter().rev().copied().collect();
            for tp in parts {
                let target = order
                    .iter()
                    .copied()
                    .filter(|&b| b != a && members[b].topics.contains(&tp.0))
                    .filter(|&b| held[b].len() + 1 < held[a].len())
                    .min_by_key(|&b| held[b].len());
                if let Some(b) = target {
                    held[a].remove(&tp);
                    held[b].insert(tp);
                    moved = true;
                    break 'members;
                }
            }
        }
        if !moved {
            break;
        }
    }
    members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut a = Assignment::new();
            for (t, p) in &held[i] {
                a.entry(*t).or_default().insert(*p);
            }
            (m.id.to_string(), a)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u8, partitions: i32) -> (TopicId, TopicInfo) {
        let id = uuid::Uuid::from_bytes([n; 16]);
        (
            id,
            TopicInfo {
                id,
                name: format!("t{n}"),
                partitions,
            },
        )
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    #[test]
    fn uniform_spreads_within_one_and_covers_every_partition_once() {
        let topics: BTreeMap<_, _> = [topic(1, 7), topic(2, 4)].into_iter().collect();
        let all: BTreeSet<TopicId> = topics.keys().copied().collect();
        let empty = Assignment::new();
        for n in 1..=6 {
            let ids: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
            let members: Vec<AssignorMember> = ids
                .iter()
                .map(|id| AssignorMember {
                    id,
                    topics: all.clone(),
                    previous: &empty,
                })
                .collect();
            let out = uniform(&members, &topics);
            let counts: Vec<usize> = out.values().map(count).collect();
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(hi - lo <= 1, "{n} members: {counts:?}");
            let mut seen = BTreeSet::new();
            for a in out.values() {
                for (t, ps) in a {
                    for p in ps {
                        assert!(seen.insert((*t, *p)), "{t} {p} given twice");
                    }
                }
            }
            assert_eq!(seen.len(), 11);
        }
    }

    #[test]
    fn uniform_is_sticky_when_a_member_joins() {
        let topics: BTreeMap<_, _> = [topic(1, 6)].into_iter().collect();
        let all: BTreeSet<TopicId> = topics.keys().copied().collect();
        let empty = Assignment::new();
        let first = uniform(
            &[
                AssignorMember {
                    id: "a",
                    topics: all.clone(),
                    previous: &empty,
                },
                AssignorMember {
                    id: "b",
                    topics: all.clone(),
                    previous: &empty,
                },
            ],
            &topics,
        );
        let second = uniform(
            &[
                AssignorMember {
                    id: "a",
                    topics: all.clone(),
                    previous: &first["a"],
                },
                AssignorMember {
                    id: "b",
                    topics: all.clone(),
                    previous: &first["b"],
                },
                AssignorMember {
                    id: "c",
                    topics: all.clone(),
                    previous: &empty,
                },
            ],
            &topics,
        );
        for m in ["a", "b"] {
            assert_eq!(count(&second[m]), 2);
            let kept = second[m]
                .values()
                .flatten()
                .all(|p| first[m].values().flatten().any(|q| q == p));
            assert!(kept, "{m} keeps only partitions it had");
        }
        assert_eq!(count(&second["c"]), 2);
    }

    #[test]
    fn uniform_gives_a_topic_only_to_its_subscribers() {
        let topics: BTreeMap<_, _> = [topic(1, 4), topic(2, 2)].into_iter().collect();
        let (t1, t2) = (
            uuid::Uuid::from_bytes([1; 16]),
            uuid::Uuid::from_bytes([2; 16]),
        );
        let empty = Assignment::new();
        let out = uniform(
            &[
                AssignorMember {
                    id: "a",
                    topics: [t1].into(),
                    previous: &empty,
                },
                AssignorMember {
                    id: "b",
                    topics: [t1, t2].into(),
                    previous: &empty,
                },
            ],
            &topics,
        );
        assert!(!out["a"].contains_key(&t2));
        assert_eq!(out["b"].get(&t2).map(BTreeSet::len), Some(2));
        assert_eq!(count(&out["a"]) + count(&out["b"]), 6);
        assert_eq!(
            count(&out["a"]),
            3,
            "a takes t1's share so that loads are 3 and 3"
        );
    }

    #[test]
    fn range_is_contiguous_per_topic_in_member_order() {
        let topics: BTreeMap<_, _> = [topic(1, 7), topic(2, 2)].into_iter().collect();
        let all: BTreeSet<TopicId> = topics.keys().copied().collect();
        let (t1, t2) = (
            uuid::Uuid::from_bytes([1; 16]),
            uuid::Uuid::from_bytes([2; 16]),
        );
        let empty = Assignment::new();
        let members: Vec<AssignorMember> = ["c", "a", "b"]
            .iter()
            .map(|id| AssignorMember {
                id,
                topics: all.clone(),
                previous: &empty,
            })
            .collect();
        let out = range(&members, &topics);
        let got = |m: &str, t| -> Vec<i32> {
            out[m]
                .get(&t)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default()
        };
        assert_eq!(got("a", t1), vec![0, 1, 2]);
        assert_eq!(got("b", t1), vec![3, 4]);
        assert_eq!(got("c", t1), vec![5, 6]);
        assert_eq!(got("a", t2), vec![0]);
        assert_eq!(got("b", t2), vec![1]);
        assert!(got("c", t2).is_empty());
    }
}
