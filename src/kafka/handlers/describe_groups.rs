//! DescribeGroups (key 15, v0–v6): state, protocol and members (with their subscription and
//! assignment bytes) of each group asked for. A group that does not exist is "Dead", as in
//! Kafka, and from v6 on also GROUP_ID_NOT_FOUND (KIP-1043). As in Kafka, only a Stable group
//! shows its protocol and its members' subscriptions (metadata): while it rebalances they are
//! not settled and are left empty; each member's current assignment is always shown.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::{group_call, str_bytes, Ctx};
use crate::group::{GroupOp, GroupReply, GroupSummary};
use crate::kafka::errors;

/// Operations bitfield when asked (no ACLs: every group operation is allowed).
const ALL_GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub async fn handle(
    ctx: &Ctx,
    req: DescribeGroupsRequest,
    version: i16,
) -> Option<DescribeGroupsResponse> {
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
            Ok(GroupReply::Described(g)) => not_found(described(out, g), version),
            Ok(_) => out.with_error_code(errors::UNKNOWN_SERVER_ERROR),
        });
    }
    Some(DescribeGroupsResponse::default().with_groups(groups))
}

/// From v6 on, a group that does not exist (Dead) is also GROUP_ID_NOT_FOUND.
fn not_found(d: DescribedGroup, version: i16) -> DescribedGroup {
    if version < 6 || d.group_state.as_str() != "Dead" {
        return d;
    }
    let msg = format!("group '{}' not found", d.group_id.0.as_str());
    d.with_error_code(kafka_protocol::error::ResponseError::GroupIdNotFound.code())
        .with_error_message(Some(str_bytes(&msg)))
}

/// A group's description; the protocol and the members' metadata only when it is Stable.
fn described(out: DescribedGroup, g: GroupSummary) -> DescribedGroup {
    let stable = g.state == "Stable";
    out.with_group_state(str_bytes(g.state))
        .with_protocol_type(str_bytes(&g.protocol_type))
        .with_protocol_data(str_bytes(if stable { &g.protocol } else { "" }))
        .with_members(
            g.members
                .into_iter()
                .map(|m| {
                    let member = DescribedGroupMember::default()
                        .with_member_id(str_bytes(&m.member_id))
                        .with_group_instance_id(m.instance_id.map(|i| str_bytes(&i)))
                        .with_client_id(str_bytes(&m.client_id))
                        .with_client_host(str_bytes(&m.client_host))
                        .with_member_assignment(m.assignment);
                    if stable {
                        member.with_member_metadata(m.metadata)
                    } else {
                        member
                    }
                })
                .collect(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::MemberSummary;
    use bytes::Bytes;

    fn group(state: &'static str) -> GroupSummary {
        GroupSummary {
            group: "g".into(),
            state,
            group_type: "classic",
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            members: vec![MemberSummary {
                member_id: "m-1".into(),
                instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                metadata: Bytes::from_static(b"subscription"),
                assignment: Bytes::from_static(b"assignment"),
            }],
        }
    }

    #[test]
    fn a_dead_group_is_not_found_from_v6_on() {
        let dead = || described(DescribedGroup::default(), group("Dead"));
        assert_eq!(not_found(dead(), 5).error_code, 0);
        let d = not_found(dead(), 6);
        assert_eq!(
            d.error_code,
            kafka_protocol::error::ResponseError::GroupIdNotFound.code()
        );
        assert_eq!(d.group_state.as_str(), "Dead");
        assert_eq!(
            not_found(described(DescribedGroup::default(), group("Empty")), 6).error_code,
            0
        );
    }

    #[test]
    fn a_stable_group_shows_its_protocol_and_member_bytes() {
        let d = described(DescribedGroup::default(), group("Stable"));
        assert_eq!(d.protocol_data.as_str(), "range");
        assert_eq!(&d.members[0].member_metadata[..], b"subscription");
        assert_eq!(&d.members[0].member_assignment[..], b"assignment");
    }

    #[test]
    fn a_rebalancing_group_hides_its_protocol_and_subscriptions_as_kafka_does() {
        for state in ["CompletingRebalance", "PreparingRebalance"] {
            let d = described(DescribedGroup::default(), group(state));
            assert_eq!(d.group_state.as_str(), state);
            assert_eq!(d.protocol_type.as_str(), "consumer");
            assert_eq!(d.protocol_data.as_str(), "");
            assert_eq!(d.members[0].member_id.as_str(), "m-1");
            assert!(d.members[0].member_metadata.is_empty());
            assert_eq!(&d.members[0].member_assignment[..], b"assignment");
        }
    }
}
