//! One input partition's share of a query (a task, as in Kafka Streams): the open windows of
//! every key seen in the partition, the partition's event-time watermark and the offset the
//! state has reached. Tasks are independent, so a partition can move to another process with
//! its checkpointed state, and state plus offset are saved together in one record.
//!
//! Memory is bounded by keys × open windows: a window closes when the watermark (the newest
//! event time seen minus the allowed lateness) passes its end; it is then emitted one last
//! time and forgotten. A record older than the watermark is late: counted and dropped.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::aggregate::Accumulator;
use super::query::Extracted;
use super::window::{Window, WindowSpec};

/// What a task is and has computed: what a checkpoint stores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskState {
    /// The offset of the next record to count; records before it are already in the state.
    pub next_offset: Option<i64>,
    pub max_event_time: Option<i64>,
    pub processed: u64,
    pub late_dropped: u64,
    pub invalid: u64,
    /// key → window start → (window end, aggregates)
    pub windows: BTreeMap<String, BTreeMap<i64, (i64, Accumulator)>>,
}

/// A change to publish for a (key, window).
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub key: String,
    pub window: Window,
    /// `None`: the window no longer exists (a session merged into another).
    pub acc: Option<Accumulator>,
    /// The window is closed: this is its final value.
    pub closed: bool,
}

/// What happened to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Counted,
    /// Already in the state (replayed after a restart from an older committed offset).
    AlreadyCounted,
    Late,
    Invalid,
}

pub struct Task {
    pub state: TaskState,
    window: WindowSpec,
    lateness_ms: i64,
    dirty: BTreeSet<(String, i64)>,
    removed: Vec<(String, Window)>,
}

impl Task {
    pub fn new(window: WindowSpec, lateness_ms: i64, state: TaskState) -> Task {
        Task {
            state,
            window,
            lateness_ms,
            dirty: BTreeSet::new(),
            removed: Vec::new(),
        }
    }

    /// Event time before which windows are closed and records late (never, for the global
    /// window).
    pub fn watermark(&self) -> Option<i64> {
        match self.window {
            WindowSpec::Global => None,
            _ => self
                .state
                .max_event_time
                .map(|t| t.saturating_sub(self.lateness_ms)),
        }
    }

    /// Open (key, window) pairs held.
    pub fn open_windows(&self) -> usize {
        self.state.windows.values().map(BTreeMap::len).sum()
    }

    /// Counts the record at `offset` (`None`: the query could not read it).
    pub fn process(&mut self, offset: i64, record: Option<&Extracted>) -> Outcome {
        if self.state.next_offset.is_some_and(|next| offset < next) {
            return Outcome::AlreadyCounted;
        }
        self.state.next_offset = Some(offset + 1);
        self.state.processed += 1;
        let Some(r) = record else {
            self.state.invalid += 1;
            return Outcome::Invalid;
        };
        if self.watermark().is_some_and(|w| r.event_time < w) {
            self.state.late_dropped += 1;
            return Outcome::Late;
        }
        self.state.max_event_time = Some(
            self.state
                .max_event_time
                .map_or(r.event_time, |m| m.max(r.event_time)),
        );
        let distinct = r.distinct.as_deref();
        let windows = self.state.windows.entry(r.key.clone()).or_default();
        match self.window {
            WindowSpec::Session { gap_ms } => {
                let t = r.event_time;
                let mut acc = Accumulator::default();
                acc.add(r.value, distinct);
                let (mut start, mut end) = (t, t.saturating_add(gap_ms));
                // Sessions [s, e) overlapping [t, t + gap) merge with it.
                let overlapping: Vec<i64> = windows
                    .range(..end)
                    .filter(|(_, (e, _))| t < *e)
                    .map(|(s, _)| *s)
                    .collect();
                for s in &overlapping {
                    start = start.min(*s);
                }
                for s in overlapping {
                    if let Some((e, a)) = windows.remove(&s) {
                        end = end.max(e);
                        acc.merge(&a);
                        if s != start {
                            self.dirty.remove(&(r.key.clone(), s));
                            self.removed
                                .push((r.key.clone(), Window { start: s, end: e }));
                        }
                    }
                }
                windows.insert(start, (end, acc));
                self.dirty.insert((r.key.clone(), start));
            }
            spec => {
                for w in spec.windows_of(r.event_time) {
                    let (_, acc) = windows
                        .entry(w.start)
                        .or_insert_with(|| (w.end, Accumulator::default()));
                    acc.add(r.value, distinct);
                    self.dirty.insert((r.key.clone(), w.start));
                }
            }
        }
        Outcome::Counted
    }

