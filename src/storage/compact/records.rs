//! The records inside a stored RecordBatch v2, for the cleaner and for the produce-time key
//! check of compacted topics: the records section (decompressed when the batch is), each
//! record's offset, key and whether it is a tombstone, and a batch rebuilt from a subset of its
//! records.
//!
//! A rebuilt batch keeps everything of the original header but the record count, the length
//! and the CRC: its base offset, `lastOffsetDelta` (so its offset range, and the end of its
//! segment, never move), timestamps, producer id, epoch and base sequence. Kept records are
//! copied byte for byte (their offset and timestamp deltas are relative to the unchanged base)
//! and recompressed with the batch's own codec. The one exception is the delete horizon
//! (KIP-534, as Kafka's `MemoryRecords.filterTo`): a batch whose kept records include a
//! tombstone gets the horizon as its `baseTimestamp` and the delete-horizon attribute bit, and
//! each record's timestamp delta is rewritten against it, so every record keeps its timestamp.

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

use crate::limits::MAX_DECOMPRESSED_BATCH_BYTES;
use crate::storage::batch::{
    compute_crc, put_varlong, BatchHeader, ATTRIBUTES_AT, ATTR_COMPRESSION_MASK,
    ATTR_DELETE_HORIZON, BASE_TIMESTAMP_AT, HEADER_BYTES, LOG_OVERHEAD,
};
use crate::storage::error::{Result, StorageError};

/// One record's place in a records section and what the cleaner needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    /// Byte range of the whole record (length prefix included) in the records section.
    pub start: usize,
    pub end: usize,
    pub offset: i64,
    /// The timestamp delta (against the batch's `baseTimestamp`) and the byte range of its
    /// varint in the records section.
    pub timestamp_delta: i64,
    pub timestamp_delta_at: (usize, usize),
    /// Byte range of the key in the records section; `None` for a null key.
    pub key: Option<(usize, usize)>,
    /// A null value: a tombstone in a compacted topic.
    pub tombstone: bool,
}

fn corrupt(what: &str) -> StorageError {
    StorageError::Corrupt(format!("record inside a batch: {what}"))
}

fn varlong(buf: &[u8], at: &mut usize) -> Result<i64> {
    let mut z: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*at).ok_or_else(|| corrupt("truncated varint"))?;
        *at += 1;
        z |= ((b & 0x7f) as u64) << shift;
        if b & 0x80 == 0 {
            return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    Err(corrupt("varint longer than 10 bytes"))
}

/// The records section of `batch` (after the 61-byte header), decompressed with its codec;
/// `None` when it would decompress to more than `limit` bytes (nothing beyond the limit is
/// allocated: the codecs are read as streams, snappy's blocks judged by their stated sizes).
pub fn records_section(batch: &Bytes, h: &BatchHeader, limit: usize) -> Result<Option<Bytes>> {
    let end = h.total_size().min(batch.len());
    if end < HEADER_BYTES {
        return Err(corrupt("batch shorter than its header"));
    }
    let raw = batch.slice(HEADER_BYTES..end);
    let codec = h.compression();
    if codec == 0 {
        return Ok(Some(raw));
    }
    let decompressed = decompress_bounded(codec, &raw, limit).map_err(|e| match e {
        DecompressError::Codec(c) => {
            StorageError::InvalidRecord(format!("unknown compression codec {c}"))
        }
        DecompressError::Io(e) => StorageError::Corrupt(format!("cannot decompress a batch: {e}")),
    })?;
    Ok(decompressed.map(Bytes::from))
}

enum DecompressError {
    Codec(i16),
    Io(std::io::Error),
}

impl From<std::io::Error> for DecompressError {
    fn from(e: std::io::Error) -> Self {
        DecompressError::Io(e)
    }
}

/// Kafka's codecs (1 gzip, 2 snappy, 3 lz4, 4 zstd), at most `limit` bytes out.
fn decompress_bounded(
    codec: i16,
    raw: &[u8],
    limit: usize,
) -> std::result::Result<Option<Vec<u8>>, DecompressError> {
    use std::io::Read;
    let read_bounded = |r: &mut dyn Read| -> std::io::Result<Option<Vec<u8>>> {
        let mut out = Vec::new();
        r.take(limit as u64 + 1).read_to_end(&mut out)?;
        Ok((out.len() <= limit).then_some(out))
    };
    Ok(match codec {
        1 => read_bounded(&mut flate2::read::MultiGzDecoder::new(raw))?,
        2 => snappy_bounded(raw, limit)?,
        3 => read_bounded(&mut lz4::Decoder::new(raw)?)?,
        4 => read_bounded(&mut zstd::stream::read::Decoder::new(raw)?)?,
        c => return Err(DecompressError::Codec(c)),
    })
}

