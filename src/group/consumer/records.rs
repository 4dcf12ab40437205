//! The consumer-protocol group records in `__consumer_offsets`, in the layout of Kafka's
//! `group-coordinator` schemas: the key is `[version i16][group id: i16-length string]`
//! (`[member id]` after it for the per-member keys), the key version naming the record type,
//! as in Kafka 4.x:
//!
//! | key | record | value (v0, flexible: compact strings and arrays, tagged fields) |
//! |---|---|---|
//! | 3 | ConsumerGroupMetadata | Epoch i32 |
//! | 4 | ConsumerGroupPartitionMetadata | Topics [TopicId uuid, TopicName, NumPartitions i32, PartitionMetadata []] |
//! | 5 | ConsumerGroupMemberMetadata | InstanceId?, RackId?, ClientId, ClientHost, SubscribedTopicNames [], SubscribedTopicRegex?, RebalanceTimeoutMs i32, ServerAssignor? |
//! | 6 | ConsumerGroupTargetAssignmentMetadata | AssignmentEpoch i32 |
//! | 7 | ConsumerGroupTargetAssignmentMember | TopicPartitions [TopicId, Partitions []i32] |
//! | 8 | ConsumerGroupCurrentMemberAssignment | MemberEpoch, PreviousMemberEpoch i32, State i8, AssignedPartitions, PartitionsPendingRevocation |
//!
//! Values start with their version (i16, 0). The latest record of a key wins; a null value is
//! a tombstone. Classic records (offset commits: key 0, group metadata: key 2) never collide.
//! [`Loader`] folds a partition's records into the groups to restore. Decoding never trusts a
//! length or count beyond the bytes present.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::member::MemberState;
use super::{Assignment, TopicInfo};

pub const GROUP_METADATA: i16 = 3;
pub const PARTITION_METADATA: i16 = 4;
pub const MEMBER_METADATA: i16 = 5;
pub const TARGET_METADATA: i16 = 6;
pub const TARGET_MEMBER: i16 = 7;
pub const CURRENT_ASSIGNMENT: i16 = 8;

const VALUE_VERSION: i16 = 0;

/// A record's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    GroupMetadata(String),
    PartitionMetadata(String),
    MemberMetadata(String, String),
    TargetMetadata(String),
    TargetMember(String, String),
    CurrentAssignment(String, String),
}

impl Key {
    pub fn group(&self) -> &str {
        match self {
            Key::GroupMetadata(g)
            | Key::PartitionMetadata(g)
            | Key::TargetMetadata(g)
            | Key::MemberMetadata(g, _)
            | Key::TargetMember(g, _)
            | Key::CurrentAssignment(g, _) => g,
        }
    }
}

/// A member's subscription and identity (key 5).
#[derive(Debug, Clone, PartialEq)]
pub struct MemberMetadata {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topics: Vec<String>,
    pub subscribed_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// A member's current assignment (key 8).
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentAssignment {
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    GroupEpoch(i32),
    Topics(Vec<TopicInfo>),
    Member(MemberMetadata),
    TargetEpoch(i32),
    Target(Assignment),
    Current(CurrentAssignment),
}

/// A record: its key and value (`None` = tombstone).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub key: Key,
    pub value: Option<Value>,
}

impl Record {
    pub fn put(key: Key, value: Value) -> Self {
        Record {
            key,
            value: Some(value),
        }
    }

    pub fn tombstone(key: Key) -> Self {
        Record { key, value: None }
    }

    /// Key and value bytes for `__consumer_offsets`.
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        (encode_key(&self.key), self.value.as_ref().map(encode_value))
    }
}

// ---- primitives -------------------------------------------------------------------------

fn put_str16(out: &mut BytesMut, s: &str) {
    let b = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    out.put_i16(b.len() as i16);
    out.put_slice(b);
}

