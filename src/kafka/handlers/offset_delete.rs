//! OffsetDelete (key 47, v0): deletes committed offsets of a group for partitions of topics
//! the group does not consume right now (GROUP_SUBSCRIBED_TO_TOPIC otherwise).

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, TopicName};

use super::{group_call, str_bytes, Ctx};
use crate::group::{GroupOp, GroupReply};
use crate::kafka::errors;

pub async fn handle(ctx: &Ctx, req: OffsetDeleteRequest) -> Option<OffsetDeleteResponse> {
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let op = GroupOp::DeleteOffsets {
        group: req.group_id.0.to_string(),
        partitions,
    };
    let resp = OffsetDeleteResponse::default();
    let results = match group_call::call(ctx, op).await {
        Err(code) => return Some(resp.with_error_code(code)),
        Ok(GroupReply::OffsetsDeleted(Err(e))) => {
            return Some(resp.with_error_code(errors::group_code(&e)))
        }
        Ok(GroupReply::OffsetsDeleted(Ok(r))) => r,
        Ok(_) => return Some(resp.with_error_code(errors::UNKNOWN_SERVER_ERROR)),
    };
    let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
    for (t, p, r) in results {
        let part = OffsetDeleteResponsePartition::default()
            .with_partition_index(p)
            .with_error_code(errors::group_result(r.err()));
        match topics.iter_mut().find(|x| x.name.0.as_str() == t) {
            Some(x) => x.partitions.push(part),
            None => topics.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(TopicName(str_bytes(&t)))
                    .with_partitions(vec![part]),
            ),
        }
    }
    Some(resp.with_topics(topics))
}
