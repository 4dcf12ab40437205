//! Heartbeat (key 12, v0–v4): keeps a member's session alive and tells it when the group is
//! rebalancing (REBALANCE_IN_PROGRESS: rejoin).

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::{group_call, Ctx};
use crate::group::{GroupOp, GroupReply};
use crate::kafka::errors;

pub async fn handle(ctx: &Ctx, req: HeartbeatRequest) -> Option<HeartbeatResponse> {
    let op = GroupOp::Heartbeat {
        group: req.group_id.0.to_string(),
        generation: req.generation_id,
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
    };
    let code = match group_call::call(ctx, op).await {
        Err(code) => code,
        Ok(GroupReply::Status(r)) => errors::group_result(r.err()),
        Ok(_) => errors::UNKNOWN_SERVER_ERROR,
    };
    Some(HeartbeatResponse::default().with_error_code(code))
}
