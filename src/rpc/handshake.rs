//! The first frame each side of an inter-broker connection sends: who it is, whom it meant to
//! reach, and which protocol it speaks.
//!
//! ```text
//! u32  magic        "STRA" (0x53545241)
//! u16  version      PROTOCOL_VERSION; the fields above never move
//! u128 cluster id   all zero until a controller assigns one
//! i32  from node    i32 to node
//! u16  from core    u16 to core
//! u16  length + the sender's advertised Kafka listener (host:port, UTF-8)
//! ```
//! The dialer sends first; the acceptor checks it and answers with its own handshake (from and
//! to swapped), or with a refusal frame carrying the reason, and closes.

use bytes::{Buf, BufMut, Bytes};

use crate::cluster::peers::NodeId;
use crate::limits::RPC_MAX_LISTENER_LEN;

pub const MAGIC: u32 = 0x5354_5241;
pub const PROTOCOL_VERSION: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub version: u16,
    pub cluster_id: u128,
    pub from_node: NodeId,
    pub to_node: NodeId,
    pub from_core: u16,
    pub to_core: u16,
    pub kafka_listener: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HandshakeError {
    #[error("not a Strata broker (magic {0:#010x})")]
    Magic(u32),
    #[error("protocol version {theirs} is not ours ({ours})")]
    Version { theirs: u16, ours: u16 },
    #[error("handshake cut short")]
    Truncated,
    #[error("the Kafka listener in the handshake is not UTF-8")]
    Listener,
}

impl Handshake {
    pub fn encode(&self) -> Vec<u8> {
        let mut cut = self.kafka_listener.len().min(RPC_MAX_LISTENER_LEN);
        while !self.kafka_listener.is_char_boundary(cut) {
            cut -= 1;
        }
        let listener = &self.kafka_listener.as_bytes()[..cut];
        let mut b = Vec::with_capacity(40 + listener.len());
        b.put_u32(MAGIC);
        b.put_u16(self.version);
        b.put_u128(self.cluster_id);
        b.put_i32(self.from_node);
        b.put_i32(self.to_node);
        b.put_u16(self.from_core);
        b.put_u16(self.to_core);
        b.put_u16(listener.len() as u16);
        b.extend_from_slice(listener);
        b
    }

    /// Reads a handshake body; a version other than ours is refused before the rest is read
    /// (a later version may lay it out differently).
    pub fn decode(mut b: Bytes) -> Result<Handshake, HandshakeError> {
        if b.len() < 6 {
            return Err(HandshakeError::Truncated);
        }
        let magic = b.get_u32();
        if magic != MAGIC {
            return Err(HandshakeError::Magic(magic));
        }
        let version = b.get_u16();
        if version != PROTOCOL_VERSION {
            return Err(HandshakeError::Version {
                theirs: version,
                ours: PROTOCOL_VERSION,
            });
        }
        if b.len() < 16 + 4 + 4 + 2 + 2 + 2 {
            return Err(HandshakeError::Truncated);
        }
        let cluster_id = b.get_u128();
        let from_node = b.get_i32();
        let to_node = b.get_i32();
        let from_core = b.get_u16();
        let to_core = b.get_u16();
        let len = b.get_u16() as usize;
        if b.len() < len {
            return Err(HandshakeError::Truncated);
        }
        let kafka_listener =
            String::from_utf8(b.split_to(len).to_vec()).map_err(|_| HandshakeError::Listener)?;
        Ok(Handshake {
            version,
            cluster_id,
            from_node,
            to_node,
            from_core,
            to_core,
            kafka_listener,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Handshake {
        Handshake {
            version: PROTOCOL_VERSION,
            cluster_id: 0,
            from_node: 2,
            to_node: 3,
            from_core: 1,
            to_core: 0,
            kafka_listener: "broker2.example.com:9092".into(),
        }
    }

    #[test]
    fn round_trip() {
        let h = sample();
        assert_eq!(Handshake::decode(Bytes::from(h.encode())), Ok(h));
        let h = Handshake {
            cluster_id: u128::MAX - 5,
            from_node: i32::MAX,
            kafka_listener: String::new(),
            ..sample()
        };
        assert_eq!(Handshake::decode(Bytes::from(h.encode())), Ok(h));
    }

    #[test]
    fn a_long_listener_is_cut_at_a_character_boundary() {
        let h = Handshake {
            kafka_listener: "é".repeat(200),
            ..sample()
        };
        let back = Handshake::decode(Bytes::from(h.encode())).expect("valid");
        assert_eq!(back.kafka_listener, "é".repeat(RPC_MAX_LISTENER_LEN / 2));
    }

    #[test]
    fn wrong_version_and_wrong_magic_are_refused() {
        let mut b = sample().encode();
        b[5] = 2;
        assert_eq!(
            Handshake::decode(Bytes::from(b)),
            Err(HandshakeError::Version {
                theirs: 2,
                ours: PROTOCOL_VERSION
            })
        );
        let mut b = sample().encode();
        b[0] = b'K';
        assert!(matches!(
            Handshake::decode(Bytes::from(b)),
            Err(HandshakeError::Magic(_))
        ));
    }

    #[test]
    fn truncated_handshakes_are_errors_at_every_length() {
        let b = sample().encode();
        for cut in 0..b.len() {
            let r = Handshake::decode(Bytes::copy_from_slice(&b[..cut]));
            assert_eq!(r, Err(HandshakeError::Truncated), "cut at {cut}");
        }
    }
}
