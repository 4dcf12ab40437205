//! The raw client's side of the Kafka wire: blocking TCP connections (TCP_NODELAY), request
//! frames made by the `kafka-protocol` crate (`RequestHeader` + the message types), responses
//! decoded by it, version negotiation through ApiVersions. Nothing here hand-encodes a Kafka
//! message: a produce request is split once, per partition and batch length, into the bytes
//! `kafka-protocol` puts before and after the record batch, so that each send is
//! `writev(length + header + prefix, batch, suffix)` with no copy of the batch in user space.

use std::io::{BufReader, IoSlice, Read, Write};
use std::net::TcpStream;

use bytes::Bytes;
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

/// Largest response frame accepted (a fetch answer is bounded by the request's max_bytes).
pub const MAX_FRAME: usize = 1 << 30;

const CLIENT_ID: &str = "strata-bench-raw";

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode {api:?} v{version}: {reason}")]
    Encode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("malformed {api:?} v{version} response from the broker: {reason}")]
    Decode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("{api:?} response has correlation id {got}, expected {want}")]
    Correlation { api: ApiKey, got: i32, want: i32 },
    #[error("response frame of {0} bytes is impossible")]
    FrameSize(i64),
    #[error(
        "broker speaks {api:?} v{broker_min}..v{broker_max}, this client v{ours_min}..v{ours_max}"
    )]
    Version {
        api: ApiKey,
        broker_min: i16,
        broker_max: i16,
        ours_min: i16,
        ours_max: i16,
    },
    #[error("broker does not offer {0:?}")]
    Missing(ApiKey),
    #[error("{0}")]
    Broker(String),
}

pub type Result<T> = std::result::Result<T, WireError>;

pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> WireError {
    let context = context.into();
    move |source| WireError::Io { context, source }
}

/// A Kafka error code as text ("NONE" for 0).
pub fn error_name(code: i16) -> String {
    match kafka_protocol::error::ResponseError::try_from_code(code) {
        None => "NONE".into(),
        Some(e) => format!("{e} ({code})"),
    }
}

/// Appends the request header for `Req` at `version` to `out`.
pub fn encode_header<Req: HeaderVersion>(
    out: &mut Vec<u8>,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<()> {
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)))
        .encode(out, Req::header_version(version))
        .map_err(|e| WireError::Encode {
            api,
            version,
            reason: e.to_string(),
        })
}

/// A whole request frame, length prefix included, into `out` (cleared first).
pub fn encode_request<Req: Encodable + HeaderVersion>(
    out: &mut Vec<u8>,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    req: &Req,
) -> Result<()> {
    out.clear();
    out.extend_from_slice(&[0; 4]);
    encode_header::<Req>(out, api, version, correlation_id)?;
    req.encode(out, version).map_err(|e| WireError::Encode {
        api,
        version,
        reason: e.to_string(),
    })?;
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Reads one response frame's body into `buf[..n]` and returns `n`. `buf` only grows (its
/// bytes are reused, not zeroed again).
pub fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> Result<usize> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).map_err(io("reading a response"))?;
    let n = i32::from_be_bytes(len) as i64;
    if n < 4 || n as usize > MAX_FRAME {
        return Err(WireError::FrameSize(n));
    }
    let n = n as usize;
    if buf.len() < n {
        buf.resize(n, 0);
    }
    r.read_exact(&mut buf[..n])
        .map_err(io("reading a response"))?;
    Ok(n)
}

/// Decodes a response frame's body (header, then `Resp`) from anything `kafka-protocol` reads:
/// `&[u8]` for small answers, `Bytes` for fetch answers whose records are then sliced, not
/// copied.
pub fn decode_response<
    Resp: Decodable + HeaderVersion,
    B: kafka_protocol::protocol::buf::ByteBuf,
>(
    mut frame: B,
    api: ApiKey,
    version: i16,
) -> Result<(i32, Resp)> {
    let bad = |e: anyhow::Error| WireError::Decode {
        api,
        version,
        reason: e.to_string(),
    };
    let h = ResponseHeader::decode(&mut frame, Resp::header_version(version)).map_err(bad)?;
    let resp = Resp::decode(&mut frame, version).map_err(bad)?;
    Ok((h.correlation_id, resp))
}

