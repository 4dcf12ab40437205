//! FindCoordinator (key 10): a group's coordinator is the leader of the group's
//! `__consumer_offsets` partition (a one-node broker coordinates every group), v0–v3 one key,
//! v4+ many. Transactions and share groups (KIP-932, key type 2 from v6) are not supported,
//! so their coordinators are not available; a key type Kafka does not know is an invalid
//! request. v5 only adds TRANSACTION_ABORTABLE, which comes with transactions.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::{str_bytes, Ctx};
use crate::kafka::errors;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
/// Share groups (KIP-932), from v6.
const KEY_TYPE_SHARE: i8 = 2;

pub async fn handle(
    ctx: &Ctx,
    req: FindCoordinatorRequest,
    version: i16,
) -> Option<FindCoordinatorResponse> {
    let b = &ctx.broker;
    let offsets_topic = super::group_call::ensure_offsets_topic(ctx).await;
    let view = ctx.shard.cluster_view().await;
    let me = (
        b.node_id,
        b.advertised_host.clone(),
        b.advertised_port as i32,
    );
    // Where a group's coordinator is: this broker, or the leader of its partition.
    let locate = |key: &StrBytes| -> Option<(i32, String, i32)> {
        let Some(view) = &view else {
            return Some(me.clone());
        };
        let tp = crate::group::group_partition(key);
        let l = view.leaders.get(&tp)?;
        if l.role == crate::replication::Role::Leader {
            return Some(me.clone());
        }
        let leader = crate::shard::replicas::broker_of(l.leader?);
        let (_, listener) = view.listeners.iter().find(|(id, _)| *id == leader)?;
        let (host, port) = listener.rsplit_once(':')?;
        Some((
            leader,
            host.trim_matches(['[', ']']).to_string(),
            port.parse().ok()?,
        ))
    };
    let answer = |key: &StrBytes| -> (i16, Option<String>) {
        match req.key_type {
            KEY_TYPE_GROUP => {}
            KEY_TYPE_TRANSACTION => {
                return (
                    errors::COORDINATOR_NOT_AVAILABLE,
                    Some("transactions are not supported".into()),
                )
            }
            KEY_TYPE_SHARE if version >= 6 => {
                return (
                    errors::COORDINATOR_NOT_AVAILABLE,
                    Some("share groups are not supported".into()),
                )
            }
            other => {
                return (
                    errors::INVALID_REQUEST,
                    Some(format!("unknown coordinator key type {other}")),
                )
            }
        }
        if key.is_empty() {
            return (errors::INVALID_GROUP_ID, Some("empty group id".into()));
        }
        match offsets_topic {
            Ok(()) if locate(key).is_none() => (
                errors::COORDINATOR_NOT_AVAILABLE,
                Some("the group's partition has no leader yet".into()),
            ),
            Ok(()) => (errors::NONE, None),
            Err(code) => (
                code,
                Some("the group coordinator's topic is unavailable".into()),
            ),
        }
    };
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|k| {
                let (code, msg) = answer(k);
                let (node, host, port) = match locate(k) {
                    Some(at) if code == errors::NONE => at,
                    _ => (-1, String::new(), -1),
                };
                Coordinator::default()
                    .with_key(k.clone())
                    .with_node_id(BrokerId(node))
                    .with_host(str_bytes(&host))
                    .with_port(port)
                    .with_error_code(code)
                    .with_error_message(msg.map(|m| str_bytes(&m)))
            })
            .collect();
        return Some(FindCoordinatorResponse::default().with_coordinators(coordinators));
    }
    let (code, msg) = answer(&req.key);
    let resp = FindCoordinatorResponse::default().with_error_code(code);
    let resp = if version >= 1 {
        resp.with_error_message(msg.map(|m| str_bytes(&m)))
    } else {
        resp
    };
    Some(
        if let (errors::NONE, Some((node, host, port))) = (code, locate(&req.key)) {
            resp.with_node_id(BrokerId(node))
                .with_host(str_bytes(&host))
                .with_port(port)
        } else {
            resp.with_node_id(BrokerId(-1))
                .with_host(str_bytes(""))
                .with_port(-1)
        },
    )
}
