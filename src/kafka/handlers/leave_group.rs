//! LeaveGroup (key 13, v0–v5): one member (v0–v2) or a batch of members, by member id or by
//! static instance id (v3+, KIP-345), leave; the rest of the group rebalances.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::{group_call, Ctx};
use crate::group::{GroupOp, GroupReply};
use crate::kafka::errors;

pub async fn handle(ctx: &Ctx, req: LeaveGroupRequest, version: i16) -> Option<LeaveGroupResponse> {
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let op = GroupOp::Leave {
        group: req.group_id.0.to_string(),
        members,
    };
    let resp = LeaveGroupResponse::default();
    Some(match group_call::call(ctx, op).await {
        Err(code) => resp.with_error_code(code),
        Ok(GroupReply::Left(results)) if version >= 3 => {
            let members = req
                .members
                .into_iter()
                .zip(results)
                .map(|(m, r)| {
                    MemberResponse::default()
                        .with_member_id(m.member_id)
                        .with_group_instance_id(m.group_instance_id)
                        .with_error_code(errors::group_result(r.err()))
                })
                .collect();
            resp.with_members(members)
        }
        Ok(GroupReply::Left(results)) => resp.with_error_code(errors::group_result(
            results.into_iter().find_map(|r| r.err()),
        )),
        Ok(_) => resp.with_error_code(errors::UNKNOWN_SERVER_ERROR),
    })
}
