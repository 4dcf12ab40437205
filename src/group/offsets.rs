//! Committed offsets: their record format in `__consumer_offsets` and the in-memory view
//! rebuilt from it.
//!
//! Each commit is one record: key `[version u16 = 0][group][topic][partition i32]`, value
//! `[version u16 = 0][offset i64][leader epoch i32][commit time i64][metadata]`, where strings
//! are `u16` length + UTF-8 and the metadata is `i32` length (-1 = null) + bytes. The latest
//! record for a key wins, as in a compacted topic.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The internal topic, named as in Kafka.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Its partitions (Kafka's `offsets.topic.num.partitions` default).
pub const OFFSETS_PARTITIONS: i32 = 50;
/// Longest commit metadata kept (Kafka's `offset.metadata.max.bytes`).
pub const MAX_METADATA_BYTES: usize = 4096;

const FORMAT_VERSION: u16 = 0;

/// The partition of `__consumer_offsets` that holds a group.
pub fn offsets_partition(group: &str) -> i32 {
    (crc32c::crc32c(group.as_bytes()) % OFFSETS_PARTITIONS as u32) as i32
}

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub commit_time_ms: i64,
    pub metadata: Option<String>,
}

/// (group, topic, partition)
pub type OffsetKey = (String, String, i32);

fn put_str(out: &mut BytesMut, s: &str) {
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.put_u16(b.len() as u16);
    out.put_slice(b);
}

fn get_str(buf: &mut Bytes) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let n = buf.get_u16() as usize;
    if buf.remaining() < n {
        return None;
    }
    String::from_utf8(buf.split_to(n).to_vec()).ok()
}

pub fn encode_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u16(FORMAT_VERSION);
    put_str(&mut out, group);
    put_str(&mut out, topic);
    out.put_i32(partition);
    out.freeze()
}

pub fn encode_value(c: &Committed) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u16(FORMAT_VERSION);
    out.put_i64(c.offset);
    out.put_i32(c.leader_epoch);
    out.put_i64(c.commit_time_ms);
    match &c.metadata {
        None => out.put_i32(-1),
        Some(m) => {
            out.put_i32(m.len() as i32);
            out.put_slice(m.as_bytes());
        }
    }
    out.freeze()
}

pub fn decode_key(mut buf: Bytes) -> Option<OffsetKey> {
    if buf.remaining() < 2 || buf.get_u16() != FORMAT_VERSION {
        return None;
    }
    let group = get_str(&mut buf)?;
    let topic = get_str(&mut buf)?;
    if buf.remaining() < 4 {
        return None;
    }
    Some((group, topic, buf.get_i32()))
}

pub fn decode_value(mut buf: Bytes) -> Option<Committed> {
    if buf.remaining() < 2 + 8 + 4 + 8 + 4 || buf.get_u16() != FORMAT_VERSION {
        return None;
    }
    let offset = buf.get_i64();
    let leader_epoch = buf.get_i32();
    let commit_time_ms = buf.get_i64();
    let n = buf.get_i32();
    let metadata = if n < 0 {
        None
    } else {
        if buf.remaining() < n as usize {
            return None;
        }
        Some(String::from_utf8(buf.split_to(n as usize).to_vec()).ok()?)
    };
    Some(Committed {
        offset,
        leader_epoch,
        commit_time_ms,
        metadata,
    })
}

/// The committed offsets of the groups of one `__consumer_offsets` partition.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OffsetsState {
    offsets: BTreeMap<OffsetKey, Committed>,
}

impl OffsetsState {
    /// Applies one record of the partition (a record it cannot read is skipped: it may come
    /// from a newer format).
    pub fn apply(&mut self, key: Option<Bytes>, value: Option<Bytes>) {
        let Some(k) = key.and_then(decode_key) else {
            return;
        };
        match value {
            None => {
                self.offsets.remove(&k);
            }
            Some(v) => {
                if let Some(c) = decode_value(v) {
                    self.offsets.insert(k, c);
                }
            }
        }
    }

    pub fn set(&mut self, key: OffsetKey, c: Committed) {
        self.offsets.insert(key, c);
    }

    pub fn remove(&mut self, group: &str, topic: &str, partition: i32) {
        self.offsets
            .remove(&(group.to_string(), topic.to_string(), partition));
    }

    /// Forgets every offset of `group` (deleted).
    pub fn remove_group(&mut self, group: &str) {
        let keys: Vec<OffsetKey> = self.of_group(group).map(|(k, _)| k.clone()).collect();
        for k in keys {
            self.offsets.remove(&k);
        }
    }

    /// The groups with at least one committed offset.
    pub fn groups(&self) -> impl Iterator<Item = String> + '_ {
        let mut last: Option<&str> = None;
        self.offsets.keys().filter_map(move |(g, _, _)| {
            if last == Some(g.as_str()) {
                return None;
            }
            last = Some(g.as_str());
            Some(g.clone())
        })
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&Committed> {
        self.offsets
            .get(&(group.to_string(), topic.to_string(), partition))
    }

    /// Every committed offset of `group`, ordered by topic and partition.
    pub fn of_group<'a>(
        &'a self,
        group: &'a str,
    ) -> impl Iterator<Item = (&'a OffsetKey, &'a Committed)> + 'a {
        self.offsets
            .range((group.to_string(), String::new(), i32::MIN)..)
            .take_while(move |(k, _)| k.0 == group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_latest_wins() {
        let c1 = Committed {
            offset: 5,
            leader_epoch: -1,
            commit_time_ms: 1,
            metadata: Some("m".into()),
        };
        let c2 = Committed {
            offset: 9,
            leader_epoch: 0,
            commit_time_ms: 2,
            metadata: None,
        };
        assert_eq!(
            decode_key(encode_key("g", "t", 3)),
            Some(("g".into(), "t".into(), 3))
        );
        assert_eq!(decode_value(encode_value(&c1)), Some(c1.clone()));
        let mut s = OffsetsState::default();
        s.apply(Some(encode_key("g", "t", 0)), Some(encode_value(&c1)));
        s.apply(Some(encode_key("g", "t", 0)), Some(encode_value(&c2)));
        s.apply(Some(encode_key("g", "t", 1)), Some(encode_value(&c1)));
        s.apply(Some(encode_key("h", "t", 0)), Some(encode_value(&c1)));
        s.apply(
            Some(Bytes::from_static(b"\xff\xffjunk")),
            Some(encode_value(&c1)),
        );
        assert_eq!(s.get("g", "t", 0), Some(&c2));
        assert_eq!(s.of_group("g").count(), 2);
        s.apply(Some(encode_key("g", "t", 1)), None);
        assert_eq!(s.of_group("g").count(), 1, "a tombstone deletes");
        assert!(
            decode_value(Bytes::from_static(b"\x00\x00\x01")).is_none(),
            "truncated value"
        );
    }
}
