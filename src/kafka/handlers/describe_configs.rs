//! DescribeConfigs (key 32): the effective configs of topics (type 2); brokers (type 4)
//! answer with no configs, since broker settings are not dynamic.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::{str_bytes, Ctx};
use crate::kafka::errors;
use crate::storage::config::CONFIG_NAMES;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
/// Config sources (KIP-226): a topic override, or the default.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

pub async fn handle(ctx: &Ctx, req: DescribeConfigsRequest) -> Option<DescribeConfigsResponse> {
    let cat = ctx.shard.catalog();
    let mut results = Vec::new();
    for r in req.resources {
        let name = r.resource_name.to_string();
        let mut out = DescribeConfigsResult::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        match r.resource_type {
            RESOURCE_TOPIC => match (cat.topic(&name), cat.log_config(&name)) {
                (Some(t), Some(config)) => {
                    let keys: Vec<String> = match &r.configuration_keys {
                        Some(k) => k.iter().map(|s| s.to_string()).collect(),
                        None => CONFIG_NAMES.iter().map(|s| s.to_string()).collect(),
                    };
                    let configs = keys
                        .iter()
                        .filter_map(|k| {
                            let v = config.get(k)?;
                            let overridden = t.configs.iter().any(|(n, _)| n == k);
                            Some(
                                DescribeConfigsResourceResult::default()
                                    .with_name(str_bytes(k))
                                    .with_value(Some(str_bytes(&v)))
                                    .with_config_source(if overridden {
                                        SOURCE_TOPIC
                                    } else {
                                        SOURCE_DEFAULT
                                    }),
                            )
                        })
                        .collect();
                    out = out.with_configs(configs);
                }
                _ => {
                    out = out
                        .with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION)
                        .with_error_message(Some(str_bytes(&format!("unknown topic '{name}'"))))
                }
            },
            RESOURCE_BROKER => {}
            other => {
                out = out
                    .with_error_code(errors::INVALID_REQUEST)
                    .with_error_message(Some(str_bytes(&format!(
                        "resource type {other} is not supported"
                    ))))
            }
        }
        results.push(out);
    }
    Some(DescribeConfigsResponse::default().with_results(results))
}
