//! Idempotent producers (KIP-98): per partition, each producer id's epoch and the sequence
//! ranges of its last five batches, so that a retried batch is answered with its original
//! offset instead of being written twice, and a gap or a stale epoch is refused.
//!
//! The state is derived from the log: it is snapshotted next to the segments and rebuilt on
//! open from the snapshot plus the batches after it.
//!
//! It also answers what DescribeProducers asks of a partition ([`ActiveProducer`]: epoch,
//! last sequence and last timestamp of every producer it remembers), through
//! [`super::Partition::active_producers`]: the read lives here, beside the state it reads.

use std::collections::{HashMap, VecDeque};

use rkyv::{rancor, util::AlignedVec, Archive, Deserialize, Serialize};

use crate::storage::batch::BatchHeader;

/// Batches remembered per producer (Kafka's max.in.flight.requests.per.connection bound).
pub const BATCHES_PER_PRODUCER: usize = 5;

/// Why a batch from an idempotent producer is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceError {
    /// A newer epoch of this producer id has written here (Kafka: INVALID_PRODUCER_EPOCH).
    StaleEpoch,
    /// The batch does not continue the producer's sequence (OUT_OF_ORDER_SEQUENCE_NUMBER).
    OutOfOrder,
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Append,
    /// Already in the log at this base offset: answer success without writing.
    Duplicate {
        base_offset: i64,
    },
    Refuse(SequenceError),
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSeq {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub producer_id: i64,
    pub epoch: i16,
    pub batches: Vec<BatchSeq>,
}

/// A producer's last batch's largest timestamp.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerTime {
    pub producer_id: i64,
    pub timestamp: i64,
}

/// The on-disk snapshot: the state as of `offset` (every batch below it applied).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub offset: i64,
    pub producers: Vec<ProducerEntry>,
    pub last_timestamps: Vec<ProducerTime>,
}

/// The first snapshot format (no timestamps), still read: a snapshot without
/// [`SNAPSHOT_FORMAT_2`] in front is one of these.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct SnapshotV1 {
    offset: i64,
    producers: Vec<ProducerEntry>,
}

/// What a snapshot of the current format starts with (rkyv follows).
const SNAPSHOT_FORMAT_2: &[u8; 8] = b"STRPSv2\0";

pub const SNAPSHOT_FILE: &str = "producer.snapshot";

/// What DescribeProducers reports of one producer of a partition (Kafka's ProducerStateEntry
/// without transactions: no coordinator epoch, no open transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    /// The last sequence of its last batch; -1 when none is remembered.
    pub last_sequence: i32,
    /// The largest timestamp of its last batch; -1 when unknown (a snapshot of the first
    /// format does not have it).
    pub last_timestamp: i64,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProducerState {
    producers: HashMap<i64, (i16, VecDeque<BatchSeq>)>,
    /// By producer id: the largest timestamp of its last batch.
    last_timestamps: HashMap<i64, i64>,
}

/// The last sequence of a batch: Kafka's `lastSequence`, from `lastOffsetDelta` rather than
/// the record count, so that a batch the cleaner thinned (or emptied) still says where its
/// producer's sequence stands.
fn batch_last_seq(h: &BatchHeader) -> i32 {
    last_seq(h.base_sequence, h.last_offset_delta.saturating_add(1))
}

