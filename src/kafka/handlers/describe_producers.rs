//! DescribeProducers (key 61): the idempotent producers each asked partition remembers (its
//! producer state: epoch, last sequence, last timestamp), read on the partition's owner
//! ([`crate::shard::calls::DescribeProducers`]). Without transactions no producer has a
//! coordinator epoch or an open transaction: both are -1, as Kafka reports them for an
//! idempotent producer. An unknown topic or partition is UNKNOWN_TOPIC_OR_PARTITION.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::Ctx;
use crate::kafka::errors;
use crate::partition::producer_state::ActiveProducer;
use crate::shard::calls::DescribeProducers;
use crate::shard::TopicPartition;

pub async fn handle(ctx: &Ctx, req: DescribeProducersRequest) -> Option<DescribeProducersResponse> {
    // Every partition's call first (each runs on its owner at once), then the answers in order.
    let mut asked = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let count = ctx.shard.catalog().topic(&name).map(|m| m.partitions);
        let calls: Vec<_> = t
            .partition_indexes
            .into_iter()
            .map(|index| {
                let known = count.is_some_and(|n| index >= 0 && index < n);
                let call = known.then(|| {
                    let shard = ctx.shard.clone();
                    let tp = TopicPartition {
                        topic: name.clone(),
                        partition: index,
                    };
                    glommio::spawn_local(async move { shard.run(DescribeProducers { tp }).await })
                });
                (index, call)
            })
            .collect();
        asked.push((t.name, calls));
    }
    let mut topics = Vec::with_capacity(asked.len());
    for (name, calls) in asked {
        let mut partitions = Vec::with_capacity(calls.len());
        for (index, call) in calls {
            let base = PartitionResponse::default().with_partition_index(index);
            let Some(call) = call else {
                partitions.push(base.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION));
                continue;
            };
            partitions.push(match call.await.unwrap_or_else(|e| Err(e.into())) {
                Ok(active) => base.with_active_producers(active.iter().map(state).collect()),
                Err(e) => base
                    .with_error_code(errors::shard_code(&e))
                    .with_error_message(Some(super::str_bytes(&e.to_string()))),
            });
        }
        topics.push(
            TopicResponse::default()
                .with_name(name)
                .with_partitions(partitions),
        );
    }
    Some(DescribeProducersResponse::default().with_topics(topics))
}

fn state(p: &ActiveProducer) -> ProducerState {
    ProducerState::default()
        .with_producer_id(ProducerId(p.producer_id))
        .with_producer_epoch(i32::from(p.epoch))
        .with_last_sequence(p.last_sequence)
        .with_last_timestamp(p.last_timestamp)
        .with_coordinator_epoch(-1)
        .with_current_txn_start_offset(-1)
}
