//! Request dispatch and the table of supported API versions. Each API has its own file.

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::config::BrokerConfig;
use crate::kafka::response::ResponseBuf;
use crate::shard::Shard;

pub mod alter_configs;
pub mod alter_replica_log_dirs;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_topic_partitions;
pub mod elect_leaders;
pub mod fetch;
pub mod find_coordinator;
pub mod group_call;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_config_resources;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;

/// Who sent a request: its client id (request header) and address (Kafka's "/ip" form).
/// Borrowed from the request header and the connection: built for every request, it must not
/// allocate.
pub struct Client<'a> {
    pub id: &'a str,
    pub host: &'a str,
}

/// What a handler can reach: its core's shard and the broker settings.
pub struct Ctx {
    pub shard: Rc<Shard>,
    pub broker: Arc<BrokerConfig>,
    /// Produce requests answered on this core (drives the response-dropping fault injection).
    pub produced: std::cell::Cell<u64>,
}

/// The APIs Strata implements and the versions it accepts (each within what the codec knows).
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 11),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 5),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::OffsetCommit, 2, 10),
    (ApiKey::OffsetFetch, 1, 10),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 3),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 5),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::ListConfigResources, 0, 1),
    (ApiKey::AlterReplicaLogDirs, 1, 2),
    (ApiKey::ElectLeaders, 0, 2),
];

/// The supported version range of an API, if Strata implements it.
pub fn supported(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|(_, lo, hi)| (*lo, *hi))
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("cannot encode {api:?} v{version} response: {reason}")]
    Encode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
}

/// Decodes a request body, runs the handler and appends the encoded response body to `out`.
/// `Ok(false)` means the request gets no response (Produce with acks=0).
async fn run<Req, Resp, F, Fut>(
    api: ApiKey,
    version: i16,
    body: &mut Bytes,
    out: &mut ResponseBuf,
    f: F,
) -> Result<bool, DispatchError>
where
    Req: Decodable,
    Resp: Encodable,
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Option<Resp>>,
{
    run_sharing(api, version, body, out, f, |_| Vec::new()).await
}

/// [`run`], where `shared` names the record sets of the response that the response may
/// reference instead of copying (see [`ResponseBuf`]).
async fn run_sharing<Req, Resp, F, Fut>(
    api: ApiKey,
    version: i16,
    body: &mut Bytes,
    out: &mut ResponseBuf,
    f: F,
    shared: impl FnOnce(&Resp) -> Vec<Bytes>,
) -> Result<bool, DispatchError>
where
    Req: Decodable,
    Resp: Encodable,
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Option<Resp>>,
{
    let req = decode(api, version, body)?;
    let Some(resp) = f(req).await else {
        return Ok(false);
    };
    out.share(shared(&resp));
    encode(api, version, &resp, out)?;
    Ok(true)
}

/// Decodes a request body of `api` at `version`.
pub fn decode<Req: Decodable>(
    api: ApiKey,
    version: i16,
    body: &mut Bytes,
) -> Result<Req, DispatchError> {
    Req::decode(body, version).map_err(|e| DispatchError::Malformed {
        api,
        version,
        reason: e.to_string(),
    })
}

/// Appends the encoded response body to `out`.
pub fn encode<Resp: Encodable>(
    api: ApiKey,
    version: i16,
    resp: &Resp,
    out: &mut ResponseBuf,
) -> Result<(), DispatchError> {
    let encode_error = |e: anyhow::Error| DispatchError::Encode {
        api,
        version,
        reason: e.to_string(),
    };
    // Reserve exactly once: growing a large response would copy it again and again.
    let size = resp.compute_size(version).map_err(encode_error)?;
    out.reserve(size.saturating_sub(out.shared_len()));
    resp.encode(out, version).map_err(encode_error)
}

