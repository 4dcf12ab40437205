//! InitProducerId (key 22): a producer id and epoch for an idempotent producer. Re-initialising
//! an existing id (KIP-360) bumps its epoch. Transactions are not supported yet: a request with
//! a transactional id is refused.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::Ctx;
use crate::kafka::errors;

pub async fn handle(ctx: &Ctx, req: InitProducerIdRequest) -> Option<InitProducerIdResponse> {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.is_some() {
        return Some(resp.with_error_code(errors::INVALID_REQUEST));
    }
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return Some(
            resp.with_producer_id(req.producer_id)
                .with_producer_epoch(req.producer_epoch + 1),
        );
    }
    let allocated = ctx.shard.next_producer_id().await;
    Some(match allocated {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => resp.with_error_code(errors::catalog_code(&e)),
    })
}
