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
            let (next, out) = store.apply(&turn, self.change).await?;
            if self.broadcast {
                shard.broadcast(next).await?;
            }
            Ok(out)
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
    async fn broadcast(self: &Rc<Self>, next: Arc<Catalog>) -> Result<(), CatalogError> {
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
            if let Some(id) = self.producer_ids.ids.borrow_mut().next() {
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
            let block = self
                .write(false, |c| Ok(c.reserve_producer_ids(PRODUCER_ID_BLOCK)))
                .await?;
            *self.producer_ids.ids.borrow_mut() = block;
        }
    }
}