fn get_str16(buf: &mut Bytes) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let n = buf.get_i16();
    if n < 0 || buf.remaining() < n as usize {
        return None;
    }
    String::from_utf8(buf.split_to(n as usize).to_vec()).ok()
}

fn put_uvarint(out: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

fn get_uvarint(buf: &mut Bytes) -> Option<u32> {
    let mut v: u32 = 0;
    for shift in (0..35).step_by(7) {
        if !buf.has_remaining() {
            return None;
        }
        let b = buf.get_u8();
        v |= u32::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn put_compact_str(out: &mut BytesMut, s: Option<&str>) {
    match s {
        None => put_uvarint(out, 0),
        Some(s) => {
            put_uvarint(out, s.len() as u32 + 1);
            out.put_slice(s.as_bytes());
        }
    }
}

fn get_compact_str(buf: &mut Bytes) -> Option<Option<String>> {
    let n = get_uvarint(buf)? as usize;
    if n == 0 {
        return Some(None);
    }
    if buf.remaining() < n - 1 {
        return None;
    }
    String::from_utf8(buf.split_to(n - 1).to_vec())
        .ok()
        .map(Some)
}

/// An array count, refused if the remaining bytes cannot hold that many `min_size` entries.
fn get_count(buf: &mut Bytes, min_size: usize) -> Option<usize> {
    let n = get_uvarint(buf)? as usize;
    let n = n.checked_sub(1)?;
    (n.saturating_mul(min_size) <= buf.remaining()).then_some(n)
}

fn put_no_tags(out: &mut BytesMut) {
    put_uvarint(out, 0);
}

fn skip_tags(buf: &mut Bytes) -> Option<()> {
    let n = get_uvarint(buf)?;
    for _ in 0..n {
        get_uvarint(buf)?;
        let size = get_uvarint(buf)? as usize;
        if buf.remaining() < size {
            return None;
        }
        buf.advance(size);
    }
    Some(())
}

fn get_i32(buf: &mut Bytes) -> Option<i32> {
    (buf.remaining() >= 4).then(|| buf.get_i32())
}

fn get_uuid(buf: &mut Bytes) -> Option<uuid::Uuid> {
    if buf.remaining() < 16 {
        return None;
    }
    let mut b = [0u8; 16];
    buf.copy_to_slice(&mut b);
    Some(uuid::Uuid::from_bytes(b))
}

fn put_partitions(out: &mut BytesMut, a: &Assignment) {
    put_uvarint(out, a.len() as u32 + 1);
    for (t, ps) in a {
        out.put_slice(t.as_bytes());
        put_uvarint(out, ps.len() as u32 + 1);
        for p in ps {
            out.put_i32(*p);
        }
        put_no_tags(out);
    }
}

fn get_partitions(buf: &mut Bytes) -> Option<Assignment> {
    let n = get_count(buf, 18)?;
    let mut a = Assignment::new();
    for _ in 0..n {
        let t = get_uuid(buf)?;
        let k = get_count(buf, 4)?;
        let set = a.entry(t).or_default();
        for _ in 0..k {
            set.insert(get_i32(buf)?);
        }
        skip_tags(buf)?;
    }
    a.retain(|_, s| !s.is_empty());
    Some(a)
}

// ---- keys and values --------------------------------------------------------------------

pub fn encode_key(k: &Key) -> Bytes {
    let mut out = BytesMut::new();
    let (version, group, member) = match k {
        Key::GroupMetadata(g) => (GROUP_METADATA, g, None),
        Key::PartitionMetadata(g) => (PARTITION_METADATA, g, None),
        Key::MemberMetadata(g, m) => (MEMBER_METADATA, g, Some(m)),
        Key::TargetMetadata(g) => (TARGET_METADATA, g, None),
        Key::TargetMember(g, m) => (TARGET_MEMBER, g, Some(m)),
        Key::CurrentAssignment(g, m) => (CURRENT_ASSIGNMENT, g, Some(m)),
    };
    out.put_i16(version);
    put_str16(&mut out, group);
    if let Some(m) = member {
        put_str16(&mut out, m);
    }
    out.freeze()
}

/// The key, if it is one of the consumer-protocol records.
pub fn decode_key(mut buf: Bytes) -> Option<Key> {
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16();
    if !(GROUP_METADATA..=CURRENT_ASSIGNMENT).contains(&version) {
        return None;
    }
    let g = get_str16(&mut buf)?;
    Some(match version {
        GROUP_METADATA => Key::GroupMetadata(g),
        PARTITION_METADATA => Key::PartitionMetadata(g),
        TARGET_METADATA => Key::TargetMetadata(g),
        MEMBER_METADATA => Key::MemberMetadata(g, get_str16(&mut buf)?),
        TARGET_MEMBER => Key::TargetMember(g, get_str16(&mut buf)?),
        _ => Key::CurrentAssignment(g, get_str16(&mut buf)?),
    })
}

pub fn encode_value(v: &Value) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(VALUE_VERSION);
    match v {
        Value::GroupEpoch(e) | Value::TargetEpoch(e) => out.put_i32(*e),
        Value::Topics(ts) => {
            put_uvarint(&mut out, ts.len() as u32 + 1);
            for t in ts {
                out.put_slice(t.id.as_bytes());
                put_compact_str(&mut out, Some(&t.name));
                out.put_i32(t.partitions);
                put_uvarint(&mut out, 1); // PartitionMetadata (racks): none
                put_no_tags(&mut out);
            }
        }
        Value::Member(m) => {
            put_compact_str(&mut out, m.instance_id.as_deref());
            put_compact_str(&mut out, m.rack_id.as_deref());
            put_compact_str(&mut out, Some(&m.client_id));
            put_compact_str(&mut out, Some(&m.client_host));
            put_uvarint(&mut out, m.subscribed_topics.len() as u32 + 1);
            for t in &m.subscribed_topics {
                put_compact_str(&mut out, Some(t));
            }
            put_compact_str(&mut out, m.subscribed_regex.as_deref());
            out.put_i32(m.rebalance_timeout_ms);
            put_compact_str(&mut out, m.server_assignor.as_deref());
        }
        Value::Target(a) => put_partitions(&mut out, a),
        Value::Current(c) => {
            out.put_i32(c.epoch);
            out.put_i32(c.previous_epoch);
            out.put_i8(c.state.code());
            put_partitions(&mut out, &c.assigned);
            put_partitions(&mut out, &c.pending_revocation);
        }
    }
    put_no_tags(&mut out);
    out.freeze()
}

pub fn decode_value(k: &Key, mut buf: Bytes) -> Option<Value> {
    if buf.remaining() < 2 || buf.get_i16() != VALUE_VERSION {
        return None;
    }
    let b = &mut buf;
    let v = match k {
        Key::GroupMetadata(_) => Value::GroupEpoch(get_i32(b)?),
        Key::TargetMetadata(_) => Value::TargetEpoch(get_i32(b)?),
        Key::PartitionMetadata(_) => {
            let n = get_count(b, 23)?;
            let mut ts = Vec::with_capacity(n);
            for _ in 0..n {
                let id = get_uuid(b)?;
                let name = get_compact_str(b)??;
                let partitions = get_i32(b)?;
                let racks = get_count(b, 6)?;
                for _ in 0..racks {
                    get_i32(b)?;
                    let rs = get_count(b, 1)?;
                    for _ in 0..rs {
                        get_compact_str(b)?;
                    }
                    skip_tags(b)?;
                }
                skip_tags(b)?;
                ts.push(TopicInfo {
                    id,
                    name,
                    partitions,
                });
            }
            Value::Topics(ts)
        }
        Key::MemberMetadata(..) => {
            let instance_id = get_compact_str(b)?;
            let rack_id = get_compact_str(b)?;
            let client_id = get_compact_str(b)?.unwrap_or_default();
            let client_host = get_compact_str(b)?.unwrap_or_default();
            let n = get_count(b, 1)?;
            let mut subscribed_topics = Vec::with_capacity(n);
            for _ in 0..n {
                subscribed_topics.push(get_compact_str(b)??);
            }
            let subscribed_regex = get_compact_str(b)?;
            let rebalance_timeout_ms = get_i32(b)?;
            let server_assignor = get_compact_str(b)?;
            Value::Member(MemberMetadata {
                instance_id,
                rack_id,
                client_id,
                client_host,
                subscribed_topics,
                subscribed_regex,
                rebalance_timeout_ms,
                server_assignor,
            })
        }
        Key::TargetMember(..) => Value::Target(get_partitions(b)?),
        Key::CurrentAssignment(..) => {
            let epoch = get_i32(b)?;
            let previous_epoch = get_i32(b)?;
            if !b.has_remaining() {
                return None;
            }
            let state = MemberState::from_code(b.get_i8());
            Value::Current(CurrentAssignment {
                epoch,
                previous_epoch,
                state,
                assigned: get_partitions(b)?,
                pending_revocation: get_partitions(b)?,
            })
        }
    };
    skip_tags(b)?;
    Some(v)
}

// ---- restore ----------------------------------------------------------------------------

/// A consumer group as its records describe it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Loaded {
    pub epoch: Option<i32>,
    pub topics: Vec<TopicInfo>,
    pub target_epoch: i32,
    pub members: HashMap<String, MemberMetadata>,
    pub targets: HashMap<String, Assignment>,
    pub current: HashMap<String, CurrentAssignment>,
}

/// Folds a partition's consumer-group records, latest first-wins in log order.
#[derive(Debug, Default)]
pub struct Loader {
    groups: HashMap<String, Loaded>,
}

impl Loader {
    /// Applies one record whose key [`decode_key`] read; an unreadable value is skipped.
    pub fn apply(&mut self, key: Key, value: Option<Bytes>) {
        let v = match value {
            Some(b) => match decode_value(&key, b) {
                Some(v) => Some(v),
                None => {
                    tracing::warn!(?key, "unreadable consumer group record skipped");
                    return;
                }
            },
            None => None,
        };
        let g = self.groups.entry(key.group().to_string()).or_default();
        match (key, v) {
            (Key::GroupMetadata(_), Some(Value::GroupEpoch(e))) => g.epoch = Some(e),
            (Key::GroupMetadata(_), None) => g.epoch = None,
            (Key::PartitionMetadata(_), Some(Value::Topics(t))) => g.topics = t,
            (Key::PartitionMetadata(_), None) => g.topics.clear(),
            (Key::TargetMetadata(_), Some(Value::TargetEpoch(e))) => g.target_epoch = e,
            (Key::TargetMetadata(_), None) => g.target_epoch = 0,
            (Key::MemberMetadata(_, m), Some(Value::Member(v))) => {
                g.members.insert(m, v);
            }
            (Key::MemberMetadata(_, m), None) => {
                g.members.remove(&m);
            }
            (Key::TargetMember(_, m), Some(Value::Target(a))) => {
                g.targets.insert(m, a);
            }
            (Key::TargetMember(_, m), None) => {
                g.targets.remove(&m);
            }
            (Key::CurrentAssignment(_, m), Some(Value::Current(c))) => {
                g.current.insert(m, c);
            }
            (Key::CurrentAssignment(_, m), None) => {
                g.current.remove(&m);
            }
            _ => {}
        }
    }

    /// The groups that exist (their metadata record is live).
    pub fn finish(self) -> impl Iterator<Item = (String, Loaded)> {
        self.groups.into_iter().filter(|(_, g)| g.epoch.is_some())
    }
}

pub fn rebalance_timeout(m: &MemberMetadata) -> Duration {
    Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        let t = uuid::Uuid::from_bytes([7; 16]);
        let a: Assignment = [(t, [0, 2, 5].into())].into();
        vec![
            Record::put(Key::GroupMetadata("g".into()), Value::GroupEpoch(4)),
            Record::put(
                Key::PartitionMetadata("g".into()),
                Value::Topics(vec![TopicInfo {
                    id: t,
                    name: "orders".into(),
                    partitions: 6,
                }]),
            ),
            Record::put(
                Key::MemberMetadata("g".into(), "m1".into()),
                Value::Member(MemberMetadata {
                    instance_id: Some("i1".into()),
                    rack_id: None,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    subscribed_topics: vec!["orders".into()],
                    subscribed_regex: Some("ord.*".into()),
                    rebalance_timeout_ms: 30_000,
                    server_assignor: Some("range".into()),
                }),
            ),
            Record::put(Key::TargetMetadata("g".into()), Value::TargetEpoch(4)),
            Record::put(
                Key::TargetMember("g".into(), "m1".into()),
                Value::Target(a.clone()),
            ),
            Record::put(
                Key::CurrentAssignment("g".into(), "m1".into()),
                Value::Current(CurrentAssignment {
                    epoch: 4,
                    previous_epoch: 3,
                    state: MemberState::UnrevokedPartitions,
                    assigned: a.clone(),
                    pending_revocation: [(t, [1].into())].into(),
                }),
            ),
        ]
    }

    #[test]
    fn records_round_trip_and_truncations_are_refused() {
        for r in sample() {
            let (k, v) = r.encode();
            let key = decode_key(k.clone()).expect("key");
            assert_eq!(key, r.key);
            let v = v.expect("value");
            assert_eq!(decode_value(&key, v.clone()), r.value);
            for cut in 0..v.len() {
                assert!(
                    decode_value(&key, v.slice(..cut)).is_none(),
                    "{key:?} cut {cut}"
                );
            }
            for cut in 0..k.len() {
                assert_ne!(decode_key(k.slice(..cut)), Some(key.clone()));
            }
        }
        assert_eq!(
            decode_key(crate::group::metadata::encode_key("g")),
            None,
            "classic group keys are not consumer group keys"
        );
        assert_eq!(
            decode_key(crate::group::offsets::encode_key("g", "t", 0)),
            None
        );
        // A count far beyond the bytes is refused, not reserved.
        let mut huge = BytesMut::new();
        huge.put_i16(0);
        put_uvarint(&mut huge, u32::MAX);
        let key = Key::TargetMember("g".into(), "m".into());
        assert!(decode_value(&key, huge.freeze()).is_none());
    }

    #[test]
    fn loader_keeps_the_latest_and_honours_tombstones() {
        let mut l = Loader::default();
        for r in sample() {
            let (k, v) = r.encode();
            l.apply(decode_key(k).unwrap(), v);
        }
        let (k, _) = Record::tombstone(Key::TargetMember("g".into(), "m1".into())).encode();
        l.apply(decode_key(k).unwrap(), None);
        let (k, v) = Record::put(Key::GroupMetadata("g".into()), Value::GroupEpoch(5)).encode();
        l.apply(decode_key(k).unwrap(), v);
        let (k, v) = Record::put(Key::GroupMetadata("h".into()), Value::GroupEpoch(1)).encode();
        l.apply(decode_key(k.clone()).unwrap(), v);
        l.apply(decode_key(k).unwrap(), None);
        let groups: Vec<(String, Loaded)> = l.finish().collect();
        assert_eq!(groups.len(), 1, "h was deleted");
        let g = &groups[0].1;
        assert_eq!(g.epoch, Some(5));
        assert_eq!(g.target_epoch, 4);
        assert!(g.targets.is_empty());
        assert_eq!(g.members.len(), 1);
        assert_eq!(g.current["m1"].previous_epoch, 3);
    }
}
