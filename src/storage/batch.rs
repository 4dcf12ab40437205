//! Kafka RecordBatch v2 framing: parse the fixed 61-byte header, validate a batch exactly as a
//! Kafka broker does before it accepts it, and rewrite the fields the broker owns (base offset,
//! LogAppendTime). Records inside a batch are never decoded here: they are stored verbatim.
//!
//! Layout (big-endian), per the Kafka protocol guide:
//! `baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 | crc u32 |
//!  attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
//!  producerId i64 | producerEpoch i16 | baseSequence i32 | recordCount i32 | records…`
//! The CRC-32C covers `attributes` to the end of the batch.

use super::error::{Result, StorageError};

/// Size of the RecordBatch v2 header up to and including `recordCount`.
pub const HEADER_BYTES: usize = 61;
/// Bytes before `batchLength`'s coverage starts (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;

const OFF_BASE_OFFSET: usize = 0;
const OFF_LENGTH: usize = 8;
const OFF_LEADER_EPOCH: usize = 12;
const OFF_MAGIC: usize = 16;
const OFF_CRC: usize = 17;
const OFF_ATTRIBUTES: usize = 21;
const OFF_LAST_OFFSET_DELTA: usize = 23;
const OFF_BASE_TIMESTAMP: usize = 27;
const OFF_MAX_TIMESTAMP: usize = 35;
const OFF_PRODUCER_ID: usize = 43;
const OFF_PRODUCER_EPOCH: usize = 51;
const OFF_BASE_SEQUENCE: usize = 53;
const OFF_RECORD_COUNT: usize = 57;

/// Attribute bit: timestamps are LogAppendTime.
const ATTR_LOG_APPEND_TIME: i16 = 0x08;
/// Attribute bits: compression codec.
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit: transactional batch.
const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit: control batch (transaction markers).
const ATTR_CONTROL: i16 = 0x20;
/// Attribute bit (KIP-534): `baseTimestamp` is the delete horizon the cleaner wrote, after
/// which the batch's tombstones may be removed.
pub const ATTR_DELETE_HORIZON: i16 = 0x40;
/// Where `attributes` and `baseTimestamp` sit in a batch (for the cleaner's rewrite).
pub const ATTRIBUTES_AT: usize = OFF_ATTRIBUTES;
pub const BASE_TIMESTAMP_AT: usize = OFF_BASE_TIMESTAMP;

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// The decoded fixed header of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// `batchLength`: bytes after the length field. The whole batch is `LOG_OVERHEAD + length`.
    pub length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the header at the start of `buf` without validating anything but its size.
    pub fn parse(buf: &[u8]) -> Option<BatchHeader> {
        if buf.len() < HEADER_BYTES {
            return None;
        }
        Some(BatchHeader {
            base_offset: i64_at(buf, OFF_BASE_OFFSET),
            length: i32_at(buf, OFF_LENGTH),
            partition_leader_epoch: i32_at(buf, OFF_LEADER_EPOCH),
            magic: buf[OFF_MAGIC] as i8,
            crc: u32::from_be_bytes([
                buf[OFF_CRC],
                buf[OFF_CRC + 1],
                buf[OFF_CRC + 2],
                buf[OFF_CRC + 3],
            ]),
            attributes: i16_at(buf, OFF_ATTRIBUTES),
            last_offset_delta: i32_at(buf, OFF_LAST_OFFSET_DELTA),
            base_timestamp: i64_at(buf, OFF_BASE_TIMESTAMP),
            max_timestamp: i64_at(buf, OFF_MAX_TIMESTAMP),
            producer_id: i64_at(buf, OFF_PRODUCER_ID),
            producer_epoch: i16_at(buf, OFF_PRODUCER_EPOCH),
            base_sequence: i32_at(buf, OFF_BASE_SEQUENCE),
            record_count: i32_at(buf, OFF_RECORD_COUNT),
        })
    }

    /// Total bytes of the batch on the wire and on disk.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.length.max(0) as usize
    }

    /// Offset of the last record of the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// Offset right after the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// The delete horizon the cleaner wrote into the batch (KIP-534), if it did.
    pub fn delete_horizon(&self) -> Option<i64> {
        (self.attributes & ATTR_DELETE_HORIZON != 0).then_some(self.base_timestamp)
    }
}