/// The xerial framing Kafka's Java client writes around snappy blocks.
const SNAPPY_XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

/// Snappy as Kafka stores it: xerial-framed blocks (`u32` length + raw snappy each), or one
/// raw snappy block (librdkafka); each block's stated size is checked before it is allocated.
fn snappy_bounded(raw: &[u8], limit: usize) -> std::io::Result<Option<Vec<u8>>> {
    let bad = |e: snap::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let mut blocks: Vec<&[u8]> = Vec::new();
    if let Some(mut rest) = raw.strip_prefix(&SNAPPY_XERIAL_MAGIC[..]) {
        while !rest.is_empty() {
            let (len, tail) = rest.split_at_checked(4).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "snappy block length cut")
            })?;
            let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
            let (block, tail) = tail.split_at_checked(len).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "snappy block cut")
            })?;
            blocks.push(block);
            rest = tail;
        }
    } else {
        blocks.push(raw);
    }
    let mut total = 0usize;
    for b in &blocks {
        total = total.saturating_add(snap::raw::decompress_len(b).map_err(bad)?);
        if total > limit {
            return Ok(None);
        }
    }
    let mut out = vec![0u8; total];
    let mut at = 0;
    for b in blocks {
        at += snap::raw::Decoder::new()
            .decompress(b, &mut out[at..])
            .map_err(bad)?;
    }
    out.truncate(at);
    Ok(Some(out))
}

/// Every record of a records section of a batch based at `base_offset` holding `count`
/// records (bounded by the bytes: a lying count cannot make it allocate more).
pub fn parse_records(section: &[u8], base_offset: i64, count: i32) -> Result<Vec<RecordRef>> {
    let mut out = Vec::with_capacity((count.max(0) as usize).min(section.len() / 7 + 1));
    let mut at = 0usize;
    for _ in 0..count.max(0) {
        let start = at;
        let len = varlong(section, &mut at)?;
        if len < 0 || at + len as usize > section.len() {
            return Err(corrupt("record length beyond the batch"));
        }
        let end = at + len as usize;
        let body = &section[..end];
        at += 1; // attributes
        let ts_start = at;
        let timestamp_delta = varlong(body, &mut at)?;
        let timestamp_delta_at = (ts_start, at);
        let offset_delta = varlong(body, &mut at)?;
        let key_len = varlong(body, &mut at)?;
        let key = if key_len < 0 {
            None
        } else {
            let k = (at, at + key_len as usize);
            if k.1 > end {
                return Err(corrupt("key beyond the record"));
            }
            at = k.1;
            Some(k)
        };
        let value_len = varlong(body, &mut at)?;
        out.push(RecordRef {
            start,
            end,
            offset: base_offset + offset_delta,
            timestamp_delta,
            timestamp_delta_at,
            key,
            tombstone: value_len < 0,
        });
        at = end;
    }
    Ok(out)
}

/// The value of a record that has a key (`None` for a null value), from the records section
/// `r` was parsed from.
pub fn record_value<'a>(section: &'a [u8], r: &RecordRef) -> Result<Option<&'a [u8]>> {
    let (_, key_end) = r.key.ok_or_else(|| corrupt("a record without a key"))?;
    let mut at = key_end;
    let len = varlong(section, &mut at)?;
    if len < 0 {
        return Ok(None);
    }
    let end = at
        .checked_add(len as usize)
        .filter(|e| *e <= r.end)
        .ok_or_else(|| corrupt("value beyond the record"))?;
    Ok(Some(&section[at..end]))
}

/// A batch's header, its (decompressed) records section and the records in it.
pub type ParsedBatch = (BatchHeader, Bytes, Vec<RecordRef>);

