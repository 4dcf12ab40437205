//! IncrementalAlterConfigs (key 44): SET and DELETE topic config overrides; the owners of the
//! topic's partitions pick the new config up at once.

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::describe_configs::RESOURCE_TOPIC;
use super::{str_bytes, Ctx};
use crate::kafka::errors;
use crate::shard::{ShardOp, TopicPartition};

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

pub async fn handle(ctx: &Ctx, req: IncrementalAlterConfigsRequest) -> Option<IncrementalAlterConfigsResponse> {
    let mut responses = Vec::new();
    for r in req.resources {
        let name = r.resource_name.to_string();
        let mut out = AlterConfigsResourceResponse::default().with_resource_type(r.resource_type).with_resource_name(r.resource_name.clone());
        if r.resource_type != RESOURCE_TOPIC {
            responses.push(out.with_error_code(errors::INVALID_REQUEST).with_error_message(Some(str_bytes("only topic configs can be altered"))));
            continue;
        }
        let mut changes = Vec::new();
        let mut bad = None;
        for c in &r.configs {
            match c.config_operation {
                OP_SET => changes.push((c.name.to_string(), Some(c.value.as_ref().map(|v| v.to_string()).unwrap_or_default()))),
                OP_DELETE => changes.push((c.name.to_string(), None)),
                op => bad = Some(format!("config operation {op} (APPEND/SUBTRACT) is not supported for {}", c.name)),
            }
        }
        let result = match bad {
            Some(msg) => Err((errors::INVALID_CONFIG, msg)),
            None => {
                let mut cat = ctx.shard.catalog.write().ok()?;
                if req.validate_only {
                    match cat.topic(&name) {
                        None => Err((errors::UNKNOWN_TOPIC_OR_PARTITION, format!("unknown topic '{name}'"))),
                        Some(_) => {
                            let sets: Vec<(String, String)> = changes.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect();
                            cat.check_configs(&sets).map(|_| 0).map_err(|e| (errors::catalog_code(&e), e.to_string()))
                        }
                    }
                } else {
                    cat.alter_configs(&name, &changes).map(|_| cat.topic(&name).map(|t| t.partitions).unwrap_or(0)).map_err(|e| (errors::catalog_code(&e), e.to_string()))
                }
            }
        };
        match result {
            Ok(partitions) => {
                for p in 0..partitions {
                    ctx.shard.call(ShardOp::Reconfigure { tp: TopicPartition { topic: name.clone(), partition: p } }).await;
                }
            }
            Err((code, msg)) => out = out.with_error_code(code).with_error_message(Some(str_bytes(&msg))),
        }
        responses.push(out);
    }
    Some(IncrementalAlterConfigsResponse::default().with_responses(responses))
}
