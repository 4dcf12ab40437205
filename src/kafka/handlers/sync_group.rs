//! SyncGroup (key 14, v0–v5): the leader hands out the assignment; every member waits for
//! its share. v5 carries the protocol type and name, checked against the group's.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::{group_call, str_bytes, Ctx};
use crate::group::coordinator::SyncRequest;
use crate::group::{GroupOp, GroupReply};
use crate::kafka::errors;

pub async fn handle(ctx: &Ctx, req: SyncGroupRequest) -> Option<SyncGroupResponse> {
    let sync = SyncRequest {
        group: req.group_id.0.to_string(),
        generation: req.generation_id,
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        protocol_type: req.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: req.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let resp = SyncGroupResponse::default();
    Some(match group_call::call(ctx, GroupOp::Sync(sync)).await {
        Err(code) => resp.with_error_code(code),
        Ok(GroupReply::Sync(o)) => resp
            .with_error_code(errors::group_result(o.error))
            .with_protocol_type(o.protocol_type.map(|p| str_bytes(&p)))
            .with_protocol_name(o.protocol_name.map(|p| str_bytes(&p)))
            .with_assignment(o.assignment),
        Ok(_) => resp.with_error_code(errors::UNKNOWN_SERVER_ERROR),
    })
}
