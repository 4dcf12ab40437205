//! Kafka framing: a big-endian `i32` length, then that many bytes. Lengths outside
//! `0..=MAX_REQUEST_FRAME_BYTES` end the connection before any allocation.

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt};

use crate::limits::MAX_REQUEST_FRAME_BYTES;

/// Smallest request: api_key i16, api_version i16, correlation_id i32, client_id length i16.
pub const MIN_REQUEST_BYTES: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed")]
    Closed,
    #[error("frame length {0} outside [{min}, {max}]", min = MIN_REQUEST_BYTES, max = MAX_REQUEST_FRAME_BYTES)]
    BadLength(i64),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one request frame; `Err(Closed)` on a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Bytes, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = i32::from_be_bytes(len) as i64;
    if len < MIN_REQUEST_BYTES as i64 || len > MAX_REQUEST_FRAME_BYTES as i64 {
        return Err(FrameError::BadLength(len));
    }
    let mut buf = BytesMut::zeroed(len as usize);
    r.read_exact(&mut buf).await?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<Bytes, FrameError> {
        futures_lite::future::block_on(read_frame(&mut futures_lite::io::Cursor::new(
            bytes.to_vec(),
        )))
    }

    #[test]
    fn frames_are_bounded_and_truncation_is_an_error() {
        let mut ok = 12i32.to_be_bytes().to_vec();
        ok.extend_from_slice(&[1; 12]);
        assert_eq!(read(&ok).expect("frame").len(), 12);
        assert!(matches!(
            read(&i32::MAX.to_be_bytes()),
            Err(FrameError::BadLength(_))
        ));
        assert!(matches!(
            read(&(-5i32).to_be_bytes()),
            Err(FrameError::BadLength(-5))
        ));
        assert!(matches!(read(&ok[..10]), Err(FrameError::Io(_))));
        assert!(matches!(read(&[]), Err(FrameError::Closed)));
    }
}
