//! The open partitions of one core, and their folders: opening (and recovering) a partition
//! on first use, one opener at a time per partition; closing; removing a deleted partition's
//! files; and the per-core tail-cache budget their logs share.
//!
//! The registry opens and closes partitions; it never decides what to do with them (that is
//! the shard's execution of calls) and never reads the catalog itself: its caller passes the
//! config a partition opens with.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::{ShardError, TopicPartition};
use crate::partition::Partition;
use crate::storage::{CacheBudget, LogConfig, PartitionLog, StorageError, SystemClock};

/// Bytes of one partition's cache given back per step of [`Registry::trim_caches`].
const CACHE_TRIM_STEP_BYTES: usize = 8 << 20;

/// Folder of a partition under the data dir (Kafka's `<topic>-<partition>`).
pub fn partition_dir(data_dir: &Path, tp: &TopicPartition) -> PathBuf {
    data_dir.join(format!("{}-{}", tp.topic, tp.partition))
}

/// How a partition being opened joins its Raft group.
pub struct ReplicaOf {
    pub host: Rc<crate::partition::ReplicaHost>,
    pub group: crate::replication::host::GroupId,
    pub settings: crate::replication::ReplicaSettings,
    /// Whether this broker is one of the partition's replicas at all.
    pub member: bool,
}

pub struct Registry {
    data_dir: PathBuf,
    partitions: RefCell<HashMap<TopicPartition, Rc<Partition>>>,
    /// One opener per partition: concurrent first requests wait for the same recovery.
    opening: RefCell<HashMap<TopicPartition, Rc<glommio::sync::Semaphore>>>,
    /// Memory the tail caches of this core's partitions share.
    cache: Rc<CacheBudget>,
}

impl Registry {
    pub fn new(data_dir: PathBuf, cache_bytes: usize) -> Registry {
        Registry {
            data_dir,
            partitions: RefCell::new(HashMap::new()),
            opening: RefCell::new(HashMap::new()),
            cache: CacheBudget::new(cache_bytes),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The open partition `tp`, if it is open.
    pub fn get(&self, tp: &TopicPartition) -> Option<Rc<Partition>> {
        self.partitions.borrow().get(tp).cloned()
    }

    /// The partition `tp`, opened (and recovered) with `config` if it is not open yet.
    pub async fn open(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
        replica: Option<ReplicaOf>,
    ) -> Result<Rc<Partition>, ShardError> {
        if replica.as_ref().is_some_and(|r| !r.member) {
            // Replicated elsewhere: this broker holds no copy (Kafka: NOT_LEADER_OR_FOLLOWER).
            return Err(ShardError::Partition(
                crate::partition::PartitionError::NotLeader { leader: None },
            ));
        }
        if let Some(p) = self.get(tp) {
            return Ok(p);
        }
        let gate = self.gate(tp);
        let _permit = gate
            .acquire_permit(1)
            .await
            .map_err(|_| ShardError::UnknownPartition)?;
        if let Some(p) = self.get(tp) {
            return Ok(p);
        }
        let dir = partition_dir(&self.data_dir, tp);
        let (log, report) =
            PartitionLog::open_cached(&dir, config, Rc::new(SystemClock), self.cache.clone())
                .await?;
        tracing::debug!(topic = %tp.topic, partition = tp.partition, ?report, "opened partition");
        let p = Partition::open(log).await?;
        if let Some(r) = replica {
            p.attach_replica(&r.host, r.group, r.settings).await?;
        }
        self.partitions.borrow_mut().insert(tp.clone(), p.clone());
        self.opening.borrow_mut().remove(tp);
        Ok(p)
    }

    /// The one-at-a-time gate of opening and removing `tp`.
    fn gate(&self, tp: &TopicPartition) -> Rc<glommio::sync::Semaphore> {
        self.opening
            .borrow_mut()
            .entry(tp.clone())
            .or_insert_with(|| Rc::new(glommio::sync::Semaphore::new(1)))
            .clone()
    }

    /// Every open partition.
    pub fn all(&self) -> Vec<(TopicPartition, Rc<Partition>)> {
        self.partitions
            .borrow()
            .iter()
            .map(|(tp, p)| (tp.clone(), p.clone()))
            .collect()
    }

    /// Closes `tp` if it is open and deletes its folder (its topic was deleted).
    pub async fn remove(&self, tp: &TopicPartition) -> Result<(), ShardError> {
        // In turn with an opener of the same partition: one that is recovering it now must
        // not insert it after its files are gone.
        let gate = self.gate(tp);
        let _permit = gate
            .acquire_permit(1)
            .await
            .map_err(|_| ShardError::UnknownPartition)?;
        let p = self.partitions.borrow_mut().remove(tp);
        if let Some(p) = p {
            p.close_for_removal();
        }
        let removed = match std::fs::remove_dir_all(partition_dir(&self.data_dir, tp)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::from(e).into()),
        };
        self.opening.borrow_mut().remove(tp);
        removed
    }

    /// Gives back tail-cache memory while the core is over its budget, the oldest batches of
    /// the core first (whichever partition holds them).
    pub fn trim_caches(&self) {
        while self.cache.over() {
            let oldest = self
                .partitions
                .borrow()
                .values()
                .filter_map(|p| p.oldest_cached().map(|seq| (seq, p.clone())))
                .min_by_key(|(seq, _)| *seq);
            let Some((_, p)) = oldest else {
                return; // what is left is not on disk yet
            };
            p.evict_cached(CACHE_TRIM_STEP_BYTES);
        }
    }

    /// Closes every partition (clean shutdown).
    pub async fn close_all(&self) {
        let parts: Vec<(TopicPartition, Rc<Partition>)> =
            self.partitions.borrow_mut().drain().collect();
        for (tp, p) in parts {
            if let Err(e) = p.close().await {
                tracing::error!(topic = %tp.topic, partition = tp.partition, error = %e, "close failed");
            }
        }
    }
}
