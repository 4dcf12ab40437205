//! Fetch (key 1): read whole stored batches from each partition's owner, long-poll until
//! `min_bytes` are available or `max_wait_ms` passes, and return the stored bytes unchanged.
//! Topics are named (v4–v12) or given by id (v13+). No fetch sessions: every answer carries
//! session id 0, which tells clients to send full requests (KIP-227 allows this).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};

use super::{str_bytes, Ctx};
use crate::kafka::errors;
use crate::shard::calls::{Fetch, WaitForData};
use crate::shard::{Fetched, ShardError, TopicPartition};
use crate::storage::batch::iter_batches;

/// The longest a fetch may park (Kafka clients send at most a few seconds).
const MAX_WAIT: Duration = Duration::from_secs(30);

struct Want {
    tp: TopicPartition,
    offset: i64,
    max_bytes: usize,
    /// `current_leader_epoch` (v9+, KIP-320; -1: not checked).
    epoch: i32,
}

async fn read_all(ctx: &Ctx, wants: &[Option<Want>]) -> Vec<Option<Result<Fetched, ShardError>>> {
    let tasks: Vec<_> = wants
        .iter()
        .map(|w| {
            w.as_ref().map(|w| {
                let shard = ctx.shard.clone();
                let call = Fetch {
                    tp: w.tp.clone(),
                    offset: w.offset,
                    max_bytes: w.max_bytes,
                    epoch: w.epoch,
                };
                glommio::spawn_local(async move { shard.run(call).await })
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(match t {
            None => None,
            Some(t) => Some(t.await.unwrap_or_else(|e| Err(e.into()))),
        });
    }
    out
}

/// Keeps whole batches while they fit in the request's `budget` (the very first batch of the
/// response always goes, as Kafka does so that a consumer can progress), and joins the chunks;
/// a single chunk is passed on without a copy.
fn within_budget(chunks: Vec<Bytes>, budget: &mut usize, first: &mut bool) -> Bytes {
    let mut kept: Vec<Bytes> = Vec::new();
    'chunks: for chunk in chunks {
        let mut end = 0usize;
        for (at, h) in iter_batches(&chunk) {
            let n = h.total_size();
            if !*first && n > *budget {
                if end > 0 {
                    kept.push(chunk.slice(..end));
                }
                break 'chunks;
            }
            *budget = budget.saturating_sub(n);
            *first = false;
            end = at + n;
        }
        kept.push(if end == chunk.len() {
            chunk
        } else {
            chunk.slice(..end)
        });
    }
    match kept.len() {
        0 => Bytes::new(),
        1 => kept.pop().unwrap_or_default(),
        _ => {
            let mut joined = BytesMut::with_capacity(kept.iter().map(|c| c.len()).sum());
            for c in kept {
                joined.extend_from_slice(&c);
            }
            joined.freeze()
        }
    }
}

/// The record sets of a response, which its encoding may reference instead of copying.
pub fn record_sets(resp: &FetchResponse) -> Vec<Bytes> {
    resp.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter_map(|p| p.records.clone())
        .collect()
}

fn total_bytes(results: &[Option<Result<Fetched, ShardError>>]) -> usize {
    results
        .iter()
        .flatten()
        .flatten()
        .map(|f| f.chunks.iter().map(|b| b.len()).sum::<usize>())
        .sum()
}

pub async fn handle(ctx: &Ctx, req: FetchRequest, version: i16) -> Option<FetchResponse> {
    // Resolve names (or ids) to partitions; unknown ones get an error without a shard call.
    let mut layout = Vec::new(); // (topic name, topic id, [(partition, want index or error)])
    let mut wants: Vec<Option<Want>> = Vec::new();
    let mut unknown_codes: Vec<i16> = Vec::new();
    {
        let cat = ctx.shard.catalog();
        for t in &req.topics {
            let meta = if version >= 13 {
                cat.topic_by_id(t.topic_id.as_bytes())
            } else {
                cat.topic(&t.topic.0)
            };
            let name = meta
                .map(|m| m.name.clone())
                .unwrap_or_else(|| t.topic.0.to_string());
            let mut parts = Vec::new();
            for p in &t.partitions {
                let ok = meta.is_some_and(|m| p.partition >= 0 && p.partition < m.partitions);
                if ok {
                    wants.push(Some(Want {
                        tp: TopicPartition {
                            topic: name.clone(),
                            partition: p.partition,
                        },
                        offset: p.fetch_offset,
                        max_bytes: p.partition_max_bytes.max(0) as usize,
                        epoch: p.current_leader_epoch,
                    }));
                    unknown_codes.push(errors::NONE);
                } else {
                    wants.push(None);
                    unknown_codes.push(if version >= 13 && meta.is_none() {
                        errors::UNKNOWN_TOPIC_ID
                    } else {
                        errors::UNKNOWN_TOPIC_OR_PARTITION
                    });
                }
                parts.push(p.partition);
            }
            layout.push((name, t.topic_id, parts));
        }
    }
    let min_bytes = req.min_bytes.max(0) as usize;
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let mut results = read_all(ctx, &wants).await;
    let any_error = results.iter().flatten().any(|r| r.is_err());
    if !wait.is_zero()
        && total_bytes(&results) < min_bytes.max(1)
        && !any_error
        && wants.iter().any(|w| w.is_some())
    {
        // Long poll: park on every partition; the first to see data (or the timer) wakes us.
        let (tx, rx) = glommio::channels::local_channel::new_bounded::<()>(wants.len().max(1));
        let tx = std::rc::Rc::new(tx);
        for w in wants.iter().flatten() {
            let shard = ctx.shard.clone();
            let tx = tx.clone();
            let offset = w.offset.max(0);
            let call = WaitForData {
                tp: w.tp.clone(),
                offset,
                wait,
            };
            glommio::spawn_local(async move {
                let _ = shard.run(call).await;
                let _ = tx.try_send(());
            })
            .detach();
        }
        let deadline = std::time::Instant::now() + wait;
        loop {
            let woke = futures_lite::future::or(async { rx.recv().await.is_some() }, async {
                glommio::timer::sleep(
                    deadline.saturating_duration_since(std::time::Instant::now()),
                )
                .await;
                false
            })
            .await;
            results = read_all(ctx, &wants).await;
            if !woke || total_bytes(&results) >= min_bytes || std::time::Instant::now() >= deadline
            {
                break;
            }
        }
    }

    // Enforce the request-wide max_bytes in order, always letting the first batch through.
    let mut budget = req.max_bytes.max(0) as usize;
    let mut first = true;
    let mut idx = 0;
    let mut responses = Vec::new();
    for (name, topic_id, parts) in layout {
        let mut partitions = Vec::new();
        for partition in parts {
            let result = results[idx].take();
            let code = unknown_codes[idx];
            idx += 1;
            let mut pd = PartitionData::default()
                .with_partition_index(partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1))
                .with_aborted_transactions(if req.isolation_level == 1 {
                    Some(vec![])
                } else {
                    None
                })
                .with_records(Some(Bytes::new()));
            match result {
                None => pd = pd.with_error_code(code),
                Some(Err(e)) => {
                    pd = pd.with_error_code(errors::shard_code(&e));
                    if let ShardError::Storage(crate::storage::StorageError::OffsetOutOfRange {
                        log_start,
                        log_end,
                        ..
                    }) = &e
                    {
                        pd = pd
                            .with_high_watermark(*log_end)
                            .with_last_stable_offset(*log_end)
                            .with_log_start_offset(*log_start);
                    }
                }
                Some(Ok(f)) => {
                    let records = within_budget(f.chunks, &mut budget, &mut first);
                    pd = pd
                        .with_high_watermark(f.high_watermark)
                        .with_last_stable_offset(f.high_watermark)
                        .with_log_start_offset(f.log_start)
                        .with_records(Some(records));
                }
            }
            partitions.push(pd);
        }
        responses.push(
            FetchableTopicResponse::default()
                .with_topic(TopicName(str_bytes(&name)))
                .with_topic_id(topic_id)
                .with_partitions(partitions),
        );
    }
    Some(
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(responses),
    )
}
