//! The Raft log of one partition: raft-rs's [`Storage`] over the partition's batches and
//! entry index.
//!
//! Owns the in-memory view of what is durable (the entry records, the hard state, the
//! configuration) and the two operations that change it: [`EntryStore::persist`] (append,
//! truncating a conflicting tail first) and [`EntryStore::recover`] (open after a crash,
//! cutting the batches and the index back to their common durable prefix).
//!
//! Entry data is served without a disk read from a bounded cache of recent batches (the
//! `Bytes` that were appended, shared, not copied). A miss while sending to a follower is
//! answered "temporarily unavailable" and the batches are read asynchronously
//! ([`EntryStore::take_fetch`], then raft-rs's `on_entries_fetched`). A miss in any other
//! context (the committed entries raft hands back to be applied) yields the entry without
//! its data: applying a data entry needs only its offsets, which the index has.
//!
//! Below what the replica reports it may still read back, the partition's cleaner may have
//! compacted the batches: a batch read back then has fewer records (it is sent as it is),
//! or is gone, and its entry goes as an empty batch over its offsets
//! ([`EntryStore::keep_fetched`]).
//!
//! It must not decide anything Raft decides (what to append, what is committed) and knows
//! nothing of the network.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, EntryType, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use super::device::{DeviceError, ReplicaDevice};
use super::entries::{decode_index, EntryKind, EntryMeta};
use crate::storage::batch::{empty_header_batch, BatchHeader};

use crate::limits::{RAFT_MAX_APPEND_BYTES, REPLICA_ENTRY_CACHE_BYTES};

struct Inner {
    hard: HardState,
    conf: ConfState,
    /// Durable entries, in index order, with the byte position of each one's index record.
    metas: VecDeque<(EntryMeta, u64)>,
    /// Index and term of the entry before `metas[0]` (0, 0 for a log that starts empty).
    prev: (u64, u64),
    /// Kafka offset of the log's start (where the first entry's batch begins).
    start_offset: i64,
    /// Bytes of the entry index file.
    index_len: u64,
    /// Data of recent data entries, by index.
    cache: BTreeMap<u64, Bytes>,
    cache_bytes: usize,
    /// Data of the entries last read back from the device for a follower further behind
    /// than the cache (replaced by each read, so a read is never evicted by the recent
    /// batches before raft-rs takes it).
    fetched: BTreeMap<u64, Bytes>,
    /// Contexts raft-rs gave with an unanswered "temporarily unavailable", and the lowest
    /// index it asked for.
    fetch: Vec<GetEntriesContext>,
    fetch_from: Option<u64>,
}

impl Inner {
    fn first_index(&self) -> u64 {
        self.prev.0 + 1
    }
    fn last_index(&self) -> u64 {
        self.prev.0 + self.metas.len() as u64
    }
    fn meta(&self, index: u64) -> Option<&EntryMeta> {
        if index < self.first_index() {
            return None;
        }
        self.metas
            .get((index - self.first_index()) as usize)
            .map(|(m, _)| m)
    }
    fn end_offset(&self) -> i64 {
        self.metas
            .back()
            .map(|(m, _)| m.next_offset)
            .unwrap_or(self.start_offset)
    }
    fn cache_insert(&mut self, index: u64, data: Bytes) {
        self.cache_bytes += data.len();
        if let Some(old) = self.cache.insert(index, data) {
            self.cache_bytes -= old.len();
        }
        while self.cache_bytes > REPLICA_ENTRY_CACHE_BYTES && self.cache.len() > 1 {
            if let Some((_, old)) = self.cache.pop_first() {
                self.cache_bytes -= old.len();
            }
        }
    }
    fn cache_cut(&mut self, from_index: u64) {
        let cut = self.cache.split_off(&from_index);
        self.cache_bytes -= cut.values().map(|b| b.len()).sum::<usize>();
        self.fetched.split_off(&from_index);
    }
    fn data(&self, index: u64) -> Option<&Bytes> {
        self.cache.get(&index).or_else(|| self.fetched.get(&index))
    }
}

/// The Raft log of one partition. Shared (`Rc`) between the driver and raft-rs's `RawNode`,
/// which reads it through [`StoreHandle`].
pub struct EntryStore {
    inner: RefCell<Inner>,
}

/// The handle raft-rs owns.
#[derive(Clone)]
pub struct StoreHandle(pub Rc<EntryStore>);

