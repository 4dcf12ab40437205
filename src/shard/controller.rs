//! The controller of a clustered broker: the cluster's metadata (the catalog) as a Raft
//! group of every broker, on [`super::CATALOG_CORE`].
//!
//! Each entry of the controller's log is a whole catalog (topics, assignments, configs), the
//! result of one change. The broker that leads the group takes changes (CreateTopics,
//! DeleteTopics, CreatePartitions, configs): it applies one to the current catalog, proposes
//! the result and answers once its own broker has applied it; other brokers answer
//! NOT_CONTROLLER, and clients retry at the controller Metadata names (`controller_id`).
//! Every broker applies committed entries in order: the newest one is persisted to
//! `cluster.meta` and installed on every core (partitions of new topics are opened and join
//! their groups, those of deleted topics are removed). The offset applied last is kept in
//! `controller.applied`, so a restart never installs an older catalog over a newer one.
//!
//! It must not touch partitions itself: installing a catalog is the shard's.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use bytes::BytesMut;

use super::replicas::{broker_of, raft_id, Replication, CONTROLLER_GROUP};
use super::Shard;
use crate::cluster::{Catalog, CatalogError};
use crate::notify::Notify;
use crate::replication::host::{Ack, GroupHandle};
use crate::replication::{LogDevice, Replica, ReplicaError, ReplicaSettings, Role};
use crate::storage::batch::build_batch;
use crate::storage::compact::records::{batch_records, record_value};
use crate::storage::{meta, CacheBudget, LogConfig, PartitionLog, SystemClock};

/// Folder of the controller's log under the data dir.
pub const CONTROLLER_DIR: &str = "__cluster_metadata-0";
/// The offset after the last catalog entry this broker installed.
pub const APPLIED_FILE: &str = "controller.applied";

const CATALOG_KEY: &[u8] = b"catalog";

pub struct Controller {
    handle: Rc<GroupHandle>,
    log: Rc<PartitionLog>,
    applied: Cell<i64>,
    applied_changed: Notify,
    applied_path: PathBuf,
}

fn storage(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Encode(format!("controller log: {e}"))
}

impl Controller {
    pub async fn open(data_dir: &Path, r: &Replication) -> Result<Controller, CatalogError> {
        let dir = data_dir.join(CONTROLLER_DIR);
        let (log, _) = PartitionLog::open_cached(
            &dir,
            LogConfig::default(),
            Rc::new(SystemClock),
            CacheBudget::new(crate::limits::TAIL_CACHE_BYTES),
        )
        .await?;
        let log = Rc::new(log);
        let device = LogDevice::open(log.clone()).await.map_err(storage)?;
        let voters = r.brokers.iter().map(|b| raft_id(*b)).collect();
        let settings = ReplicaSettings::new(raft_id(r.broker), voters, "controller");
        let replica = Replica::open(settings, device).await.map_err(storage)?;
        r.link.route(CONTROLLER_GROUP, None);
        let handle = r.host.add(CONTROLLER_GROUP, replica);
        let applied_path = data_dir.join(APPLIED_FILE);
        let applied = meta::read_checked(&applied_path)
            .ok()
            .flatten()
            .and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
            .map(i64::from_le_bytes)
            .unwrap_or(0);
        Ok(Controller {
            handle,
            log,
            applied: Cell::new(applied),
            applied_changed: Notify::default(),
            applied_path,
        })
    }

    /// The broker leading the controller group, if one is known.
    pub fn leader(&self) -> Option<i32> {
        self.handle.published().leader.map(broker_of)
    }

    /// Whether this broker may take catalog changes now.
    pub fn is_active(&self) -> bool {
        let p = self.handle.published();
        p.role == Role::Leader && p.leader_ready
    }

