//! A connection's batch pool in a memfd, sent with `sendfile(2)` (`--send sendfile`): the
//! kernel hands the pool's pages to TCP by reference instead of copying each request's bytes
//! out of user memory (`_copy_from_iter` is about a third of the raw client's CPU with
//! `writev`). Measured on the 2-core VM (kernel 6.18, shmem without huge pages, 16 KiB records
//! in 1 MiB batches, alternating 5 s runs): the copy goes, but a page-cache lookup per 4 KiB
//! page (`filemap_get_entry` 15%), the splice pipe and more loopback softirq work per page
//! fragment cost more than it saved: client 0.33-0.44 CPU-s/GB against 0.21-0.24 with
//! `writev`, and the broker paid more too (0.87-0.99 against 0.66-0.75). An O_TMPFILE pool on
//! ext4 (page cache) instead of the memfd measured the same (client 0.41-0.43 against 0.25).
//! So `writev` is the default; this stays for hosts with huge shmem pages, where the per-page
//! costs shrink. (For scale: a bare loopback TCP sender, `sendall` of 1 MiB buffers and no
//! protocol at all, costs 0.23-0.27 CPU-s/GB on that VM, its receiver 0.10-0.15: on loopback
//! the sender also pays for the receive path's softirq work.)
//!
//! The pages are referenced while a request is in flight, so a batch may be rewritten (the
//! idempotent mode's header patch) only once the request that last sent it was answered: the
//! pool holds more batches than the window (see `raw::produce`).

use std::fs::File;
use std::io::{self, IoSlice};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;

pub struct FilePool {
    file: File,
    /// Offset and length of each batch (the suffix follows it in the file).
    slots: Vec<(u64, usize)>,
    suffix_len: usize,
}

impl FilePool {
    /// Writes every batch, each followed by `suffix` (the request's bytes after its records,
    /// the same for every partition), into a new memfd.
    pub fn new(batches: &[Vec<u8>], suffix: &[u8]) -> io::Result<FilePool> {
        // SAFETY: a valid NUL-terminated name and flags; the returned fd is checked below.
        let fd = unsafe { libc::memfd_create(c"strata-bench-pool".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        let file = unsafe { File::from_raw_fd(fd) };
        let mut slots = Vec::with_capacity(batches.len());
        let mut off = 0u64;
        for b in batches {
            file.write_all_at(b, off)?;
            file.write_all_at(suffix, off + b.len() as u64)?;
            slots.push((off, b.len()));
            off += (b.len() + suffix.len()) as u64;
        }
        Ok(FilePool {
            file,
            slots,
            suffix_len: suffix.len(),
        })
    }

    /// Rewrites `bytes` at `at` within batch `i` (see the module doc for when that is safe).
    pub fn patch(&self, i: usize, at: usize, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, self.slots[i].0 + at as u64)
    }

    /// Sends `head`, then batch `i` and the suffix from the file.
    pub fn send(&self, sock: &mut TcpStream, head: &[u8], i: usize) -> io::Result<()> {
        // MSG_MORE: the small head waits for the batch instead of leaving as its own segment.
        let mut sent = 0;
        while sent < head.len() {
            // SAFETY: a valid socket fd and a pointer/length within `head`.
            let n = unsafe {
                libc::send(
                    sock.as_raw_fd(),
                    head[sent..].as_ptr().cast(),
                    head.len() - sent,
                    libc::MSG_MORE | libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            sent += n as usize;
        }
        let (start, len) = self.slots[i];
        let mut off = start as libc::off_t;
        let end = start + (len + self.suffix_len) as u64;
        while (off as u64) < end {
            // SAFETY: valid socket and file fds; `off` is ours and the kernel advances it.
            let n = unsafe {
                libc::sendfile(
                    sock.as_raw_fd(),
                    self.file.as_raw_fd(),
                    &mut off,
                    (end - off as u64) as usize,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }
}

/// How a produce request's batch reaches the socket.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SendMode {
    /// writev(2) from user memory: the kernel copies each request.
    #[default]
    Writev,
    /// sendfile(2) from a memfd: the kernel references the pool's pages (no copy).
    Sendfile,
}

/// `writev` of the whole request, for comparison and for partitions whose suffixes differ.
pub fn send_writev(
    sock: &mut TcpStream,
    head: &[u8],
    batch: &[u8],
    suffix: &[u8],
) -> io::Result<()> {
    super::wire::write_all_vectored(
        sock,
        &mut [
            IoSlice::new(head),
            IoSlice::new(batch),
            IoSlice::new(suffix),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn sends_head_batch_and_suffix_and_patches_in_place() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut tx = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (mut rx, _) = l.accept().expect("accept");
        let batches = vec![vec![1u8; 5000], vec![2u8; 7000]];
        let pool = FilePool::new(&batches, b"SUF").expect("memfd");
        pool.send(&mut tx, b"head", 1).expect("send");
        pool.patch(0, 10, b"xy").expect("patch");
        pool.send(&mut tx, b"h2", 0).expect("send");
        drop(tx);
        let mut got = Vec::new();
        rx.read_to_end(&mut got).expect("read");
        let mut want = b"head".to_vec();
        want.extend_from_slice(&batches[1]);
        want.extend_from_slice(b"SUF");
        want.extend_from_slice(b"h2");
        let mut b0 = batches[0].clone();
        b0[10..12].copy_from_slice(b"xy");
        want.extend_from_slice(&b0);
        want.extend_from_slice(b"SUF");
        assert_eq!(got, want);
    }
}
