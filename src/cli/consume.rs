//! `strata consume`: print records of a topic from an offset, optionally following new ones;
//! or, with `--group`, as a member of a consumer group (partitions shared with the group's
//! other members, offsets committed to the group).

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
    /// Consume as a member of this consumer group (subscribe; offsets committed to the group,
    /// starting where the group left off, else where --from-beginning says).
    #[arg(long, conflicts_with_all = ["partition", "offset"])]
    pub group: Option<String>,
    /// A librdkafka setting, `name=value` (repeatable), e.g. `-X session.timeout.ms=6000`.
    #[arg(short = 'X', value_parser = super::parse_key_value)]
    pub property: Vec<(String, String)>,
}

/// How long a group member that does not follow waits without records before it leaves.
const GROUP_IDLE_EXIT: Duration = Duration::from_secs(3);

fn print(
    out: &mut impl Write,
    m: &rdkafka::message::BorrowedMessage<'_>,
    verbose: bool,
) -> Result<()> {
    let value = String::from_utf8_lossy(m.payload().unwrap_or_default());
    if verbose {
        let key = String::from_utf8_lossy(m.key().unwrap_or_default());
        writeln!(out, "{}\t{}\t{key}\t{value}", m.partition(), m.offset())?;
    } else {
        writeln!(out, "{value}")?;
    }
    Ok(())
}

/// A consumer with `settings`, then the user's `-X` properties (which win).
fn consumer(
    brokers: &str,
    settings: &[(&str, &str)],
    properties: &[(String, String)],
) -> Result<BaseConsumer> {
    let mut config = client_config(brokers);
    config.set("enable.partition.eof", "false");
    for (k, v) in settings {
        config.set(*k, *v);
    }
    for (k, v) in properties {
        config.set(k, v);
    }
    config.create().context("consumer")
}

fn run_group(brokers: &str, group: &str, a: &ConsumeArgs) -> Result<()> {
    let reset = if a.from_beginning {
        "earliest"
    } else {
        "latest"
    };
    let c = consumer(
        brokers,
        &[("group.id", group), ("auto.offset.reset", reset)],
        &a.property,
    )?;
    c.subscribe(&[&a.topic])?;
    let mut out = std::io::stdout().lock();
    let mut idle_since = Instant::now();
    loop {
        match c.poll(Duration::from_millis(200)) {
            Some(m) => {
                let m = m?;
                idle_since = Instant::now();
                print(&mut out, &m, a.verbose)?;
            }
            None if !a.follow && idle_since.elapsed() > GROUP_IDLE_EXIT => break,
            None => {}
        }
    }
    // Commit what was printed, then leave the group so the others take over at once.
    if let Err(e) = c.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
        tracing::debug!(error = %e, "nothing to commit");
    }
    c.unsubscribe();
    Ok(())
}

pub fn run(brokers: &str, a: ConsumeArgs) -> Result<()> {
    if let Some(group) = &a.group {
        return run_group(brokers, group, &a);
    }
    let c = consumer(
        brokers,
        &[("group.id", "strata-cli"), ("enable.auto.commit", "false")],
        &a.property,
    )?;
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
                print(&mut out, &m, a.verbose)?;
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