fn last_seq(first: i32, records: i32) -> i32 {
    // Sequences wrap at i32::MAX back to 0.
    ((first as i64 + records as i64 - 1) % (i32::MAX as i64 + 1)) as i32
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerState {
    /// Judges a batch (whose header carries producer id, epoch, base sequence, record count).
    pub fn check(&self, h: &BatchHeader) -> Verdict {
        if h.producer_id < 0 {
            return Verdict::Append;
        }
        let first = h.base_sequence;
        let last = batch_last_seq(h);
        match self.producers.get(&h.producer_id) {
            // A producer this partition has no state for starts its sequence wherever it is, as
            // in Kafka since KIP-360: its state may have gone with retention, and refusing it
            // (UNKNOWN_PRODUCER_ID) would stop a producer that did nothing wrong.
            None => Verdict::Append,
            Some((epoch, _)) if h.producer_epoch < *epoch => {
                Verdict::Refuse(SequenceError::StaleEpoch)
            }
            Some((epoch, _)) if h.producer_epoch > *epoch => {
                if first == 0 {
                    Verdict::Append
                } else {
                    Verdict::Refuse(SequenceError::OutOfOrder)
                }
            }
            Some((_, batches)) => {
                if let Some(b) = batches
                    .iter()
                    .find(|b| b.first_seq == first && b.last_seq == last)
                {
                    return Verdict::Duplicate {
                        base_offset: b.base_offset,
                    };
                }
                match batches.back() {
                    Some(b) if next_seq(b.last_seq) == first => Verdict::Append,
                    None => Verdict::Append,
                    Some(_) => Verdict::Refuse(SequenceError::OutOfOrder),
                }
            }
        }
    }

    /// Records a batch that was appended at `base_offset` (or found in the log on recovery).
    pub fn record(&mut self, h: &BatchHeader, base_offset: i64) {
        if h.producer_id < 0 || h.is_control() {
            return;
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert((h.producer_epoch, VecDeque::new()));
        if h.producer_epoch > entry.0 {
            *entry = (h.producer_epoch, VecDeque::new());
        }
        entry.1.push_back(BatchSeq {
            first_seq: h.base_sequence,
            last_seq: batch_last_seq(h),
            base_offset,
        });
        while entry.1.len() > BATCHES_PER_PRODUCER {
            entry.1.pop_front();
        }
        self.last_timestamps.insert(h.producer_id, h.max_timestamp);
    }

    /// Every producer this partition remembers, by producer id.
    pub fn active(&self) -> Vec<ActiveProducer> {
        let mut all: Vec<ActiveProducer> = self
            .producers
            .iter()
            .map(|(pid, (epoch, batches))| ActiveProducer {
                producer_id: *pid,
                epoch: *epoch,
                last_sequence: batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: self.last_timestamps.get(pid).copied().unwrap_or(-1),
            })
            .collect();
        all.sort_by_key(|p| p.producer_id);
        all
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Each producer's last batch: producer id → its base offset. The cleaner keeps these
    /// batches, emptied if need be, so that the state survives being rebuilt from the log.
    pub fn last_batches(&self) -> HashMap<i64, i64> {
        self.producers
            .iter()
            .filter_map(|(pid, (_, b))| b.back().map(|b| (*pid, b.base_offset)))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn to_snapshot(&self, offset: i64) -> Snapshot {
        let mut producers: Vec<ProducerEntry> = self
            .producers
            .iter()
            .map(|(pid, (epoch, b))| ProducerEntry {
                producer_id: *pid,
                epoch: *epoch,
                batches: b.iter().copied().collect(),
            })
            .collect();
        producers.sort_by_key(|p| p.producer_id);
        let mut last_timestamps: Vec<ProducerTime> = self
            .last_timestamps
            .iter()
            .map(|(pid, ts)| ProducerTime {
                producer_id: *pid,
                timestamp: *ts,
            })
            .collect();
        last_timestamps.sort_by_key(|t| t.producer_id);
        Snapshot {
            offset,
            producers,
            last_timestamps,
        }
    }

    pub fn from_snapshot(s: &Snapshot) -> ProducerState {
        ProducerState {
            producers: s
                .producers
                .iter()
                .map(|p| {
                    (
                        p.producer_id,
                        (p.epoch, p.batches.iter().copied().collect()),
                    )
                })
                .collect(),
            last_timestamps: s
                .last_timestamps
                .iter()
                .map(|t| (t.producer_id, t.timestamp))
                .collect(),
        }
    }
}

impl Snapshot {
    pub fn encode(&self) -> Result<Vec<u8>, rancor::Error> {
        let body = rkyv::to_bytes::<rancor::Error>(self)?;
        let mut out = Vec::with_capacity(SNAPSHOT_FORMAT_2.len() + body.len());
        out.extend_from_slice(SNAPSHOT_FORMAT_2);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// A snapshot of either format; `None` for bytes that are neither (the state is then
    /// rebuilt from the log).
    pub fn decode(bytes: &[u8]) -> Option<Snapshot> {
        // rkyv reads from an aligned buffer: copy, as the file's bytes come in any buffer.
        let aligned = |b: &[u8]| {
            let mut v = AlignedVec::<16>::with_capacity(b.len());
            v.extend_from_slice(b);
            v
        };
        match bytes.strip_prefix(SNAPSHOT_FORMAT_2.as_slice()) {
            Some(body) => rkyv::from_bytes::<Snapshot, rancor::Error>(&aligned(body)).ok(),
            None => rkyv::from_bytes::<SnapshotV1, rancor::Error>(&aligned(bytes))
                .ok()
                .map(|v1| Snapshot {
                    offset: v1.offset,
                    producers: v1.producers,
                    last_timestamps: Vec::new(),
                }),
        }
    }
}

impl super::Partition {
    /// The producers this partition remembers (DescribeProducers), read on its core.
    pub fn active_producers(&self) -> Vec<ActiveProducer> {
        self.producers.borrow().active()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, first_seq: i32, count: i32) -> BatchHeader {
        let mut b =
            crate::storage::batch::build_batch(0, 1, &vec![(None, &b"v"[..]); count as usize]);
        b[43..51].copy_from_slice(&pid.to_be_bytes());
        b[51..53].copy_from_slice(&epoch.to_be_bytes());
        b[53..57].copy_from_slice(&first_seq.to_be_bytes());
        BatchHeader::parse(&b).expect("header")
    }

    #[test]
    fn sequences_duplicates_gaps_and_epochs() {
        let mut s = ProducerState::default();
        let b0 = batch(7, 0, 0, 3);
        assert_eq!(s.check(&b0), Verdict::Append);
        s.record(&b0, 100);
        assert_eq!(
            s.check(&b0),
            Verdict::Duplicate { base_offset: 100 },
            "a retry is a duplicate"
        );
        let b1 = batch(7, 0, 3, 2);
        assert_eq!(s.check(&b1), Verdict::Append);
        s.record(&b1, 103);
        assert_eq!(
            s.check(&batch(7, 0, 6, 1)),
            Verdict::Refuse(SequenceError::OutOfOrder),
            "gap"
        );
        assert_eq!(
            s.check(&batch(7, 0, 4, 1)),
            Verdict::Refuse(SequenceError::OutOfOrder),
            "overlap that is no retry"
        );
        assert_eq!(
            s.check(&batch(8, 0, 5, 1)),
            Verdict::Append,
            "an unknown producer starts anywhere"
        );
        assert_eq!(s.check(&batch(9, 0, 0, 1)), Verdict::Append);
        let e1 = batch(7, 1, 0, 1);
        assert_eq!(s.check(&e1), Verdict::Append, "a new epoch restarts at 0");
        s.record(&e1, 200);
        assert_eq!(
            s.check(&batch(7, 0, 5, 1)),
            Verdict::Refuse(SequenceError::StaleEpoch)
        );
        assert_eq!(
            s.check(&batch(7, 2, 3, 1)),
            Verdict::Refuse(SequenceError::OutOfOrder)
        );
        assert_eq!(
            s.check(&batch(-1, -1, -1, 1)),
            Verdict::Append,
            "not idempotent"
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_snapshots_round_trip() {
        let mut s = ProducerState::default();
        for i in 0..8 {
            s.record(&batch(1, 0, i, 1), 10 + i as i64);
        }
        assert_eq!(
            s.check(&batch(1, 0, 7, 1)),
            Verdict::Duplicate { base_offset: 17 }
        );
        assert_eq!(
            s.check(&batch(1, 0, 3, 1)),
            Verdict::Duplicate { base_offset: 13 }
        );
        assert_eq!(
            s.check(&batch(1, 0, 2, 1)),
            Verdict::Refuse(SequenceError::OutOfOrder),
            "forgotten"
        );
        let snap = s.to_snapshot(18);
        let back = Snapshot::decode(&snap.encode().expect("encode")).expect("decode");
        assert_eq!(back, snap);
        assert_eq!(ProducerState::from_snapshot(&back), s);
    }

    #[test]
    fn active_producers_report_epoch_last_sequence_and_last_timestamp() {
        let mut s = ProducerState::default();
        s.record(&batch(9, 2, 0, 3), 0);
        s.record(&batch(4, 0, 0, 1), 3);
        s.record(&batch(9, 2, 3, 2), 4);
        let active = s.active();
        assert_eq!(active.len(), 2);
        assert_eq!(
            (
                active[0].producer_id,
                active[0].epoch,
                active[0].last_sequence
            ),
            (4, 0, 0)
        );
        assert_eq!(
            (
                active[1].producer_id,
                active[1].epoch,
                active[1].last_sequence
            ),
            (9, 2, 4)
        );
        let ts = batch(9, 2, 3, 2).max_timestamp;
        assert!(ts >= 0);
        assert_eq!(active[1].last_timestamp, ts);
        let back = ProducerState::from_snapshot(
            &Snapshot::decode(&s.to_snapshot(6).encode().expect("encode")).expect("decode"),
        );
        assert_eq!(back.active(), active, "timestamps survive a snapshot");
    }

    #[test]
    fn a_snapshot_of_the_first_format_is_still_read_without_timestamps() {
        let mut s = ProducerState::default();
        s.record(&batch(7, 1, 0, 2), 10);
        let v2 = s.to_snapshot(12);
        let v1 = SnapshotV1 {
            offset: v2.offset,
            producers: v2.producers.clone(),
        };
        let bytes = rkyv::to_bytes::<rancor::Error>(&v1)
            .expect("encode")
            .to_vec();
        let back = Snapshot::decode(&bytes).expect("decode v1");
        assert_eq!((back.offset, &back.producers), (12, &v2.producers));
        let active = ProducerState::from_snapshot(&back).active();
        assert_eq!(active[0].last_timestamp, -1);
        assert_eq!(active[0].last_sequence, 1);
        assert_eq!(Snapshot::decode(b"garbage"), None);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut s = ProducerState::default();
        let b = batch(1, 0, i32::MAX - 1, 2);
        s.record(&b, 0);
        assert_eq!(s.check(&batch(1, 0, 0, 1)), Verdict::Append);
    }
}