/// Encodes the hard state and the configuration as the state file holds them.
fn encode_state(hard: &HardState, conf: &ConfState) -> Result<Vec<u8>, DeviceError> {
    let hs = hard
        .write_to_bytes()
        .map_err(|e| DeviceError::Io(format!("encoding the hard state: {e}")))?;
    let cs = conf
        .write_to_bytes()
        .map_err(|e| DeviceError::Io(format!("encoding the configuration: {e}")))?;
    let mut out = Vec::with_capacity(12 + hs.len() + cs.len());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(hs.len() as u32).to_be_bytes());
    out.extend_from_slice(&hs);
    out.extend_from_slice(&(cs.len() as u32).to_be_bytes());
    out.extend_from_slice(&cs);
    let crc = crc32c::crc32c(&out[4..]);
    out[..4].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

fn decode_state(buf: &[u8]) -> Result<(HardState, ConfState), DeviceError> {
    let bad = |why: &str| DeviceError::Corrupt(format!("raft state file: {why}"));
    if buf.len() < 12 {
        return Err(bad("too short"));
    }
    let crc = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if crc32c::crc32c(&buf[4..]) != crc {
        return Err(bad("checksum mismatch"));
    }
    let len_at = |i: usize| -> Result<usize, DeviceError> {
        buf.get(i..i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| bad("truncated"))
    };
    let hs_len = len_at(4)?;
    let hs_bytes = buf.get(8..8 + hs_len).ok_or_else(|| bad("truncated"))?;
    let cs_len = len_at(8 + hs_len)?;
    let cs_bytes = buf
        .get(12 + hs_len..12 + hs_len + cs_len)
        .ok_or_else(|| bad("truncated"))?;
    let hard = HardState::parse_from_bytes(hs_bytes).map_err(|e| bad(&e.to_string()))?;
    let conf = ConfState::parse_from_bytes(cs_bytes).map_err(|e| bad(&e.to_string()))?;
    Ok((hard, conf))
}

impl EntryStore {
    /// Opens the Raft log of a partition after a clean stop or a crash.
    ///
    /// The entry index is cut at its first torn record, then both sides are cut back to
    /// their common prefix: an index record whose batch did not reach the disk goes, and
    /// batches without an index record go (neither was ever reported persisted). A log whose
    /// batches have no index at all (a partition written before it was replicated) is refused
    /// rather than truncated. `voters` is the initial configuration of a group that has no
    /// state yet.
    pub async fn recover<D: ReplicaDevice>(
        device: &D,
        start_offset: i64,
        voters: &[u64],
    ) -> Result<Rc<EntryStore>, DeviceError> {
        let (hard, conf) = match device.read_state().await? {
            Some(bytes) => decode_state(&bytes)?,
            None => {
                let mut conf = ConfState::default();
                conf.voters = voters.to_vec();
                (HardState::default(), conf)
            }
        };
        let raw = device.read_index().await?;
        let (mut metas, mut valid) = decode_index(&raw);
        if let Some(first) = metas.first() {
            if first.base_offset != start_offset || first.index != 1 {
                return Err(DeviceError::Corrupt(format!(
                    "entry index starts at entry {} offset {}, the log at offset {start_offset}",
                    first.index, first.base_offset
                )));
            }
        }
        let batch_end = device.batch_end();
        let keep = metas
            .iter()
            .take_while(|m| m.next_offset <= batch_end)
            .count();
        if keep < metas.len() {
            valid = metas[..keep].iter().map(|m| m.encoded_len()).sum::<usize>();
            metas.truncate(keep);
        }
        if valid < raw.len() {
            tracing::warn!(
                cut = raw.len() - valid,
                entries = metas.len(),
                "entry index: cutting a tail that was not durable"
            );
            device.truncate_index(valid as u64).await?;
        }
        let end = metas.last().map(|m| m.next_offset).unwrap_or(start_offset);
        if batch_end > end {
            if metas.is_empty() && hard == HardState::default() {
                return Err(DeviceError::Corrupt(format!(
                    "the log holds offsets {start_offset}..{batch_end} but no Raft entries: \
                     it was written unreplicated and is not adopted"
                )));
            }
            tracing::warn!(
                from = end,
                to = batch_end,
                "cutting batches that have no entry"
            );
            device.truncate_batches(end).await?;
        }
        let mut pos = 0u64;
        let metas: VecDeque<(EntryMeta, u64)> = metas
            .into_iter()
            .map(|m| {
                let at = pos;
                pos += m.encoded_len() as u64;
                (m, at)
            })
            .collect();
        let mut hard = hard;
        let last = metas.len() as u64;
        if hard.commit > last {
            hard.commit = last;
        }
        Ok(Rc::new(EntryStore {
            inner: RefCell::new(Inner {
                hard,
                conf,
                metas,
                prev: (0, 0),
                start_offset,
                index_len: pos,
                cache: BTreeMap::new(),
                cache_bytes: 0,
                fetched: BTreeMap::new(),
                fetch: Vec::new(),
                fetch_from: None,
            }),
        }))
    }

