//! `strata topic create|list|describe|delete|alter|delete-records`.

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use futures_lite::future::block_on;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strata::kafka::handlers::describe_log_dirs::{CleanerTag, CLEANER_TAG};

use super::bench::raw::wire::Conn;
use super::{client_config, parse_key_value, CALL_TIMEOUT};

#[derive(Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// Replicas per partition (-1: the cluster's default, min(3, brokers)).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i32,
        /// Topic config, `name=value` (repeatable), e.g. retention.ms=86400000.
        #[arg(long = "config", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
    },
    /// List topics with their partition counts.
    List,
    /// Show a topic's partitions, offsets and configs; for a compacted topic also each
    /// partition's cleaner (dirty ratio, dirty point, last clean), as its leader reports it.
    Describe { name: String },
    /// Delete a topic and its data.
    Delete { name: String },
    /// Delete a partition's records below an offset (DeleteRecords): the log start moves up.
    DeleteRecords {
        name: String,
        #[arg(long, default_value_t = 0)]
        partition: i32,
        /// Records below this offset go; -1 means every record (up to the high watermark).
        #[arg(long, allow_negative_numbers = true)]
        offset: i64,
    },
    /// Set topic configs (`name=value`, repeatable); other overrides are kept.
    Alter {
        name: String,
        #[arg(long = "config", value_parser = parse_key_value, required = true)]
        configs: Vec<(String, String)>,
    },
}

/// Each partition's cleaner state, from its leader's DescribeLogDirs (Strata's tagged field,
/// `kafka::handlers::describe_log_dirs::CLEANER_TAG`); partitions of a topic that is not
/// compacted, or of a broker that does not report it (Kafka), are left out.
fn cleaner_states(
    md: &rdkafka::metadata::Metadata,
    topic: &str,
) -> BTreeMap<i32, std::result::Result<CleanerTag, String>> {
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for t in md.topics().iter().filter(|t| t.name() == topic) {
        for p in t.partitions() {
            by_leader.entry(p.leader()).or_default().push(p.id());
        }
    }
    let mut out = BTreeMap::new();
    for (leader, partitions) in by_leader {
        let Some(b) = md.brokers().iter().find(|b| b.id() == leader) else {
            for p in partitions {
                out.insert(p, Err("no leader".to_string()));
            }
            continue;
        };
        let addr = format!("{}:{}", b.host(), b.port());
        match log_dirs_cleaner(&addr, topic, &partitions) {
            Ok(found) => out.extend(found.into_iter().map(|(p, c)| (p, Ok(c)))),
            Err(e) => {
                for p in partitions {
                    out.insert(p, Err(format!("DescribeLogDirs at {addr}: {e}")));
                }
            }
        }
    }
    out
}

fn log_dirs_cleaner(addr: &str, topic: &str, partitions: &[i32]) -> Result<Vec<(i32, CleanerTag)>> {
    let mut conn = Conn::connect_timeout(addr, CALL_TIMEOUT)?;
    let req =
        DescribeLogDirsRequest::default()
            .with_topics(Some(vec![DescribableLogDirTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(partitions.to_vec())]));
    let resp: DescribeLogDirsResponse = conn.call(ApiKey::DescribeLogDirs, 4, &req)?;
    let mut out = Vec::new();
    for dir in &resp.results {
        for t in dir.topics.iter().filter(|t| t.name.0.as_str() == topic) {
            for p in &t.partitions {
                if let Some(c) = p
                    .unknown_tagged_fields
                    .get(&CLEANER_TAG)
                    .and_then(|b| CleanerTag::decode(b))
                {
                    out.push((p.partition_index, c));
                }
            }
        }
    }
    Ok(out)
}

/// One line: the dirty ratio, the dirty point, and the last clean (how long ago, what it did).
fn describe_cleaner(c: &CleanerTag) -> String {
    let mut s = format!(
        "dirty ratio {:.2}\tdirty from offset {}",
        c.dirty_ratio, c.first_dirty
    );
    if c.last_clean_ms < 0 {
        s.push_str("\tlast clean none since the broker started");
    } else {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let ago = now.saturating_sub(c.last_clean_ms).max(0) as f64 / 1000.0;
        s.push_str(&format!(
            "\tlast clean {ago:.1} s ago: up to offset {}, {} -> {} bytes, {} records removed",
            c.cleaned_upto, c.bytes_before, c.bytes_after, c.records_removed
        ));
    }
    s
}

fn admin(brokers: &str) -> Result<AdminClient<DefaultClientContext>> {
    client_config(brokers).create().context("admin client")
}

fn opts() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(CALL_TIMEOUT))
}