/// The CRC-32C Kafka stores in a batch: over `attributes` to the end.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[OFF_ATTRIBUTES..])
}

/// Why the framing at some position is not a complete, valid batch. Recovery uses the reason
/// only for its log line; the append path turns it into a typed error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameProblem {
    /// Fewer bytes than a header, or than the declared length: a torn write at the tail.
    Truncated {
        have: usize,
        need: usize,
    },
    /// Declared length is impossible (zeroed space reads as length 0).
    BadLength(i32),
    BadMagic(i8),
    BadCrc {
        stored: u32,
        computed: u32,
    },
    BadCount {
        count: i32,
        last_offset_delta: i32,
    },
}

impl std::fmt::Display for FrameProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameProblem::Truncated { have, need } => {
                write!(f, "truncated: {have} of {need} bytes")
            }
            FrameProblem::BadLength(l) => write!(f, "impossible batch length {l}"),
            FrameProblem::BadMagic(m) => write!(f, "unsupported magic {m} (only v2 is accepted)"),
            FrameProblem::BadCrc { stored, computed } => {
                write!(
                    f,
                    "crc mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            FrameProblem::BadCount {
                count,
                last_offset_delta,
            } => {
                write!(
                    f,
                    "record count {count} disagrees with last offset delta {last_offset_delta}"
                )
            }
        }
    }
}

