//! OffsetFetch (key 9): a group's committed offsets (v1–v7: one group; v8+: many; v9: with the
//! member id and epoch, checked for consumer-protocol groups: STALE_MEMBER_EPOCH,
//! UNKNOWN_MEMBER_ID; v10: topics given and answered by id, an unknown id is UNKNOWN_TOPIC_ID
//! for each of its partitions, and a committed topic that no longer exists is left out of an
//! answer of all topics, as it has no id). A partition without a commit answers offset -1, as
//! Kafka does.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};

use super::{group_call, str_bytes, Ctx};
use crate::group::offsets::{Committed, OffsetKey};
use crate::group::{GroupOp, GroupReply};
use crate::kafka::errors;

/// (topic, [(partition, committed or none)])
type Answer = Vec<(String, Vec<(i32, Option<Committed>)>)>;

/// The offsets of `group` for the wanted topics (all committed ones when `None`).
async fn lookup(
    ctx: &Ctx,
    group: &str,
    member: Option<(Option<String>, i32)>,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> Result<Answer, i16> {
    let op = match member {
        None => GroupOp::FetchOffsets {
            group: group.to_string(),
        },
        Some((member_id, member_epoch)) => GroupOp::FetchOffsetsAs {
            group: group.to_string(),
            member_id,
            member_epoch,
        },
    };
    let all: Vec<(OffsetKey, Committed)> = match group_call::call(ctx, op).await? {
        GroupReply::Offsets(v) => v,
        GroupReply::Status(Err(e)) => return Err(errors::group_code(&e)),
        _ => return Err(errors::UNKNOWN_SERVER_ERROR),
    };
    let find = |t: &str, p: i32| {
        all.iter()
            .find(|(k, _)| k.1 == t && k.2 == p)
            .map(|(_, c)| c.clone())
    };
    Ok(match wanted {
        Some(w) => w
            .into_iter()
            .map(|(t, ps)| {
                let parts = ps.into_iter().map(|p| (p, find(&t, p))).collect();
                (t, parts)
            })
            .collect(),
        None => {
            let mut out: Answer = Vec::new();
            for ((_, t, p), c) in all.iter() {
                match out.last_mut() {
                    Some((last, parts)) if last == t => parts.push((*p, Some(c.clone()))),
                    _ => out.push((t.clone(), vec![(*p, Some(c.clone()))])),
                }
            }
            out
        }
    })
}

fn fields(c: &Option<Committed>) -> (i64, i32, Option<String>) {
    match c {
        Some(c) => (c.offset, c.leader_epoch, c.metadata.clone()),
        None => (-1, -1, Some(String::new())),
    }
}

/// The first version that names topics by id (KIP-848).
const TOPIC_IDS_FROM: i16 = 10;

pub async fn handle(
    ctx: &Ctx,
    req: OffsetFetchRequest,
    version: i16,
) -> Option<OffsetFetchResponse> {
    if version >= 8 {
        let mut groups = Vec::new();
        let by_id = version >= TOPIC_IDS_FROM;
        for g in req.groups {
            // v10: ids to names; the unknown ids are answered apart.
            let mut unknown: Vec<(uuid::Uuid, Vec<i32>)> = Vec::new();
            let wanted = g.topics.map(|ts| {
                let cat = ctx.shard.catalog();
                ts.into_iter()
                    .filter_map(|t| {
                        if !by_id {
                            return Some((t.name.0.to_string(), t.partition_indexes));
                        }
                        match cat.topic_by_id(t.topic_id.as_bytes()) {
                            Some(m) => Some((m.name.clone(), t.partition_indexes)),
                            None => {
                                unknown.push((t.topic_id, t.partition_indexes));
                                None
                            }
                        }
                    })
                    .collect()
            });
            let out = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            let member =
                (version >= 9).then(|| (g.member_id.map(|m| m.to_string()), g.member_epoch));
            groups.push(match lookup(ctx, &g.group_id.0, member, wanted).await {
                Err(code) => out.with_error_code(code),
                Ok(answer) => out.with_topics({
                    let cat = ctx.shard.catalog();
                    let id_of = |t: &str| cat.topic(t).map(|m| uuid::Uuid::from_bytes(m.id));
                    let mut topics: Vec<OffsetFetchResponseTopics> = answer
                        .into_iter()
                        .filter(|(t, _)| !by_id || id_of(t).is_some())
                        .map(|(t, parts)| {
                            let partitions = parts
                                .iter()
                                .map(|(p, c)| {
                                    let (offset, epoch, meta) = fields(c);
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(*p)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(meta.map(|m| str_bytes(&m)))
                                })
                                .collect();
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(str_bytes(&t)))
                                .with_topic_id(id_of(&t).unwrap_or_default())
                                .with_partitions(partitions)
                        })
                        .collect();
                    topics.extend(unknown.into_iter().map(|(id, parts)| {
                        let partitions = parts
                            .into_iter()
                            .map(|p| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(-1)
                                    .with_committed_leader_epoch(-1)
                                    .with_metadata(Some(str_bytes("")))
                                    .with_error_code(errors::UNKNOWN_TOPIC_ID)
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_topic_id(id)
                            .with_partitions(partitions)
                    }));
                    topics
                }),
            });
        }
        return Some(OffsetFetchResponse::default().with_groups(groups));
    }
    let wanted = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    Some(match lookup(ctx, &req.group_id.0, None, wanted).await {
        Err(code) => {
            OffsetFetchResponse::default().with_error_code(if version >= 2 { code } else { 0 })
        }
        Ok(answer) => OffsetFetchResponse::default().with_topics(
            answer
                .into_iter()
                .map(|(t, parts)| {
                    let partitions = parts
                        .iter()
                        .map(|(p, c)| {
                            let (offset, epoch, meta) = fields(c);
                            let r = OffsetFetchResponsePartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(offset)
                                .with_metadata(meta.map(|m| str_bytes(&m)));
                            if version >= 5 {
                                r.with_committed_leader_epoch(epoch)
                            } else {
                                r
                            }
                        })
                        .collect();
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(str_bytes(&t)))
                        .with_partitions(partitions)
                })
                .collect(),
        ),
    })
}
