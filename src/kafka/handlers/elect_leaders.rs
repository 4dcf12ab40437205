//! ElectLeaders (key 43, v0–v2): makes each asked partition's preferred replica (the first of
//! its assignment) its leader, as Kafka's `kafka-leader-election --election-type PREFERRED`.
//! Under Raft this is a leadership transfer: the broker asks its own replica of the partition,
//! which passes the request to the leader (raft-rs forwards it), and the leader hands over
//! once the preferred replica holds its whole log. The answer waits for the new leader (at
//! most the request's timeout, bounded by [`MAX_WAIT`]): ELECTION_NOT_NEEDED when the
//! preferred replica leads already, PREFERRED_LEADER_NOT_AVAILABLE when it did not take over
//! (not in sync, down). Unclean elections (type 1) never elect a replica that may miss
//! committed records: a partition with a leader needs none (ELECTION_NOT_NEEDED), one without
//! gets ELIGIBLE_LEADERS_NOT_AVAILABLE. A broker that holds no replica of a partition cannot
//! ask for it (REPLICA_NOT_AVAILABLE: send the request to a replica's broker). With no topic
//! list every partition is tried and only those not already led by their preferred replica
//! are reported, as Kafka does.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};

use super::{str_bytes, Ctx};
use crate::kafka::errors;
use crate::partition::Election;
use crate::shard::calls::ElectPreferred;
use crate::shard::mesh::MeshError;
use crate::shard::replicas::raft_id;
use crate::shard::{ShardError, TopicPartition};

/// The longest an election is waited for.
const MAX_WAIT: Duration = Duration::from_secs(30);

const PREFERRED: i8 = 0;

pub async fn handle(
    ctx: &Ctx,
    req: ElectLeadersRequest,
    version: i16,
) -> Option<ElectLeadersResponse> {
    let catalog = ctx.shard.catalog();
    let every = req.topic_partitions.is_none();
    let asked: Vec<(TopicName, Vec<i32>)> = match req.topic_partitions {
        Some(list) => list.into_iter().map(|t| (t.topic, t.partitions)).collect(),
        None => catalog
            .topics()
            .map(|t| (TopicName(str_bytes(&t.name)), (0..t.partitions).collect()))
            .collect(),
    };
    let election_type = if version == 0 {
        PREFERRED
    } else {
        req.election_type
    };
    let wait = Duration::from_millis(req.timeout_ms.max(0) as u64).min(MAX_WAIT);
    let me = ctx.broker.node_id;
    // Every partition's election runs at once; each answer is waited for in order.
    let mut pending = Vec::new();
    for (topic, partitions) in asked {
        let name = topic.0.to_string();
        let meta = catalog.topic(&name).cloned();
        let mut results = Vec::with_capacity(partitions.len());
        for p in partitions {
            let tp = TopicPartition {
                topic: name.clone(),
                partition: p,
            };
            let known = meta.as_ref().is_some_and(|m| p >= 0 && p < m.partitions);
            let replicas = catalog.replicas(&name, p).map(<[u64]>::to_vec);
            let work: Outcome = match (known, replicas) {
                (false, _) => Outcome::Code(errors::UNKNOWN_TOPIC_OR_PARTITION),
                // A partition with one replica, or a broker alone: it leads already.
                (true, None) => Outcome::Code(ResponseError::ElectionNotNeeded.code()),
                (true, Some(r)) if r.len() <= 1 => {
                    Outcome::Code(ResponseError::ElectionNotNeeded.code())
                }
                (true, Some(r)) if !r.contains(&(me as u64)) => {
                    Outcome::Code(ResponseError::ReplicaNotAvailable.code())
                }
                (true, Some(_)) if election_type != PREFERRED => {
                    let leader = ctx
                        .shard
                        .cluster_view()
                        .await
                        .and_then(|v| v.leaders.get(&tp).and_then(|l| l.leader));
                    Outcome::Code(match leader {
                        Some(_) => ResponseError::ElectionNotNeeded.code(),
                        None => ResponseError::EligibleLeadersNotAvailable.code(),
                    })
                }
                (true, Some(r)) => {
                    let shard = ctx.shard.clone();
                    let call = ElectPreferred {
                        tp,
                        preferred: raft_id(r[0] as i32),
                        wait,
                    };
                    Outcome::Running(glommio::spawn_local(async move { shard.run(call).await }))
                }
            };
            results.push((p, work));
        }
        pending.push((topic, results));
    }
    let mut out = Vec::new();
    for (topic, results) in pending {
        let mut partition_result = Vec::new();
        for (p, work) in results {
            let code = match work {
                Outcome::Code(c) => c,
                Outcome::Running(task) => match task.await.unwrap_or_else(|e| Err(e.into())) {
                    Ok(Election::NotNeeded) => ResponseError::ElectionNotNeeded.code(),
                    Ok(Election::Elected) => errors::NONE,
                    Ok(Election::NotAvailable) => ResponseError::PreferredLeaderNotAvailable.code(),
                    Err(e) => errors::shard_code(&e),
                },
            };
            if every && code == ResponseError::ElectionNotNeeded.code() {
                continue;
            }
            partition_result.push(
                PartitionResult::default()
                    .with_partition_id(p)
                    .with_error_code(code),
            );
        }
        if !partition_result.is_empty() || !every {
            out.push(
                ReplicaElectionResult::default()
                    .with_topic(topic)
                    .with_partition_result(partition_result),
            );
        }
    }
    Some(ElectLeadersResponse::default().with_replica_election_results(out))
}

enum Outcome {
    Code(i16),
    Running(glommio::Task<Result<Result<Election, ShardError>, MeshError>>),
}