    pub fn last_index(&self) -> u64 {
        self.inner.borrow().last_index()
    }

    pub fn hard_state(&self) -> HardState {
        self.inner.borrow().hard.clone()
    }

    pub fn conf_state(&self) -> ConfState {
        self.inner.borrow().conf.clone()
    }

    /// The index record of an entry, if it is durable here.
    pub fn meta(&self, index: u64) -> Option<EntryMeta> {
        self.inner.borrow().meta(index).cloned()
    }

    /// Offset right after the last durable batch.
    pub fn end_offset(&self) -> i64 {
        self.inner.borrow().end_offset()
    }

    /// Offset right after entry `index` (the log's start for an index before the first entry,
    /// its end for one after the last).
    pub fn end_offset_at(&self, index: u64) -> i64 {
        let inner = self.inner.borrow();
        if index < inner.first_index() {
            return inner.start_offset;
        }
        inner
            .meta(index)
            .map_or(inner.end_offset(), |m| m.next_offset)
    }

    /// The first offset of the first entry of `term` or later, with that entry's term:
    /// Kafka's leader-epoch lookup (OffsetForLeaderEpoch answers the end of the epoch, which
    /// is the start of the next one).
    pub fn first_offset_from_term(&self, term: u64) -> Option<(u64, i64)> {
        let inner = self.inner.borrow();
        let i = inner.metas.partition_point(|(m, _)| m.term < term);
        inner.metas.get(i).map(|(m, _)| (m.term, m.base_offset))
    }

    /// Kafka's `endOffsetFor(epoch)` for an epoch older than the current one: the start of
    /// the first later term (where `epoch` ended), with the latest term at or below `epoch`
    /// that this log holds (or `epoch` itself when it holds none that old); `None` when no
    /// later term is in the log (the caller answers the current term with the log end).
    pub fn epoch_end(&self, epoch: u64) -> Option<(u64, i64)> {
        let inner = self.inner.borrow();
        let i = inner.metas.partition_point(|(m, _)| m.term <= epoch);
        let (next, _) = inner.metas.get(i)?;
        let floor = match i {
            0 if inner.prev.1 > 0 && inner.prev.1 <= epoch => inner.prev.1,
            0 => epoch,
            _ => inner.metas[i - 1].0.term,
        };
        Some((floor, next.base_offset))
    }

    /// Records a new hard state (term, vote, commit) and configuration in memory; the caller
    /// makes it durable with [`EntryStore::write_state`] when term or vote changed.
    pub fn set_hard_state(&self, hard: HardState) {
        self.inner.borrow_mut().hard = hard;
    }

    pub fn set_commit(&self, commit: u64) {
        self.inner.borrow_mut().hard.commit = commit;
    }

    pub fn set_conf_state(&self, conf: ConfState) {
        self.inner.borrow_mut().conf = conf;
    }

    /// Writes the hard state and configuration durably.
    pub async fn write_state<D: ReplicaDevice>(&self, device: &D) -> Result<(), DeviceError> {
        let bytes = {
            let inner = self.inner.borrow();
            encode_state(&inner.hard, &inner.conf)?
        };
        device.write_state(&bytes).await
    }

