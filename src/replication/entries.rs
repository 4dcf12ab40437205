//! The entry index: one fixed record per Raft entry, beside the segment log.
//!
//! Record layout (big-endian): `crc32c u32` over the rest, `payload_len u32`, `index u64`,
//! `term u64`, `kind u8`, `base_offset i64`, `next_offset i64`, then the payload. A data
//! entry's payload is empty (its batch is in the segments, at `base_offset`); an entry that
//! is not data keeps its Raft payload here (configuration changes are small) and has
//! `base_offset == next_offset`: it takes no Kafka offset.
//!
//! Decoding stops at the first record that is torn or fails its CRC: that is where an
//! unsynced tail was cut by a crash.

use bytes::Bytes;

/// Bytes of a record before its payload.
pub const RECORD_HEADER_BYTES: usize = 4 + 4 + 8 + 8 + 1 + 8 + 8;

/// Largest payload an entry that is not data may carry (a configuration change is a few
/// hundred bytes; anything bigger in an index record is corruption).
pub const MAX_INDEX_PAYLOAD_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A RecordBatch in the segment log.
    Data = 0,
    /// An entry with no data (a new leader's first entry).
    Empty = 1,
    /// A Raft configuration change (v1 encoding).
    ConfChange = 2,
    /// A Raft configuration change (v2 encoding).
    ConfChangeV2 = 3,
}

impl EntryKind {
    fn from_u8(v: u8) -> Option<EntryKind> {
        Some(match v {
            0 => EntryKind::Data,
            1 => EntryKind::Empty,
            2 => EntryKind::ConfChange,
            3 => EntryKind::ConfChangeV2,
            _ => return None,
        })
    }
}

/// One Raft entry as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryMeta {
    pub index: u64,
    pub term: u64,
    pub kind: EntryKind,
    /// First Kafka offset of the entry's batch (for other kinds: the log end at that point).
    pub base_offset: i64,
    /// Offset right after the batch (`== base_offset` for entries that are not data).
    pub next_offset: i64,
    /// The Raft payload of an entry that is not data.
    pub payload: Bytes,
}

impl EntryMeta {
    pub fn encoded_len(&self) -> usize {
        RECORD_HEADER_BYTES + self.payload.len()
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&self.term.to_be_bytes());
        out.push(self.kind as u8);
        out.extend_from_slice(&self.base_offset.to_be_bytes());
        out.extend_from_slice(&self.next_offset.to_be_bytes());
        out.extend_from_slice(&self.payload);
        let crc = crc32c::crc32c(&out[start + 4..]);
        out[start..start + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Decodes records from the start of `buf`; returns them and the length of the valid prefix.
/// A record that is torn, fails its CRC, or breaks the sequence (indexes not consecutive,
/// offsets going back) ends the valid prefix.
pub fn decode_index(buf: &[u8]) -> (Vec<EntryMeta>, usize) {
    let mut out: Vec<EntryMeta> = Vec::new();
    let mut at = 0usize;
    while buf.len() - at >= RECORD_HEADER_BYTES {
        let rec = &buf[at..];
        let u32_at = |i: usize| u32::from_be_bytes([rec[i], rec[i + 1], rec[i + 2], rec[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&rec[i..i + 8]);
            u64::from_be_bytes(a)
        };
        let payload_len = u32_at(4) as usize;
        if payload_len > MAX_INDEX_PAYLOAD_BYTES || rec.len() < RECORD_HEADER_BYTES + payload_len {
            break;
        }
        let len = RECORD_HEADER_BYTES + payload_len;
        if crc32c::crc32c(&rec[4..len]) != u32_at(0) {
            break;
        }
        let Some(kind) = EntryKind::from_u8(rec[24]) else {
            break;
        };
        let meta = EntryMeta {
            index: u64_at(8),
            term: u64_at(16),
            kind,
            base_offset: u64_at(25) as i64,
            next_offset: u64_at(33) as i64,
            payload: Bytes::copy_from_slice(&rec[RECORD_HEADER_BYTES..len]),
        };
        let fits = meta.next_offset >= meta.base_offset
            && (kind == EntryKind::Data) == (meta.next_offset > meta.base_offset)
            && out.last().is_none_or(|p| {
                p.index + 1 == meta.index
                    && p.next_offset == meta.base_offset
                    && p.term <= meta.term
            });
        if !fits {
            break;
        }
        out.push(meta);
        at += len;
    }
    (out, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(index: u64, term: u64, base: i64, next: i64) -> EntryMeta {
        EntryMeta {
            index,
            term,
            kind: if next > base {
                EntryKind::Data
            } else {
                EntryKind::Empty
            },
            base_offset: base,
            next_offset: next,
            payload: Bytes::new(),
        }
    }

    #[test]
    fn round_trip_and_torn_tail() {
        let metas = vec![meta(1, 1, 0, 0), meta(2, 1, 0, 5), meta(3, 2, 5, 9)];
        let mut buf = Vec::new();
        for m in &metas {
            m.encode_into(&mut buf);
        }
        let (back, len) = decode_index(&buf);
        assert_eq!(back, metas);
        assert_eq!(len, buf.len());
        // A torn last record ends the prefix before it.
        let (back, len) = decode_index(&buf[..buf.len() - 3]);
        assert_eq!(back, metas[..2]);
        assert_eq!(len, 2 * RECORD_HEADER_BYTES);
        // A flipped bit ends it too.
        let mut bad = buf.clone();
        bad[RECORD_HEADER_BYTES + 10] ^= 1;
        assert_eq!(decode_index(&bad).0, metas[..1]);
    }

    #[test]
    fn a_gap_in_the_sequence_ends_the_prefix() {
        let mut buf = Vec::new();
        meta(1, 1, 0, 3).encode_into(&mut buf);
        meta(3, 1, 3, 4).encode_into(&mut buf);
        assert_eq!(decode_index(&buf).0.len(), 1);
    }
}
