//! CreatePartitions (key 37): grow a topic's partition count.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::{str_bytes, Ctx};
use crate::kafka::errors;

pub async fn handle(ctx: &Ctx, req: CreatePartitionsRequest) -> Option<CreatePartitionsResponse> {
    let mut results = Vec::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut cat = ctx.shard.catalog.write().ok()?;
        let outcome = match cat.topic(&name) {
            None => Err((
                errors::UNKNOWN_TOPIC_OR_PARTITION,
                format!("unknown topic '{name}'"),
            )),
            Some(m) if t.count <= m.partitions => Err((
                kafka_protocol::error::ResponseError::InvalidPartitions.code(),
                format!(
                    "topic has {} partitions; the count can only grow",
                    m.partitions
                ),
            )),
            Some(_) if req.validate_only => Ok(()),
            Some(_) => cat
                .set_partition_count(&name, t.count)
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
