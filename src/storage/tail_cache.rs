//! The hot tail of a partition: the most recent batches, kept in memory exactly as stored, so
//! that tailing consumers are served without touching the disk. A batch leaves the cache only
//! once it is on disk, so every offset is always readable from one place or the other.
//!
//! Segment files are written with O_DIRECT, so there is no page cache behind them: this cache
//! is what Kafka gets from the page cache. All partitions of a core share one [`CacheBudget`]
//! and every cached batch carries the core-wide order in which it arrived, so the owner of the
//! partitions (the shard) can give back the core's oldest batches first
//! ([`TailCache::oldest`], [`TailCache::evict_oldest`]). A partition appending far past the
//! budget ([`CacheBudget::hard_limit`]) gives back its own oldest batches at once, so memory
//! stays bounded between two trims.

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;

/// One cached batch: offsets `[base, next)`, stored at `parent[start..end]`, where `parent`
/// holds every batch of the append it came with (so neighbours can be served as one slice).
#[derive(Debug, Clone)]
pub struct CachedBatch {
    pub base: i64,
    pub next: i64,
    pub parent: Bytes,
    pub start: usize,
    pub end: usize,
}

/// A batch in the cache: what was pushed, and when, in the core's order.
#[derive(Debug)]
struct Entry {
    batch: CachedBatch,
    seq: u64,
}

