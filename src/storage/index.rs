//! Sparse segment indexes: the offset index (relative offset → file position) and the time
//! index (timestamp → relative offset), one entry every `index.interval.bytes` of log.
//!
//! Entries are `rkyv` archives. While a segment is active its entries live in a `Vec`; when it
//! is sealed they are archived to `<base>.index` / `<base>.timeindex` (archive + CRC-32C
//! trailer) and lookups binary-search the archived slice in place, without deserializing.
//! An index is derived data: any file that is missing, fails its CRC or validation, or
//! disagrees with the log is rebuilt from the log by the recovery code, never trusted.

use rkyv::{rancor, util::AlignedVec, vec::ArchivedVec, Archive, Deserialize, Serialize};

/// One offset-index entry: the batch starting at `relative_offset` begins at `position`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// One time-index entry: every record before `relative_offset` has a timestamp ≤ `timestamp`
/// ... and the batch ending the interval had max timestamp `timestamp`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// A value an index is ordered by.
pub trait Keyed {
    fn key(&self) -> i64;
}
impl Keyed for OffsetEntry {
    fn key(&self) -> i64 {
        self.relative_offset as i64
    }
}
impl Keyed for ArchivedOffsetEntry {
    fn key(&self) -> i64 {
        self.relative_offset.to_native() as i64
    }
}
impl Keyed for TimeEntry {
    fn key(&self) -> i64 {
        self.timestamp
    }
}
impl Keyed for ArchivedTimeEntry {
    fn key(&self) -> i64 {
        self.timestamp.to_native()
    }
}

/// Index of the last entry whose key is ≤ `key` in a slice sorted by key.
pub fn floor_index<T: Keyed>(entries: &[T], key: i64) -> Option<usize> {
    let n = entries.partition_point(|e| e.key() <= key);
    n.checked_sub(1)
}

/// An entry type that can be archived into and read back from an index file.
pub trait IndexEntry: Keyed + Copy + Archive
where
    Self::Archived: Keyed,
{
    /// Serializes entries into file bytes: rkyv archive followed by its CRC-32C (LE).
    fn encode(entries: &[Self]) -> Result<Vec<u8>, rancor::Error>;
    /// Validates file bytes (CRC, then rkyv structure) and returns the archive's bytes.
    fn validate(bytes: &[u8]) -> Option<AlignedVec>;
    /// The archived entries of bytes that passed `validate`.
    fn view(archive: &AlignedVec) -> &[Self::Archived];
    /// A copy of an archived entry.
    fn native(archived: &Self::Archived) -> Self;
}

fn split_crc(bytes: &[u8]) -> Option<AlignedVec> {
    let body_len = bytes.len().checked_sub(4)?;
    let (body, crc) = bytes.split_at(body_len);
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return None;
    }
    let mut aligned = AlignedVec::with_capacity(body.len());
    aligned.extend_from_slice(body);
    Some(aligned)
}

