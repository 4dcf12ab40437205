//! The inter-broker frame: a 9-byte header and a body checked by CRC-32C.
//!
//! ```text
//! u32 length   bytes of the body (after this header), at most the receiver's limit
//! u32 crc      CRC-32C (Castagnoli) over the kind byte and the body
//! u8  kind     1 handshake, 2 messages, 3 handshake refused
//! body
//! ```
//! A messages body is a run of `u64 channel | u32 length | payload`, nothing else. All numbers
//! are big-endian. This layout (and the handshake's first fields) never changes between
//! protocol versions, so two versions can always tell each other they disagree.
//!
//! Decoding never panics and never hands out part of a frame that failed its checks: a frame
//! is delivered whole, after its CRC matched, or the connection is closed.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

pub const HEADER_LEN: usize = 9;
pub const MESSAGE_HEADER_LEN: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Handshake = 1,
    Messages = 2,
    Refused = 3,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Handshake),
            2 => Some(Kind::Messages),
            3 => Some(Kind::Refused),
            _ => None,
        }
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum FrameError {
    #[error("frame of {0} bytes is above the limit of {1}")]
    TooLarge(usize, usize),
    #[error("frame checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Crc { stored: u32, computed: u32 },
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("connection closed in the middle of a frame ({0} bytes of it read)")]
    ClosedMidFrame(usize),
}

fn crc_of(kind: u8, parts: &[&[u8]]) -> u32 {
    parts.iter().fold(crc32c::crc32c(&[kind]), |crc, p| {
        crc32c::crc32c_append(crc, p)
    })
}

/// One whole frame as a single buffer (handshakes, refusals, tests).
pub fn encode(kind: Kind, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.put_u32(body.len() as u32);
    out.put_u32(crc_of(kind as u8, &[body]));
    out.put_u8(kind as u8);
    out.extend_from_slice(body);
    out
}

/// Takes the first frame off `buf` if it is there whole: `Ok(None)` asks for more bytes. The
/// body is split off `buf` without a copy. A length above `max` is refused from the header
/// alone, before the body is waited for.
pub fn decode(buf: &mut BytesMut, max: usize) -> Result<Option<(Kind, Bytes)>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > max {
        return Err(FrameError::TooLarge(len, max));
    }
    let kind_byte = buf[8];
    let kind = Kind::from_u8(kind_byte).ok_or(FrameError::UnknownKind(kind_byte))?;
    if buf.len() < HEADER_LEN + len {
        return Ok(None);
    }
    let stored = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let computed = crc_of(kind_byte, &[&buf[HEADER_LEN..HEADER_LEN + len]]);
    if stored != computed {
        return Err(FrameError::Crc { stored, computed });
    }
    buf.advance(HEADER_LEN);
    Ok(Some((kind, buf.split_to(len).freeze())))
}