/// Checks that `buf` starts with one complete, intact batch and returns its header.
/// `buf` may hold more bytes after the batch.
pub fn check_frame(buf: &[u8]) -> std::result::Result<BatchHeader, FrameProblem> {
    let header = BatchHeader::parse(buf).ok_or(FrameProblem::Truncated {
        have: buf.len(),
        need: HEADER_BYTES,
    })?;
    if (header.length as i64) < (HEADER_BYTES - LOG_OVERHEAD) as i64 {
        return Err(FrameProblem::BadLength(header.length));
    }
    let total = header.total_size();
    if buf.len() < total {
        return Err(FrameProblem::Truncated {
            have: buf.len(),
            need: total,
        });
    }
    if header.magic != 2 {
        return Err(FrameProblem::BadMagic(header.magic));
    }
    let computed = compute_crc(&buf[..total]);
    if computed != header.crc {
        return Err(FrameProblem::BadCrc {
            stored: header.crc,
            computed,
        });
    }
    if header.record_count < 0 || header.last_offset_delta < 0 {
        return Err(FrameProblem::BadCount {
            count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Splits a produce payload into its batches, validating each as Kafka does before an append:
/// framing, magic 2, CRC-32C, size limit, record count against `lastOffsetDelta`. Either every
/// batch is valid and returned, or the first problem is returned and nothing is accepted.
pub fn validate_batches(buf: &[u8], max_batch_bytes: usize) -> Result<Vec<BatchHeader>> {
    let mut headers = Vec::new();
    let mut pos = 0;
    if buf.is_empty() {
        return Err(StorageError::InvalidRecord(
            "produce request holds no record batch".into(),
        ));
    }
    while pos < buf.len() {
        let rest = &buf[pos..];
        // Check the size before the CRC so an oversized batch reports MESSAGE_TOO_LARGE.
        if let Some(h) = BatchHeader::parse(rest) {
            if h.length >= 0 && h.total_size() > max_batch_bytes {
                return Err(StorageError::TooLarge {
                    size: h.total_size(),
                    limit: max_batch_bytes,
                });
            }
        }
        let header = check_frame(rest).map_err(|p| match p {
            FrameProblem::BadMagic(m) => {
                StorageError::InvalidRecord(format!("unsupported magic {m}"))
            }
            FrameProblem::BadCount { .. } => StorageError::InvalidRecord(p.to_string()),
            other => StorageError::Corrupt(other.to_string()),
        })?;
        if header.record_count == 0 {
            return Err(StorageError::InvalidRecord("batch holds no record".into()));
        }
        // Uncompacted producer batches are dense: n records span offsets base..base+n-1.
        if header.last_offset_delta != header.record_count - 1 {
            return Err(StorageError::InvalidRecord(
                FrameProblem::BadCount {
                    count: header.record_count,
                    last_offset_delta: header.last_offset_delta,
                }
                .to_string(),
            ));
        }
        pos += header.total_size();
        headers.push(header);
    }
    debug_assert_eq!(pos, buf.len());
    Ok(headers)
}

/// Record batches that passed [`validate_batches`]: the bytes and their headers, parsed once.
/// The log's append takes only this type, so nothing reaches a segment unvalidated and no
/// layer parses the same batches twice.
#[derive(Debug, Clone)]
pub struct ValidBatches {
    bytes: bytes::Bytes,
    headers: Vec<BatchHeader>,
}

impl ValidBatches {
    /// Validates `bytes` (see [`validate_batches`]) against a batch size limit.
    pub fn check(bytes: bytes::Bytes, max_batch_bytes: usize) -> Result<ValidBatches> {
        let headers = validate_batches(&bytes, max_batch_bytes)?;
        Ok(ValidBatches { bytes, headers })
    }

    /// Each batch's header, in order (never empty).
    pub fn headers(&self) -> &[BatchHeader] {
        &self.headers
    }

    /// Total bytes of the batches.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a valid produce holds at least one batch.
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// Records in all the batches.
    pub fn record_count(&self) -> i64 {
        self.headers.iter().map(|h| h.record_count as i64).sum()
    }

    /// The bytes and the headers, taken apart.
    pub fn into_parts(self) -> (bytes::Bytes, Vec<BatchHeader>) {
        (self.bytes, self.headers)
    }
}

/// Writes the broker-owned base offset into a batch (outside the CRC, so no CRC update).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes the leader epoch the batch was appended under (outside the CRC, so no CRC update).
/// Replication stamps the Raft term here, which clients use to detect log truncation.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Stamps LogAppendTime: sets the timestamp-type bit and `maxTimestamp` to `now_ms`, then
/// recomputes the CRC, which covers both fields. Kafka leaves `baseTimestamp` as produced.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attrs = i16_at(batch, OFF_ATTRIBUTES) | ATTR_LOG_APPEND_TIME;
    batch[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Builds an uncompressed batch of simple records (no headers, null keys unless given).
/// Used by tests and benchmarks, and by the broker only for its internal records (committed
/// offsets, group metadata); client batches are stored as sent.
pub fn build_batch(
    base_offset: i64,
    timestamp_ms: i64,
    records: &[(Option<&[u8]>, &[u8])],
) -> Vec<u8> {
    let records: Vec<NullableRecord> = records.iter().map(|(k, v)| (*k, Some(*v))).collect();
    build_batch_nullable(base_offset, timestamp_ms, &records)
}

/// One record of a v2 batch as Kafka encodes it, length prefix included: no attributes, a
/// timestamp delta of 0, no headers; a `None` key or value is null.
pub fn encode_record(offset_delta: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Vec<u8> {
    let mut rec = vec![0u8]; // attributes
    put_varlong(&mut rec, 0); // timestamp delta
    put_varlong(&mut rec, offset_delta);
    for field in [key, value] {
        match field {
            Some(f) => {
                put_varlong(&mut rec, f.len() as i64);
                rec.extend_from_slice(f);
            }
            None => put_varlong(&mut rec, -1),
        }
    }
    put_varlong(&mut rec, 0); // header count
    let mut out = Vec::with_capacity(rec.len() + 5);
    put_varlong(&mut out, rec.len() as i64);
    out.extend_from_slice(&rec);
    out
}

/// A record's key and value, either possibly null.
pub type NullableRecord<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Like [`build_batch`], where a `None` value is a null value (a tombstone in a compacted
/// topic).
pub fn build_batch_nullable(
    base_offset: i64,
    timestamp_ms: i64,
    records: &[NullableRecord],
) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (key, value)) in records.iter().enumerate() {
        body.extend_from_slice(&encode_record(i as i64, *key, *value));
    }
    let n = records.len() as i32;
    let mut b = vec![0u8; HEADER_BYTES];
    b.extend_from_slice(&body);
    let len = (b.len() - LOG_OVERHEAD) as i32;
    b[OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    b[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&len.to_be_bytes());
    b[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&0i32.to_be_bytes());
    b[OFF_MAGIC] = 2;
    b[OFF_LAST_OFFSET_DELTA..OFF_LAST_OFFSET_DELTA + 4].copy_from_slice(&(n - 1).to_be_bytes());
    b[OFF_BASE_TIMESTAMP..OFF_BASE_TIMESTAMP + 8].copy_from_slice(&timestamp_ms.to_be_bytes());
    b[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&timestamp_ms.to_be_bytes());
    b[OFF_PRODUCER_ID..OFF_PRODUCER_ID + 8].copy_from_slice(&(-1i64).to_be_bytes());
    b[OFF_PRODUCER_EPOCH..OFF_PRODUCER_EPOCH + 2].copy_from_slice(&(-1i16).to_be_bytes());
    b[OFF_BASE_SEQUENCE..OFF_BASE_SEQUENCE + 4].copy_from_slice(&(-1i32).to_be_bytes());
    b[OFF_RECORD_COUNT..OFF_RECORD_COUNT + 4].copy_from_slice(&n.to_be_bytes());
    let crc = compute_crc(&b);
    b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// A batch with no record covering offsets `base_offset ..= base_offset + last_offset_delta`
/// (the header Kafka's `writeEmptyHeader` writes): no producer, no timestamp (-1), no
/// compression. A replica sends it in place of a batch its cleaner dropped whole (every
/// record superseded), so that the Raft entry still covers its offsets on a peer.
pub fn empty_header_batch(base_offset: i64, last_offset_delta: i32, leader_epoch: i32) -> Vec<u8> {
    let mut b = build_batch_nullable(base_offset, -1, &[]);
    b[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&leader_epoch.to_be_bytes());
    b[OFF_LAST_OFFSET_DELTA..OFF_LAST_OFFSET_DELTA + 4]
        .copy_from_slice(&last_offset_delta.to_be_bytes());
    let crc = compute_crc(&b);
    b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Appends `v` as a zig-zag varlong (Kafka's record encoding).
pub fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Iterates the whole batches at the start of `buf`, stopping at the first incomplete one.
/// Used on data that was validated on the way in (reads, index rebuilds of sealed segments).
pub fn iter_batches(buf: &[u8]) -> impl Iterator<Item = (usize, BatchHeader)> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let h = BatchHeader::parse(&buf[pos..])?;
        if h.length < (HEADER_BYTES - LOG_OVERHEAD) as i32 || pos + h.total_size() > buf.len() {
            return None;
        }
        let at = pos;
        pos += h.total_size();
        Some((at, h))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_batch_validates_and_round_trips_header() {
        let b = build_batch(0, 1234, &[(Some(b"k"), b"v1"), (None, b"v2")]);
        let hs = validate_batches(&b, 1 << 20).expect("valid");
        assert_eq!(hs.len(), 1);
        assert_eq!(hs[0].record_count, 2);
        assert_eq!(hs[0].last_offset_delta, 1);
        assert_eq!(hs[0].max_timestamp, 1234);
    }

    #[test]
    fn every_single_bit_flip_in_crc_range_is_detected() {
        let b = build_batch(0, 1, &[(None, b"hello world")]);
        for i in OFF_ATTRIBUTES..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x01;
            assert!(
                validate_batches(&c, 1 << 20).is_err(),
                "flip at {i} not detected"
            );
        }
    }

    #[test]
    fn oversized_truncated_and_wrong_magic_are_typed() {
        let b = build_batch(0, 1, &[(None, &[7u8; 1000])]);
        assert!(matches!(
            validate_batches(&b, 100),
            Err(StorageError::TooLarge { .. })
        ));
        assert!(matches!(
            validate_batches(&b[..b.len() - 1], 1 << 20),
            Err(StorageError::Corrupt(_))
        ));
        let mut m = b.clone();
        m[OFF_MAGIC] = 1;
        assert!(matches!(
            validate_batches(&m, 1 << 20),
            Err(StorageError::InvalidRecord(_))
        ));
        assert!(matches!(
            validate_batches(&[], 1 << 20),
            Err(StorageError::InvalidRecord(_))
        ));
    }

    #[test]
    fn log_append_time_keeps_crc_valid() {
        let mut b = build_batch(0, 1, &[(None, b"x")]);
        set_log_append_time(&mut b, 99);
        set_base_offset(&mut b, 42);
        let h = check_frame(&b).expect("still valid");
        assert_eq!(h.max_timestamp, 99);
        assert_eq!(h.base_offset, 42);
        assert_ne!(h.attributes & ATTR_LOG_APPEND_TIME, 0);
    }
}
