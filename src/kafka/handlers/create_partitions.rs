//! CreatePartitions (key 37): grow a topic's partition count.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::{str_bytes, Ctx};
use crate::kafka::errors;

pub async fn handle(ctx: &Ctx, req: CreatePartitionsRequest) -> Option<CreatePartitionsResponse> {
    let mut results = Vec::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let count = ctx.shard.catalog().topic(&name).map(|m| m.partitions);
        let outcome = match count {
            None => Err((
                errors::UNKNOWN_TOPIC_OR_PARTITION,
                format!("unknown topic '{name}'"),
            )),
            Some(n) if t.count <= n => Err((
                kafka_protocol::error::ResponseError::InvalidPartitions.code(),
                format!("topic has {n} partitions; the count can only grow"),
            )),
            Some(_) if req.validate_only => Ok(()),
            Some(_) => ctx
                .shard
                .set_partition_count(name.clone(), t.count)
                .await
                .map(|_| ())
                .map_err(|e| (errors::catalog_code(&e), e.to_string())),
        };
        let mut r = CreatePartitionsTopicResult::default().with_name(t.name);
        if let Err((code, msg)) = outcome {
            r = r
                .with_error_code(code)
                .with_error_message(Some(str_bytes(&msg)));
        }
        results.push(r);
    }
    Some(CreatePartitionsResponse::default().with_results(results))
}
