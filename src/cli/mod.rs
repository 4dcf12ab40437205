//! Command-line tools that talk to a broker over the Kafka protocol (through librdkafka), so
//! they work against Strata or any other Kafka-compatible broker.

pub mod bench;
pub mod bench_disk;
pub mod cluster;
pub mod consume;
pub mod demo;
pub mod group;
pub mod produce;
pub mod stream;
pub mod topic;
pub mod tune;

use std::time::Duration;

use rdkafka::config::ClientConfig;

/// How long an admin or metadata call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub fn client_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c
}

/// The partition ids of `topic`, or an error naming why there are none.
pub fn topic_partitions(
    c: &rdkafka::consumer::BaseConsumer,
    topic: &str,
) -> anyhow::Result<Vec<i32>> {
    use rdkafka::consumer::Consumer;
    let md = c.fetch_metadata(Some(topic), CALL_TIMEOUT)?;
    let Some(t) = md.topics().first() else {
        anyhow::bail!("no metadata for {topic}")
    };
    if let Some(e) = t.error() {
        anyhow::bail!("{topic}: {e:?}");
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

/// Parses `name=value`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| format!("'{s}' is not name=value"))
}

/// Queues a record, waiting for room while librdkafka's queue is full (backpressure, not an
/// error).
pub fn send_waiting<K, P>(
    producer: &rdkafka::producer::BaseProducer,
    mut record: rdkafka::producer::BaseRecord<'_, K, P>,
) -> anyhow::Result<()>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((e, back))
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
            {
                producer.poll(Duration::from_millis(10));
                record = back;
            }
            Err((e, _)) => anyhow::bail!("cannot queue a record: {e}"),
        }
    }
}
