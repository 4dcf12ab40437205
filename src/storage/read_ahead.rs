//! Read-ahead for consumers reading a partition's segment files in order (catching up, or
//! reading history): while one fetch's answer travels to the client, the next stretch of the
//! file is already being read, so the disk and the network work at the same time. Segment
//! files bypass the page cache, so nothing else would read ahead.
//!
//! A partition keeps its two most recent windows, each the bytes at `[pos, pos + len)` of one
//! segment file: the stretch read ahead, and the one a fetch last read itself (a fetch whose
//! answer outgrew the request's limit asks for the same bytes again). Only bytes below a
//! segment's written end are ever read, and those never change while the file is the
//! segment's, so a window stays true for as long as its file does.
//!
//! A window belongs to one open file, not to a base offset: the cleaner swaps a new file in
//! under the same base (other bytes at the same positions), and a truncated segment is
//! reopened as a new file. A read that began on the old file may end after the swap; what it
//! read is kept under the old file and never served for the new one, so no timing of reads
//! against swaps can hand a reader one file's bytes as another's.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use bytes::Bytes;
use glommio::io::DmaFile;

use super::segment::Segment;
use crate::notify::Notify;

/// The most a partition reads ahead of a consumer, and the largest window it keeps.
pub const MAX_READ_AHEAD_BYTES: usize = 16 << 20;

/// Bytes of one segment file: its base offset, the file they were read from, the file
/// position, the data.
#[derive(Clone)]
struct Window {
    segment: i64,
    /// Which file: compared by address. Weak, so the window does not keep a replaced file
    /// open, but the allocation stays while the window does, so its address is never reused
    /// for another file meanwhile.
    file: Weak<DmaFile>,
    pos: u64,
    data: Bytes,
}

impl Window {
    fn holds(&self, segment: i64, file: &Rc<DmaFile>, pos: u64) -> bool {
        self.segment == segment
            && std::ptr::eq(self.file.as_ptr(), Rc::as_ptr(file))
            && self.pos <= pos
            && pos < self.pos + self.data.len() as u64
    }
}

/// A read in flight: segment base offset, file, position, length.
struct Reading {
    segment: i64,
    file: Weak<DmaFile>,
    pos: u64,
    len: usize,
}

#[derive(Default)]
struct Slot {
    /// Newest last.
    windows: Vec<Window>,
    /// The read in flight.
    reading: Option<Reading>,
    /// Bumped by [`ReadAhead::forget`]: a read that started before it is not kept.
    generation: u64,
}

impl Slot {
    fn keep(&mut self, w: Window) {
        if w.data.is_empty() || w.data.len() > MAX_READ_AHEAD_BYTES {
            return;
        }
        if self.windows.len() == 2 {
            self.windows.remove(0);
        }
        self.windows.push(w);
    }
}

#[derive(Default)]
pub struct ReadAhead {
    slot: Rc<RefCell<Slot>>,
    /// Fired when a read ends.
    done: Rc<Notify>,
}

impl ReadAhead {
    /// The bytes from `pos` of `segment`'s `file` on, to the end of the window holding them
    /// (the window with the most of them). Windows of another file never serve.
    pub fn get(&self, segment: i64, file: &Rc<DmaFile>, pos: u64) -> Option<Bytes> {
        self.slot
            .borrow()
            .windows
            .iter()
            .filter(|w| w.holds(segment, file, pos))
            .map(|w| w.data.slice((pos - w.pos) as usize..))
            .max_by_key(Bytes::len)
    }

    /// Keeps bytes a fetch read itself: `data` is at `pos` of `segment`'s `file`.
    pub fn keep(&self, segment: i64, file: &Rc<DmaFile>, pos: u64, data: Bytes) {
        self.slot.borrow_mut().keep(Window {
            segment,
            file: Rc::downgrade(file),
            pos,
            data,
        });
    }

    /// Waits for the read in flight if it covers `pos` of `segment`'s `file`; false if none
    /// does.
    pub async fn wait_for(&self, segment: i64, file: &Rc<DmaFile>, pos: u64) -> bool {
        let done = self.done.notified();
        match &self.slot.borrow().reading {
            Some(r)
                if r.segment == segment
                    && std::ptr::eq(r.file.as_ptr(), Rc::as_ptr(file))
                    && r.pos <= pos
                    && pos < r.pos + r.len as u64 => {}
            _ => return false,
        }
        done.await;
        true
    }

    /// Drops every window of `segment` (its file was replaced or cut, so they would never
    /// serve again: memory back early); a read ahead in flight is not kept when it ends.
    pub fn forget(&self, segment: i64) {
        let mut slot = self.slot.borrow_mut();
        slot.windows.retain(|w| w.segment != segment);
        slot.generation += 1;
    }

    /// Starts reading `len` bytes at `pos` of `segment`'s `file` in the background, unless a
    /// window or the read in flight already holds them (one read ahead at a time).
    pub fn start(&self, segment: i64, file: Rc<DmaFile>, pos: u64, len: usize) {
        let len = len.min(MAX_READ_AHEAD_BYTES);
        if len == 0 {
            return;
        }
        {
            let mut slot = self.slot.borrow_mut();
            let end = pos + len as u64;
            let held = slot
                .windows
                .iter()
                .any(|w| w.holds(segment, &file, pos) && end <= w.pos + w.data.len() as u64);
            if held || slot.reading.is_some() {
                return;
            }
            slot.reading = Some(Reading {
                segment,
                file: Rc::downgrade(&file),
                pos,
                len,
            });
        }
        let generation = self.slot.borrow().generation;
        let (slot, done) = (self.slot.clone(), self.done.clone());
        glommio::spawn_local(async move {
            let read = Segment::read(file.clone(), pos, len).await;
            {
                let mut s = slot.borrow_mut();
                s.reading = None;
                match read {
                    Ok(data) if s.generation == generation => s.keep(Window {
                        segment,
                        file: Rc::downgrade(&file),
                        pos,
                        data,
                    }),
                    Ok(_) => {}
                    // The fetch that needs these bytes reads them itself and reports the error.
                    Err(e) => tracing::debug!(error = %e, "read-ahead failed"),
                }
            }
            done.notify();
        })
        .detach();
    }
}
