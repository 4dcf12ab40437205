//! CreateTopics (key 19): add topics to the catalog (one broker: replication factor 1). A name
//! that appears more than once in a request is refused with INVALID_REQUEST, answered once, and
//! none of its entries is created (as Kafka does).

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::{str_bytes, Ctx};
use crate::kafka::errors;
use crate::storage::config::CONFIG_NAMES;

pub async fn handle(
    ctx: &Ctx,
    req: CreateTopicsRequest,
    version: i16,
) -> Option<CreateTopicsResponse> {
    let mut results = Vec::new();
    let duplicated = duplicates(req.topics.iter().map(|t| t.name.0.as_str()));
    for name in &duplicated {
        results.push(
            CreatableTopicResult::default()
                .with_name(kafka_protocol::messages::TopicName(str_bytes(name)))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_error_code(errors::INVALID_REQUEST)
                .with_error_message(Some(str_bytes(&format!(
                    "topic '{name}' appears more than once in the request"
                )))),
        );
    }
    for t in req.topics {
        let name = t.name.0.to_string();
        if duplicated.contains(&name) {
            continue;
        }
        let partitions = match (t.num_partitions, t.assignments.len()) {
            (-1, 0) => ctx.broker.default_partitions,
            (-1, n) => n as i32,
            (n, _) => n,
        };
        let configs: Vec<(String, String)> = t
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        let mut result = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let outcome = if let Err(e) = check_assignments(&t, ctx.broker.node_id) {
            Err(e)
        } else if !matches!(t.replication_factor, -1 | 1)
            && (t.replication_factor < -1
                || t.replication_factor as usize > ctx.shard.catalog().brokers().len())
        {
            let brokers = ctx.shard.catalog().brokers().len().max(1);
            Err((
                errors::INVALID_REPLICATION_FACTOR,
                format!(
                    "replication factor {} is above the {brokers} brokers",
                    t.replication_factor
                ),
            ))
        } else {
            let cat = ctx.shard.catalog();
            let r = if req.validate_only {
                match cat.topic(&name) {
                    Some(_) => Err(crate::cluster::CatalogError::TopicExists(name.clone())),
                    None => crate::cluster::validate_topic_name(&name)
                        .and_then(|_| cat.check_configs(&configs))
                        .and({
                            if partitions < 1 {
                                Err(crate::cluster::CatalogError::InvalidPartitions(partitions))
                            } else {
                                Ok(())
                            }
                        }),
                }
                .map(|_| None)
            } else {
                ctx.shard
                    .create_topic_replicated(
                        name.clone(),
                        partitions,
                        t.replication_factor,
                        configs,
                    )
                    .await
                    .map(Some)
            };
            let cat = ctx.shard.catalog();
            r.map(|t| {
                (
                    t,
                    cat.log_config(&name)
                        .unwrap_or_else(|| cat.defaults().clone()),
                )
            })
            .map_err(|e| (errors::catalog_code(&e), e.to_string()))
        };
        match outcome {
            Ok((created, config)) => {
                if let Some(t) = &created {
                    tracing::info!(topic = %name, partitions = t.partitions, "created topic");
                    result = result.with_topic_id(uuid::Uuid::from_bytes(t.id));
                }
                let listed = CONFIG_NAMES
                    .iter()
                    .map(|k| {
                        CreatableTopicConfigs::default()
                            .with_name(str_bytes(k))
                            .with_value(config.get(k).map(|v| str_bytes(&v)))
                            .with_config_source(5)
                    })
                    .collect();
                let factor = ctx
                    .shard
                    .catalog()
                    .replicas(&name, 0)
                    .map_or(1, |r| r.len() as i16);
                result = result
                    .with_num_partitions(partitions)
                    .with_replication_factor(factor);
                if version >= 5 {
                    result = result.with_configs(Some(listed));
                }
            }
            Err((code, msg)) => {
                result = result
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(&msg)))
            }
        }
        results.push(result);
    }
    Some(CreateTopicsResponse::default().with_topics(results))
}

