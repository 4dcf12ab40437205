//! IncrementalAlterConfigs (key 44): SET and DELETE topic config overrides; the owners of the
//! topic's partitions pick the new config up at once. [`apply`] is shared with AlterConfigs.

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::describe_configs::RESOURCE_TOPIC;
use super::{str_bytes, Ctx};
use crate::kafka::errors;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

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
            let mut changes = Vec::new();
            let mut bad = None;
            for c in &r.configs {
                match c.config_operation {
                    OP_SET => changes.push((
                        c.name.to_string(),
                        Some(c.value.as_ref().map(|v| v.to_string()).unwrap_or_default()),
                    )),
                    OP_DELETE => changes.push((c.name.to_string(), None)),
                    op => {
                        bad = Some(format!(
                            "config operation {op} (APPEND/SUBTRACT) is not supported for {}",
                            c.name
                        ))
                    }
                }
            }
            match bad {
                Some(msg) => Err((errors::INVALID_CONFIG, msg)),
                None => apply(ctx, &name, &changes, req.validate_only).await,
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
