//! IncrementalAlterConfigs (key 44): SET, DELETE, and for list configs (`cleanup.policy`)
//! APPEND and SUBTRACT topic config overrides; the owners of the topic's partitions pick the
//! new config up at once. [`apply`] is shared with AlterConfigs. As in Kafka, SET or APPEND
//! without a value and a config named twice in one resource are INVALID_REQUEST, APPEND or
//! SUBTRACT on a config that is not a list INVALID_CONFIG.

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::describe_configs::RESOURCE_TOPIC;
use super::{str_bytes, Ctx};
use crate::kafka::errors;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// The new value of a list config after APPEND or SUBTRACT of the comma-separated `values`.
fn list_op(current: &str, op: i8, values: &str) -> String {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut list = split(current);
    for v in split(values) {
        if op == OP_APPEND && !list.contains(&v) {
            list.push(v);
        } else if op == OP_SUBTRACT {
            list.retain(|x| *x != v);
        }
    }
    list.join(",")
}

/// Overrides to apply: `Some` sets, `None` removes.
type Changes = Vec<(String, Option<String>)>;

/// One resource's operations as the overrides to apply, or its error code and message.
fn changes_of(
    configs: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig],
    current: impl Fn(&str) -> Option<String>,
) -> Result<Changes, (i16, String)> {
    let mut changes: Changes = Vec::new();
    for c in configs {
        let name = c.name.to_string();
        if changes.iter().any(|(n, _)| *n == name) {
            return Err((
                errors::INVALID_REQUEST,
                format!("config '{name}' is named more than once"),
            ));
        }
        let value = c.value.as_ref().map(|v| v.to_string());
        let change = match (c.config_operation, value) {
            (OP_DELETE, _) => None,
            (OP_SET | OP_APPEND | OP_SUBTRACT, None) => {
                return Err((
                    errors::INVALID_REQUEST,
                    format!("a null value is not supported for '{name}'"),
                ))
            }
            (OP_SET, Some(v)) => Some(v),
            (op @ (OP_APPEND | OP_SUBTRACT), Some(v)) => {
                if super::describe_configs::config_type(&name) != super::describe_configs::TYPE_LIST
                {
                    return Err((
                        errors::INVALID_CONFIG,
                        format!("'{name}' is not a list: APPEND and SUBTRACT do not apply"),
                    ));
                }
                Some(list_op(&current(&name).unwrap_or_default(), op, &v))
            }
            (op, _) => {
                return Err((
                    errors::INVALID_CONFIG,
                    format!("unknown config operation {op} for '{name}'"),
                ))
            }
        };
        changes.push((name, change));
    }
    Ok(changes)
}

/// Applies override changes to a topic (`Some` sets, `None` removes); every core's partitions
/// of the topic have the new config when this returns. With `validate_only`, only checks them.
pub async fn apply(
    ctx: &Ctx,
    topic: &str,
    changes: &[(String, Option<String>)],
    validate_only: bool,
) -> Result<(), (i16, String)> {
    let cat = ctx.shard.catalog();
    if cat.topic(topic).is_none() {
        return Err((
            errors::UNKNOWN_TOPIC_OR_PARTITION,
            format!("unknown topic '{topic}'"),
        ));
    }
    if validate_only {
        let sets: Vec<(String, String)> = changes
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        return cat
            .check_configs(&sets)
            .map_err(|e| (errors::catalog_code(&e), e.to_string()));
    }
    ctx.shard
        .alter_configs(topic.to_string(), changes.to_vec())
        .await
        .map_err(|e| (errors::catalog_code(&e), e.to_string()))
}

pub async fn handle(
    ctx: &Ctx,
    req: IncrementalAlterConfigsRequest,
) -> Option<IncrementalAlterConfigsResponse> {
    let mut responses = Vec::new();
    for r in req.resources {
        let name = r.resource_name.to_string();
        let mut out = AlterConfigsResourceResponse::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let result = if r.resource_type != RESOURCE_TOPIC {
            Err((
                errors::INVALID_REQUEST,
                "only topic configs can be altered".to_string(),
            ))
        } else {
            let current = |k: &str| -> Option<String> {
                let cat = ctx.shard.catalog();
                let overridden = cat
                    .topic(&name)?
                    .configs
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone());
                overridden.or_else(|| cat.log_config(&name)?.get(k))
            };
            match changes_of(&r.configs, current) {
                Err(e) => Err(e),
                Ok(changes) => apply(ctx, &name, &changes, req.validate_only).await,
            }
        };
        if let Err((code, msg)) = result {
            out = out
                .with_error_code(code)
                .with_error_message(Some(str_bytes(&msg)));
        }
        responses.push(out);
    }
    Some(IncrementalAlterConfigsResponse::default().with_responses(responses))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;

    fn op(name: &str, op: i8, value: Option<&str>) -> AlterableConfig {
        AlterableConfig::default()
            .with_name(str_bytes(name))
            .with_config_operation(op)
            .with_value(value.map(str_bytes))
    }

    #[test]
    fn append_and_subtract_edit_a_list_config() {
        assert_eq!(list_op("delete", OP_APPEND, "compact"), "delete,compact");
        assert_eq!(
            list_op("delete,compact", OP_APPEND, "compact"),
            "delete,compact"
        );
        assert_eq!(list_op("delete,compact", OP_SUBTRACT, "compact"), "delete");
        assert_eq!(list_op("delete", OP_SUBTRACT, "compact"), "delete");
        let current = |_: &str| Some("delete".to_string());
        assert_eq!(
            changes_of(&[op("cleanup.policy", OP_APPEND, Some("compact"))], current),
            Ok(vec![(
                "cleanup.policy".into(),
                Some("delete,compact".into())
            )])
        );
    }

    #[test]
    fn kafkas_error_codes_for_bad_operations() {
        let none = |_: &str| None;
        let code = |c: &[AlterableConfig]| changes_of(c, none).map_err(|e| e.0);
        assert_eq!(
            code(&[op("retention.ms", OP_SET, None)]),
            Err(errors::INVALID_REQUEST)
        );
        assert_eq!(
            code(&[op("retention.ms", OP_APPEND, Some("5"))]),
            Err(errors::INVALID_CONFIG)
        );
        assert_eq!(
            code(&[op("retention.ms", 9, Some("5"))]),
            Err(errors::INVALID_CONFIG)
        );
        assert_eq!(
            code(&[
                op("retention.ms", OP_SET, Some("1")),
                op("retention.ms", OP_DELETE, None)
            ]),
            Err(errors::INVALID_REQUEST)
        );
        assert_eq!(
            code(&[op("retention.ms", OP_DELETE, None)]),
            Ok(vec![("retention.ms".to_string(), None)])
        );
    }
}
