//! The shard: routing and execution on one core. A partition belongs to the core its
//! [`owner_of`] hash names; a request for it runs there, as a typed call ([`calls`]) over the
//! channel mesh ([`mesh`]) when it arrived elsewhere. Payloads are `bytes::Bytes`: they move
//! between cores, they are not copied.
//!
//! Each core runs one [`Shard`]: its open partitions ([`registry`]), its copy of the catalog
//! (replaced by broadcast, see [`catalog`]), its share of producer ids, the group service of
//! its `__consumer_offsets` partitions (`crate::group::service`) and periodic housekeeping.
//! The shard decides nothing about a partition's data (when it is durable, what is visible,
//! what retention may delete): it asks the partition. It knows nothing of Kafka's wire format.

pub mod calls;
pub mod catalog;
pub mod cluster_view;
pub mod controller;
pub mod mesh;
pub mod registry;
pub mod replicas;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use glommio::channels::channel_mesh::{Full, MeshBuilder};
use thiserror::Error;

use crate::cluster::store::CatalogStore;
use crate::cluster::Catalog;
use crate::group::coordinator::GroupSettings;
use crate::group::service::GroupService;
use crate::limits::CLEANER_KEY_MAP_BYTES_PER_CORE;
pub use crate::partition::{Fetched, OffsetQuery};
use crate::partition::{Partition, PartitionError};
use crate::storage::compact::KeyMap;
use crate::storage::StorageError;
use catalog::ProducerIdPool;
use mesh::{Mesh, MeshError, Pending};
pub use registry::partition_dir;
use registry::Registry;

/// A topic partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// The core that owns a partition: a stable hash, so ownership survives restarts.
pub fn owner_of(tp: &TopicPartition, shards: usize) -> usize {
    let h = crc32c::crc32c_append(
        crc32c::crc32c(tp.topic.as_bytes()),
        &tp.partition.to_be_bytes(),
    );
    (h as usize) % shards.max(1)
}

/// The core that owns the writable catalog.
pub const CATALOG_CORE: usize = 0;

