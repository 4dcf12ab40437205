//! DeleteGroups (key 42, v0–v3): deletes empty groups with their committed offsets
//! (tombstones in `__consumer_offsets`); a group with members is NON_EMPTY_GROUP. v3's error
//! message stays null, as Kafka 4.4 leaves it for NON_EMPTY_GROUP and GROUP_ID_NOT_FOUND
//! (compared by the differential tests).

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::{group_call, Ctx};
use crate::group::{GroupOp, GroupReply};
use crate::kafka::errors;

pub async fn handle(ctx: &Ctx, req: DeleteGroupsRequest) -> Option<DeleteGroupsResponse> {
    let mut results = Vec::new();
    for id in req.groups_names {
        let op = GroupOp::Delete {
            group: id.0.to_string(),
        };
        let code = match group_call::call(ctx, op).await {
            Err(code) => code,
            Ok(GroupReply::Status(r)) => errors::group_result(r.err()),
            Ok(_) => errors::UNKNOWN_SERVER_ERROR,
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code),
        );
    }
    Some(DeleteGroupsResponse::default().with_results(results))
}
