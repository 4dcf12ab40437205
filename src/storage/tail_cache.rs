//! The hot tail of a partition: the most recent batches, kept in memory exactly as stored, so
//! that tailing consumers are served without touching the disk. A batch leaves the cache only
//! once it is on disk, so every offset is always readable from one place or the other.
//!
//! Segment files are written with O_DIRECT, so there is no page cache behind them: this cache
//! is what Kafka gets from the page cache. All partitions of a core share one [`CacheBudget`];
//! a partition that appends past it gives back its own oldest batches that are on disk.

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
}

impl CacheBudget {
    pub fn new(limit: usize) -> Rc<CacheBudget> {
        Rc::new(CacheBudget {
            limit,
            used: Cell::new(0),
        })
    }
    /// Bytes cached now, over every partition sharing the budget.
    pub fn used(&self) -> usize {
        self.used.get()
    }
    fn over(&self) -> bool {
        self.used.get() > self.limit
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
    batches: VecDeque<CachedBatch>,
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
            self.batches.back().is_none_or(|b| b.next == batch.base),
            "cache must stay dense"
        );
        self.bytes += batch.len();
        self.budget.take(batch.len());
        self.batches.push_back(batch);
    }

    fn pop_front(&mut self) {
        if let Some(b) = self.batches.pop_front() {
            self.bytes -= b.len();
            self.budget.give_back(b.len());
        }
    }

    /// While the core's budget is exceeded, drops this partition's oldest batches, but only
    /// those below `on_disk` (offsets that a read can find in a segment file).
    pub fn evict(&mut self, on_disk: i64) {
        while self.budget.over() && self.batches.front().is_some_and(|b| b.next <= on_disk) {
            self.pop_front();
        }
    }

    /// Drops everything below `offset` (retention).
    pub fn retain_from(&mut self, offset: i64) {
        while self.batches.front().is_some_and(|b| b.next <= offset) {
            self.pop_front();
        }
    }

    /// Whole batches starting with the one holding `offset`, below `upto`, within `max_bytes`
    /// (the first batch is returned even if larger, as Kafka does so consumers progress), as
    /// few contiguous slices as possible. `None` if `offset` is older than the cache.
    pub fn read(&self, offset: i64, upto: i64, max_bytes: usize) -> Option<Vec<Bytes>> {
        let first = self.batches.front()?;
        if offset < first.base {
            return None;
        }
        let start = self.batches.partition_point(|b| b.next <= offset);
        let mut out: Vec<Bytes> = Vec::new();
        let mut run: Option<(&CachedBatch, usize)> = None; // (first batch of the run, run end)
        let mut total = 0usize;
        for b in self.batches.range(start..) {
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
        b.evict(1);
        assert_eq!(
            (a.bytes(), b.bytes()),
            (80, 0),
            "the appender evicts its own"
        );
        b.push(batch(1));
        a.evict(0);
        assert_eq!(budget.used(), 120, "nothing on disk: nothing evicted");
        a.evict(2);
        assert_eq!((a.bytes(), budget.used()), (40, 80));
        drop(a);
        assert_eq!(budget.used(), 40, "a closed partition gives its bytes back");
    }
}