/// Handles one request whose API and version were checked against [`SUPPORTED`]. Produce is
/// not here: the connection runs it in two stages ([`produce::stage`], then
/// [`produce::Staged::finish`]) so that the next request may be read in between.
pub async fn dispatch(
    ctx: &Ctx,
    client: &Client<'_>,
    api: ApiKey,
    version: i16,
    body: &mut Bytes,
    out: &mut ResponseBuf,
) -> Result<bool, DispatchError> {
    match api {
        ApiKey::ApiVersions => {
            run(api, version, body, out, |r| async move {
                Some(api_versions::handle(&ctx.broker, r, version))
            })
            .await
        }
        ApiKey::Metadata => {
            run(api, version, body, out, |r| {
                metadata::handle(ctx, r, version)
            })
            .await
        }
        ApiKey::Fetch => {
            run_sharing(
                api,
                version,
                body,
                out,
                |r| fetch::handle(ctx, r, version),
                fetch::record_sets,
            )
            .await
        }
        ApiKey::ListOffsets => {
            run(api, version, body, out, |r| {
                list_offsets::handle(ctx, r, version)
            })
            .await
        }
        ApiKey::CreateTopics => {
            run(api, version, body, out, |r| {
                create_topics::handle(ctx, r, version)
            })
            .await
        }
        ApiKey::DeleteTopics => {
            run(api, version, body, out, |r| {
                delete_topics::handle(ctx, r, version)
            })
            .await
        }
        ApiKey::CreatePartitions => {
            run(api, version, body, out, |r| {
                create_partitions::handle(ctx, r)
            })
            .await
        }
        ApiKey::DescribeConfigs => {
            run(api, version, body, out, |r| {
                describe_configs::handle(ctx, r)
            })
            .await
        }
        ApiKey::AlterConfigs => {
            run(api, version, body, out, |r| alter_configs::handle(ctx, r)).await
        }
        ApiKey::IncrementalAlterConfigs => {
            run(api, version, body, out, |r| {
                incremental_alter_configs::handle(ctx, r)
            })
            .await
        }
        ApiKey::InitProducerId => {
            run(api, version, body, out, |r| {
                init_producer_id::handle(ctx, r)
            })
            .await
        }
        ApiKey::FindCoordinator => {
            run(api, version, body, out, |r| {
                find_coordinator::handle(ctx, r, version)
            })
            .await
        }
        ApiKey::OffsetCommit => {
            run(api, version, body, out, |r| {
                offset_commit::handle(ctx, r, version)
            })
            .await
        }
        ApiKey::OffsetFetch => {
            run(api, version, body, out, |r| {
                offset_fetch::handle(ctx, r, version)
            })
            .await
        }
        ApiKey::JoinGroup => {
            run(api, version, body, out, |r| {
                join_group::handle(ctx, client, r, version)
            })
            .await
        }
        ApiKey::SyncGroup => run(api, version, body, out, |r| sync_group::handle(ctx, r)).await,
        ApiKey::Heartbeat => run(api, version, body, out, |r| heartbeat::handle(ctx, r)).await,
        ApiKey::LeaveGroup => {
            run(api, version, body, out, |r| {
                leave_group::handle(ctx, r, version)
            })
            .await
        }
        ApiKey::ListGroups => run(api, version, body, out, |r| list_groups::handle(ctx, r)).await,
        ApiKey::DescribeGroups => {
            run(api, version, body, out, |r| {
                describe_groups::handle(ctx, r, version)
            })
            .await
        }
        ApiKey::DeleteGroups => {
            run(api, version, body, out, |r| delete_groups::handle(ctx, r)).await
        }
        ApiKey::OffsetDelete => {
            run(api, version, body, out, |r| offset_delete::handle(ctx, r)).await
        }
        ApiKey::ConsumerGroupHeartbeat => {
            run(api, version, body, out, |r| {
                consumer_group_heartbeat::handle(ctx, client, r, version)
            })
            .await
        }
        ApiKey::ConsumerGroupDescribe => {
            run(api, version, body, out, |r| {
                consumer_group_describe::handle(ctx, r)
            })
            .await
        }
        ApiKey::DescribeCluster => {
            run(api, version, body, out, |r| {
                describe_cluster::handle(ctx, r)
            })
            .await
        }
        ApiKey::DeleteRecords => {
            run(api, version, body, out, |r| delete_records::handle(ctx, r)).await
        }
        ApiKey::DescribeLogDirs => {
            run(api, version, body, out, |r| {
                describe_log_dirs::handle(ctx, r)
            })
            .await
        }
        ApiKey::DescribeProducers => {
            run(api, version, body, out, |r| {
                describe_producers::handle(ctx, r)
            })
            .await
        }
        ApiKey::DescribeTopicPartitions => {
            run(api, version, body, out, |r| {
                describe_topic_partitions::handle(ctx, r)
            })
            .await
        }
        ApiKey::ElectLeaders => {
            run(api, version, body, out, |r| {
                elect_leaders::handle(ctx, r, version)
            })
            .await
        }
        ApiKey::OffsetForLeaderEpoch => {
            run(api, version, body, out, |r| {
                offset_for_leader_epoch::handle(ctx, r)
            })
            .await
        }
        ApiKey::ListConfigResources => {
            run(api, version, body, out, |r| {
                list_config_resources::handle(ctx, r, version)
            })
            .await
        }
        ApiKey::AlterReplicaLogDirs => {
            run(api, version, body, out, |r| {
                alter_replica_log_dirs::handle(ctx, r)
            })
            .await
        }
        other => Err(DispatchError::Malformed {
            api: other,
            version,
            reason: "unsupported api".into(),
        }),
    }
}

/// Kafka string helpers.
pub fn str_bytes(s: &str) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.to_string())
}
