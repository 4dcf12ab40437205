//! The catalog across cores. Every core reads its own copy; a change is a call to
//! [`super::CATALOG_CORE`], which applies and persists it ([`CatalogStore`]) and then sends the
//! new catalog to every core, waiting until each has installed it: a client that is answered
//! "created" finds the topic on whichever core its next request lands. Installing a catalog
//! reconfigures the open partitions whose topic changed and removes those whose topic is gone.
//!
//! Producer ids come from blocks reserved on the owner (`PRODUCER_ID_BLOCK`): the block's
//! end is persisted before any id of it is handed out, so InitProducerId costs no sync, and a
//! restart never hands out an id twice (the rest of a block is skipped).

use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;

use glommio::sync::Semaphore;

use super::mesh::{Call, LocalFuture, Stage};
use super::{owner_of, Shard, TopicPartition, CATALOG_CORE};
use crate::cluster::{Catalog, CatalogError, TopicMeta};
use crate::limits::PRODUCER_ID_BLOCK;

/// A change of the catalog, run on its owner: `change` is applied to a copy, persisted and,
/// when `broadcast`, installed on every core before the reply.
pub struct Write<F> {
    change: F,
    broadcast: bool,
}

impl<F, T> Call<Shard> for Write<F>
where
    F: FnOnce(&mut Catalog) -> Result<T, CatalogError> + Send + 'static,
    T: Send + 'static,
{
    type Reply = Result<T, CatalogError>;
    fn run(self, shard: Rc<Shard>, _: Stage) -> LocalFuture<Self::Reply> {
        Box::pin(async move {
            let Some(store) = &shard.store else {
                return Err(CatalogError::Unreachable);
            };
            let turn = store.turn().await?;
            if let Some(c) = &shard.controller {
                // Clustered: the change is the controller log's; committing it installs it
                // on every broker (and, here, before the answer).
                let mut next = store.current();
                let out = (self.change)(&mut next)?;
                c.commit(&next).await?;
                drop(turn);
                return Ok(out);
            }
            let (next, out) = store.apply(&turn, self.change).await?;
            if self.broadcast {
                shard.broadcast(next).await?;
            }
            Ok(out)
        })
    }
}

/// Reserves a block of this broker's own producer-id counter (clustered brokers), persisted
/// in [`LOCAL_IDS_FILE`] before any id of it is used.
pub struct ReserveLocalIds;

/// A clustered broker's producer-id counter.
pub const LOCAL_IDS_FILE: &str = "producer-ids.meta";

/// Producer ids of clustered brokers name their broker: `n * MAX_BROKERS + broker id`.
pub const MAX_BROKERS: i64 = 1024;

impl Call<Shard> for ReserveLocalIds {
    type Reply = Result<Range<i64>, CatalogError>;
    fn run(self, shard: Rc<Shard>, _: Stage) -> LocalFuture<Self::Reply> {
        Box::pin(async move {
            let Some(store) = &shard.store else {
                return Err(CatalogError::Unreachable);
            };
            let _turn = store.local_turn().await?;
            let path = shard.registry.data_dir().join(LOCAL_IDS_FILE);
            let start = crate::storage::meta::read_checked(&path)?
                .and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
                .map(i64::from_le_bytes)
                .unwrap_or(0);
            let end = start + PRODUCER_ID_BLOCK;
            crate::storage::meta::write_atomic_off_core(path, end.to_le_bytes().to_vec()).await?;
            Ok(start..end)
        })
    }
}

/// Makes `catalog` this core's catalog.
pub struct Install {
    catalog: Arc<Catalog>,
}

impl Call<Shard> for Install {
    type Reply = ();
    fn run(self, shard: Rc<Shard>, _: Stage) -> LocalFuture<()> {
        Box::pin(async move { shard.install(self.catalog).await })
    }
}

/// This core's share of producer ids: the rest of a block reserved on the owner.
#[derive(Default)]
pub struct ProducerIdPool {
    ids: RefCell<Range<i64>>,
    /// One refill at a time.
    refill: RefCell<Option<Rc<Semaphore>>>,
}

