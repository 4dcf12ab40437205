//! ConsumerGroupHeartbeat (key 68, v0–v1, KIP-848): a consumer-protocol member joins
//! (epoch 0), heartbeats, reconciles and leaves (epoch -1; -2 for a static member leaving for
//! a while) in one API; the coordinator answers with its member epoch and, when it changed,
//! its assignment. v0 members get their member id from the broker, v1 members bring their
//! own (KIP-1082). Only the translation lives here: the state machine is
//! [`crate::group::consumer`].

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use super::{group_call, str_bytes, Client, Ctx};
use crate::group::consumer::{self, HeartbeatRequest};
use crate::group::{GroupOp, GroupReply};
use crate::kafka::errors;

pub async fn handle(
    ctx: &Ctx,
    client: &Client<'_>,
    req: ConsumerGroupHeartbeatRequest,
    version: i16,
) -> Option<ConsumerGroupHeartbeatResponse> {
    let owned = req.topic_partitions.map(|tps| {
        let mut a = consumer::Assignment::new();
        for tp in tps {
            a.entry(tp.topic_id).or_default().extend(tp.partitions);
        }
        a.retain(|_, s| !s.is_empty());
        a
    });
    let op = GroupOp::ConsumerHeartbeat(Box::new(HeartbeatRequest {
        group: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.0.to_string()).collect()),
        subscribed_topic_regex: req.subscribed_topic_regex.map(|s| s.to_string()),
        server_assignor: req.server_assignor.map(|s| s.to_string()),
        owned,
        client_id: client.id.to_string(),
        client_host: client.host.to_string(),
        client_generates_id: version >= 1,
    }));
    let error = |code: i16, message: Option<String>| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code)
            .with_error_message(message.map(|m| str_bytes(&m)))
            .with_member_epoch(-1)
    };
    Some(match group_call::call(ctx, op).await {
        Err(code) => error(code, None),
        Ok(GroupReply::ConsumerHeartbeat(Err(r))) => {
            error(errors::group_code(&r.error), Some(r.message))
        }
        Ok(GroupReply::ConsumerHeartbeat(Ok(o))) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str_bytes(&o.member_id)))
            .with_member_epoch(o.member_epoch)
            .with_heartbeat_interval_ms(o.heartbeat_interval_ms)
            .with_assignment(o.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(t, ps)| {
                            TopicPartitions::default()
                                .with_topic_id(t)
                                .with_partitions(ps.into_iter().collect())
                        })
                        .collect(),
                )
            })),
        Ok(_) => error(errors::UNKNOWN_SERVER_ERROR, None),
    })
}