#[derive(Debug, Error)]
pub enum ShardError {
    #[error("unknown topic or partition")]
    UnknownPartition,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Mesh(#[from] MeshError),
    #[error(transparent)]
    Partition(PartitionError),
    #[error("controller: {0}")]
    Controller(String),
}

impl From<PartitionError> for ShardError {
    fn from(e: PartitionError) -> Self {
        match e {
            PartitionError::Storage(s) => ShardError::Storage(s),
            other => ShardError::Partition(other),
        }
    }
}

/// The message type of the mesh between shards.
pub type Envelope = mesh::Envelope<Shard>;

/// Builds the mesh that connects `shards` cores; every core must call [`Shard::start`] with it.
pub fn mesh(shards: usize) -> MeshBuilder<Envelope, Full> {
    mesh::builder(shards)
}

/// What a shard starts with.
pub struct ShardSettings {
    pub data_dir: PathBuf,
    pub groups: GroupSettings,
    pub cache_bytes: usize,
    /// Present on a broker that is part of a cluster.
    pub replication: Option<replicas::Replication>,
}

/// The per-core state: owned partitions, the catalog copy and the links to the other cores.
pub struct Shard {
    pub id: usize,
    pub shards: usize,
    mesh: Rc<Mesh<Shard>>,
    registry: Registry,
    /// This core's copy of the catalog; replaced whole when the owner broadcasts a change.
    catalog: RefCell<Rc<Catalog>>,
    /// The writable catalog, on [`CATALOG_CORE`] only.
    store: Option<CatalogStore>,
    producer_ids: ProducerIdPool,
    groups: GroupService,
    /// The cleaner's key map, bounded per core ([`CLEANER_KEY_MAP_BYTES_PER_CORE`]); taken by
    /// the one cleaning task of the core while it runs.
    cleaner_map: std::cell::Cell<Option<KeyMap>>,
    /// This core's replication, on a clustered broker.
    pub replication: Option<replicas::Replication>,
    /// The controller group, on [`CATALOG_CORE`] of a clustered broker.
    controller: Option<controller::Controller>,
}

impl Shard {
    /// Creates the shard of core `id`, joins the mesh, opens the partitions it owns and starts
    /// serving calls from other cores.
    pub async fn start(
        id: usize,
        shards: usize,
        catalog: Arc<Catalog>,
        settings: ShardSettings,
        mesh: MeshBuilder<Envelope, Full>,
    ) -> Result<Rc<Shard>, ShardError> {
        let (mesh, receivers) = Mesh::join(id, shards, mesh).await?;
        let store =
            (id == CATALOG_CORE).then(|| CatalogStore::new(&settings.data_dir, (*catalog).clone()));
        let controller = match (&settings.replication, id == CATALOG_CORE) {
            (Some(r), true) => Some(
                controller::Controller::open(&settings.data_dir, r)
                    .await
                    .map_err(|e| ShardError::Controller(e.to_string()))?,
            ),
            _ => None,
        };
        let shard = Rc::new(Shard {
            id,
            shards,
            mesh,
            registry: Registry::new(settings.data_dir, settings.cache_bytes),
            catalog: RefCell::new(Rc::new((*catalog).clone())),
            store,
            producer_ids: ProducerIdPool::default(),
            groups: GroupService::new(settings.groups),
            cleaner_map: std::cell::Cell::new(Some(KeyMap::with_budget(
                CLEANER_KEY_MAP_BYTES_PER_CORE,
            ))),
            replication: settings.replication,
            controller,
        });
        if let Some(receivers) = receivers {
            shard.mesh.serve(shard.clone(), receivers);
        }
        if let Some(r) = &shard.replication {
            glommio::spawn_local(r.host.clone().run()).detach();
        }
        if shard.controller.is_some() {
            glommio::spawn_local(shard.clone().apply_controller_log()).detach();
            glommio::spawn_local(shard.clone().create_internal_topics()).detach();
        }
        let owned: Vec<TopicPartition> = shard
            .catalog()
            .topics()
            .flat_map(|t| {
                (0..t.partitions).map(move |p| TopicPartition {
                    topic: t.name.clone(),
                    partition: p,
                })
            })
            .filter(|tp| owner_of(tp, shards) == id)
            .collect();
        let owned: Vec<TopicPartition> = owned
            .into_iter()
            .filter(|tp| shard.replica_of(tp).is_none_or(|r| r.member))
            .collect();
        for tp in owned {
            shard.partition(&tp).await?;
        }
        Ok(shard)
    }

    /// The broker leading the controller group (clustered), or this broker (one node).
    pub fn controller_id(&self, me: i32) -> Option<i32> {
        match &self.controller {
            Some(c) => c.leader(),
            None => Some(me),
        }
    }

    /// This core's copy of the catalog (no lock: it is replaced, never changed in place).
    pub fn catalog(&self) -> Rc<Catalog> {
        self.catalog.borrow().clone()
    }

    /// Runs a one-stage call on the core that owns its partition.
    pub async fn run<C: mesh::Call<Shard> + calls::Routed>(
        self: &Rc<Self>,
        call: C,
    ) -> Result<C::Reply, MeshError> {
        let owner = owner_of(call.tp(), self.shards);
        self.mesh.run(self, owner, call).await
    }

    /// Starts a produce on the core that owns `tp`. The returned call first reports when the
    /// batches are appended (from then on, a later produce to `tp` is ordered after this one),
    /// then the outcome, once the data is as durable as the flush policy asks.
    pub fn produce(
        self: &Rc<Self>,
        tp: TopicPartition,
        records: Bytes,
        acks: crate::partition::Acks,
    ) -> ProduceCall {
        let owner = owner_of(&tp, self.shards);
        ProduceCall(
            self.mesh
                .call(self, owner, calls::Produce { tp, records, acks }),
        )
    }

