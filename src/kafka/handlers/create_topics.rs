//! CreateTopics (key 19): add topics to the catalog (one broker: replication factor 1). A name
//! that appears more than once in a request is refused with INVALID_REQUEST, answered once, and
//! none of its entries is created (as Kafka does).

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
        let outcome = if !matches!(t.replication_factor, -1 | 1) {
            Err((
                errors::INVALID_REPLICATION_FACTOR,
                format!("replication factor {} > 1 broker", t.replication_factor),
            ))
        } else {
            let mut cat = ctx.shard.catalog.write().ok()?;
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
                cat.create_topic(&name, partitions, configs).map(Some)
            };
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
                result = result
                    .with_num_partitions(partitions)
                    .with_replication_factor(1);
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
    fn names_given_twice_are_found_once_each() {
        assert!(duplicates(["a", "b"].into_iter()).is_empty());
        assert_eq!(duplicates(["a", "b", "a", "c", "a", "b"].into_iter()), vec!["a", "b"]);
    }
}
