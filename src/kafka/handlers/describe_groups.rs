//! DescribeGroups (key 15, v0–v5): state, protocol and members (with their subscription and
//! assignment bytes) of each group asked for. A group that does not exist is "Dead", as in
//! Kafka.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::{group_call, str_bytes, Ctx};
use crate::group::{GroupOp, GroupReply};
use crate::kafka::errors;

/// Operations bitfield when asked (no ACLs: every group operation is allowed).
const ALL_GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub async fn handle(ctx: &Ctx, req: DescribeGroupsRequest) -> Option<DescribeGroupsResponse> {
    let mut groups = Vec::new();
    for id in req.groups {
        let op = GroupOp::Describe {
            group: id.0.to_string(),
        };
        let out = DescribedGroup::default().with_group_id(id.clone());
        let out = if req.include_authorized_operations {
            out.with_authorized_operations(ALL_GROUP_OPERATIONS)
        } else {
            out.with_authorized_operations(i32::MIN)
        };
        groups.push(match group_call::call(ctx, op).await {
            Err(code) => out.with_error_code(code),
            Ok(GroupReply::Described(g)) => out
                .with_group_state(str_bytes(g.state))
                .with_protocol_type(str_bytes(&g.protocol_type))
                .with_protocol_data(str_bytes(&g.protocol))
                .with_members(
                    g.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(str_bytes(&m.member_id))
                                .with_group_instance_id(m.instance_id.map(|i| str_bytes(&i)))
                                .with_client_id(str_bytes(&m.client_id))
                                .with_client_host(str_bytes(&m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                ),
            Ok(_) => out.with_error_code(errors::UNKNOWN_SERVER_ERROR),
        });
    }
    Some(DescribeGroupsResponse::default().with_groups(groups))
}
