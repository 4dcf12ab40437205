//! DescribeCluster (key 60): this one broker, which is also the controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::{str_bytes, Ctx};

pub async fn handle(ctx: &Ctx, _req: DescribeClusterRequest) -> Option<DescribeClusterResponse> {
    let b = &ctx.broker;
    let broker = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(b.node_id))
        .with_host(str_bytes(&b.advertised_host))
        .with_port(b.advertised_port as i32);
    Some(
        DescribeClusterResponse::default()
            .with_cluster_id(str_bytes(&b.cluster_id))
            .with_controller_id(BrokerId(b.node_id))
            .with_brokers(vec![broker])
            .with_endpoint_type(1),
    )
}
