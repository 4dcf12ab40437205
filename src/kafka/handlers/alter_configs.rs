//! AlterConfigs (key 33, the pre-KIP-339 form): replaces a topic's whole set of overrides with
//! the one given; configs not listed go back to their defaults.

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::describe_configs::RESOURCE_TOPIC;
use super::incremental_alter_configs::apply;
use super::{str_bytes, Ctx};
use crate::kafka::errors;

pub async fn handle(ctx: &Ctx, req: AlterConfigsRequest) -> Option<AlterConfigsResponse> {
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
            let existing: Vec<String> = ctx
                .shard
                .catalog()
                .topic(&name)
                .map(|t| t.configs.iter().map(|(k, _)| k.clone()).collect())
                .unwrap_or_default();
            let mut changes: Vec<(String, Option<String>)> =
                existing.into_iter().map(|k| (k, None)).collect();
            changes.extend(
                r.configs
                    .iter()
                    .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))),
            );
            apply(ctx, &name, &changes, req.validate_only).await
        };
        if let Err((code, msg)) = result {
            out = out
                .with_error_code(code)
                .with_error_message(Some(str_bytes(&msg)));
        }
        responses.push(out);
    }
    Some(AlterConfigsResponse::default().with_responses(responses))
}
