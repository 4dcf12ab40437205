//! ApiVersions (key 18): which APIs and versions this broker speaks. An unknown request
//! version gets the v0-format fallback answer with UNSUPPORTED_VERSION (see the server).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::SUPPORTED;
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

pub fn handle(_req: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    response(errors::NONE)
}
