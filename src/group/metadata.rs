//! Group metadata records in `__consumer_offsets`: one record per group, written when a
//! generation gets its assignment, when the group empties, and as a tombstone when it is
//! deleted. The latest record of a group wins, as in a compacted topic.
//!
//! Key `[version u16 = 2][group]` (offset commits use key version 0, so the two never collide),
//! value `[version u16 = 0][protocol type?][generation i32][protocol?][leader?][members i32]`
//! then per member `[id][instance id?][client id][client host][session ms i32]
//! [rebalance ms i32][subscription][assignment]`. Strings are `i16` length + UTF-8 (-1 = none),
//! byte strings `i32` length + bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::coordinator::{GroupRecord, MemberRecord};

const KEY_VERSION: u16 = 2;
const VALUE_VERSION: u16 = 0;

fn put_opt_str(out: &mut BytesMut, s: Option<&str>) {
    match s {
        None => out.put_i16(-1),
        Some(s) => {
            let b = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
            out.put_i16(b.len() as i16);
            out.put_slice(b);
        }
    }
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_i32(b.len() as i32);
    out.put_slice(b);
}

fn get_opt_str(buf: &mut Bytes) -> Option<Option<String>> {
    if buf.remaining() < 2 {
        return None;
    }
    let n = buf.get_i16();
    if n < 0 {
        return Some(None);
    }
    if buf.remaining() < n as usize {
        return None;
    }
    String::from_utf8(buf.split_to(n as usize).to_vec())
        .ok()
        .map(Some)
}

fn get_str(buf: &mut Bytes) -> Option<String> {
    get_opt_str(buf).map(Option::unwrap_or_default)
}

fn get_bytes(buf: &mut Bytes) -> Option<Bytes> {
    if buf.remaining() < 4 {
        return None;
    }
    let n = buf.get_i32();
    if n < 0 || buf.remaining() < n as usize {
        return None;
    }
    Some(buf.split_to(n as usize))
}

fn get_i32(buf: &mut Bytes) -> Option<i32> {
    (buf.remaining() >= 4).then(|| buf.get_i32())
}

pub fn encode_key(group: &str) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u16(KEY_VERSION);
    put_opt_str(&mut out, Some(group));
    out.freeze()
}

/// The group a key names, if it is a group metadata key.
pub fn decode_key(mut buf: Bytes) -> Option<String> {
    if buf.remaining() < 2 || buf.get_u16() != KEY_VERSION {
        return None;
    }
    get_str(&mut buf)
}

pub fn encode_value(r: &GroupRecord) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u16(VALUE_VERSION);
    put_opt_str(&mut out, r.protocol_type.as_deref());
    out.put_i32(r.generation);
    put_opt_str(&mut out, r.protocol.as_deref());
    put_opt_str(&mut out, r.leader.as_deref());
    out.put_i32(r.members.len() as i32);
    for m in &r.members {
        put_opt_str(&mut out, Some(&m.id));
        put_opt_str(&mut out, m.instance_id.as_deref());
        put_opt_str(&mut out, Some(&m.client_id));
        put_opt_str(&mut out, Some(&m.client_host));
        out.put_i32(m.session_timeout_ms);
        out.put_i32(m.rebalance_timeout_ms);
        put_bytes(&mut out, &m.subscription);
        put_bytes(&mut out, &m.assignment);
    }
    out.freeze()
}

pub fn decode_value(group: String, mut buf: Bytes) -> Option<GroupRecord> {
    if buf.remaining() < 2 || buf.get_u16() != VALUE_VERSION {
        return None;
    }
    let protocol_type = get_opt_str(&mut buf)?;
    let generation = get_i32(&mut buf)?;
    let protocol = get_opt_str(&mut buf)?;
    let leader = get_opt_str(&mut buf)?;
    let n = get_i32(&mut buf)?;
    // Every member takes at least 24 bytes: a count beyond that is corrupt, not a reservation.
    if n < 0 || n as usize > buf.remaining() / 24 + 1 {
        return None;
    }
    let mut members = Vec::with_capacity(n as usize);
    for _ in 0..n {
        members.push(MemberRecord {
            id: get_str(&mut buf)?,
            instance_id: get_opt_str(&mut buf)?,
            client_id: get_str(&mut buf)?,
            client_host: get_str(&mut buf)?,
            session_timeout_ms: get_i32(&mut buf)?,
            rebalance_timeout_ms: get_i32(&mut buf)?,
            subscription: get_bytes(&mut buf)?,
            assignment: get_bytes(&mut buf)?,
        });
    }
    Some(GroupRecord {
        group,
        protocol_type,
        generation,
        protocol,
        leader,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_records_round_trip_and_reject_garbage() {
        let r = GroupRecord {
            group: "g".into(),
            protocol_type: Some("consumer".into()),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            members: vec![MemberRecord {
                id: "m1".into(),
                instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                session_timeout_ms: 10_000,
                rebalance_timeout_ms: 30_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(decode_key(encode_key("g")), Some("g".into()));
        assert_eq!(
            decode_key(crate::group::offsets::encode_key("g", "t", 0)),
            None,
            "offset keys are not group keys"
        );
        let v = encode_value(&r);
        assert_eq!(decode_value("g".into(), v.clone()), Some(r));
        for cut in 0..v.len() {
            assert!(
                decode_value("g".into(), v.slice(..cut)).is_none(),
                "cut at {cut}"
            );
        }
        let mut huge = BytesMut::new();
        huge.put_u16(0);
        huge.put_i16(-1);
        huge.put_i32(1);
        huge.put_i16(-1);
        huge.put_i16(-1);
        huge.put_i32(i32::MAX);
        assert!(decode_value("g".into(), huge.freeze()).is_none());
    }
}