    /// The open partition `tp`, opening (and recovering) it on first use if the catalog has it.
    pub async fn partition(&self, tp: &TopicPartition) -> Result<Rc<Partition>, ShardError> {
        if let Some(p) = self.registry.get(tp) {
            return Ok(p);
        }
        let config = {
            let cat = self.catalog.borrow();
            match cat.topic(&tp.topic) {
                Some(t) if tp.partition >= 0 && tp.partition < t.partitions => {
                    cat.log_config(&tp.topic)
                }
                _ => None,
            }
        };
        let config = config.ok_or(ShardError::UnknownPartition)?;
        let replica = self.replica_of(tp);
        let p = self.registry.open(tp, config, replica).await?;
        // The topic may have been deleted while the partition was recovering: its removal then
        // waited for the opener, so let it go now rather than serve a deleted log.
        let still = self
            .catalog
            .borrow()
            .topic(&tp.topic)
            .is_some_and(|t| tp.partition < t.partitions);
        if !still {
            self.registry.remove(tp).await?;
            return Err(ShardError::UnknownPartition);
        }
        Ok(p)
    }

    /// How `tp` is replicated here: its group, the host and the replica's settings; `None`
    /// for a partition that is not replicated (one-node broker, or a topic from before).
    fn replica_of(&self, tp: &TopicPartition) -> Option<registry::ReplicaOf> {
        let r = self.replication.as_ref()?;
        let replicas: Vec<u64> = self
            .catalog
            .borrow()
            .replicas(&tp.topic, tp.partition)?
            .to_vec();
        let group = replicas::group_id(tp);
        r.link.route(group, Some(tp));
        let voters = replicas
            .iter()
            .map(|b| replicas::raft_id(*b as i32))
            .collect();
        let settings = crate::replication::ReplicaSettings {
            lag_ticks: r.lag_ticks,
            ..crate::replication::ReplicaSettings::new(
                replicas::raft_id(r.broker),
                voters,
                format!("{}-{}", tp.topic, tp.partition),
            )
        };
        Some(registry::ReplicaOf {
            host: r.host.clone(),
            group,
            settings,
            member: r.holds(&replicas),
        })
    }

    /// Runs group timers, ticks every partition (due flushes), trims the caches and enforces
    /// retention; with retention, also starts the core's cleaner in the background (unless it
    /// still runs), which asks each partition whether it is due for compaction. Called
    /// periodically on each core.
    pub async fn housekeeping(self: &Rc<Self>, retention: bool) {
        if retention {
            if let Some(mut map) = self.cleaner_map.take() {
                let shard = self.clone();
                glommio::spawn_local(async move {
                    for (tp, p) in shard.registry.all() {
                        match p.clean(&mut map, false, None).await {
                            Ok(_) => {}
                            // Deleted or closed meanwhile.
                            Err(PartitionError::Storage(StorageError::Closed)) => {}
                            Err(e) => {
                                tracing::error!(topic = %tp.topic, partition = tp.partition, error = %e, "cleaning failed")
                            }
                        }
                    }
                    map.clear();
                    shard.cleaner_map.set(Some(map));
                })
                .detach();
            }
        }
        self.registry.trim_caches();
        self.groups.tick().await;
        for (tp, p) in self.registry.all() {
            p.tick().await;
            if retention {
                if let Err(e) = p.enforce_retention().await {
                    tracing::error!(topic = %tp.topic, partition = tp.partition, error = %e, "retention failed");
                }
            }
        }
    }

    /// Closes every partition of this core (clean shutdown).
    pub async fn close_all(&self) {
        self.registry.close_all().await;
    }
}

/// A produce in flight on the owning core; see [`Shard::produce`].
pub struct ProduceCall(Pending<Result<calls::Produced, ShardError>>);

impl ProduceCall {
    /// Waits until the batches are appended, or the produce has failed.
    pub async fn appended(&mut self) {
        self.0.staged().await;
    }

    /// The produce's outcome: offsets and log start, or why it failed.
    pub async fn outcome(self) -> Result<calls::Produced, ShardError> {
        self.0.reply().await.unwrap_or_else(|e| Err(e.into()))
    }
}
