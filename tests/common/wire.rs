//! Raw Kafka wire requests over a blocking socket, encoded with the kafka-protocol crate.

use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

/// A request frame (length prefix included) with correlation id `id`.
pub fn request_with_id<Req: Encodable + HeaderVersion>(
    api: ApiKey,
    version: i16,
    id: i32,
    req: &Req,
) -> Vec<u8> {
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(id)
        .with_client_id(Some(StrBytes::from_static_str("wire-test")))
        .encode(&mut body, Req::header_version(version))
        .expect("header");
    req.encode(&mut body, version).expect("body");
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// A request frame with correlation id 7 (what [`roundtrip`] expects back).
pub fn request<Req: Encodable + HeaderVersion>(api: ApiKey, version: i16, req: &Req) -> Vec<u8> {
    request_with_id(api, version, 7, req)
}

/// Reads one response: its correlation id and body.
pub fn read_response<Resp: Decodable + HeaderVersion>(
    s: &mut TcpStream,
    version: i16,
) -> (i32, Resp) {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("response length");
    let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).expect("response");
    let mut b = Bytes::from(buf);
    let h = ResponseHeader::decode(&mut b, Resp::header_version(version)).expect("response header");
    let resp = Resp::decode(&mut b, version).expect("response body");
    (h.correlation_id, resp)
}

/// Sends `frame` (made by [`request`]) and reads its response.
pub fn roundtrip<Resp: Decodable + HeaderVersion>(
    s: &mut TcpStream,
    frame: &[u8],
    version: i16,
) -> Resp {
    s.write_all(frame).expect("write");
    let (id, resp) = read_response(s, version);
    assert_eq!(id, 7);
    resp
}
