//! `strata group list|describe|delete|reset-offsets`: consumer groups as any Kafka-compatible
//! broker reports them (ListGroups, DescribeGroups, OffsetFetch, DeleteGroups, OffsetCommit).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use futures_lite::future::block_on;
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::Decodable;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{client_config, topic_partitions, CALL_TIMEOUT};

#[derive(Subcommand)]
pub enum GroupCommand {
    /// List groups with their state.
    List,
    /// Show a group's members and, per partition, committed offset, log end and lag.
    Describe { group: String },
    /// Delete groups that have no members, with their committed offsets.
    Delete { groups: Vec<String> },
    /// Set a group's committed offsets (the group must have no active members).
    ResetOffsets {
        group: String,
        /// Topic whose partitions are reset.
        #[arg(long)]
        topic: String,
        #[command(flatten)]
        to: ResetTo,
        /// Print the new offsets without committing them.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct ResetTo {
    /// To the log start of each partition.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end of each partition.
    #[arg(long)]
    to_latest: bool,
    /// To this offset in every partition (kept within the log).
    #[arg(long)]
    to_offset: Option<i64>,
    /// Move the committed offsets by this much (negative: back), kept within the log.
    #[arg(long, allow_hyphen_values = true)]
    shift_by: Option<i64>,
}

fn consumer(brokers: &str, group: &str) -> Result<BaseConsumer> {
    client_config(brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .context("consumer")
}

/// Partitions assigned in a consumer-protocol assignment.
fn assigned(bytes: &[u8]) -> Vec<(String, i32)> {
    let mut b = bytes::Bytes::copy_from_slice(bytes);
    if b.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([b[0], b[1]]);
    let _ = bytes::Buf::get_i16(&mut b);
    ConsumerProtocolAssignment::decode(&mut b, version.clamp(0, 3))
        .map(|a| {
            a.assigned_partitions
                .into_iter()
                .flat_map(|t| {
                    let topic = t.topic.to_string();
                    t.partitions.into_iter().map(move |p| (topic.clone(), p))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn run(brokers: &str, cmd: GroupCommand) -> Result<()> {
    match cmd {
        GroupCommand::List => {
            let c = consumer(brokers, "strata-cli")?;
            let list = c.fetch_group_list(None, CALL_TIMEOUT)?;
            println!("{:<40} {:<22} {:<10} MEMBERS", "GROUP", "STATE", "TYPE");
            for g in list.groups() {
                println!(
                    "{:<40} {:<22} {:<10} {}",
                    g.name(),
                    g.state(),
                    g.protocol_type(),
                    g.members().len()
                );
            }
        }
        GroupCommand::Describe { group } => describe(brokers, &group)?,
        GroupCommand::Delete { groups } => {
            let admin: AdminClient<DefaultClientContext> =
                client_config(brokers).create().context("admin client")?;
            let names: Vec<&str> = groups.iter().map(String::as_str).collect();
            let opts = AdminOptions::new().request_timeout(Some(CALL_TIMEOUT));
            let mut failed = false;
            for r in block_on(admin.delete_groups(&names, &opts))? {
                match r {
                    Ok(g) => println!("deleted group {g}"),
                    Err((g, e)) => {
                        eprintln!("cannot delete {g}: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                bail!("some groups were not deleted");
            }
        }
        GroupCommand::ResetOffsets {
            group,
            topic,
            to,
            dry_run,
        } => reset(brokers, &group, &topic, &to, dry_run)?,
    }
    Ok(())
}

fn describe(brokers: &str, group: &str) -> Result<()> {
    let c = consumer(brokers, group)?;
    let list = c.fetch_group_list(Some(group), CALL_TIMEOUT)?;
    let Some(g) = list.groups().first() else {
        bail!("no answer for group {group}");
    };
    println!(
        "group {}  state {}  protocol {}/{}  members {}",
        g.name(),
        g.state(),
        g.protocol_type(),
        g.protocol(),
        g.members().len()
    );
    // Owner of each partition, from the members' assignments.
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    for m in g.members() {
        for tp in assigned(m.assignment().unwrap_or_default()) {
            owner.insert(
                tp,
                format!("{} ({}{})", m.id(), m.client_id(), m.client_host()),
            );
        }
    }
    // Committed offsets of every partition of every topic (a group's offsets may outlive its
    // members, so the topics cannot be taken from assignments alone).
    let md = c.fetch_metadata(None, CALL_TIMEOUT)?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        if t.name().starts_with("__") {
            continue;
        }
        for p in t.partitions() {
            tpl.add_partition(t.name(), p.id());
        }
    }
    let committed = c.committed_offsets(tpl, CALL_TIMEOUT)?;
    let mut rows: BTreeMap<(String, i32), Option<i64>> = BTreeMap::new();
    for e in committed.elements() {
        if let Offset::Offset(o) = e.offset() {
            rows.insert((e.topic().to_string(), e.partition()), Some(o));
        }
    }
    for tp in owner.keys() {
        rows.entry(tp.clone()).or_insert(None);
    }
    println!(
        "{:<30} {:>9} {:>14} {:>14} {:>10}  MEMBER",
        "TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG"
    );
    for ((topic, p), committed) in rows {
        let (_, end) = c.fetch_watermarks(&topic, p, CALL_TIMEOUT)?;
        let (shown, lag) = match committed {
            Some(o) => (o.to_string(), (end - o).max(0).to_string()),
            None => ("-".into(), "-".into()),
        };
        let member = owner.get(&(topic.clone(), p)).map_or("-", String::as_str);
        println!("{topic:<30} {p:>9} {shown:>14} {end:>14} {lag:>10}  {member}");
    }
    Ok(())
}

fn reset(brokers: &str, group: &str, topic: &str, to: &ResetTo, dry_run: bool) -> Result<()> {
    let c = consumer(brokers, group)?;
    let partitions = topic_partitions(&c, topic)?;
    let mut current = TopicPartitionList::new();
    for p in &partitions {
        current.add_partition(topic, *p);
    }
    let committed = c.committed_offsets(current, CALL_TIMEOUT)?;
    let mut plan = TopicPartitionList::new();
    println!(
        "{:<30} {:>9} {:>14} {:>14}",
        "TOPIC", "PARTITION", "FROM", "TO"
    );
    for p in partitions {
        let (low, high) = c.fetch_watermarks(topic, p, CALL_TIMEOUT)?;
        let old = committed
            .find_partition(topic, p)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
        let new = if to.to_earliest {
            low
        } else if to.to_latest {
            high
        } else if let Some(o) = to.to_offset {
            o
        } else {
            old.unwrap_or(low) + to.shift_by.unwrap_or(0)
        }
        .clamp(low, high);
        println!(
            "{topic:<30} {p:>9} {:>14} {new:>14}",
            old.map_or("-".to_string(), |o| o.to_string())
        );
        plan.add_partition_offset(topic, p, Offset::Offset(new))?;
    }
    if dry_run {
        println!("(dry run: nothing committed)");
        return Ok(());
    }
    c.commit(&plan, CommitMode::Sync)
        .with_context(|| format!("committing offsets of {group} (is the group still active?)"))?;
    println!("committed");
    Ok(())
}