fn with_crc(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc32c::crc32c(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

impl IndexEntry for OffsetEntry {
    fn encode(entries: &[Self]) -> Result<Vec<u8>, rancor::Error> {
        Ok(with_crc(
            rkyv::to_bytes::<rancor::Error>(&entries.to_vec())?.to_vec(),
        ))
    }
    fn validate(bytes: &[u8]) -> Option<AlignedVec> {
        let aligned = split_crc(bytes)?;
        rkyv::access::<ArchivedVec<ArchivedOffsetEntry>, rancor::Error>(&aligned).ok()?;
        Some(aligned)
    }
    fn view(archive: &AlignedVec) -> &[ArchivedOffsetEntry] {
        // SAFETY: `archive` only ever comes from `validate`, which checked it with bytecheck.
        unsafe { rkyv::access_unchecked::<ArchivedVec<ArchivedOffsetEntry>>(archive) }.as_slice()
    }
    fn native(a: &ArchivedOffsetEntry) -> Self {
        OffsetEntry {
            relative_offset: a.relative_offset.to_native(),
            position: a.position.to_native(),
        }
    }
}

impl IndexEntry for TimeEntry {
    fn encode(entries: &[Self]) -> Result<Vec<u8>, rancor::Error> {
        Ok(with_crc(
            rkyv::to_bytes::<rancor::Error>(&entries.to_vec())?.to_vec(),
        ))
    }
    fn validate(bytes: &[u8]) -> Option<AlignedVec> {
        let aligned = split_crc(bytes)?;
        rkyv::access::<ArchivedVec<ArchivedTimeEntry>, rancor::Error>(&aligned).ok()?;
        Some(aligned)
    }
    fn view(archive: &AlignedVec) -> &[ArchivedTimeEntry] {
        // SAFETY: `archive` only ever comes from `validate`, which checked it with bytecheck.
        unsafe { rkyv::access_unchecked::<ArchivedVec<ArchivedTimeEntry>>(archive) }.as_slice()
    }
    fn native(a: &ArchivedTimeEntry) -> Self {
        TimeEntry {
            timestamp: a.timestamp.to_native(),
            relative_offset: a.relative_offset.to_native(),
        }
    }
}

/// The index of one segment: sealed (archived bytes) or growing (a `Vec`), never both.
#[derive(Debug)]
pub enum Index<E: IndexEntry>
where
    E::Archived: Keyed,
{
    Growing(Vec<E>),
    Sealed(AlignedVec),
}

impl<E: IndexEntry> Default for Index<E>
where
    E::Archived: Keyed,
{
    fn default() -> Self {
        Index::Growing(Vec::new())
    }
}

impl<E: IndexEntry> Index<E>
where
    E::Archived: Keyed,
{
    /// Adds an entry; keys must grow strictly (asserted, since a violation means a logic bug).
    pub fn push(&mut self, entry: E) {
        match self {
            Index::Growing(v) => {
                assert!(
                    v.last().is_none_or(|l| l.key() < entry.key()),
                    "index keys must increase"
                );
                v.push(entry);
            }
            Index::Sealed(_) => unreachable!("push into a sealed index"),
        }
    }

    /// The last entry with key ≤ `key`.
    pub fn floor(&self, key: i64) -> Option<E> {
        match self {
            Index::Growing(v) => floor_index(v, key).map(|i| v[i]),
            Index::Sealed(a) => {
                let view = E::view(a);
                floor_index(view, key).map(|i| E::native(&view[i]))
            }
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Index::Growing(v) => v.len(),
            Index::Sealed(a) => E::view(a).len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn last(&self) -> Option<E> {
        match self {
            Index::Growing(v) => v.last().copied(),
            Index::Sealed(a) => E::view(a).last().map(E::native),
        }
    }

    /// All entries, copied (for checks and rebuild comparisons).
    pub fn entries(&self) -> Vec<E> {
        match self {
            Index::Growing(v) => v.clone(),
            Index::Sealed(a) => E::view(a).iter().map(E::native).collect(),
        }
    }

    /// Archives the entries: the bytes to write to the index file, and the sealed index.
    pub fn seal(&mut self) -> Result<Vec<u8>, rancor::Error> {
        let entries = self.entries();
        let bytes = E::encode(&entries)?;
        if let Some(a) = E::validate(&bytes) {
            *self = Index::Sealed(a);
        }
        Ok(bytes)
    }

    /// Loads a sealed index from file bytes; `None` if the file fails its CRC or validation.
    pub fn load(bytes: &[u8]) -> Option<Self> {
        E::validate(bytes).map(Index::Sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_floor(keys: &[u32], k: i64) -> Option<u32> {
        keys.iter().copied().filter(|x| (*x as i64) <= k).max()
    }

    proptest! {
        #[test]
        fn sealed_and_growing_lookups_match_a_naive_model(
            mut keys in proptest::collection::btree_set(0u32..1_000_000, 0..500),
            probes in proptest::collection::vec(-5i64..1_000_005, 1..200),
        ) {
            let keys: Vec<u32> = std::mem::take(&mut keys).into_iter().collect();
            let mut idx: Index<OffsetEntry> = Index::default();
            for (i, k) in keys.iter().enumerate() {
                idx.push(OffsetEntry { relative_offset: *k, position: i as u32 * 10 });
            }
            for p in &probes {
                prop_assert_eq!(idx.floor(*p).map(|e| e.relative_offset), naive_floor(&keys, *p));
            }
            let bytes = idx.seal().expect("encode");
            let loaded: Index<OffsetEntry> = Index::load(&bytes).expect("valid file");
            prop_assert!(matches!(loaded, Index::Sealed(_)));
            for p in &probes {
                let got = loaded.floor(*p);
                prop_assert_eq!(got.map(|e| e.relative_offset), naive_floor(&keys, *p));
                if let Some(e) = got {
                    let i = keys.iter().position(|k| *k == e.relative_offset).expect("present");
                    prop_assert_eq!(e.position, i as u32 * 10);
                }
            }
        }

        #[test]
        fn time_index_floor_matches_model(
            ts in proptest::collection::btree_set(-1000i64..1_000_000, 0..300),
            probe in -2000i64..1_000_100,
        ) {
            let ts: Vec<i64> = ts.into_iter().collect();
            let mut idx: Index<TimeEntry> = Index::default();
            for (i, t) in ts.iter().enumerate() {
                idx.push(TimeEntry { timestamp: *t, relative_offset: i as u32 });
            }
            let bytes = idx.seal().expect("encode");
            let loaded: Index<TimeEntry> = Index::load(&bytes).expect("valid");
            let want = ts.iter().copied().filter(|t| *t <= probe).max();
            prop_assert_eq!(loaded.floor(probe).map(|e| e.timestamp), want);
        }
    }

    #[test]
    fn corrupt_index_file_is_refused() {
        let mut idx: Index<OffsetEntry> = Index::default();
        idx.push(OffsetEntry {
            relative_offset: 1,
            position: 2,
        });
        let mut bytes = idx.seal().expect("encode");
        bytes[0] ^= 1;
        assert!(Index::<OffsetEntry>::load(&bytes).is_none());
        assert!(Index::<OffsetEntry>::load(&[]).is_none());
    }
}