impl Shard {
    async fn write<T: Send + 'static>(
        self: &Rc<Self>,
        broadcast: bool,
        change: impl FnOnce(&mut Catalog) -> Result<T, CatalogError> + Send + 'static,
    ) -> Result<T, CatalogError> {
        self.mesh
            .run(self, CATALOG_CORE, Write { change, broadcast })
            .await
            .unwrap_or(Err(CatalogError::Unreachable))
    }

    /// Sends `next` to every core (this one included) and waits until each has installed it.
    pub(super) async fn broadcast(self: &Rc<Self>, next: Arc<Catalog>) -> Result<(), CatalogError> {
        let pending: Vec<_> = (0..self.shards)
            .map(|core| {
                let call = Install {
                    catalog: next.clone(),
                };
                self.mesh.call(self, core, call)
            })
            .collect();
        for p in pending {
            p.reply().await.map_err(|_| CatalogError::Unreachable)?;
        }
        Ok(())
    }

    /// Replaces this core's catalog with `next`, then brings the open partitions in line.
    async fn install(&self, next: Arc<Catalog>) {
        let next = Rc::new((*next).clone());
        let old = self.catalog.replace(next.clone());
        let same =
            |old_topic: &TopicMeta| next.topic(&old_topic.name).map(|t| t.id) == Some(old_topic.id);
        // Partitions of topics deleted (or deleted and made anew) lose their files, open or not.
        for t in old.topics().filter(|t| !same(t)) {
            for partition in 0..t.partitions {
                let tp = TopicPartition {
                    topic: t.name.clone(),
                    partition,
                };
                if owner_of(&tp, self.shards) == self.id {
                    if let Err(e) = self.registry.remove(&tp).await {
                        tracing::error!(topic = %tp.topic, partition, error = %e, "removing a deleted partition failed");
                    }
                }
            }
        }
        for (tp, p) in self.registry.all() {
            let changed = old.topic(&tp.topic).map(|t| &t.configs)
                != next.topic(&tp.topic).map(|t| &t.configs);
            if changed {
                if let Some(config) = next.log_config(&tp.topic) {
                    p.reconfigure(config);
                }
            }
        }
        // A clustered broker's replicas join their groups now, not at a client's first
        // request: the leader needs its followers.
        if let Some(r) = &self.replication {
            let mine: Vec<TopicPartition> = next
                .topics()
                .flat_map(|t| {
                    (0..t.partitions).map(move |partition| TopicPartition {
                        topic: t.name.clone(),
                        partition,
                    })
                })
                .filter(|tp| owner_of(tp, self.shards) == self.id)
                .filter(|tp| {
                    next.replicas(&tp.topic, tp.partition)
                        .is_some_and(|replicas| r.holds(replicas))
                })
                .filter(|tp| self.registry.get(tp).is_none())
                .collect();
            for tp in mine {
                if let Err(e) = self.partition(&tp).await {
                    tracing::error!(topic = %tp.topic, partition = tp.partition, error = %e, "cannot open a replica");
                }
            }
        }
    }

    pub async fn create_topic(
        self: &Rc<Self>,
        name: String,
        partitions: i32,
        configs: Vec<(String, String)>,
    ) -> Result<TopicMeta, CatalogError> {
        self.write(true, move |c| c.create_topic(&name, partitions, configs))
            .await
    }

    /// Creates a topic with `factor` replicas per partition (-1: the default).
    pub async fn create_topic_replicated(
        self: &Rc<Self>,
        name: String,
        partitions: i32,
        factor: i16,
        configs: Vec<(String, String)>,
    ) -> Result<TopicMeta, CatalogError> {
        self.write(true, move |c| {
            c.create_topic_replicated(&name, partitions, Some(factor), configs)
        })
        .await
    }

    /// Creates `name` unless it exists (whatever its settings then).
    pub async fn ensure_topic(
        self: &Rc<Self>,
        name: &str,
        partitions: i32,
        configs: Vec<(String, String)>,
    ) -> Result<(), CatalogError> {
        if self.catalog().topic(name).is_some() {
            return Ok(());
        }
        match self.create_topic(name.into(), partitions, configs).await {
            Ok(_) | Err(CatalogError::TopicExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn delete_topic(self: &Rc<Self>, name: String) -> Result<TopicMeta, CatalogError> {
        self.write(true, move |c| c.delete_topic(&name)).await
    }

    /// Grows a topic to `total` partitions.
    pub async fn set_partition_count(
        self: &Rc<Self>,
        name: String,
        total: i32,
    ) -> Result<TopicMeta, CatalogError> {
        self.write(true, move |c| c.set_partition_count(&name, total))
            .await
    }

    /// Applies config changes to a topic: `Some(v)` sets, `None` removes the override.
    pub async fn alter_configs(
        self: &Rc<Self>,
        name: String,
        changes: Vec<(String, Option<String>)>,
    ) -> Result<(), CatalogError> {
        self.write(true, move |c| c.alter_configs(&name, &changes))
            .await
    }

    /// A producer id never handed out before, from this core's block (reserving a new block
    /// on the owner when it is used up).
    pub async fn next_producer_id(self: &Rc<Self>) -> Result<i64, CatalogError> {
        loop {
            let next = {
                let mut ids = self.producer_ids.ids.borrow_mut();
                let id = ids.next();
                if self.replication.is_some() {
                    // A clustered block steps by MAX_BROKERS (see the refill below).
                    if let Some(id) = id {
                        ids.start = (id + MAX_BROKERS).min(ids.end);
                    }
                }
                id
            };
            if let Some(id) = next {
                return Ok(id);
            }
            let gate = self
                .producer_ids
                .refill
                .borrow_mut()
                .get_or_insert_with(|| Rc::new(Semaphore::new(1)))
                .clone();
            let _refilling = gate
                .acquire_permit(1)
                .await
                .map_err(|_| CatalogError::Unreachable)?;
            if !self.producer_ids.ids.borrow().is_empty() {
                continue; // refilled while we waited
            }
            let block = if let Some(r) = &self.replication {
                // Clustered: each broker reserves from its own counter, and an id names its
                // broker (id * MAX_BROKERS + broker), so no two brokers hand out the same id
                // and no controller round trip is needed.
                let broker = r.broker as i64;
                let local = self
                    .mesh
                    .run(self, CATALOG_CORE, ReserveLocalIds)
                    .await
                    .unwrap_or(Err(CatalogError::Unreachable))?;
                local.start * MAX_BROKERS + broker..local.end * MAX_BROKERS + broker
            } else {
                self.write(false, |c| Ok(c.reserve_producer_ids(PRODUCER_ID_BLOCK)))
                    .await?
            };
            *self.producer_ids.ids.borrow_mut() = block;
        }
    }
}