    /// Makes `entries` (consecutive, from raft-rs's `Ready`) durable: cuts a conflicting tail
    /// first, appends batches and index records, syncs. Data entries must be batches whose
    /// base offset continues the log (the leader stamped it); anything else is refused, and
    /// nothing of this call is then reported persisted.
    pub async fn persist<D: ReplicaDevice>(
        &self,
        device: &D,
        entries: &[Entry],
    ) -> Result<(), DeviceError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        // Plan under the borrow, do the I/O without it.
        let (cut, mut end, mut pos, mut index) = {
            let inner = self.inner.borrow();
            if first.index < inner.first_index() || first.index > inner.last_index() + 1 {
                return Err(DeviceError::Corrupt(format!(
                    "entries from {} do not continue a log of {}..={}",
                    first.index,
                    inner.first_index(),
                    inner.last_index()
                )));
            }
            if first.index <= inner.last_index() {
                let at = (first.index - inner.first_index()) as usize;
                let (m, p) = &inner.metas[at];
                (
                    Some((at, m.base_offset, *p)),
                    m.base_offset,
                    *p,
                    first.index,
                )
            } else {
                (None, inner.end_offset(), inner.index_len, first.index)
            }
        };
        let mut metas = Vec::with_capacity(entries.len());
        let mut batches = Vec::new();
        let mut records = Vec::new();
        for e in entries {
            if e.index != index {
                return Err(DeviceError::Corrupt(format!(
                    "entry {} where {index} was expected",
                    e.index
                )));
            }
            let (kind, next) = match e.get_entry_type() {
                EntryType::EntryNormal if e.data.is_empty() => (EntryKind::Empty, end),
                EntryType::EntryNormal => {
                    let h = BatchHeader::parse(&e.data)
                        .filter(|h| h.magic == 2 && h.total_size() == e.data.len())
                        .ok_or_else(|| {
                            DeviceError::Corrupt(format!("entry {index} is not one record batch"))
                        })?;
                    if h.base_offset != end {
                        return Err(DeviceError::Corrupt(format!(
                            "entry {index} holds offset {} where the log ends at {end}",
                            h.base_offset
                        )));
                    }
                    batches.push(e.data.clone());
                    (EntryKind::Data, h.next_offset())
                }
                EntryType::EntryConfChange => (EntryKind::ConfChange, end),
                EntryType::EntryConfChangeV2 => (EntryKind::ConfChangeV2, end),
            };
            let meta = EntryMeta {
                index,
                term: e.term,
                kind,
                base_offset: end,
                next_offset: next,
                payload: if kind == EntryKind::Data {
                    Bytes::new()
                } else {
                    e.data.clone()
                },
            };
            meta.encode_into(&mut records);
            let len = meta.encoded_len() as u64;
            metas.push((meta, pos));
            pos += len;
            end = next;
            index += 1;
        }
        if let Some((at, offset, index_pos)) = cut {
            // The memory view goes first: should the I/O fail, nothing above the cut is
            // claimed, and the replica stops.
            {
                let mut inner = self.inner.borrow_mut();
                inner.metas.truncate(at);
                inner.index_len = index_pos;
                let from = first.index;
                inner.cache_cut(from);
            }
            device.truncate_batches(offset).await?;
            device.truncate_index(index_pos).await?;
            // The cut is made durable before anything is written over it: a crash must not
            // bring back an index record beside a batch that replaced its own.
            device.sync().await?;
        }
        device.append_batches(&batches).await?;
        device.append_index(&records).await?;
        device.sync().await?;
        let mut inner = self.inner.borrow_mut();
        for (m, p) in metas {
            if m.kind == EntryKind::Data {
                if let Some(e) = entries.get((m.index - first.index) as usize) {
                    inner.cache_insert(m.index, e.data.clone());
                }
            }
            inner.metas.push_back((m, p));
        }
        inner.index_len = pos;
        Ok(())
    }

    /// The batches raft-rs asked for while they were not cached: `(from offset, from
    /// index)`, and the contexts to hand back to `on_entries_fetched` once they are.
    pub fn take_fetch(&self) -> Option<(i64, u64, Vec<GetEntriesContext>)> {
        let mut inner = self.inner.borrow_mut();
        let from = inner.fetch_from.take()?;
        let contexts = std::mem::take(&mut inner.fetch);
        let offset = inner.meta(from)?.base_offset;
        Some((offset, from, contexts))
    }

    /// Keeps batches read from the device (from `from_index` on) for raft-rs to send.
    /// `covered` is where the read stopped looking: every batch the log holds from the first
    /// entry's offset up to it is in `batches`.
    ///
    /// The partition's cleaner may have rewritten these batches (same base offset and
    /// `lastOffsetDelta`, fewer records: sent as they are, as Kafka followers fetch cleaned
    /// segments) or dropped one whose records were all superseded. A dropped batch is known
    /// by the read passing its offsets (the next batch starts at or after its end, or the
    /// read found nothing up to `covered`): its entry is sent as an empty batch over the same
    /// offsets ([`empty_header_batch`], stamped with the entry's term), which the peer stores
    /// like any batch. Anything else (a batch starting inside an entry's offsets) is not
    /// this log's: the read stops there, and the entry is not sent.
    pub fn keep_fetched(&self, from_index: u64, batches: Vec<Bytes>, covered: i64) {
        let mut inner = self.inner.borrow_mut();
        let mut fetched = BTreeMap::new();
        let mut index = from_index;
        let mut batches = batches.into_iter().peekable();
        let mut emptied_bytes = 0u64;
        while let Some(meta) = inner.meta(index).cloned() {
            if meta.kind == EntryKind::Data {
                let next = batches.peek().and_then(|b| BatchHeader::parse(b));
                let dropped = match next {
                    Some(h) if h.base_offset == meta.base_offset => {
                        if let Some(b) = batches.next() {
                            fetched.insert(index, b);
                        }
                        false
                    }
                    Some(h) => h.base_offset >= meta.next_offset,
                    None => meta.next_offset <= covered,
                };
                if dropped {
                    let (Ok(delta), Ok(epoch)) = (
                        i32::try_from(meta.next_offset - meta.base_offset - 1),
                        i32::try_from(meta.term),
                    ) else {
                        break;
                    };
                    if emptied_bytes >= RAFT_MAX_APPEND_BYTES {
                        break;
                    }
                    let b = Bytes::from(empty_header_batch(meta.base_offset, delta, epoch));
                    emptied_bytes += b.len() as u64;
                    fetched.insert(index, b);
                } else if !fetched.contains_key(&index) {
                    break;
                }
            }
            index += 1;
            if batches.peek().is_none() && meta.next_offset >= covered {
                break;
            }
        }
        inner.fetched = fetched;
    }

    fn entry(inner: &Inner, meta: &EntryMeta) -> Entry {
        let mut e = Entry::default();
        e.index = meta.index;
        e.term = meta.term;
        match meta.kind {
            EntryKind::Data => {
                e.set_entry_type(EntryType::EntryNormal);
                if let Some(data) = inner.data(meta.index) {
                    e.data = data.clone();
                }
            }
            EntryKind::Empty => e.set_entry_type(EntryType::EntryNormal),
            EntryKind::ConfChange => {
                e.set_entry_type(EntryType::EntryConfChange);
                e.data = meta.payload.clone();
            }
            EntryKind::ConfChangeV2 => {
                e.set_entry_type(EntryType::EntryConfChangeV2);
                e.data = meta.payload.clone();
            }
        }
        e
    }
}

