//! The write staging area of the active segment: appended batches are copied into aligned DMA
//! buffers, and a flush hands whole buffers to the kernel as 4 KiB-aligned O_DIRECT writes.
//!
//! The last, partly filled page is written padded with zeros and also kept in memory, at the
//! start of the next buffer, so that the next flush rewrites that page with more data. The
//! staging area never touches a file itself: it only prepares [`Write`]s, which the segment
//! submits in order.

use glommio::io::DmaBuffer;

use super::error::{Result, StorageError};
use crate::limits::{IO_ALIGNMENT, WRITE_BUFFER_BYTES};

const ALIGN: u64 = IO_ALIGNMENT as u64;

pub fn align_down(v: u64) -> u64 {
    v & !(ALIGN - 1)
}
pub fn align_up(v: u64) -> u64 {
    align_down(v + ALIGN - 1)
}

/// One aligned write ready for the device: `buf` goes to file position `pos`.
pub struct Write {
    pub pos: u64,
    pub buf: DmaBuffer,
    /// Logical end of the data this write carries (the rest of `buf` is zero padding).
    pub data_end: u64,
}

/// Buffered bytes of the active segment that have not been handed to a write yet.
pub struct Stage {
    /// Buffers already full, in file order; each ends on a page boundary.
    full: Vec<Write>,
    /// The buffer being filled; `cur_pos` is its (aligned) file position.
    cur: DmaBuffer,
    cur_pos: u64,
    cur_len: usize,
    /// Logical end of what has been written into `cur`'s region by an earlier flush.
    written_in_cur: usize,
}

/// Smallest staging buffer: an idle partition holds no more than this.
const MIN_STAGE_BYTES: usize = 64 * 1024;

/// Capacity for the next buffer: room for `need` bytes, sized to the recent fill so that busy
/// partitions write large buffers and idle ones hold little memory.
fn capacity(need: usize, recent_fill: usize) -> usize {
    (recent_fill * 2)
        .clamp(MIN_STAGE_BYTES, WRITE_BUFFER_BYTES)
        .max(need + IO_ALIGNMENT)
}

/// Allocates from the executor's registered (locked, pre-faulted) I/O memory when it has room,
/// from the heap otherwise.
fn alloc(size: usize) -> Result<DmaBuffer> {
    let size = align_up(size as u64) as usize;
    if size > crate::limits::MAX_BATCH_BYTES as usize * 2 {
        return Err(StorageError::Io(std::io::Error::other(format!(
            "refusing a {size}-byte DMA buffer"
        ))));
    }
    Ok(glommio::allocate_dma_buffer(size))
}

impl Stage {
    /// A staging area for a segment whose logical size is `size`; `tail` holds the bytes of
    /// the last partial page (`size - align_down(size)` bytes), already on disk.
    pub fn new(size: u64, tail: &[u8]) -> Result<Stage> {
        let cur_pos = align_down(size);
        assert_eq!(
            tail.len() as u64,
            size - cur_pos,
            "tail must be the partial last page"
        );
        let mut cur = alloc(capacity(tail.len(), 0))?;
        cur.as_bytes_mut()[..tail.len()].copy_from_slice(tail);
        Ok(Stage {
            full: Vec::new(),
            cur,
            cur_pos,
            cur_len: tail.len(),
            written_in_cur: tail.len(),
        })
    }

    /// Logical size of the segment including staged bytes.
    pub fn end(&self) -> u64 {
        self.cur_pos + self.cur_len as u64
    }

    /// Bytes staged but not yet handed to a write.
    pub fn pending_bytes(&self) -> u64 {
        self.full.iter().map(|w| w.data_end - w.pos).sum::<u64>()
            + (self.cur_len - self.written_in_cur) as u64
    }

    /// Copies `bytes` to the end of the staging area.
    pub fn push(&mut self, bytes: &[u8]) -> Result<()> {
        if self.cur_len + bytes.len() > self.cur.len() {
            // Retire the current buffer up to its last whole page; the partial page moves on.
            let keep_from = align_down(self.cur_len as u64) as usize;
            let carry = self.cur_len - keep_from;
            let mut next = alloc(capacity(carry + bytes.len(), self.cur.len()))?;
            next.as_bytes_mut()[..carry]
                .copy_from_slice(&self.cur.as_bytes()[keep_from..self.cur_len]);
            let mut old = std::mem::replace(&mut self.cur, next);
            let old_pos = self.cur_pos;
            self.cur_pos += keep_from as u64;
            self.cur_len = carry;
            self.written_in_cur = self.written_in_cur.saturating_sub(keep_from).min(carry);
            if keep_from > 0 {
                old.trim_to_size(keep_from);
                self.full.push(Write {
                    pos: old_pos,
                    buf: old,
                    data_end: old_pos + keep_from as u64,
                });
            }
        }
        self.cur.as_bytes_mut()[self.cur_len..self.cur_len + bytes.len()].copy_from_slice(bytes);
        self.cur_len += bytes.len();
        Ok(())
    }

    /// Takes every write needed to put all staged bytes on disk, in order. The partial last
    /// page is written zero-padded and kept for the next flush.
    pub fn take_writes(&mut self) -> Result<Vec<Write>> {
        let mut writes = std::mem::take(&mut self.full);
        if self.cur_len > self.written_in_cur {
            let padded = align_up(self.cur_len as u64) as usize;
            let keep_from = align_down(self.cur_len as u64) as usize;
            let carry = self.cur_len - keep_from;
            let mut next = alloc(capacity(carry, self.cur_len))?;
            next.as_bytes_mut()[..carry]
                .copy_from_slice(&self.cur.as_bytes()[keep_from..self.cur_len]);
            let mut old = std::mem::replace(&mut self.cur, next);
            old.as_bytes_mut()[self.cur_len..padded].fill(0);
            old.trim_to_size(padded);
            let data_end = self.cur_pos + self.cur_len as u64;
            writes.push(Write {
                pos: self.cur_pos,
                buf: old,
                data_end,
            });
            self.cur_pos += keep_from as u64;
            self.cur_len = carry;
            self.written_in_cur = carry;
        }
        Ok(writes)
    }
}