    /// The changes since the last call: updated windows, windows gone, and windows the
    /// watermark closed (emitted as final, then forgotten).
    pub fn drain(&mut self) -> Vec<Update> {
        let mut out: Vec<Update> = self
            .removed
            .drain(..)
            .map(|(key, window)| Update {
                key,
                window,
                acc: None,
                closed: true,
            })
            .collect();
        let watermark = self.watermark();
        let closed = |end: i64| watermark.is_some_and(|w| end <= w);
        for (key, start) in std::mem::take(&mut self.dirty) {
            if let Some((end, acc)) = self.state.windows.get(&key).and_then(|w| w.get(&start)) {
                if !closed(*end) {
                    out.push(Update {
                        key,
                        window: Window { start, end: *end },
                        acc: Some(acc.clone()),
                        closed: false,
                    });
                }
            }
        }
        if watermark.is_some() {
            for (key, windows) in self.state.windows.iter_mut() {
                let done: Vec<i64> = windows
                    .iter()
                    .filter(|(_, (end, _))| closed(*end))
                    .map(|(s, _)| *s)
                    .collect();
                for start in done {
                    if let Some((end, acc)) = windows.remove(&start) {
                        out.push(Update {
                            key: key.clone(),
                            window: Window { start, end },
                            acc: Some(acc),
                            closed: true,
                        });
                    }
                }
            }
            self.state.windows.retain(|_, w| !w.is_empty());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str, t: i64, v: f64) -> Extracted {
        Extracted {
            key: key.into(),
            event_time: t,
            value: Some(v),
            distinct: None,
        }
    }

    #[test]
    fn tumbling_windows_close_at_the_watermark_and_late_records_are_dropped() {
        let mut t = Task::new(
            WindowSpec::Tumbling { size_ms: 10 },
            5,
            TaskState::default(),
        );
        assert_eq!(t.process(0, Some(&rec("a", 1, 1.0))), Outcome::Counted);
        assert_eq!(t.process(1, Some(&rec("a", 9, 2.0))), Outcome::Counted);
        assert_eq!(t.process(2, Some(&rec("b", 12, 5.0))), Outcome::Counted);
        let u = t.drain();
        assert_eq!(u.len(), 2, "a[0,10) and b[10,20) changed: {u:?}");
        assert!(u.iter().all(|u| !u.closed));
        // Event time 16 - lateness 5 = watermark 11 ≥ 10: a's first window closes.
        assert_eq!(t.process(3, Some(&rec("b", 16, 1.0))), Outcome::Counted);
        let u = t.drain();
        let closed: Vec<&Update> = u.iter().filter(|u| u.closed).collect();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].acc.as_ref().map(|a| a.sum), Some(3.0));
        assert_eq!(t.open_windows(), 1, "a's closed window was forgotten");
        assert_eq!(t.process(4, Some(&rec("a", 3, 1.0))), Outcome::Late);
        assert_eq!(t.state.late_dropped, 1);
        assert_eq!(
            t.process(2, Some(&rec("a", 30, 1.0))),
            Outcome::AlreadyCounted
        );
        assert_eq!(t.process(5, None), Outcome::Invalid);
    }

    #[test]
    fn sessions_merge_and_the_merged_away_window_is_retracted() {
        let mut t = Task::new(WindowSpec::Session { gap_ms: 10 }, 20, TaskState::default());
        t.process(0, Some(&rec("u", 100, 1.0)));
        t.process(1, Some(&rec("u", 140, 1.0)));
        let u = t.drain();
        assert!(u.iter().any(|u| u.closed && u.window.start == 100), "{u:?}");
        assert_eq!(
            t.open_windows(),
            1,
            "[100,110) closed: watermark 140 - 20 ≥ 110"
        );
        t.process(2, Some(&rec("u", 155, 1.0)));
        t.drain();
        t.process(3, Some(&rec("u", 148, 1.0))); // bridges [140,150) and [155,165)
        let u = t.drain();
        let gone: Vec<&Update> = u.iter().filter(|u| u.acc.is_none()).collect();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].window.start, 155);
        let live = u.iter().find(|u| u.acc.is_some()).expect("merged");
        assert_eq!((live.window.start, live.window.end), (140, 165));
        assert_eq!(live.acc.as_ref().map(|a| a.count), Some(3));
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut t = Task::new(
            WindowSpec::Hopping {
                size_ms: 10,
                advance_ms: 5,
            },
            0,
            TaskState::default(),
        );
        for i in 0..20 {
            t.process(i, Some(&rec(&format!("k{}", i % 3), i * 3, i as f64)));
        }
        let json = serde_json::to_vec(&t.state).expect("json");
        let back: TaskState = serde_json::from_slice(&json).expect("back");
        assert_eq!(back, t.state);
    }
}