/// The records of a stored batch, with the (decompressed) section their ranges point into;
/// `None` when its records decompress to more than [`MAX_DECOMPRESSED_BATCH_BYTES`].
pub fn batch_records(batch: &Bytes) -> Result<Option<ParsedBatch>> {
    batch_records_within(batch, MAX_DECOMPRESSED_BATCH_BYTES)
}

/// [`batch_records`] with a given bound on the decompressed records.
pub fn batch_records_within(batch: &Bytes, limit: usize) -> Result<Option<ParsedBatch>> {
    let h = BatchHeader::parse(batch).ok_or_else(|| corrupt("no batch header"))?;
    let Some(section) = records_section(batch, &h, limit)? else {
        return Ok(None);
    };
    let records = parse_records(&section, h.base_offset, h.record_count)?;
    Ok(Some((h, section, records)))
}

/// Whether every record of every batch in `batches` has a key (Kafka refuses keyless records
/// in a compacted topic with INVALID_RECORD). A batch decompressing beyond
/// [`MAX_DECOMPRESSED_BATCH_BYTES`] is refused (INVALID_RECORD) rather than read.
pub fn every_record_has_a_key(batches: &Bytes, headers: &[BatchHeader]) -> Result<bool> {
    let mut at = 0usize;
    for h in headers {
        let b = batches.slice(at..(at + h.total_size()).min(batches.len()));
        at += h.total_size();
        if h.is_control() {
            continue;
        }
        let Some((_, _, records)) = batch_records(&b)? else {
            return Err(StorageError::InvalidRecord(format!(
                "a batch's records decompress to more than {MAX_DECOMPRESSED_BATCH_BYTES} bytes"
            )));
        };
        if records.iter().any(|r| r.key.is_none()) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `batch` rebuilt with only the records `keep` (indexes into `records`, in order), in the
/// batch's own codec, every other header field unchanged; with `delete_horizon`, stamped with
/// it (see the module doc; only for a batch that has none yet).
pub fn rebuild(
    batch: &Bytes,
    h: &BatchHeader,
    section: &[u8],
    records: &[RecordRef],
    keep: &[usize],
    delete_horizon: Option<i64>,
) -> Result<Vec<u8>> {
    let mut raw = Vec::with_capacity(
        keep.iter()
            .map(|&i| records[i].end - records[i].start + 10)
            .sum(),
    );
    for &i in keep {
        let r = &records[i];
        match delete_horizon {
            None => raw.extend_from_slice(&section[r.start..r.end]),
            Some(horizon) => {
                // attributes, the new delta, then the rest of the record unchanged.
                let (ts_start, ts_end) = r.timestamp_delta_at;
                let timestamp = h.base_timestamp.saturating_add(r.timestamp_delta);
                let mut body = Vec::with_capacity(r.end - r.start + 10);
                body.extend_from_slice(&section[ts_start - 1..ts_start]);
                put_varlong(&mut body, timestamp.saturating_sub(horizon));
                body.extend_from_slice(&section[ts_end..r.end]);
                put_varlong(&mut raw, body.len() as i64);
                raw.extend_from_slice(&body);
            }
        }
    }
    let body: Vec<u8> = match h.compression() {
        0 => raw,
        codec => {
            let mut out = BytesMut::new();
            let fill = |tmp: &mut BytesMut| {
                tmp.extend_from_slice(&raw);
                Ok(())
            };
            match codec {
                1 => Gzip::compress(&mut out, fill),
                2 => Snappy::compress(&mut out, fill),
                3 => Lz4::compress(&mut out, fill),
                4 => Zstd::compress(&mut out, fill),
                c => {
                    return Err(StorageError::InvalidRecord(format!(
                        "unknown compression codec {c}"
                    )))
                }
            }
            .map_err(|e| StorageError::Encode {
                what: "a cleaned batch",
                reason: e.to_string(),
            })?;
            out.to_vec()
        }
    };
    let mut b = Vec::with_capacity(HEADER_BYTES + body.len());
    b.extend_from_slice(&batch[..HEADER_BYTES]);
    b.extend_from_slice(&body);
    let len = i32::try_from(b.len() - LOG_OVERHEAD).map_err(|_| StorageError::Encode {
        what: "a cleaned batch",
        reason: "longer than 2 GiB".into(),
    })?;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[57..61].copy_from_slice(&(keep.len() as i32).to_be_bytes());
    if let Some(horizon) = delete_horizon {
        let attributes = h.attributes | ATTR_DELETE_HORIZON;
        b[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        b[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&horizon.to_be_bytes());
    }
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(b)
}

/// The header of `batch` with no record (Kafka's `DefaultRecordBatch.writeEmptyHeader`): what
/// the cleaner keeps of an emptied batch holding a producer's last sequence. Same base offset,
/// `lastOffsetDelta`, producer id, epoch, base sequence, leader epoch and timestamp type; no
/// compression, no delete horizon, both timestamps the batch's max timestamp.
pub fn empty_batch(batch: &[u8], h: &BatchHeader) -> Vec<u8> {
    let mut b = batch[..HEADER_BYTES].to_vec();
    let len = (HEADER_BYTES - LOG_OVERHEAD) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    let attributes = h.attributes & !(ATTR_COMPRESSION_MASK | ATTR_DELETE_HORIZON);
    b[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    b[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8].copy_from_slice(&h.max_timestamp.to_be_bytes());
    b[57..61].copy_from_slice(&0i32.to_be_bytes());
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Encodes one record as Kafka does (for tests of the cleaner that need hand-made records).
pub use crate::storage::batch::encode_record;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::{build_batch_nullable, check_frame};

    #[test]
    fn a_rebuilt_batch_keeps_its_offsets_and_only_the_chosen_records() {
        let b = Bytes::from(build_batch_nullable(
            100,
            7,
            &[
                (Some(b"a"), Some(b"1")),
                (None, Some(b"2")),
                (Some(b"c"), None),
            ],
        ));
        let (h, section, recs) = batch_records(&b)
            .expect("records")
            .expect("within the bound");
        assert_eq!(recs.len(), 3);
        assert_eq!(
            recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![100, 101, 102]
        );
        assert!(recs[1].key.is_none() && recs[2].tombstone && !recs[0].tombstone);
        let out = Bytes::from(rebuild(&b, &h, &section, &recs, &[0], None).expect("rebuild"));
        let h2 = check_frame(&out).expect("valid batch");
        assert_eq!(
            (h2.base_offset, h2.last_offset_delta, h2.record_count),
            (100, 2, 1)
        );
        let mut d = out.clone();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut d).expect("decodes");
        assert_eq!(set.records.len(), 1);
        assert_eq!(set.records[0].offset, 100);
        let empty = Bytes::from(rebuild(&b, &h, &section, &recs, &[], None).expect("rebuild"));
        assert_eq!(check_frame(&empty).expect("valid").record_count, 0);
        assert!(!every_record_has_a_key(&b, &[h]).expect("parse"));
    }

    #[test]
    fn a_delete_horizon_is_written_into_the_batch_and_every_record_keeps_its_timestamp() {
        use kafka_protocol::records::Compression;
        for codec in [Compression::None, Compression::Lz4] {
            let recs: Vec<TestRecord> = (0..3)
                .map(|i| {
                    let value = (i != 1).then(|| b"v".to_vec());
                    (1_000 + 10 * i, format!("k{i}"), value)
                })
                .collect();
            let b = encode(codec, (7, 1, 3), 50, &recs);
            let (h, section, recs) = batch_records(&b)
                .expect("records")
                .expect("within the bound");
            assert_eq!(h.delete_horizon(), None);
            let out = Bytes::from(
                rebuild(&b, &h, &section, &recs, &[1, 2], Some(90_000)).expect("rebuild"),
            );
            let h2 = check_frame(&out).expect("valid batch, CRC included");
            assert_eq!(h2.delete_horizon(), Some(90_000));
            assert_eq!(h2.compression(), h.compression());
            assert_eq!(
                (
                    h2.base_offset,
                    h2.last_offset_delta,
                    h2.producer_id,
                    h2.producer_epoch,
                    h2.base_sequence,
                    h2.max_timestamp
                ),
                (
                    h.base_offset,
                    h.last_offset_delta,
                    h.producer_id,
                    h.producer_epoch,
                    h.base_sequence,
                    h.max_timestamp
                )
            );
            // A third-party decoder sees the flag and the records' own timestamps.
            let mut d = out.clone();
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut d).expect("decodes");
            let got: Vec<(i64, i64, bool, bool)> = set
                .records
                .iter()
                .map(|r| (r.offset, r.timestamp, r.value.is_none(), r.delete_horizon))
                .collect();
            assert_eq!(
                got,
                vec![(51, 1_010, true, true), (52, 1_020, false, true)],
                "{codec:?}"
            );
            // Stamped once: a later rebuild keeps the header's horizon and the deltas.
            let (h3, section3, recs3) = batch_records(&out)
                .expect("records")
                .expect("within the bound");
            let again = rebuild(&out, &h3, &section3, &recs3, &[1], None).expect("rebuild");
            let h4 = check_frame(&again).expect("valid");
            assert_eq!(h4.delete_horizon(), Some(90_000));
            let mut d = Bytes::from(again);
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut d).expect("decodes");
            assert_eq!(set.records[0].timestamp, 1_020);
        }
    }

    /// A record for [`encode`]: timestamp, key, value (`None`: null).
    type TestRecord = (i64, String, Option<Vec<u8>>);

    /// One batch of `records` from offset `first`, by a third-party encoder (kafka-protocol),
    /// in `codec`, from producer (id, epoch, first sequence).
    fn encode(
        codec: kafka_protocol::records::Compression,
        producer: (i64, i16, i32),
        first: i64,
        records: &[TestRecord],
    ) -> Bytes {
        use kafka_protocol::records::{
            Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let (producer_id, producer_epoch, first_seq) = producer;
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (timestamp, key, value))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id,
                producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: first + i as i64,
                // One batch: the encoder splits where offset - sequence changes.
                sequence: first_seq + i as i32,
                timestamp: *timestamp,
                key: Some(Bytes::from(key.clone())),
                value: value.clone().map(Bytes::from),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: codec,
            },
        )
        .expect("encode");
        buf.freeze()
    }

    /// A batch of two records, one with a `big`-byte value of zeros, in `codec`.
    fn compressible(codec: kafka_protocol::records::Compression, big: usize) -> Bytes {
        let recs: Vec<TestRecord> = vec![
            (0, "k0".into(), Some(vec![0u8; big])),
            (0, "k1".into(), Some(b"small".to_vec())),
        ];
        encode(codec, (-1, -1, -1), 0, &recs)
    }

    #[test]
    fn decompression_is_bounded_for_every_codec() {
        use kafka_protocol::records::Compression;
        let big = 1 << 20;
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b = compressible(codec, big);
            assert!(b.len() < big / 10, "{codec:?} compresses zeros");
            assert!(
                batch_records_within(&b, big / 2)
                    .expect("not an error")
                    .is_none(),
                "{codec:?}: beyond the bound"
            );
            let (_, section, recs) = batch_records_within(&b, 2 * big)
                .expect("parses")
                .expect("within the bound");
            assert!(section.len() > big && section.len() < 2 * big, "{codec:?}");
            assert_eq!(recs.len(), 2);
            let exact = section.len();
            assert!(
                batch_records_within(&b, exact).expect("parses").is_some(),
                "{codec:?}: at the bound"
            );
            assert!(
                batch_records_within(&b, exact - 1)
                    .expect("parses")
                    .is_none(),
                "{codec:?}: one byte less"
            );
        }
        // librdkafka's snappy: one raw block, no xerial framing.
        let plain = compressible(Compression::None, big);
        let raw = snap::raw::Encoder::new()
            .compress_vec(&plain[HEADER_BYTES..])
            .expect("snappy");
        let mut b = plain[..HEADER_BYTES].to_vec();
        b.extend_from_slice(&raw);
        let len = (b.len() - LOG_OVERHEAD) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&2i16.to_be_bytes());
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let b = Bytes::from(b);
        assert!(batch_records_within(&b, big / 2).expect("parses").is_none());
        let (_, section, _) = batch_records_within(&b, 2 * big)
            .expect("parses")
            .expect("within");
        assert_eq!(&section[..], &plain[HEADER_BYTES..]);
        // And a compacted topic's produce-time key check refuses what it cannot read.
        let h = BatchHeader::parse(&b).expect("header");
        assert!(every_record_has_a_key(&b, &[h]).expect("within the default bound"));
    }

    #[test]
    fn garbage_records_are_an_error_not_a_panic() {
        for n in 0..64u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ n).collect();
            let _ = parse_records(&junk, 0, 1000);
        }
    }
}
