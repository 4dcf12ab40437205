//! ListConfigResources (key 74, KIP-1142): the resources whose configs DescribeConfigs
//! answers, of the asked types (v1; none asked: every type). This broker has configs for
//! topics (every topic, the internal ones too) and for itself (named by its node id); it has
//! no client-metrics subscriptions and no group configs, so those types list nothing, and
//! v0 (ListClientMetricsResources) answers an empty list. Broker loggers (log levels) are not
//! configurable here, so they are not listed; a type Kafka does not know is
//! UNSUPPORTED_VERSION, as Kafka answers it.

use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{str_bytes, Ctx};
use crate::kafka::errors;

/// Kafka's other config resource types: broker loggers, client-metrics subscriptions, groups.
const RESOURCE_BROKER_LOGGER: i8 = 8;
const RESOURCE_CLIENT_METRICS: i8 = 16;
const RESOURCE_GROUP: i8 = 32;

pub async fn handle(
    ctx: &Ctx,
    req: ListConfigResourcesRequest,
    version: i16,
) -> Option<ListConfigResourcesResponse> {
    if version == 0 {
        return Some(ListConfigResourcesResponse::default());
    }
    let known = [
        RESOURCE_TOPIC,
        RESOURCE_BROKER,
        RESOURCE_BROKER_LOGGER,
        RESOURCE_CLIENT_METRICS,
        RESOURCE_GROUP,
    ];
    if req.resource_types.iter().any(|t| !known.contains(t)) {
        return Some(
            ListConfigResourcesResponse::default().with_error_code(errors::UNSUPPORTED_VERSION),
        );
    }
    let wants = |t: i8| req.resource_types.is_empty() || req.resource_types.contains(&t);
    let resource = |name: &str, t: i8| {
        ConfigResource::default()
            .with_resource_name(str_bytes(name))
            .with_resource_type(t)
    };
    let mut resources = Vec::new();
    if wants(RESOURCE_TOPIC) {
        let cat = ctx.shard.catalog();
        let mut names: Vec<&str> = cat.topics().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        resources.extend(names.into_iter().map(|n| resource(n, RESOURCE_TOPIC)));
    }
    if wants(RESOURCE_BROKER) {
        resources.push(resource(&ctx.broker.node_id.to_string(), RESOURCE_BROKER));
    }
    Some(ListConfigResourcesResponse::default().with_config_resources(resources))
}