/// Writes every byte of `bufs` (one `writev` when the socket takes it all).
pub fn write_all_vectored(s: &mut impl Write, mut bufs: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    while !bufs.is_empty() {
        match s.write_vectored(bufs) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub fn connect(addr: &str) -> Result<TcpStream> {
    let s = TcpStream::connect(addr).map_err(io(format!("connecting to {addr}")))?;
    s.set_nodelay(true).map_err(io("TCP_NODELAY"))?;
    Ok(s)
}

/// A connection for one-at-a-time control requests (metadata, topic creation, offsets).
pub struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    next_id: i32,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl Conn {
    /// A connection whose reads and writes give up after `timeout` (tools that must not
    /// hang on a broker that does not answer).
    pub fn connect_timeout(addr: &str, timeout: std::time::Duration) -> Result<Conn> {
        let conn = Conn::connect(addr)?;
        conn.stream
            .set_read_timeout(Some(timeout))
            .map_err(io("socket timeout"))?;
        conn.stream
            .set_write_timeout(Some(timeout))
            .map_err(io("socket timeout"))?;
        Ok(conn)
    }

    pub fn connect(addr: &str) -> Result<Conn> {
        let stream = connect(addr)?;
        let reader = BufReader::new(stream.try_clone().map_err(io("socket clone"))?);
        Ok(Conn {
            stream,
            reader,
            next_id: 1,
            out: Vec::new(),
            buf: Vec::new(),
        })
    }

    pub fn call<Req, Resp>(&mut self, api: ApiKey, version: i16, req: &Req) -> Result<Resp>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        encode_request(&mut self.out, api, version, id, req)?;
        self.stream
            .write_all(&self.out)
            .map_err(io(format!("sending {api:?}")))?;
        let n = read_frame(&mut self.reader, &mut self.buf)?;
        let (got, resp) = decode_response::<Resp, _>(&self.buf[..n], api, version)?;
        if got != id {
            return Err(WireError::Correlation { api, got, want: id });
        }
        Ok(resp)
    }

    /// The versions to use with this broker: the highest each side speaks.
    pub fn negotiate(&mut self) -> Result<Versions> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut resp: ApiVersionsResponse = self.call(ApiKey::ApiVersions, 3, &req)?;
        if resp.error_code == 35 {
            // UNSUPPORTED_VERSION: an older broker; ask again the way every broker understands.
            resp = self.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())?;
        }
        if resp.error_code != 0 {
            return Err(WireError::Broker(format!(
                "ApiVersions: {}",
                error_name(resp.error_code)
            )));
        }
        let pick = |api: ApiKey, lo: i16, hi: i16| -> Result<i16> {
            let b = resp
                .api_keys
                .iter()
                .find(|k| k.api_key == api as i16)
                .ok_or(WireError::Missing(api))?;
            let v = hi.min(b.max_version);
            if v < lo.max(b.min_version) {
                return Err(WireError::Version {
                    api,
                    broker_min: b.min_version,
                    broker_max: b.max_version,
                    ours_min: lo,
                    ours_max: hi,
                });
            }
            Ok(v)
        };
        // Produce >= 3 and Fetch >= 4 carry RecordBatch v2; Fetch <= 12 names topics (13 uses ids).
        Ok(Versions {
            produce: pick(ApiKey::Produce, 3, 9)?,
            fetch: pick(ApiKey::Fetch, 4, 12)?,
            metadata: pick(ApiKey::Metadata, 1, 12)?,
            create_topics: pick(ApiKey::CreateTopics, 2, 7)?,
            list_offsets: pick(ApiKey::ListOffsets, 1, 7)?,
            init_producer_id: pick(ApiKey::InitProducerId, 0, 4).ok(),
        })
    }
}

