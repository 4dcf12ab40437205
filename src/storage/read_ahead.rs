//! Read-ahead for consumers reading a partition's segment files in order (catching up, or
//! reading history): while one fetch's answer travels to the client, the next stretch of the
//! file is already being read, so the disk and the network work at the same time. Segment
//! files bypass the page cache, so nothing else would read ahead.
//!
//! One window per partition: the bytes at `[pos, pos + len)` of one segment file, read in the
//! background. Only bytes below the segment's written end are ever read, and those never
//! change, so a window stays true for as long as its segment exists.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use glommio::io::DmaFile;

use super::segment::Segment;
use crate::notify::Notify;

/// The most a partition reads ahead of a consumer.
pub const MAX_READ_AHEAD_BYTES: usize = 16 << 20;

#[derive(Default)]
struct Slot {
    /// Bytes read ahead: segment base offset, file position, data.
    window: Option<(i64, u64, Bytes)>,
    /// The read in flight: segment base offset, file position, length.
    reading: Option<(i64, u64, usize)>,
}

#[derive(Default)]
pub struct ReadAhead {
    slot: Rc<RefCell<Slot>>,
    /// Fired when a read ends.
    done: Rc<Notify>,
}

impl ReadAhead {
    /// The window's bytes from `pos` on, when the window is of `segment` and holds `pos`.
    pub fn get(&self, segment: i64, pos: u64) -> Option<Bytes> {
        let slot = self.slot.borrow();
        let (seg, at, data) = slot.window.as_ref()?;
        let end = at + data.len() as u64;
        (*seg == segment && *at <= pos && pos < end).then(|| data.slice((pos - at) as usize..))
    }

    /// Waits for the read in flight if it covers `pos` of `segment`; false if none does.
    pub async fn wait_for(&self, segment: i64, pos: u64) -> bool {
        let done = self.done.notified();
        match self.slot.borrow().reading {
            Some((seg, at, len)) if seg == segment && at <= pos && pos < at + len as u64 => {}
            _ => return false,
        }
        done.await;
        true
    }

    /// Starts reading `len` bytes at `pos` of `segment` in the background, unless the window
    /// or the read in flight already holds them.
    pub fn start(&self, segment: i64, file: Rc<DmaFile>, pos: u64, len: usize) {
        let len = len.min(MAX_READ_AHEAD_BYTES);
        if len == 0 {
            return;
        }
        {
            let mut slot = self.slot.borrow_mut();
            let covers = |(seg, at, n): (i64, u64, usize)| {
                seg == segment && at <= pos && pos + len as u64 <= at + n as u64
            };
            let window = slot
                .window
                .as_ref()
                .map(|(seg, at, data)| (*seg, *at, data.len()));
            if window.is_some_and(covers) || slot.reading.is_some_and(covers) {
                return;
            }
            if slot.reading.is_some() {
                return; // one read ahead at a time
            }
            slot.reading = Some((segment, pos, len));
        }
        let (slot, done) = (self.slot.clone(), self.done.clone());
        glommio::spawn_local(async move {
            let read = Segment::read(file, pos, len).await;
            {
                let mut s = slot.borrow_mut();
                s.reading = None;
                match read {
                    Ok(data) if !data.is_empty() => s.window = Some((segment, pos, data)),
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
