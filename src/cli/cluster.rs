//! `strata cluster status`: the cluster as its brokers describe it over the Kafka protocol
//! (Metadata v12: brokers, controller, every partition's leader, replicas and ISR), with each
//! broker's Kafka listener tried for a connection. It works against any Kafka-compatible
//! cluster; it changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};

use super::bench::raw::wire::Conn;

/// How long a broker's listener may take to accept before it counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Brokers (alive or not, partitions led), the controller, and the partitions that are
    /// under-replicated (fewer in-sync replicas than replicas) or offline (no leader).
    Status,
}

/// One partition as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub topic: String,
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// What `status` reports, from one Metadata answer (and the connection attempts).
#[derive(Debug, Default)]
pub struct Status {
    pub cluster_id: Option<String>,
    pub controller: i32,
    /// Broker id → `host:port` (as Metadata lists them).
    pub brokers: BTreeMap<i32, String>,
    pub partitions: Vec<PartitionState>,
}

impl Status {
    fn from_metadata(m: MetadataResponse) -> Status {
        let mut s = Status {
            cluster_id: m.cluster_id.map(|c| c.to_string()),
            controller: m.controller_id.0,
            ..Status::default()
        };
        for b in m.brokers {
            s.brokers
                .insert(b.node_id.0, format!("{}:{}", b.host, b.port));
        }
        for t in m.topics {
            let Some(name) = t.name else { continue };
            for p in t.partitions {
                s.partitions.push(PartitionState {
                    topic: name.0.to_string(),
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    replicas: p.replica_nodes.iter().map(|n| n.0).collect(),
                    isr: p.isr_nodes.iter().map(|n| n.0).collect(),
                });
            }
        }
        s.partitions
            .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        s
    }

    /// Every broker id known: listed, or named as a replica.
    pub fn broker_ids(&self) -> BTreeSet<i32> {
        let mut ids: BTreeSet<i32> = self.brokers.keys().copied().collect();
        for p in &self.partitions {
            ids.extend(p.replicas.iter().copied());
        }
        ids
    }

    pub fn led_by(&self, broker: i32) -> usize {
        self.partitions
            .iter()
            .filter(|p| p.leader == broker)
            .count()
    }

    pub fn under_replicated(&self) -> impl Iterator<Item = &PartitionState> {
        self.partitions
            .iter()
            .filter(|p| p.leader >= 0 && p.isr.len() < p.replicas.len())
    }

    pub fn offline(&self) -> impl Iterator<Item = &PartitionState> {
        self.partitions.iter().filter(|p| p.leader < 0)
    }
}

fn reachable(addr: &str) -> bool {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, CONNECT_TIMEOUT).is_ok())
}

fn joined(list: &[i32]) -> String {
    list.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Metadata of every topic from the first bootstrap broker that answers.
fn status(brokers: &str) -> Result<Status> {
    let mut last = None;
    for addr in brokers.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        let answer = Conn::connect(addr).and_then(|mut c| {
            c.call::<_, MetadataResponse>(
                ApiKey::Metadata,
                12,
                &MetadataRequest::default().with_topics(None),
            )
        });
        match answer {
            Ok(m) => return Ok(Status::from_metadata(m)),
            Err(e) => last = Some(anyhow::Error::new(e).context(format!("asking {addr}"))),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no broker given")))
}

pub fn run(brokers: &str, cmd: ClusterCommand) -> Result<()> {
    match cmd {
        ClusterCommand::Status => {
            let s = status(brokers).context("cluster metadata")?;
            let ids = s.broker_ids();
            println!(
                "cluster {}: {} broker(s), controller {}",
                s.cluster_id.as_deref().unwrap_or("?"),
                ids.len(),
                if s.controller >= 0 {
                    s.controller.to_string()
                } else {
                    "none".into()
                }
            );
            for id in &ids {
                let (addr, state) = match s.brokers.get(id) {
                    Some(a) if reachable(a) => (a.as_str(), "alive"),
                    Some(a) => (a.as_str(), "down"),
                    None => ("(listener not known)", "down"),
                };
                println!(
                    "  broker {id}\t{addr}\t{state}\tleads {} partition(s)",
                    s.led_by(*id)
                );
            }
            let under: Vec<_> = s.under_replicated().collect();
            let offline: Vec<_> = s.offline().collect();
            println!(
                "partitions: {} total, {} under-replicated, {} offline",
                s.partitions.len(),
                under.len(),
                offline.len()
            );
            for p in under {
                println!(
                    "  under-replicated {}-{}\tleader {}\tisr {} of {}",
                    p.topic,
                    p.partition,
                    p.leader,
                    joined(&p.isr),
                    joined(&p.replicas)
                );
            }
            for p in offline {
                println!(
                    "  offline {}-{}\treplicas {}",
                    p.topic,
                    p.partition,
                    joined(&p.replicas)
                );
            }
        }
    }
    Ok(())
}
