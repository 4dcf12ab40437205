//! FindCoordinator (key 10): this broker coordinates every group (v0–v3 one key, v4+ many).
//! Transactions and share groups (KIP-932, key type 2 from v6) are not supported, so their
//! coordinators are not available; a key type Kafka does not know is an invalid request. v5
//! only adds TRANSACTION_ABORTABLE, which comes with transactions.

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
                Coordinator::default()
                    .with_key(k.clone())
                    .with_node_id(BrokerId(if code == errors::NONE { b.node_id } else { -1 }))
                    .with_host(str_bytes(if code == errors::NONE {
                        &b.advertised_host
                    } else {
                        ""
                    }))
                    .with_port(if code == errors::NONE {
                        b.advertised_port as i32
                    } else {
                        -1
                    })
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
    Some(if code == errors::NONE {
        resp.with_node_id(BrokerId(b.node_id))
            .with_host(str_bytes(&b.advertised_host))
            .with_port(b.advertised_port as i32)
    } else {
        resp.with_node_id(BrokerId(-1))
            .with_host(str_bytes(""))
            .with_port(-1)
    })
}
