//! DescribeCluster (key 60): this one broker, which is also the controller. Asked for
//! controller endpoints (v1 `endpoint_type` 2), a broker answers MISMATCHED_ENDPOINT_TYPE, as
//! Kafka's brokers do: controllers are reached at their own listener.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{str_bytes, Ctx};

/// `endpoint_type` of brokers (v0 asks for nothing else).
const ENDPOINT_BROKERS: i8 = 1;

pub async fn handle(ctx: &Ctx, req: DescribeClusterRequest) -> Option<DescribeClusterResponse> {
    Some(response(ctx.broker.as_ref(), req.endpoint_type))
}

fn response(b: &crate::config::BrokerConfig, endpoint_type: i8) -> DescribeClusterResponse {
    if endpoint_type != ENDPOINT_BROKERS {
        return DescribeClusterResponse::default()
            .with_error_code(ResponseError::MismatchedEndpointType.code())
            .with_error_message(Some(str_bytes(&format!(
                "endpoint type {endpoint_type} was requested, but this is a broker endpoint"
            ))))
            .with_endpoint_type(endpoint_type);
    }
    let broker = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(b.node_id))
        .with_host(str_bytes(&b.advertised_host))
        .with_port(b.advertised_port as i32);
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(&b.cluster_id))
        .with_controller_id(BrokerId(b.node_id))
        .with_brokers(vec![broker])
        .with_endpoint_type(ENDPOINT_BROKERS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokers_are_described_and_controllers_are_not_asked_of_a_broker() {
        let b = crate::config::Settings::default()
            .resolve()
            .expect("defaults");
        let r = response(&b, ENDPOINT_BROKERS);
        assert_eq!((r.error_code, r.brokers.len()), (0, 1));
        let r = response(&b, 2);
        assert_eq!(r.error_code, ResponseError::MismatchedEndpointType.code());
        assert!(r.brokers.is_empty());
    }
}
