//! Command-line tools that talk to a broker over the Kafka protocol (through librdkafka), so
//! they work against Strata or any other Kafka-compatible broker.

pub mod bench;
pub mod bench_disk;
pub mod consume;
pub mod produce;
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

/// Parses `name=value`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| format!("'{s}' is not name=value"))
}
