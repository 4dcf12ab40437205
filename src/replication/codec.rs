//! Raft messages on the wire between brokers: raft-rs's protobuf encoding.
//!
//! Decoding slices entry data out of the received frame (`bytes` support of `protobuf`), so a
//! batch a follower stores is the buffer it arrived in; the batch bytes are never re-encoded.

use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::Message;

use super::ReplicaError;

pub fn encode(msg: &Message) -> Result<Bytes, ReplicaError> {
    msg.write_to_bytes()
        .map(Bytes::from)
        .map_err(|e| ReplicaError::Codec(e.to_string()))
}

pub fn decode(bytes: &Bytes) -> Result<Message, ReplicaError> {
    Message::parse_from_carllerche_bytes(bytes).map_err(|e| ReplicaError::Codec(e.to_string()))
}