/// Kafka's checks of a manual replica assignment, here where the only broker is `node_id`:
/// no partition count or replication factor beside it (INVALID_REQUEST), partitions numbered
/// 0..n, each on a non-empty list of known brokers without repeats (INVALID_REPLICA_ASSIGNMENT).
fn check_assignments(t: &CreatableTopic, node_id: i32) -> Result<(), (i16, String)> {
    if t.assignments.is_empty() {
        return Ok(());
    }
    if t.num_partitions != -1 || t.replication_factor != -1 {
        return Err((
            errors::INVALID_REQUEST,
            "a manual assignment was given, but the partition count or replication factor is not -1"
                .to_string(),
        ));
    }
    let bad = |why: String| Err((errors::INVALID_REPLICA_ASSIGNMENT, why));
    let mut indexes: Vec<i32> = t.assignments.iter().map(|a| a.partition_index).collect();
    indexes.sort_unstable();
    if indexes.iter().zip(0..).any(|(&p, i)| p != i) {
        return bad("the assigned partitions must be numbered 0 to n-1".to_string());
    }
    for a in &t.assignments {
        let brokers: Vec<i32> = a.broker_ids.iter().map(|b| b.0).collect();
        if brokers.is_empty() {
            return bad(format!(
                "partition {} is assigned no broker",
                a.partition_index
            ));
        }
        if let Some(b) = brokers.iter().find(|&&b| b != node_id) {
            return bad(format!(
                "partition {} is assigned to unknown broker {b}",
                a.partition_index
            ));
        }
        if brokers.len() > 1 {
            return bad(format!(
                "partition {} names broker {node_id} twice",
                a.partition_index
            ));
        }
    }
    Ok(())
}

/// The names that occur more than once, in order of first appearance.
fn duplicates<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut dup: Vec<String> = Vec::new();
    for n in names {
        if !seen.insert(n) && !dup.iter().any(|d| d == n) {
            dup.push(n.to_string());
        }
    }
    dup
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_assignments_are_checked_as_kafka_checks_them() {
        use kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment;
        use kafka_protocol::messages::BrokerId;
        let topic = |parts: &[(i32, &[i32])], n: i32, rf: i16| {
            CreatableTopic::default()
                .with_num_partitions(n)
                .with_replication_factor(rf)
                .with_assignments(
                    parts
                        .iter()
                        .map(|(p, b)| {
                            CreatableReplicaAssignment::default()
                                .with_partition_index(*p)
                                .with_broker_ids(b.iter().map(|&x| BrokerId(x)).collect())
                        })
                        .collect(),
                )
        };
        let code = |t: CreatableTopic| check_assignments(&t, 0).map_err(|e| e.0);
        assert_eq!(code(topic(&[], 3, 1)), Ok(()));
        assert_eq!(code(topic(&[(0, &[0]), (1, &[0])], -1, -1)), Ok(()));
        assert_eq!(
            code(topic(&[(0, &[0])], 1, -1)),
            Err(errors::INVALID_REQUEST)
        );
        assert_eq!(
            code(topic(&[(0, &[0])], -1, 1)),
            Err(errors::INVALID_REQUEST)
        );
        let bad = Err(errors::INVALID_REPLICA_ASSIGNMENT);
        assert_eq!(code(topic(&[(0, &[999])], -1, -1)), bad);
        assert_eq!(code(topic(&[(0, &[])], -1, -1)), bad);
        assert_eq!(code(topic(&[(0, &[0, 0])], -1, -1)), bad);
        assert_eq!(code(topic(&[(1, &[0])], -1, -1)), bad);
    }

    #[test]
    fn names_given_twice_are_found_once_each() {
        assert!(duplicates(["a", "b"].into_iter()).is_empty());
        assert_eq!(
            duplicates(["a", "b", "a", "c", "a", "b"].into_iter()),
            vec!["a", "b"]
        );
    }
}
