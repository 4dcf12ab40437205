//! What one core's transport has done, for tests and (later) metrics. Plain cells: a
//! transport lives on one core and only that core counts.

use std::cell::Cell;

#[derive(Default)]
pub(super) struct Counters {
    pub frames_sent: Cell<u64>,
    pub frames_received: Cell<u64>,
    pub messages_sent: Cell<u64>,
    pub messages_received: Cell<u64>,
    pub messages_dropped: Cell<u64>,
    pub connects: Cell<u64>,
    pub accepts: Cell<u64>,
    pub handshake_failures: Cell<u64>,
    pub bad_frames: Cell<u64>,
}

pub(super) fn bump(c: &Cell<u64>, by: u64) {
    c.set(c.get() + by);
}

/// A copy of a transport's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Messages frames written (each holds every message queued for that peer core since the
    /// previous write).
    pub frames_sent: u64,
    pub frames_received: u64,
    pub messages_sent: u64,
    /// Messages delivered to the handler.
    pub messages_received: u64,
    /// Messages given to `send` that will never be written: the peer's queue was full (it is
    /// down or slow), the connection broke with them in flight, or they were too large.
    pub messages_dropped: u64,
    /// Outgoing connections that completed the handshake.
    pub connects: u64,
    /// Incoming connections that completed the handshake.
    pub accepts: u64,
    /// Connections closed because the handshake failed (either direction).
    pub handshake_failures: u64,
    /// Connections closed because of a corrupt, oversized or unexpected frame.
    pub bad_frames: u64,
}

impl Counters {
    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            frames_sent: self.frames_sent.get(),
            frames_received: self.frames_received.get(),
            messages_sent: self.messages_sent.get(),
            messages_received: self.messages_received.get(),
            messages_dropped: self.messages_dropped.get(),
            connects: self.connects.get(),
            accepts: self.accepts.get(),
            handshake_failures: self.handshake_failures.get(),
            bad_frames: self.bad_frames.get(),
        }
    }
}
