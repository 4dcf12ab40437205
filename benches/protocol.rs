//! Request decode / response encode cost with the `kafka-protocol` codecs, for the two hot
//! APIs: a Produce request carrying 1 MiB of records, a Fetch response returning 1 MiB.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchResponse, ProduceRequest, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strata::kafka::response::ResponseBuf;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RECORDS_BYTES: usize = 1 << 20;
const PARTITIONS: i32 = 8;

fn records() -> Bytes {
    let value = vec![7u8; 1000];
    let recs: Vec<(Option<&[u8]>, &[u8])> = (0..RECORDS_BYTES / 1024 / PARTITIONS as usize)
        .map(|_| (None, value.as_slice()))
        .collect();
    Bytes::from(strata::storage::batch::build_batch(0, 1, &recs))
}

fn produce(c: &mut Criterion) {
    let recs = records();
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("bench")))
            .with_partition_data(
                (0..PARTITIONS)
                    .map(|p| {
                        PartitionProduceData::default()
                            .with_index(p)
                            .with_records(Some(recs.clone()))
                    })
                    .collect(),
            )]);
    let mut wire = BytesMut::new();
    req.encode(&mut wire, 9).expect("encode");
    let wire = wire.freeze();
    let mut g = c.benchmark_group("produce_request_v9");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("decode", |b| {
        b.iter(|| ProduceRequest::decode(&mut wire.clone(), 9).expect("decode"))
    });
    g.finish();
}

fn fetch(c: &mut Criterion) {
    let recs = records();
    let resp = FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_static_str("bench")))
        .with_partitions(
            (0..PARTITIONS)
                .map(|p| {
                    PartitionData::default()
                        .with_partition_index(p)
                        .with_high_watermark(1)
                        .with_records(Some(recs.clone()))
                })
                .collect(),
        )]);
    let size = resp.compute_size(12).expect("size");
    let mut g = c.benchmark_group("fetch_response_v12");
    g.throughput(Throughput::Bytes(size as u64));
    g.bench_function("encode", |b| {
        b.iter(|| {
            let mut out = BytesMut::with_capacity(size);
            resp.encode(&mut out, 12).expect("encode");
            out
        })
    });
    // What the broker does: record sets are referenced, only the rest is written.
    g.bench_function("encode_sharing_records", |b| {
        b.iter(|| {
            let mut out = ResponseBuf::with_capacity(1024);
            out.share(strata::kafka::handlers::fetch::record_sets(&resp));
            resp.encode(&mut out, 12).expect("encode");
            out.into_parts()
        })
    });
    g.finish();
}

criterion_group!(benches, produce, fetch);
criterion_main!(benches);
