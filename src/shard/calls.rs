//! The calls a shard runs for another core (or for itself), one type each, with its own reply
//! type: produce (two-stage: appended, then durable), fetch, waiting for data, ListOffsets
//! lookups, DeleteRecords, partition sizes (DescribeLogDirs), a partition's producers
//! (DescribeProducers), group operations, and the catalog's writes and broadcast (see [`super::catalog`]).
//!
//! Each call only finds the partition and asks it; what the answer means is the partition's
//! and the caller's business.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;

use super::mesh::{Call, LocalFuture, Stage};
use super::{Fetched, OffsetQuery, Shard, ShardError, TopicPartition};
use crate::group::{GroupOp, GroupReply};
use crate::storage::AppendInfo;

/// A call about one partition: it runs on the core that owns it.
pub trait Routed {
    fn tp(&self) -> &TopicPartition;
}

macro_rules! routed {
    ($($call:ty),*) => {
        $(impl Routed for $call {
            fn tp(&self) -> &TopicPartition {
                &self.tp
            }
        })*
    };
}

routed!(
    Fetch,
    WaitForData,
    ListOffset,
    EpochEnd,
    ElectPreferred,
    Group,
    DeleteRecords,
    DescribeProducers
);

/// Append `records` to `tp`, report the first stage, then make them as durable as the flush
/// policy asks.
pub struct Produce {
    pub tp: TopicPartition,
    pub records: Bytes,
    pub acks: crate::partition::Acks,
}

/// A produce's outcome: what the append assigned and the partition's log start.
#[derive(Debug, Clone, Copy)]
pub struct Produced {
    pub info: AppendInfo,
    pub log_start: i64,
}

impl Call<Shard> for Produce {
    type Reply = Result<Produced, ShardError>;
    fn run(self, shard: Rc<Shard>, mut stage: Stage) -> LocalFuture<Self::Reply> {
        Box::pin(async move {
            let p = shard.partition(&self.tp).await?;
            let staged = p.stage(self.records, self.acks).await?;
            stage.reached().await;
            let info = p.complete(staged).await?;
            Ok(Produced {
                info,
                log_start: p.log_start(),
            })
        })
    }
}

/// Whole batches of `tp` from `offset`, at most `max_bytes` (at least one batch).
pub struct Fetch {
    pub tp: TopicPartition,
    pub offset: i64,
    pub max_bytes: usize,
    /// The client's `current_leader_epoch` (-1: none).
    pub epoch: i32,
}

impl Call<Shard> for Fetch {
    type Reply = Result<Fetched, ShardError>;
    fn run(self, shard: Rc<Shard>, _: Stage) -> LocalFuture<Self::Reply> {
        Box::pin(async move {
            let p = shard.partition(&self.tp).await?;
            Ok(p.fetch(self.offset, self.max_bytes, self.epoch).await?)
        })
    }
}

/// Wait until `tp` has data beyond `offset`, or `wait` passes.
pub struct WaitForData {
    pub tp: TopicPartition,
    pub offset: i64,
    pub wait: Duration,
}

impl Call<Shard> for WaitForData {
    type Reply = Result<(), ShardError>;
    fn run(self, shard: Rc<Shard>, _: Stage) -> LocalFuture<Self::Reply> {
        Box::pin(async move {
            let p = shard.partition(&self.tp).await?;
            p.wait_for_data(self.offset, self.wait).await;
            Ok(())
        })
    }
}

/// The offset (and timestamp) a ListOffsets query points to in `tp`.
pub struct ListOffset {
    pub tp: TopicPartition,
    pub query: OffsetQuery,
    /// The client's `current_leader_epoch` (-1: none).
    pub epoch: i32,
}

/// Where ListOffsets points, with the partition's current leader epoch.
#[derive(Debug, Clone, Copy)]
pub struct ListedOffset {
    /// Offset and timestamp (-1 unless a time lookup); `None`: nothing that recent.
    pub found: Option<(i64, i64)>,
    pub leader_epoch: i32,
}

impl Call<Shard> for ListOffset {
    type Reply = Result<ListedOffset, ShardError>;
    fn run(self, shard: Rc<Shard>, _: Stage) -> LocalFuture<Self::Reply> {
        Box::pin(async move {
            let p = shard.partition(&self.tp).await?;
            Ok(ListedOffset {
                found: p.offset_for(self.query, self.epoch).await?,
                leader_epoch: p.leader_epoch(),
            })
        })
    }
}

/// ElectLeaders (preferred) of one partition: `preferred` (a Raft node id) asked to lead,
/// waited for up to `wait`.
pub struct ElectPreferred {
    pub tp: TopicPartition,
    pub preferred: crate::replication::NodeId,
    pub wait: Duration,
}

impl Call<Shard> for ElectPreferred {
    type Reply = Result<crate::partition::Election, ShardError>;
    fn run(self, shard: Rc<Shard>, _: Stage) -> LocalFuture<Self::Reply> {
        Box::pin(async move {
            let p = shard.partition(&self.tp).await?;
            Ok(p.elect_preferred(self.preferred, self.wait).await?)
        })
    }
}

/// OffsetForLeaderEpoch of one partition: where `leader_epoch` ended (KIP-320).
pub struct EpochEnd {
    pub tp: TopicPartition,
    /// The client's `current_leader_epoch` (-1: none).
    pub current: i32,
    pub leader_epoch: i32,
}