impl CachedBatch {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// Bytes the tail caches of one core may hold together.
#[derive(Debug)]
pub struct CacheBudget {
    limit: usize,
    used: Cell<usize>,
    /// Stamps pushed batches in arrival order.
    next_seq: Cell<u64>,
}

impl CacheBudget {
    pub fn new(limit: usize) -> Rc<CacheBudget> {
        Rc::new(CacheBudget {
            limit,
            used: Cell::new(0),
            next_seq: Cell::new(0),
        })
    }
    /// Bytes cached now, over every partition sharing the budget.
    pub fn used(&self) -> usize {
        self.used.get()
    }
    /// Whether the caches hold more than the budget (the owner should trim the oldest).
    pub fn over(&self) -> bool {
        self.used.get() > self.limit
    }
    /// Past this, a partition that appends evicts its own oldest batches without waiting for a
    /// trim: a quarter over the budget.
    pub fn hard_limit(&self) -> usize {
        self.limit.saturating_add(self.limit / 4)
    }
    fn take(&self, n: usize) {
        self.used.set(self.used.get() + n);
    }
    fn give_back(&self, n: usize) {
        debug_assert!(self.used.get() >= n, "a cache gave back more than it took");
        self.used.set(self.used.get() - n);
    }
}

#[derive(Debug)]
pub struct TailCache {
    batches: VecDeque<Entry>,
    bytes: usize,
    budget: Rc<CacheBudget>,
}

impl Drop for TailCache {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

impl TailCache {
    pub fn new(budget: Rc<CacheBudget>) -> Self {
        TailCache {
            batches: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    pub fn push(&mut self, batch: CachedBatch) {
        debug_assert!(
            self.batches
                .back()
                .is_none_or(|e| e.batch.next == batch.base),
            "cache must stay dense"
        );
        self.bytes += batch.len();
        self.budget.take(batch.len());
        let seq = self.budget.next_seq.get();
        self.budget.next_seq.set(seq + 1);
        self.batches.push_back(Entry { batch, seq });
    }

    fn pop_front(&mut self) -> usize {
        let Some(e) = self.batches.pop_front() else {
            return 0;
        };
        let n = e.batch.len();
        self.bytes -= n;
        self.budget.give_back(n);
        n
    }

    fn front_on_disk(&self, on_disk: i64) -> bool {
        self.batches
            .front()
            .is_some_and(|e| e.batch.next <= on_disk)
    }

    /// While the core's caches are past the hard limit, drops this partition's oldest batches,
    /// but only those below `on_disk` (offsets that a read can find in a segment file).
    pub fn evict(&mut self, on_disk: i64) {
        while self.budget.used() > self.budget.hard_limit() && self.front_on_disk(on_disk) {
            self.pop_front();
        }
    }

    /// The arrival stamp of the oldest batch that could be evicted (it is below `on_disk`).
    pub fn oldest(&self, on_disk: i64) -> Option<u64> {
        self.batches
            .front()
            .filter(|e| e.batch.next <= on_disk)
            .map(|e| e.seq)
    }

    /// Drops the oldest batches below `on_disk`, about `bytes` of them; returns how many bytes.
    pub fn evict_oldest(&mut self, on_disk: i64, bytes: usize) -> usize {
        let mut freed = 0;
        while freed < bytes && self.front_on_disk(on_disk) {
            freed += self.pop_front();
        }
        freed
    }

    /// Drops every batch at or above `offset` (a truncated tail).
    pub fn truncate_from(&mut self, offset: i64) {
        while self.batches.back().is_some_and(|e| e.batch.next > offset) {
            if let Some(e) = self.batches.pop_back() {
                let n = e.batch.len();
                self.bytes -= n;
                self.budget.give_back(n);
            }
        }
    }

    /// Drops everything below `offset` (retention).
    pub fn retain_from(&mut self, offset: i64) {
        while self.batches.front().is_some_and(|e| e.batch.next <= offset) {
            self.pop_front();
        }
    }

    /// Whole batches starting with the one holding `offset`, below `upto`, within `max_bytes`
    /// (the first batch is returned even if larger, as Kafka does so consumers progress), as
    /// few contiguous slices as possible. `None` if `offset` is older than the cache.
    pub fn read(&self, offset: i64, upto: i64, max_bytes: usize) -> Option<Vec<Bytes>> {
        let first = &self.batches.front()?.batch;
        if offset < first.base {
            return None;
        }
        let start = self.batches.partition_point(|e| e.batch.next <= offset);
        let mut out: Vec<Bytes> = Vec::new();
        let mut run: Option<(&CachedBatch, usize)> = None; // (first batch of the run, run end)
        let mut total = 0usize;
        for b in self.batches.range(start..).map(|e| &e.batch) {
            if b.base >= upto || (total > 0 && total + b.len() > max_bytes) {
                break;
            }
            total += b.len();
            run = match run {
                Some((head, end))
                    if head.parent.as_ptr() == b.parent.as_ptr() && end == b.start =>
                {
                    Some((head, b.end))
                }
                Some((head, end)) => {
                    out.push(head.parent.slice(head.start..end));
                    Some((b, b.end))
                }
                None => Some((b, b.end)),
            };
        }
        if let Some((head, end)) = run {
            out.push(head.parent.slice(head.start..end));
        }
        Some(out)
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Caches `sizes.len()` one-record batches of the given sizes, two per append.
    fn cache(sizes: &[usize]) -> TailCache {
        let mut c = TailCache::new(CacheBudget::new(1 << 20));
        let mut base = 0i64;
        for pair in sizes.chunks(2) {
            let parent = Bytes::from(vec![0u8; pair.iter().sum()]);
            let mut start = 0;
            for n in pair {
                c.push(CachedBatch {
                    base,
                    next: base + 1,
                    parent: parent.clone(),
                    start,
                    end: start + n,
                });
                start += n;
                base += 1;
            }
        }
        c
    }

    #[test]
    fn neighbours_from_one_append_come_back_as_one_slice() {
        let c = cache(&[10, 20, 30, 40]);
        let all = c.read(0, 100, 1 << 20).expect("cached");
        assert_eq!(
            all.iter().map(|b| b.len()).collect::<Vec<_>>(),
            vec![30, 70]
        );
        let from_second = c.read(1, 100, 1 << 20).expect("cached");
        assert_eq!(
            from_second.iter().map(|b| b.len()).collect::<Vec<_>>(),
            vec![20, 70]
        );
    }

    #[test]
    fn limits_are_whole_batches_and_the_first_always_goes() {
        let c = cache(&[10, 20, 30, 40]);
        assert_eq!(
            c.read(0, 100, 35)
                .expect("cached")
                .iter()
                .map(|b| b.len())
                .sum::<usize>(),
            30
        );
        assert_eq!(
            c.read(0, 100, 1)
                .expect("cached")
                .iter()
                .map(|b| b.len())
                .sum::<usize>(),
            10
        );
        assert_eq!(
            c.read(0, 2, 1 << 20)
                .expect("cached")
                .iter()
                .map(|b| b.len())
                .sum::<usize>(),
            30,
            "stops at upto"
        );
        assert!(c.read(4, 100, 10).expect("cached").is_empty());
    }

    #[test]
    fn eviction_keeps_what_is_not_on_disk() {
        let mut c = cache(&[10, 20, 30, 40]);
        c.budget = CacheBudget::new(0);
        c.budget.take(100);
        c.evict(2);
        assert!(
            c.read(1, 100, 100).is_none(),
            "offsets below 2 left the cache"
        );
        assert_eq!(
            c.read(2, 100, 100)
                .expect("kept")
                .iter()
                .map(|b| b.len())
                .sum::<usize>(),
            70
        );
        assert_eq!(c.bytes(), 70);
        assert_eq!(c.budget.used(), 70);
    }

    #[test]
    fn partitions_share_the_core_budget_and_give_it_back() {
        let budget = CacheBudget::new(100);
        let batch = |base: i64| CachedBatch {
            base,
            next: base + 1,
            parent: Bytes::from(vec![0u8; 40]),
            start: 0,
            end: 40,
        };
        let mut a = TailCache::new(budget.clone());
        let mut b = TailCache::new(budget.clone());
        a.push(batch(0));
        a.push(batch(1));
        b.push(batch(0));
        assert_eq!(budget.used(), 120);
        assert!(budget.over());
        b.evict(1);
        assert_eq!(
            b.bytes(),
            40,
            "within the hard limit an append evicts nothing"
        );
        assert_eq!(a.oldest(0), None, "nothing on disk: nothing to evict");
        assert!(a.oldest(2) < b.oldest(1), "a's first batch came first");
        assert_eq!(a.evict_oldest(2, 1), 40);
        assert_eq!((a.bytes(), budget.used()), (40, 80));
        b.push(batch(1));
        b.push(batch(2));
        assert_eq!(budget.used(), 160);
        b.evict(3);
        assert_eq!(
            budget.used(),
            120,
            "past the hard limit (125) the appender evicts its own"
        );
        drop(a);
        assert_eq!(budget.used(), 80, "a closed partition gives its bytes back");
    }
}