/// Bytes needed before [`decode`] can make progress on `buf` (at least one).
pub fn wanted(buf: &[u8]) -> usize {
    if buf.len() < HEADER_LEN {
        return HEADER_LEN - buf.len();
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    (HEADER_LEN + len).saturating_sub(buf.len()).max(1)
}

/// The messages of a messages body, in the order they were sent; each payload is a slice of
/// the frame, not a copy.
pub fn messages(mut body: Bytes) -> impl Iterator<Item = Result<(u64, Bytes), FrameError>> {
    std::iter::from_fn(move || {
        if body.is_empty() {
            return None;
        }
        if body.len() < MESSAGE_HEADER_LEN {
            body.clear();
            return Some(Err(FrameError::Truncated("message header")));
        }
        let channel = body.get_u64();
        let len = body.get_u32() as usize;
        if body.len() < len {
            body.clear();
            return Some(Err(FrameError::Truncated("message payload")));
        }
        Some(Ok((channel, body.split_to(len))))
    })
}

/// Builds one messages frame from many messages: small payloads are copied next to their
/// headers, large ones become parts of their own, so the frame is a few buffers to write in
/// order and no large payload is copied.
pub struct MessagesFrame {
    /// The first buffer, with room for the header, once a large payload followed it.
    first: Option<BytesMut>,
    parts: Vec<Bytes>,
    current: BytesMut,
    body_len: usize,
    copy_below: usize,
}

impl MessagesFrame {
    pub fn new(copy_below: usize) -> MessagesFrame {
        let mut current = BytesMut::with_capacity(4096);
        current.put_bytes(0, HEADER_LEN);
        MessagesFrame {
            first: None,
            parts: Vec::new(),
            current,
            body_len: 0,
            copy_below,
        }
    }

    /// Bytes of body so far.
    pub fn body_len(&self) -> usize {
        self.body_len
    }

    pub fn push(&mut self, channel: u64, payload: Bytes) {
        self.current.put_u64(channel);
        self.current.put_u32(payload.len() as u32);
        self.body_len += MESSAGE_HEADER_LEN + payload.len();
        if payload.len() < self.copy_below {
            self.current.extend_from_slice(&payload);
            return;
        }
        let done = std::mem::take(&mut self.current);
        match self.first {
            None => self.first = Some(done),
            Some(_) => self.parts.push(done.freeze()),
        }
        self.parts.push(payload);
    }

    /// The frame's buffers, header first, to be written in order.
    pub fn finish(mut self) -> Vec<Bytes> {
        let mut first = match self.first.take() {
            Some(first) => {
                if !self.current.is_empty() {
                    self.parts.push(std::mem::take(&mut self.current).freeze());
                }
                first
            }
            None => std::mem::take(&mut self.current),
        };
        let mut crc = crc32c::crc32c(&[Kind::Messages as u8]);
        crc = crc32c::crc32c_append(crc, &first[HEADER_LEN..]);
        for p in &self.parts {
            crc = crc32c::crc32c_append(crc, p);
        }
        first[..4].copy_from_slice(&(self.body_len as u32).to_be_bytes());
        first[4..8].copy_from_slice(&crc.to_be_bytes());
        first[8] = Kind::Messages as u8;
        let mut out = Vec::with_capacity(self.parts.len() + 1);
        out.push(first.freeze());
        out.append(&mut self.parts);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    fn joined(parts: Vec<Bytes>) -> BytesMut {
        let mut b = BytesMut::new();
        for p in parts {
            b.extend_from_slice(&p);
        }
        b
    }

    fn frame_of(msgs: &[(u64, Vec<u8>)]) -> BytesMut {
        let mut f = MessagesFrame::new(8);
        for (c, p) in msgs {
            f.push(*c, Bytes::from(p.clone()));
        }
        joined(f.finish())
    }

    #[test]
    fn messages_round_trip_small_and_large_in_order() {
        let msgs = vec![
            (1u64, b"abc".to_vec()),
            (7, vec![9u8; 100]),
            (1, Vec::new()),
            (u64::MAX, b"tiny".to_vec()),
            (3, vec![5u8; 20]),
        ];
        let mut buf = frame_of(&msgs);
        buf.extend_from_slice(&encode(Kind::Handshake, b"next"));
        let (kind, body) = decode(&mut buf, MAX).expect("valid").expect("whole");
        assert_eq!(kind, Kind::Messages);
        let got: Vec<(u64, Vec<u8>)> = messages(body)
            .map(|m| m.map(|(c, p)| (c, p.to_vec())))
            .collect::<Result<_, _>>()
            .expect("messages");
        assert_eq!(got, msgs);
        let (kind, body) = decode(&mut buf, MAX).expect("valid").expect("whole");
        assert_eq!((kind, &body[..]), (Kind::Handshake, &b"next"[..]));
        assert!(buf.is_empty());
    }

    #[test]
    fn payloads_are_slices_of_the_frame() {
        let mut buf = frame_of(&[(1, vec![1u8; 64])]);
        let (_, body) = decode(&mut buf, MAX).expect("valid").expect("whole");
        let start = body.as_ptr() as usize;
        let (_, payload) = messages(body.clone()).next().expect("one").expect("ok");
        assert_eq!(payload.as_ptr() as usize, start + MESSAGE_HEADER_LEN);
    }

    #[test]
    fn a_flipped_bit_anywhere_fails_the_crc() {
        let good = frame_of(&[(1, b"hello world, a payload".to_vec())]);
        for i in 4..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            match decode(&mut bad, MAX) {
                Err(FrameError::Crc { .. }) | Err(FrameError::UnknownKind(_)) => {}
                other => panic!("byte {i}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_truncated_frame_waits_and_is_never_delivered() {
        let good = frame_of(&[(1, vec![3u8; 50])]);
        for cut in 0..good.len() {
            let mut part = BytesMut::from(&good[..cut]);
            assert_eq!(decode(&mut part, MAX), Ok(None), "cut at {cut}");
            assert!(wanted(&part) >= 1);
            assert_eq!(part.len(), cut, "nothing consumed");
        }
    }

    #[test]
    fn an_oversized_length_is_refused_from_the_header() {
        let mut buf = BytesMut::new();
        buf.put_u32(MAX as u32 + 1);
        buf.put_u32(0);
        buf.put_u8(Kind::Messages as u8);
        assert_eq!(
            decode(&mut buf, MAX),
            Err(FrameError::TooLarge(MAX + 1, MAX))
        );
        let mut buf = BytesMut::from(&encode(Kind::Messages, &[0u8; 100])[..]);
        assert_eq!(decode(&mut buf, 99), Err(FrameError::TooLarge(100, 99)));
    }

    #[test]
    fn unknown_kinds_and_cut_messages_are_errors() {
        let mut buf = BytesMut::from(&encode(Kind::Messages, b"x")[..]);
        buf[8] = 9;
        assert_eq!(decode(&mut buf, MAX), Err(FrameError::UnknownKind(9)));
        // A body that passed its CRC but whose last message is cut (a sender's bug).
        let mut body = BytesMut::new();
        body.put_u64(1);
        body.put_u32(10);
        body.extend_from_slice(b"short");
        let mut buf = BytesMut::from(&encode(Kind::Messages, &body)[..]);
        let (_, body) = decode(&mut buf, MAX).expect("crc ok").expect("whole");
        let all: Vec<_> = messages(body).collect();
        assert_eq!(all, vec![Err(FrameError::Truncated("message payload"))]);
        let (_, body) = decode(
            &mut BytesMut::from(&encode(Kind::Messages, b"abc")[..]),
            MAX,
        )
        .expect("crc ok")
        .expect("whole");
        assert_eq!(
            messages(body).collect::<Vec<_>>(),
            vec![Err(FrameError::Truncated("message header"))]
        );
    }
}
