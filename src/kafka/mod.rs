//! The Kafka wire protocol front end: sockets, framing, and one handler per API.
//!
//! All message encoding and decoding is done by the `kafka-protocol` crate. This layer turns
//! requests into shard calls and shard results into responses; it never opens a file and
//! never sees a segment.

pub mod connection;
pub mod errors;
pub mod frame;
pub mod handlers;
pub mod response;
pub mod server;
