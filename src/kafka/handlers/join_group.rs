//! JoinGroup (key 11, v0–v9): a member joins (or rejoins) a group and waits for the
//! rebalance to complete. v0 has no rebalance timeout (the session timeout serves); v4+ new
//! members first get their id with MEMBER_ID_REQUIRED (KIP-394); v5+ carry the static
//! `group.instance.id` (KIP-345); v9 lets a static leader skip a needless assignment (KIP-814).

use std::time::Duration;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::{group_call, str_bytes, Client, Ctx};
use crate::group::coordinator::JoinRequest;
use crate::group::{GroupOp, GroupReply};
use crate::kafka::errors;

pub async fn handle(
    ctx: &Ctx,
    client: &Client<'_>,
    req: JoinGroupRequest,
    version: i16,
) -> Option<JoinGroupResponse> {
    let ms = |v: i32| Duration::from_millis(v.max(0) as u64);
    let rebalance = if version >= 1 {
        req.rebalance_timeout_ms
    } else {
        req.session_timeout_ms
    };
    let join = JoinRequest {
        group: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: client.id.to_string(),
        client_host: client.host.to_string(),
        session_timeout: ms(req.session_timeout_ms),
        rebalance_timeout: ms(rebalance),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let resp = JoinGroupResponse::default()
        .with_generation_id(-1)
        .with_member_id(req.member_id.clone());
    Some(match group_call::call(ctx, GroupOp::Join(join)).await {
        Err(code) => resp.with_error_code(code),
        Ok(GroupReply::Join(o)) => {
            let members = o
                .members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(&id))
                        .with_group_instance_id(instance.map(|i| str_bytes(&i)))
                        .with_metadata(metadata)
                })
                .collect();
            resp.with_error_code(errors::group_result(o.error))
                .with_generation_id(o.generation)
                .with_protocol_type(o.protocol_type.map(|p| str_bytes(&p)))
                .with_protocol_name(Some(str_bytes(&o.protocol_name.unwrap_or_default())))
                .with_leader(str_bytes(&o.leader))
                .with_skip_assignment(o.skip_assignment)
                .with_member_id(str_bytes(&o.member_id))
                .with_members(members)
        }
        Ok(_) => resp.with_error_code(errors::UNKNOWN_SERVER_ERROR),
    })
}