/// The API versions a run uses.
#[derive(Clone, Copy, Debug)]
pub struct Versions {
    pub produce: i16,
    pub fetch: i16,
    pub metadata: i16,
    pub create_topics: i16,
    pub list_offsets: i16,
    pub init_producer_id: Option<i16>,
}

/// A produce request for one batch of one partition, cut around the batch: the frame is
/// `length | header | prefix | batch | suffix`, where prefix and suffix are exactly what
/// `kafka-protocol` encodes before and after a batch of `batch_len` bytes.
#[derive(Clone, Debug)]
pub struct ProduceParts {
    pub prefix: Vec<u8>,
    pub suffix: Vec<u8>,
    pub batch_len: usize,
}

pub fn produce_request(
    topic: &str,
    partition: i32,
    acks: i16,
    timeout_ms: i32,
    batch: Bytes,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])])
}

impl ProduceParts {
    /// Encodes the request twice, around a batch of all 0x00 and one of all 0xFF bytes: where
    /// the two encodings differ is where the batch goes.
    pub fn new(
        version: i16,
        topic: &str,
        partition: i32,
        acks: i16,
        timeout_ms: i32,
        batch_len: usize,
    ) -> Result<ProduceParts> {
        let enc = |fill: u8| -> Result<Vec<u8>> {
            let req = produce_request(
                topic,
                partition,
                acks,
                timeout_ms,
                Bytes::from(vec![fill; batch_len]),
            );
            let mut out = Vec::new();
            req.encode(&mut out, version)
                .map_err(|e| WireError::Encode {
                    api: ApiKey::Produce,
                    version,
                    reason: e.to_string(),
                })?;
            Ok(out)
        };
        let (a, b) = (enc(0)?, enc(0xFF)?);
        let start = a.iter().zip(&b).position(|(x, y)| x != y);
        let end = a.iter().zip(&b).rposition(|(x, y)| x != y).map(|e| e + 1);
        match (start, end) {
            (Some(s), Some(e)) if a.len() == b.len() && e - s == batch_len => Ok(ProduceParts {
                prefix: a[..s].to_vec(),
                suffix: a[e..].to_vec(),
                batch_len,
            }),
            _ => Err(WireError::Encode {
                api: ApiKey::Produce,
                version,
                reason: "cannot locate the records in the encoded request".into(),
            }),
        }
    }

    /// The bytes before the batch: length prefix, header with `correlation_id`, prefix.
    pub fn head(&self, out: &mut Vec<u8>, version: i16, correlation_id: i32) -> Result<()> {
        out.clear();
        out.extend_from_slice(&[0; 4]);
        encode_header::<ProduceRequest>(out, ApiKey::Produce, version, correlation_id)?;
        out.extend_from_slice(&self.prefix);
        let len = (out.len() - 4 + self.batch_len + self.suffix.len()) as i32;
        out[..4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_request_is_byte_identical_to_kafka_protocols_encoding() {
        let batch = super::super::batches::pool(1, 1, 3, 50).remove(0);
        for version in [3, 8, 9] {
            let parts =
                ProduceParts::new(version, "topic-x", 5, -1, 30_000, batch.len()).expect("parts");
            let mut head = Vec::new();
            parts.head(&mut head, version, 77).expect("head");
            let mut cut = head.clone();
            cut.extend_from_slice(&batch);
            cut.extend_from_slice(&parts.suffix);
            let mut whole = Vec::new();
            let req = produce_request("topic-x", 5, -1, 30_000, Bytes::from(batch.clone()));
            encode_request(&mut whole, ApiKey::Produce, version, 77, &req).expect("encode");
            assert_eq!(cut, whole, "v{version}");
            // And it decodes back to the same batch.
            let mut body = Bytes::from(whole[4..].to_vec());
            let h = RequestHeader::decode(&mut body, ProduceRequest::header_version(version))
                .expect("header");
            assert_eq!(h.correlation_id, 77);
            let r = ProduceRequest::decode(&mut body, version).expect("body");
            assert_eq!(
                r.topic_data[0].partition_data[0].records.as_deref(),
                Some(&batch[..])
            );
        }
    }
}