    /// Proposes `next` as the catalog and waits until this broker has installed it.
    pub async fn commit(&self, next: &Catalog) -> Result<(), CatalogError> {
        if !self.is_active() {
            return Err(CatalogError::NotController(self.leader()));
        }
        let bytes = next.encode()?;
        let batch = build_batch(
            0,
            crate::storage::Clock::now_ms(&SystemClock),
            &[(Some(CATALOG_KEY), &bytes)],
        );
        let p = self
            .handle
            .propose(BytesMut::from(&batch[..]), Ack::Quorum)
            .await
            .map_err(|e| match e {
                ReplicaError::NotLeader { leader } => {
                    CatalogError::NotController(leader.map(broker_of))
                }
                e => storage(e),
            })?;
        loop {
            let changed = self.applied_changed.notified();
            if self.applied.get() > p.last_offset {
                return Ok(());
            }
            changed.await;
        }
    }

    /// The newest committed catalog not installed yet, and the offset after it.
    async fn next_to_install(
        &self,
        defaults: &LogConfig,
        brokers: &[u64],
    ) -> Result<Option<(Catalog, i64)>, CatalogError> {
        let hw = self.handle.published().high_watermark;
        let mut from = self.applied.get().max(self.log.log_start());
        let mut newest = None;
        while from < hw {
            let read = self.log.read(from, 4 << 20, hw).await.map_err(storage)?;
            let batches = read.batches();
            if batches.is_empty() {
                break;
            }
            for b in batches {
                let Some((h, section, records)) = batch_records(&b).map_err(storage)? else {
                    return Err(storage("a catalog entry decompresses beyond the bound"));
                };
                from = h.next_offset();
                if let Some(r) = records.last() {
                    if let Some(value) = record_value(&section, r).map_err(storage)? {
                        newest = Some(value.to_vec());
                    }
                }
            }
        }
        match newest {
            Some(bytes) => {
                let c = Catalog::decode(&bytes, defaults.clone(), brokers.to_vec())
                    .map_err(CatalogError::Encode)?;
                Ok(Some((c, from)))
            }
            None if from > self.applied.get() => {
                self.mark_applied(from).await;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn mark_applied(&self, offset: i64) {
        if let Err(e) =
            meta::write_atomic_off_core(self.applied_path.clone(), offset.to_le_bytes().to_vec())
                .await
        {
            tracing::warn!(error = %e, "cannot record the controller's applied offset");
        }
        self.applied.set(offset);
        self.applied_changed.notify();
    }
}

impl Shard {
    /// While this broker leads the controller, makes sure `__consumer_offsets` exists: a
    /// client may ask any broker for its group's coordinator, and only the controller can
    /// create the topic (Kafka's brokers forward the creation to it).
    pub(super) async fn create_internal_topics(self: Rc<Self>) {
        use crate::group::offsets::{OFFSETS_PARTITIONS, OFFSETS_TOPIC};
        let Some(c) = &self.controller else { return };
        loop {
            glommio::timer::sleep(std::time::Duration::from_millis(500)).await;
            if c.is_active() && self.catalog().topic(OFFSETS_TOPIC).is_none() {
                let configs = crate::group::offsets_topic_configs();
                if let Err(e) = self
                    .ensure_topic(OFFSETS_TOPIC, OFFSETS_PARTITIONS, configs)
                    .await
                {
                    tracing::debug!(error = %e, "creating the offsets topic failed; retrying");
                }
            }
        }
    }

    /// Installs committed catalogs as the controller's log commits them (runs for the life of
    /// the broker on [`super::CATALOG_CORE`]).
    pub(super) async fn apply_controller_log(self: Rc<Self>) {
        let (Some(c), Some(store)) = (&self.controller, &self.store) else {
            return;
        };
        loop {
            let changed = c.handle.changed.notified();
            let defaults = store.current().defaults().clone();
            let brokers = store.current().brokers().to_vec();
            match c.next_to_install(&defaults, &brokers).await {
                Ok(Some((catalog, upto))) => {
                    if let Err(e) = store.install_committed(catalog.clone()).await {
                        tracing::error!(error = %e, "cannot persist a committed catalog");
                    } else if let Err(e) = self.broadcast(Arc::new(catalog)).await {
                        tracing::error!(error = %e, "cannot install a committed catalog");
                    } else {
                        c.mark_applied(upto).await;
                        continue;
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "cannot read the controller's log"),
            }
            changed.await;
        }
    }
}
