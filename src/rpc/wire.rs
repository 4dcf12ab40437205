//! Socket I/O of the transport: whole frames read into one growing buffer (payloads are then
//! slices of it), and a frame's buffers written with one `sendmsg` where the socket has room.

use std::io;
use std::os::fd::AsRawFd;

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::frame::{self, FrameError, Kind};
use crate::limits::RPC_READ_CHUNK_BYTES;

/// Smallest read worth making into the room left in the buffer.
const MIN_READ_BYTES: usize = 16 * 1024;

/// Most buffers handed to one `sendmsg` (Linux's IOV_MAX is 1024).
const MAX_IOVECS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}

/// Reads frames off one connection.
pub struct FrameReader {
    buf: BytesMut,
    max: usize,
}

impl FrameReader {
    pub fn new(buf: BytesMut, max: usize) -> FrameReader {
        FrameReader { buf, max }
    }

    /// Bytes read past the last frame handed out.
    pub fn into_leftover(self) -> BytesMut {
        self.buf
    }

    /// The next whole, checked frame; `None` when the peer closed between frames.
    pub async fn next(
        &mut self,
        stream: &mut TcpStream,
    ) -> Result<Option<(Kind, Bytes)>, ReadError> {
        loop {
            if let Some(f) = frame::decode(&mut self.buf, self.max)? {
                return Ok(Some(f));
            }
            let have = self.buf.len();
            // Read into the room left behind the frames already split off if there is enough
            // of it; otherwise into a new chunk (or the whole rest of a large frame).
            let wanted = frame::wanted(&self.buf);
            let spare = self.buf.capacity() - have;
            let want = if spare >= wanted.max(MIN_READ_BYTES) {
                spare
            } else {
                wanted.max(RPC_READ_CHUNK_BYTES)
            };
            self.buf.resize(have + want, 0);
            let n = stream.read(&mut self.buf[have..]).await;
            self.buf.truncate(have + *n.as_ref().unwrap_or(&0));
            match n? {
                0 if have == 0 => return Ok(None),
                0 => return Err(FrameError::ClosedMidFrame(have).into()),
                _ => {}
            }
        }
    }
}

/// Writes `parts` in order, all of them: as many as fit in one non-blocking `sendmsg`, and when
/// the socket is full, through glommio (which waits until it has room) for the next part.
pub async fn write_all(stream: &mut TcpStream, parts: &[Bytes]) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    let (mut idx, mut off) = (0usize, 0usize);
    while idx < parts.len() {
        if parts[idx].len() == off {
            idx += 1;
            off = 0;
            continue;
        }
        let batch = &parts[idx..(idx + MAX_IOVECS).min(parts.len())];
        let iov: Vec<libc::iovec> = batch
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let p = if i == 0 { &p[off..] } else { &p[..] };
                libc::iovec {
                    iov_base: p.as_ptr() as *mut libc::c_void,
                    iov_len: p.len(),
                }
            })
            .collect();
        // SAFETY: msghdr is plain data; zeroed is a valid empty header before the iovec fields
        // are set.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iov.len() as _;
        // SAFETY: every iovec points into a `Bytes` of `parts`, alive and unmoved for the
        // call; `fd` is the open socket `stream` owns; the call does not block (MSG_DONTWAIT).
        let sent = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        let mut advance = if sent >= 0 {
            sent as usize
        } else {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => 0,
                io::ErrorKind::WouldBlock => match stream.write(&parts[idx][off..]).await? {
                    0 => return Err(io::ErrorKind::WriteZero.into()),
                    n => n,
                },
                _ => return Err(e),
            }
        };
        while advance > 0 {
            let left = parts[idx].len() - off;
            if advance < left {
                off += advance;
                break;
            }
            advance -= left;
            idx += 1;
            off = 0;
        }
    }
    Ok(())
}
