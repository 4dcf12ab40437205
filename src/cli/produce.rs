//! `strata produce`: one record per line of standard input (optionally `key<sep>value`).

use std::io::BufRead;
use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::client_config;

#[derive(clap::Args)]
pub struct ProduceArgs {
    pub topic: String,
    /// Send every record to this partition (default: librdkafka's partitioner).
    #[arg(long)]
    pub partition: Option<i32>,
    /// Split each line into key and value at the first occurrence of this separator.
    #[arg(long)]
    pub key_separator: Option<String>,
    /// acks: 0, 1 or all.
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
}

pub fn run(brokers: &str, a: ProduceArgs) -> Result<()> {
    let p: BaseProducer = client_config(brokers)
        .set("acks", &a.acks)
        .set("compression.type", &a.compression)
        .set("linger.ms", "5")
        .create()
        .context("producer")?;
    let mut sent = 0u64;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let (key, value) = match &a.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(k.to_string()), v.to_string()),
                None => (None, line),
            },
            None => (None, line),
        };
        let mut rec = BaseRecord::to(&a.topic).payload(&value);
        if let Some(k) = &key {
            rec = rec.key(k);
        }
        if let Some(p) = a.partition {
            rec = rec.partition(p);
        }
        super::send_waiting(&p, rec)?;
        sent += 1;
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(60))
        .context("not every record was acknowledged")?;
    eprintln!("produced {sent} record(s) to {}", a.topic);
    Ok(())
}
