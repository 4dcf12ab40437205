//! The log cleaner's mechanisms (Kafka's log compaction), per partition: reading the records
//! inside stored batches ([`records`]), the bounded map from key to its latest offset
//! ([`KeyMap`]), filtering a batch down to the records that stay, and swapping cleaned
//! segment files in crash-safely ([`swap`]). The pass over a log's segments is
//! `PartitionLog::clean` (`storage::log::compact`).
//!
//! It also owns the cleaner's share of the core ([`Slice`]). It knows files and batches,
//! never the network, and decides nothing: when a partition is
//! cleaned, and with which limits (`min.cleanable.dirty.ratio`, `min.compaction.lag.ms`,
//! `delete.retention.ms`), is the partition's call (`crate::partition`).

pub mod records;
pub mod swap;

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use crate::limits::CLEANER_SLICE;

/// The cleaner's share of its core: call [`Slice::pause`] between two pieces of work (a
/// batch); once the cleaner has run for [`CLEANER_SLICE`] since it last gave the core up, it
/// yields its task queue, so the executor polls I/O and runs the tasks that wait.
pub struct Slice {
    since: Cell<Instant>,
}

impl Default for Slice {
    fn default() -> Self {
        Slice {
            since: Cell::new(Instant::now()),
        }
    }
}

impl Slice {
    pub async fn pause(&self) {
        if self.since.get().elapsed() >= CLEANER_SLICE {
            glommio::executor().yield_task_queue_now().await;
            self.since.set(Instant::now());
        } else {
            glommio::yield_if_needed().await;
        }
    }
}

/// Bytes one entry of a [`KeyMap`] costs: the 16-byte key digest, the offset and the hash
/// table's own overhead.
pub const KEY_MAP_ENTRY_BYTES: usize = 48;

/// Key → offset of its latest record, over a stretch of the log; bounded memory
/// (`log.cleaner.dedupe.buffer.size`-like). Keys are stored as 128-bit digests, as Kafka
/// stores MD5s: a collision (odds ~2^-64 per pair) would drop an older record of another key.
pub struct KeyMap {
    map: HashMap<[u8; 16], i64>,
    capacity: usize,
}

/// A key's 128-bit digest: two SipHash-1-3 runs with different prefixes.
pub fn key_digest(key: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (i as u8).hash(&mut h);
        key.hash(&mut h);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

impl KeyMap {
    /// A map that holds at most `budget_bytes / KEY_MAP_ENTRY_BYTES` keys (at least one).
    pub fn with_budget(budget_bytes: usize) -> KeyMap {
        let capacity = (budget_bytes / KEY_MAP_ENTRY_BYTES).max(1);
        KeyMap {
            map: HashMap::new(),
            capacity,
        }
    }

    /// Records that `key`'s latest record so far is at `offset`. False (and nothing recorded)
    /// when the key is new and the map is full.
    pub fn insert(&mut self, key: &[u8], offset: i64) -> bool {
        let d = key_digest(key);
        if let Some(o) = self.map.get_mut(&d) {
            *o = (*o).max(offset);
            return true;
        }
        if self.map.len() >= self.capacity {
            return false;
        }
        self.map.insert(d, offset);
        true
    }

    /// The offset of `key`'s latest record in the mapped stretch.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.map.get(&key_digest(key)).copied()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether one more new key would not fit.
    pub fn is_full(&self) -> bool {
        self.map.len() >= self.capacity
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_map_keeps_the_latest_offset_and_refuses_new_keys_when_full() {
        let mut m = KeyMap::with_budget(2 * KEY_MAP_ENTRY_BYTES);
        assert!(m.insert(b"a", 1));
        assert!(m.insert(b"a", 5));
        assert!(m.insert(b"a", 3));
        assert!(m.insert(b"b", 2));
        assert!(!m.insert(b"c", 9), "full");
        assert_eq!(
            (m.get(b"a"), m.get(b"b"), m.get(b"c")),
            (Some(5), Some(2), None)
        );
        assert_ne!(key_digest(b"a"), key_digest(b"b"));
    }
}
