//! The stream processor's memory is bounded by keys × open windows, not by records: ten million
//! records through a global running sum, with the heap measured by a counting allocator, leave
//! the peak where it was after the first million.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use strata::stream::query::Extracted;
use strata::stream::task::{Task, TaskState};
use strata::stream::window::WindowSpec;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const RECORDS: i64 = 10_000_000;

#[test]
fn ten_million_records_through_a_global_sum_do_not_grow_the_heap() {
    let mut task = Task::new(WindowSpec::Global, 0, TaskState::default());
    let mut record = Extracted {
        key: "all".into(),
        event_time: 0,
        value: None,
        distinct: None,
    };
    let mut expected = 0u64;
    let mut peak_after_first_million = 0;
    for offset in 0..RECORDS {
        let attendees = (offset % 40 + 1) as u64;
        expected += attendees;
        record.event_time = 1_700_000_000_000 + offset;
        record.value = Some(attendees as f64);
        task.process(offset, Some(&record));
        if offset % 100_000 == 0 {
            task.drain(); // what the runner does every emit interval
        }
        if offset == 1_000_000 {
            peak_after_first_million = PEAK.load(Ordering::Relaxed);
        }
    }
    let peak = PEAK.load(Ordering::Relaxed);
    let acc = &task.state.windows["all"][&i64::MIN].1;
    assert_eq!(acc.count, RECORDS as u64);
    assert_eq!(acc.sum as u64, expected, "exact running total");
    assert!(
        peak <= peak_after_first_million + 64 * 1024,
        "peak heap grew from {peak_after_first_million} to {peak} bytes over 9 million more records"
    );
    eprintln!("peak heap after 1M records: {peak_after_first_million} B, after 10M: {peak} B");
}