impl Call<Shard> for EpochEnd {
    /// The epoch found and its end offset; `None`: not known (-1, -1 to the client).
    type Reply = Result<Option<(i32, i64)>, ShardError>;
    fn run(self, shard: Rc<Shard>, _: Stage) -> LocalFuture<Self::Reply> {
        Box::pin(async move {
            let p = shard.partition(&self.tp).await?;
            Ok(p.epoch_end(self.current, self.leader_epoch)?)
        })
    }
}

/// A group operation, on the core owning the group's `__consumer_offsets` partition `tp`.
pub struct Group {
    pub tp: TopicPartition,
    pub op: GroupOp,
}

impl Call<Shard> for Group {
    type Reply = Result<GroupReply, ShardError>;
    fn run(self, shard: Rc<Shard>, _: Stage) -> LocalFuture<Self::Reply> {
        Box::pin(async move {
            let p = shard.partition(&self.tp).await?;
            // The consumer protocol reads topics from this core's catalog snapshot.
            let topics = CatalogTopics(shard.catalog());
            Ok(shard
                .groups
                .run_with(self.tp.partition, p, self.op, &topics)
                .await?)
        })
    }
}

/// What the consumer protocol's groups read of the catalog: topics' names, ids and partition
/// counts.
struct CatalogTopics(Rc<crate::cluster::Catalog>);

impl crate::group::consumer::Topics for CatalogTopics {
    fn get(&self, name: &str) -> Option<crate::group::consumer::TopicInfo> {
        self.0
            .topic(name)
            .map(|t| crate::group::consumer::TopicInfo {
                id: uuid::Uuid::from_bytes(t.id),
                name: t.name.clone(),
                partitions: t.partitions,
            })
    }

    fn names(&self) -> Vec<String> {
        self.0.topics().map(|t| t.name.clone()).collect()
    }
}

/// DeleteRecords: move the log start of `tp` up to `offset` (-1: the high watermark).
pub struct DeleteRecords {
    pub tp: TopicPartition,
    pub offset: i64,
}

impl Call<Shard> for DeleteRecords {
    /// The log start afterwards (Kafka's low watermark).
    type Reply = Result<i64, ShardError>;
    fn run(self, shard: Rc<Shard>, _: Stage) -> LocalFuture<Self::Reply> {
        Box::pin(async move {
            let p = shard.partition(&self.tp).await?;
            Ok(p.delete_records(self.offset).await?)
        })
    }
}

/// The producers `tp` remembers: epoch, last sequence and last timestamp of each
/// (DescribeProducers).
pub struct DescribeProducers {
    pub tp: TopicPartition,
}

impl Call<Shard> for DescribeProducers {
    type Reply = Result<Vec<crate::partition::producer_state::ActiveProducer>, ShardError>;
    fn run(self, shard: Rc<Shard>, _: Stage) -> LocalFuture<Self::Reply> {
        Box::pin(async move {
            let p = shard.partition(&self.tp).await?;
            Ok(p.active_producers())
        })
    }
}

/// The sizes in bytes of the partitions this core owns (DescribeLogDirs): those of `only`, or
/// every partition of the catalog when `None`. Partitions this core does not own, or the
/// catalog does not have, are left out.
pub struct PartitionSizes {
    pub only: Option<Vec<TopicPartition>>,
}

/// One partition's size on disk, as its owner measured it, and its cleaner's state when the
/// topic is compacted.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionSize {
    pub tp: TopicPartition,
    pub size_bytes: u64,
    pub cleaner: Option<crate::partition::CleanerState>,
}

impl Call<Shard> for PartitionSizes {
    type Reply = Vec<PartitionSize>;
    fn run(self, shard: Rc<Shard>, _: Stage) -> LocalFuture<Self::Reply> {
        Box::pin(async move {
            let wanted: Vec<TopicPartition> = match self.only {
                Some(list) => list,
                None => shard
                    .catalog()
                    .topics()
                    .flat_map(|t| {
                        (0..t.partitions).map(move |partition| TopicPartition {
                            topic: t.name.clone(),
                            partition,
                        })
                    })
                    .collect(),
            };
            let mut out = Vec::new();
            for tp in wanted {
                if super::owner_of(&tp, shard.shards) != shard.id {
                    continue;
                }
                // Opens a partition not opened since the start: its size is on disk either way.
                match shard.partition(&tp).await {
                    Ok(p) => out.push(PartitionSize {
                        size_bytes: p.stats().size_bytes,
                        cleaner: p.compacts().then(|| p.cleaner_state()),
                        tp,
                    }),
                    Err(ShardError::UnknownPartition) => {}
                    Err(e) => {
                        tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e, "cannot open partition to measure it")
                    }
                }
            }
            out
        })
    }
}

impl Shard {
    /// The sizes of the partitions in `only` (every partition when `None`), gathered from
    /// every core at once: each measures the partitions it owns.
    pub async fn partition_sizes(
        self: &Rc<Self>,
        only: Option<Vec<TopicPartition>>,
    ) -> Result<Vec<PartitionSize>, ShardError> {
        let pending: Vec<_> = (0..self.shards)
            .map(|core| {
                let call = PartitionSizes { only: only.clone() };
                self.mesh.call(self, core, call)
            })
            .collect();
        let mut all = Vec::new();
        for p in pending {
            all.extend(p.reply().await?);
        }
        Ok(all)
    }
}
