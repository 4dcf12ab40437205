//! The raw client's record batches: valid RecordBatch v2 (built by the broker's own
//! `storage::batch::build_batch`, CRC-32C included), encoded once before the run and sent again
//! and again (the broker rewrites the base offset, which the CRC does not cover). Every record
//! of every batch in a pool carries its own random bytes, so nothing on the way (a virtual
//! disk's dedup, a compressing device) sees one repeated buffer. The idempotent mode patches
//! producer id, epoch and base sequence into a batch and recomputes its CRC.

use strata::storage::batch::{self, HEADER_BYTES};

// Header field offsets, per the RecordBatch v2 layout documented in `storage::batch`.
const OFF_PRODUCER_ID: usize = 43;
const OFF_PRODUCER_EPOCH: usize = 51;
const OFF_BASE_SEQUENCE: usize = 53;
const OFF_CRC: usize = 17;

/// The header bytes [`set_producer`] may change (CRC to the end of the header).
pub const PATCHED_HEADER: std::ops::Range<usize> = OFF_CRC..HEADER_BYTES;

/// xorshift64*: cheap, good enough to make every payload distinct.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so that nearby seeds give unrelated streams (and never 0).
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        rest.copy_from_slice(&last[..rest.len()]);
    }
}

fn varint_len(v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

/// Bytes of a batch of `n` records of `value_size` bytes each, null keys, no headers (what
/// `build_batch` makes).
pub fn batch_len(n: usize, value_size: usize) -> usize {
    let mut len = HEADER_BYTES;
    for i in 0..n {
        // attributes, timestamp delta 0, offset delta, null key, value length + value, no headers
        let body =
            1 + 1 + varint_len(i as i64) + 1 + varint_len(value_size as i64) + value_size + 1;
        len += varint_len(body as i64) + body;
    }
    len
}

/// As many records as fit in `batch_bytes` (at least one).
pub fn records_per_batch(value_size: usize, batch_bytes: usize) -> usize {
    let per = value_size + 8;
    let mut n = (batch_bytes.saturating_sub(HEADER_BYTES) / per).max(1);
    while n > 1 && batch_len(n, value_size) > batch_bytes {
        n -= 1;
    }
    while batch_len(n + 1, value_size) <= batch_bytes {
        n += 1;
    }
    n
}

/// One batch of `n` records, each `value_size` random bytes.
pub fn random_batch(rng: &mut Rng, n: usize, value_size: usize, timestamp_ms: i64) -> Vec<u8> {
    let mut values = vec![0u8; n * value_size];
    rng.fill(&mut values);
    let records: Vec<(Option<&[u8]>, &[u8])> = if value_size == 0 {
        (0..n).map(|_| (None, &[][..])).collect()
    } else {
        values.chunks_exact(value_size).map(|v| (None, v)).collect()
    };
    batch::build_batch(0, timestamp_ms, &records)
}

/// `count` distinct batches of `n` records each.
pub fn pool(seed: u64, count: usize, n: usize, value_size: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    (0..count)
        .map(|_| random_batch(&mut rng, n, value_size, now))
        .collect()
}

/// Makes `b` a batch of an idempotent producer: id, epoch and the sequence of its first record,
/// then the CRC again (it covers these fields).
pub fn set_producer(b: &mut [u8], producer_id: i64, epoch: i16, base_sequence: i32) {
    b[OFF_PRODUCER_ID..OFF_PRODUCER_ID + 8].copy_from_slice(&producer_id.to_be_bytes());
    b[OFF_PRODUCER_EPOCH..OFF_PRODUCER_EPOCH + 2].copy_from_slice(&epoch.to_be_bytes());
    b[OFF_BASE_SEQUENCE..OFF_BASE_SEQUENCE + 4].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = batch::compute_crc(b);
    b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata::storage::batch::{check_frame, validate_batches, BatchHeader};

    #[test]
    fn computed_length_matches_the_builder() {
        let mut rng = Rng::new(1);
        for (n, size) in [
            (1, 0),
            (1, 16384),
            (63, 16384),
            (200, 100),
            (700, 100),
            (3, 1),
        ] {
            assert_eq!(
                random_batch(&mut rng, n, size, 0).len(),
                batch_len(n, size),
                "{n} x {size}"
            );
        }
    }

    #[test]
    fn records_fill_the_batch_without_passing_it() {
        for (size, bytes) in [
            (16384, 1 << 20),
            (100, 64 << 10),
            (1024, 1 << 20),
            (1 << 21, 1 << 20),
        ] {
            let n = records_per_batch(size, bytes);
            assert!(n == 1 || batch_len(n, size) <= bytes, "{size} in {bytes}");
            assert!(
                batch_len(n + 1, size) > bytes,
                "{size} in {bytes}: one more fits"
            );
        }
        assert_eq!(records_per_batch(16384, 1 << 20), 63);
    }

    #[test]
    fn pool_batches_pass_the_brokers_validator_and_differ() {
        let p = pool(7, 4, 10, 1000);
        for b in &p {
            let hs = validate_batches(b, 1 << 20).expect("valid batch");
            assert_eq!(hs[0].record_count, 10);
            assert_eq!(hs[0].producer_id, -1);
        }
        for i in 0..p.len() {
            for j in i + 1..p.len() {
                assert_ne!(p[i][HEADER_BYTES..], p[j][HEADER_BYTES..]);
            }
        }
        // Records within one batch differ too. A record here is its length (2 bytes), then
        // attributes, timestamp delta, offset delta, null key (1 byte each), the value's
        // length (2 bytes), the value, the header count: 1009 bytes, the value at +8.
        let b = &p[0];
        let v0 = &b[HEADER_BYTES + 8..][..1000];
        let v1 = &b[HEADER_BYTES + 1009 + 8..][..1000];
        assert_ne!(v0, v1);
    }

    #[test]
    fn producer_fields_patch_keeps_the_crc_valid() {
        let mut b = pool(3, 1, 5, 64).remove(0);
        set_producer(&mut b, 4242, 3, 17);
        let h: BatchHeader = check_frame(&b).expect("crc still valid");
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (4242, 3, 17)
        );
        validate_batches(&b, 1 << 20).expect("valid");
        // And without the CRC update the validator would refuse it.
        b[OFF_BASE_SEQUENCE + 3] ^= 1;
        assert!(check_frame(&b).is_err());
    }
}