pub fn run(brokers: &str, cmd: TopicCommand) -> Result<()> {
    match cmd {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let mut t = NewTopic::new(
                &name,
                partitions,
                TopicReplication::Fixed(replication_factor),
            );
            for (k, v) in &configs {
                t = t.set(k, v);
            }
            for r in block_on(admin(brokers)?.create_topics([&t], &opts()))? {
                r.map_err(|(t, e)| anyhow::anyhow!("cannot create {t}: {e}"))?;
            }
            println!("created topic {name} with {partitions} partition(s)");
        }
        TopicCommand::Delete { name } => {
            for r in block_on(admin(brokers)?.delete_topics(&[&name], &opts()))? {
                r.map_err(|(t, e)| anyhow::anyhow!("cannot delete {t}: {e}"))?;
            }
            println!("deleted topic {name}");
        }
        TopicCommand::DeleteRecords {
            name,
            partition,
            offset,
        } => {
            let mut list = TopicPartitionList::new();
            let to = if offset == -1 {
                Offset::End
            } else {
                Offset::Offset(offset)
            };
            list.add_partition_offset(&name, partition, to)
                .context("partition list")?;
            let result = block_on(admin(brokers)?.delete_records(&list, &opts()))?;
            for e in result.elements() {
                if let Err(err) = e.error() {
                    bail!(
                        "cannot delete records of {}-{}: {err}",
                        e.topic(),
                        e.partition()
                    );
                }
                let low = match e.offset() {
                    Offset::Offset(o) => o.to_string(),
                    other => format!("{other:?}"),
                };
                println!(
                    "deleted records of {}-{}: log start is now {low}",
                    e.topic(),
                    e.partition()
                );
            }
        }
        TopicCommand::List => {
            let c: BaseConsumer = client_config(brokers).create()?;
            let md = c.fetch_metadata(None, CALL_TIMEOUT)?;
            for t in md.topics() {
                println!("{}\t{} partition(s)", t.name(), t.partitions().len());
            }
        }
        TopicCommand::Describe { name } => {
            let c: BaseConsumer = client_config(brokers)
                .set("allow.auto.create.topics", "false")
                .create()?;
            let md = c.fetch_metadata(Some(&name), CALL_TIMEOUT)?;
            let Some(t) = md.topics().first() else {
                bail!("no metadata for {name}")
            };
            if let Some(e) = t.error() {
                bail!("{name}: {e:?}");
            }
            println!("topic {name}: {} partition(s)", t.partitions().len());
            let cleaners = cleaner_states(&md, &name);
            for p in t.partitions() {
                let (lo, hi) = c.fetch_watermarks(&name, p.id(), CALL_TIMEOUT)?;
                let replicas: Vec<String> = p.replicas().iter().map(|r| r.to_string()).collect();
                let isr: Vec<String> = p.isr().iter().map(|r| r.to_string()).collect();
                println!(
                    "  partition {}\tleader {}\treplicas {}\tisr {}\tlog start {lo}\thigh watermark {hi}",
                    p.id(),
                    p.leader(),
                    replicas.join(","),
                    isr.join(",")
                );
                match cleaners.get(&p.id()) {
                    Some(Ok(c)) => println!("    cleaner\t{}", describe_cleaner(c)),
                    Some(Err(e)) => println!("    cleaner\tunknown: {e}"),
                    None => {}
                }
            }
            let res = block_on(
                admin(brokers)?.describe_configs([&ResourceSpecifier::Topic(&name)], &opts()),
            )?;
            for r in res {
                let r = r?;
                for e in r.entries {
                    println!(
                        "  {} = {}{}",
                        e.name,
                        e.value.unwrap_or_default(),
                        if e.is_default { "" } else { "  (override)" }
                    );
                }
            }
        }
        TopicCommand::Alter { name, configs } => {
            let a = admin(brokers)?;
            // AlterConfigs replaces every override: start from the current ones.
            let current =
                block_on(a.describe_configs([&ResourceSpecifier::Topic(&name)], &opts()))?;
            let mut merged: std::collections::BTreeMap<String, String> =
                std::collections::BTreeMap::new();
            for r in current {
                for e in r?.entries.into_iter().filter(|e| !e.is_default) {
                    merged.insert(e.name, e.value.unwrap_or_default());
                }
            }
            merged.extend(configs.iter().cloned());
            let mut alter = AlterConfig::new(ResourceSpecifier::Topic(&name));
            for (k, v) in &merged {
                alter = alter.set(k, v);
            }
            for r in block_on(a.alter_configs([&alter], &opts()))? {
                r.map_err(|(_, e)| anyhow::anyhow!("cannot alter {name}: {e}"))?;
            }
            // rust-rdkafka 0.39 drops per-resource AlterConfigs errors: read the result back.
            let after = block_on(a.describe_configs([&ResourceSpecifier::Topic(&name)], &opts()))?;
            for r in after {
                let r = r?;
                for (k, v) in &configs {
                    let now = r.get(k).and_then(|e| e.value.clone()).unwrap_or_default();
                    if &now != v {
                        bail!("the broker refused {k}={v} for {name} (it is still {now})");
                    }
                }
            }
            println!("altered topic {name}");
        }
    }
    Ok(())
}
