//! Wall-clock time for the storage engine, injectable so that retention and time-based rolls
//! can be tested without waiting.

use std::cell::Cell;
use std::rc::Rc;

/// Milliseconds since the Unix epoch.
pub trait Clock {
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock the test moves by hand.
#[derive(Debug, Default, Clone)]
pub struct ManualClock(Rc<Cell<i64>>);

impl ManualClock {
    pub fn new(start_ms: i64) -> Self {
        ManualClock(Rc::new(Cell::new(start_ms)))
    }
    pub fn set(&self, ms: i64) {
        self.0.set(ms)
    }
    pub fn advance(&self, ms: i64) {
        self.0.set(self.0.get() + ms)
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.get()
    }
}
