//! `strata consume`: print records of a topic from an offset, optionally following new ones.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::{client_config, topic_partitions, CALL_TIMEOUT};

#[derive(clap::Args)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Only this partition (default: all).
    #[arg(long)]
    pub partition: Option<i32>,
    /// Start at this offset in each partition.
    #[arg(long, conflicts_with = "from_beginning")]
    pub offset: Option<i64>,
    /// Start at the log start of each partition (default: the end).
    #[arg(long)]
    pub from_beginning: bool,
    /// Keep waiting for new records instead of exiting at the end.
    #[arg(long)]
    pub follow: bool,
    /// Print `partition offset key value` instead of the value alone.
    #[arg(long)]
    pub verbose: bool,
}

pub fn run(brokers: &str, a: ConsumeArgs) -> Result<()> {
    let c: BaseConsumer = client_config(brokers)
        .set("group.id", "strata-cli")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .context("consumer")?;
    let partitions = topic_partitions(&c, &a.topic)?;
    let start = match (a.offset, a.from_beginning) {
        (Some(o), _) => Offset::Offset(o),
        (None, true) => Offset::Beginning,
        (None, false) => Offset::End,
    };
    let mut tpl = TopicPartitionList::new();
    let mut ends = std::collections::HashMap::new();
    for p in partitions
        .into_iter()
        .filter(|p| a.partition.is_none_or(|want| want == *p))
    {
        tpl.add_partition_offset(&a.topic, p, start)?;
        ends.insert(p, c.fetch_watermarks(&a.topic, p, CALL_TIMEOUT)?.1);
    }
    if ends.is_empty() {
        bail!("{} has no partition {:?}", a.topic, a.partition);
    }
    c.assign(&tpl)?;
    let mut out = std::io::stdout().lock();
    let mut positions: std::collections::HashMap<i32, i64> = std::collections::HashMap::new();
    let mut idle_since = Instant::now();
    loop {
        match c.poll(Duration::from_millis(200)) {
            Some(m) => {
                let m = m?;
                idle_since = Instant::now();
                positions.insert(m.partition(), m.offset() + 1);
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default());
                if a.verbose {
                    let key = String::from_utf8_lossy(m.key().unwrap_or_default());
                    writeln!(out, "{}\t{}\t{key}\t{value}", m.partition(), m.offset())?;
                } else {
                    writeln!(out, "{value}")?;
                }
            }
            None if !a.follow => {
                let caught_up = ends
                    .iter()
                    .all(|(p, end)| positions.get(p).copied().unwrap_or(0) >= *end || *end == 0);
                if caught_up || idle_since.elapsed() > Duration::from_secs(5) {
                    break;
                }
            }
            None => {}
        }
    }
    Ok(())
}
