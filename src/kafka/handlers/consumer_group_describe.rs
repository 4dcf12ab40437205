//! ConsumerGroupDescribe (key 69, v0–v1, KIP-848): a consumer-protocol group's state, epochs,
//! assignor and members with their current and target assignments. A group that does not
//! exist, or is a classic group, gets GROUP_ID_NOT_FOUND, as in Kafka.

use std::collections::HashMap;

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};

use super::{group_call, str_bytes, Ctx};
use crate::group::consumer::{self, TopicId};
use crate::group::{GroupOp, GroupReply};
use crate::kafka::errors;

/// Operations bitfield when asked (no ACLs: every group operation is allowed).
const ALL_GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);
/// `MemberType` (v1): a member of the consumer protocol.
const CONSUMER_MEMBER: i8 = 1;

fn assignment(a: &consumer::Assignment, names: &HashMap<TopicId, String>) -> Assignment {
    Assignment::default().with_topic_partitions(
        a.iter()
            .map(|(t, ps)| {
                TopicPartitions::default()
                    .with_topic_id(*t)
                    .with_topic_name(TopicName(str_bytes(
                        names.get(t).map(String::as_str).unwrap_or_default(),
                    )))
                    .with_partitions(ps.iter().copied().collect())
            })
            .collect(),
    )
}

pub async fn handle(
    ctx: &Ctx,
    req: ConsumerGroupDescribeRequest,
) -> Option<ConsumerGroupDescribeResponse> {
    let mut groups = Vec::new();
    for id in req.group_ids {
        let op = GroupOp::ConsumerDescribe {
            group: id.0.to_string(),
        };
        let out = DescribedGroup::default()
            .with_group_id(id.clone())
            .with_authorized_operations(if req.include_authorized_operations {
                ALL_GROUP_OPERATIONS
            } else {
                i32::MIN
            });
        groups.push(match group_call::call(ctx, op).await {
            Err(code) => out.with_error_code(code),
            Ok(GroupReply::ConsumerDescribed(Err(e))) => out
                .with_error_code(errors::group_code(&e))
                .with_error_message(Some(str_bytes(&format!(
                    "Group {} not found.",
                    id.0.as_str()
                )))),
            Ok(GroupReply::ConsumerDescribed(Ok(d))) => out
                .with_group_state(str_bytes(d.state))
                .with_group_epoch(d.epoch)
                .with_assignment_epoch(d.assignment_epoch)
                .with_assignor_name(str_bytes(&d.assignor))
                .with_members(
                    d.members
                        .iter()
                        .map(|(m, target)| {
                            Member::default()
                                .with_member_id(str_bytes(&m.id))
                                .with_instance_id(m.instance_id.as_deref().map(str_bytes))
                                .with_rack_id(m.rack_id.as_deref().map(str_bytes))
                                .with_member_epoch(m.epoch)
                                .with_client_id(str_bytes(&m.client_id))
                                .with_client_host(str_bytes(&m.client_host))
                                .with_subscribed_topic_names(
                                    m.subscribed_topics
                                        .iter()
                                        .map(|t| TopicName(str_bytes(t)))
                                        .collect(),
                                )
                                .with_subscribed_topic_regex(
                                    m.subscribed_regex.as_deref().map(str_bytes),
                                )
                                .with_assignment(assignment(&m.assigned, &d.topic_names))
                                .with_target_assignment(assignment(target, &d.topic_names))
                                .with_member_type(CONSUMER_MEMBER)
                        })
                        .collect(),
                ),
            Ok(_) => out.with_error_code(errors::UNKNOWN_SERVER_ERROR),
        });
    }
    Some(ConsumerGroupDescribeResponse::default().with_groups(groups))
}