impl Storage for StoreHandle {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let inner = self.0.inner.borrow();
        Ok(RaftState::new(inner.hard.clone(), inner.conf.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let mut inner = self.0.inner.borrow_mut();
        if low < inner.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > inner.last_index() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max_size = max_size.into();
        let mut out = Vec::with_capacity((high - low) as usize);
        let mut size = 0u64;
        for index in low..high {
            let Some(meta) = inner.meta(index) else {
                return Err(raft::Error::Store(StorageError::Unavailable));
            };
            let missing = meta.kind == EntryKind::Data && inner.data(index).is_none();
            if missing && context.can_async() {
                // Whatever is cached before the miss goes now; the rest once it is read.
                if out.is_empty() {
                    inner.fetch_from = Some(inner.fetch_from.map_or(index, |f| f.min(index)));
                    inner.fetch.push(context);
                    return Err(raft::Error::Store(StorageError::LogTemporarilyUnavailable));
                }
                break;
            }
            let e = EntryStore::entry(&inner, meta);
            size += e.compute_size() as u64;
            if !out.is_empty() && max_size.is_some_and(|m| size > m) {
                break;
            }
            out.push(e);
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let inner = self.0.inner.borrow();
        if idx == inner.prev.0 {
            return Ok(inner.prev.1);
        }
        if idx < inner.prev.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        inner
            .meta(idx)
            .map(|m| m.term)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.0.inner.borrow().first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.0.inner.borrow().last_index())
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // The front of the log is never dropped below what a follower may need yet, so no
        // snapshot is ever asked for; rebuilding a replica from segment files comes with
        // retention under replication.
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}
