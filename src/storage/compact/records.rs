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
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

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

/// The records section of `batch` (after the 61-byte header), decompressed with its codec.
pub fn records_section(batch: &Bytes, h: &BatchHeader) -> Result<Bytes> {
    let end = h.total_size().min(batch.len());
    if end < HEADER_BYTES {
        return Err(corrupt("batch shorter than its header"));
    }
    let mut raw = batch.slice(HEADER_BYTES..end);
    let keep = |b: &mut Bytes| Ok(b.clone());
    let out = match h.compression() {
        0 => Ok(raw),
        1 => Gzip::decompress(&mut raw, keep),
        2 => Snappy::decompress(&mut raw, keep),
        3 => Lz4::decompress(&mut raw, keep),
        4 => Zstd::decompress(&mut raw, keep),
        c => {
            return Err(StorageError::InvalidRecord(format!(
                "unknown compression codec {c}"
            )))
        }
    };
    out.map_err(|e| StorageError::Corrupt(format!("cannot decompress a batch: {e}")))
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

/// The records of a stored batch, with the (decompressed) section their ranges point into.
pub fn batch_records(batch: &Bytes) -> Result<(BatchHeader, Bytes, Vec<RecordRef>)> {
    let h = BatchHeader::parse(batch).ok_or_else(|| corrupt("no batch header"))?;
    let section = records_section(batch, &h)?;
    let records = parse_records(&section, h.base_offset, h.record_count)?;
    Ok((h, section, records))
}

/// Whether every record of every batch in `batches` has a key (Kafka refuses keyless records
/// in a compacted topic with INVALID_RECORD).
pub fn every_record_has_a_key(batches: &Bytes, headers: &[BatchHeader]) -> Result<bool> {
    let mut at = 0usize;
    for h in headers {
        let b = batches.slice(at..(at + h.total_size()).min(batches.len()));
        at += h.total_size();
        if h.is_control() {
            continue;
        }
        let (_, _, records) = batch_records(&b)?;
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
        let (h, section, recs) = batch_records(&b).expect("records");
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
        use kafka_protocol::records::{
            Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        for codec in [Compression::None, Compression::Lz4] {
            let records: Vec<Record> = (0..3)
                .map(|i| Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: 0,
                    producer_id: 7,
                    producer_epoch: 1,
                    timestamp_type: TimestampType::Creation,
                    offset: 50 + i,
                    sequence: 3 + i as i32,
                    timestamp: 1_000 + 10 * i,
                    key: Some(Bytes::from(format!("k{i}"))),
                    value: (i != 1).then(|| Bytes::from_static(b"v")),
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
            let b = buf.freeze();
            let (h, section, recs) = batch_records(&b).expect("records");
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
            let (h3, section3, recs3) = batch_records(&out).expect("records");
            let again = rebuild(&out, &h3, &section3, &recs3, &[1], None).expect("rebuild");
            let h4 = check_frame(&again).expect("valid");
            assert_eq!(h4.delete_horizon(), Some(90_000));
            let mut d = Bytes::from(again);
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut d).expect("decodes");
            assert_eq!(set.records[0].timestamp, 1_020);
        }
    }

    #[test]
    fn garbage_records_are_an_error_not_a_panic() {
        for n in 0..64u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ n).collect();
            let _ = parse_records(&junk, 0, 1000);
        }
    }
}
