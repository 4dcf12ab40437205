//! ApiVersions (key 18): which APIs and versions this broker speaks. An unknown request
//! version gets the v0-format fallback answer with UNSUPPORTED_VERSION (see the server).
//!
//! From v5 (KIP-1242) a client may name the cluster and node it means to reach, both or
//! neither: naming one alone is INVALID_REQUEST, naming another cluster or node
//! REBOOTSTRAP_REQUIRED (its bootstrap address now reaches a different broker); either error
//! answers no API keys, as Kafka does.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::SUPPORTED;
use crate::config::BrokerConfig;
use crate::kafka::errors;

pub fn response(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED
        .iter()
        .map(|(k, lo, hi)| {
            let codec = k.valid_versions();
            ApiVersion::default()
                .with_api_key(*k as i16)
                .with_min_version((*lo).max(codec.min))
                .with_max_version((*hi).min(codec.max))
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}

pub fn handle(broker: &BrokerConfig, req: ApiVersionsRequest, version: i16) -> ApiVersionsResponse {
    if version >= 5 {
        let refused = match (&req.cluster_id, req.node_id) {
            (None, -1) => None,
            (None, _) | (Some(_), -1) => Some(errors::INVALID_REQUEST),
            (Some(c), n) if c.as_str() != broker.cluster_id || n != broker.node_id => {
                Some(errors::REBOOTSTRAP_REQUIRED)
            }
            (Some(_), _) => None,
        };
        if let Some(code) = refused {
            return ApiVersionsResponse::default().with_error_code(code);
        }
    }
    response(errors::NONE)
}
