//! Cluster metadata: which topics exist, their ids, partition counts and configs, and the
//! producer ids handed out, persisted in `<data>/cluster.meta` (rkyv + CRC-32C, replaced
//! atomically).
//!
//! This is the control plane. A [`Catalog`] is an immutable value on the request path: every
//! core reads its own copy, with no lock. One core owns the writable copy
//! ([`store::CatalogStore`]): a change is applied to a copy of it, persisted off the executor,
//! and the new catalog replaces the old one on every core (the shard does the routing and the
//! broadcast). Producer ids are reserved in blocks whose end is durable before any id of the
//! block is used, so handing one out costs no sync (the interface a replicated controller will
//! serve). It never touches a partition's files.

pub mod peers;
pub mod store;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use rkyv::{rancor, Archive, Deserialize, Serialize};
use thiserror::Error;

use crate::limits::{MAX_PARTITIONS_PER_TOPIC, MAX_TOPIC_NAME_LEN};
use crate::storage::{meta, LogConfig, StorageError};

pub const CLUSTER_META_FILE: &str = "cluster.meta";

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    #[error("invalid topic name '{0}': {1}")]
    InvalidName(String, &'static str),
    #[error("invalid partition count {0}")]
    InvalidPartitions(i32),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("cannot encode the catalog: {0}")]
    Encode(String),
    #[error("the catalog's owner is unreachable")]
    Unreachable,
    #[error("replication factor {0} is not between 1 and the {1} brokers")]
    InvalidReplicationFactor(i16, usize),
    /// A change asked of a broker that does not lead the controller group (Kafka:
    /// NOT_CONTROLLER); the client retries at the controller Metadata names.
    #[error("this broker is not the controller (the controller is {0:?})")]
    NotController(Option<i32>),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One topic.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    pub id: [u8; 16],
    pub partitions: i32,
    /// Topic-level config overrides, by Kafka name.
    pub configs: Vec<(String, String)>,
}

/// `cluster.meta` as a broker without replication wrote it.
#[derive(Archive, Serialize, Deserialize, Debug, Default)]
struct CatalogFile {
    topics: Vec<TopicMeta>,
    /// The first producer id not yet reserved: every id below it may have been handed out,
    /// none will be again.
    next_producer_id: i64,
}

/// `cluster.meta` since replication: the topics' replica assignments beside the rest. A
/// file of the older form loads as a catalog whose topics are not replicated.
#[derive(Archive, Serialize, Deserialize, Debug, Default)]
struct CatalogFileV2 {
    version: u32,
    topics: Vec<TopicMeta>,
    next_producer_id: i64,
    /// Per topic, per partition, the replicas' node ids (the first is the preferred leader).
    assignments: Vec<(String, Vec<Vec<u64>>)>,
}

const CATALOG_FILE_VERSION: u32 = 2;

/// All topics, and the broker-wide defaults their configs override.
#[derive(Debug, Clone)]
pub struct Catalog {
    defaults: LogConfig,
    topics: BTreeMap<String, TopicMeta>,
    next_producer_id: i64,
    /// Replica assignments of replicated topics (a topic without one lives on this broker
    /// alone, as every topic of a one-node broker does).
    assignments: BTreeMap<String, Vec<Vec<u64>>>,
    /// The cluster's brokers, sorted (not persisted: given by the broker's settings).
    brokers: Vec<u64>,
}

/// Kafka's rule: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), CatalogError> {
    let bad = |why| Err(CatalogError::InvalidName(name.into(), why));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return bad("longer than 249 characters");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are reserved");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

impl Catalog {
    /// Loads the catalog from `data_dir` (empty if there is none yet).
    pub fn load(data_dir: &Path, defaults: LogConfig) -> Result<Catalog, CatalogError> {
        std::fs::create_dir_all(data_dir).map_err(StorageError::from)?;
        let path = data_dir.join(CLUSTER_META_FILE);
        let mut catalog = Catalog {
            defaults,
            topics: BTreeMap::new(),
            next_producer_id: 0,
            assignments: BTreeMap::new(),
            brokers: Vec::new(),
        };
        if let Some(bytes) = meta::read_checked(&path)? {
            catalog
                .fill(&bytes)
                .map_err(|reason| StorageError::BadFile {
                    path: path.display().to_string(),
                    reason,
                })?;
        }
        Ok(catalog)
    }

    /// A catalog from the bytes [`Catalog::encode`] made (the controller's log carries them).
    pub fn decode(bytes: &[u8], defaults: LogConfig, brokers: Vec<u64>) -> Result<Catalog, String> {
        let mut catalog = Catalog {
            defaults,
            topics: BTreeMap::new(),
            next_producer_id: 0,
            assignments: BTreeMap::new(),
            brokers,
        };
        catalog.fill(bytes)?;
        Ok(catalog)
    }

    fn fill(&mut self, bytes: &[u8]) -> Result<(), String> {
        // Archived data must be aligned: copy into an aligned buffer first.
        let mut aligned = rkyv::util::AlignedVec::<16>::new();
        aligned.extend_from_slice(bytes);
        let (topics, next, assignments) =
            match rkyv::from_bytes::<CatalogFileV2, rancor::Error>(&aligned) {
                Ok(f) if f.version == CATALOG_FILE_VERSION => {
                    (f.topics, f.next_producer_id, f.assignments)
                }
                _ => {
                    let f = rkyv::from_bytes::<CatalogFile, rancor::Error>(&aligned)
                        .map_err(|e| e.to_string())?;
                    (f.topics, f.next_producer_id, Vec::new())
                }
            };
        for t in topics {
            self.topics.insert(t.name.clone(), t);
        }
        self.next_producer_id = next;
        self.assignments = assignments.into_iter().collect();
        Ok(())
    }

    /// Sets the cluster's brokers (from the broker's settings; one-node: none).
    pub fn set_brokers(&mut self, mut brokers: Vec<u64>) {
        brokers.sort_unstable();
        brokers.dedup();
        self.brokers = brokers;
    }

    pub fn brokers(&self) -> &[u64] {
        &self.brokers
    }

    /// The replicas of a partition of a replicated topic (the first is the preferred leader);
    /// `None` for a topic that lives on this broker alone.
    pub fn replicas(&self, topic: &str, partition: i32) -> Option<&[u64]> {
        self.assignments
            .get(topic)?
            .get(usize::try_from(partition).ok()?)
            .map(|v| v.as_slice())
    }

    /// Replicas for `count` new partitions from `first`, `factor` each: spread round-robin over
    /// the brokers from a start that depends on the topic, so leaders (the first replica) of
    /// a topic's partitions and of different topics land on different brokers.
    fn place(&self, topic: &str, first: i32, count: i32, factor: usize) -> Vec<Vec<u64>> {
        let n = self.brokers.len();
        let start = crc32c::crc32c(topic.as_bytes()) as usize;
        (first..first + count)
            .map(|p| {
                (0..factor)
                    .map(|i| self.brokers[(start + p as usize + i) % n])
                    .collect()
            })
            .collect()
    }

    /// The replication factor a topic gets when none is asked for: Kafka's
    /// `default.replication.factor`, here min(3, brokers).
    pub fn default_replication_factor(&self) -> i16 {
        self.brokers.len().clamp(1, 3) as i16
    }

    /// The bytes of `cluster.meta` for this catalog.
    pub fn encode(&self) -> Result<Vec<u8>, CatalogError> {
        let file = CatalogFileV2 {
            version: CATALOG_FILE_VERSION,
            topics: self.topics.values().cloned().collect(),
            next_producer_id: self.next_producer_id,
            assignments: self
                .assignments
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        rkyv::to_bytes::<rancor::Error>(&file)
            .map(|b| b.to_vec())
            .map_err(|e| CatalogError::Encode(e.to_string()))
    }

    pub fn defaults(&self) -> &LogConfig {
        &self.defaults
    }

    /// The effective log config of a topic: broker defaults, then the topic's overrides.
    pub fn log_config(&self, topic: &str) -> Option<LogConfig> {
        let t = self.topics.get(topic)?;
        let mut c = self.defaults.clone();
        for (k, v) in &t.configs {
            // Overrides were validated when stored; a bad one left by an older version is ignored.
            let _ = c.set(k, v);
        }
        Some(c)
    }

    /// Checks a set of config overrides without storing them.
    pub fn check_configs(&self, configs: &[(String, String)]) -> Result<(), CatalogError> {
        let mut c = self.defaults.clone();
        for (k, v) in configs {
            c.set(k, v)
                .map_err(|e| CatalogError::InvalidConfig(e.to_string()))?;
        }
        Ok(())
    }

    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        configs: Vec<(String, String)>,
    ) -> Result<TopicMeta, CatalogError> {
        self.create_topic_replicated(name, partitions, None, configs)
    }

    /// Creates a topic with `factor` replicas per partition (the default when `None` or -1).
    /// A broker that is not part of a cluster creates topics that are not replicated, and
    /// accepts only a factor of 1.
    pub fn create_topic_replicated(
        &mut self,
        name: &str,
        partitions: i32,
        factor: Option<i16>,
        configs: Vec<(String, String)>,
    ) -> Result<TopicMeta, CatalogError> {
        let factor = match factor {
            None | Some(-1) => self.default_replication_factor(),
            Some(f) => f,
        };
        let brokers = self.brokers.len().max(1);
        if factor < 1 || factor as usize > brokers {
            return Err(CatalogError::InvalidReplicationFactor(factor, brokers));
        }
        validate_topic_name(name)?;
        if self.topics.contains_key(name) {
            return Err(CatalogError::TopicExists(name.into()));
        }
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
            return Err(CatalogError::InvalidPartitions(partitions));
        }
        self.check_configs(&configs)?;
        let t = TopicMeta {
            name: name.into(),
            id: *uuid::Uuid::new_v4().as_bytes(),
            partitions,
            configs,
        };
        if !self.brokers.is_empty() {
            let placed = self.place(name, 0, partitions, factor as usize);
            self.assignments.insert(name.into(), placed);
        }
        self.topics.insert(name.into(), t.clone());
        Ok(t)
    }

    pub fn delete_topic(&mut self, name: &str) -> Result<TopicMeta, CatalogError> {
        self.assignments.remove(name);
        self.topics
            .remove(name)
            .ok_or_else(|| CatalogError::UnknownTopic(name.into()))
    }

    /// Grows a topic to `total` partitions (Kafka never shrinks).
    pub fn set_partition_count(
        &mut self,
        name: &str,
        total: i32,
    ) -> Result<TopicMeta, CatalogError> {
        let t = self
            .topics
            .get(name)
            .ok_or_else(|| CatalogError::UnknownTopic(name.into()))?;
        if total <= t.partitions || total > MAX_PARTITIONS_PER_TOPIC {
            return Err(CatalogError::InvalidPartitions(total));
        }
        let mut t = t.clone();
        let old = t.partitions;
        t.partitions = total;
        let factor = self
            .assignments
            .get(name)
            .and_then(|a| a.first())
            .map(|r| r.len());
        if let Some(factor) = factor {
            let more = self.place(name, old, total - old, factor);
            if let Some(a) = self.assignments.get_mut(name) {
                a.extend(more);
            }
        }
        self.topics.insert(name.into(), t.clone());
        Ok(t)
    }

    /// Applies config changes: `Some(v)` sets, `None` removes the override.
    pub fn alter_configs(
        &mut self,
        name: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<(), CatalogError> {
        let t = self
            .topics
            .get(name)
            .ok_or_else(|| CatalogError::UnknownTopic(name.into()))?;
        let mut configs: BTreeMap<String, String> = t.configs.iter().cloned().collect();
        for (k, v) in changes {
            match v {
                Some(v) => configs.insert(k.clone(), v.clone()),
                None => configs.remove(k),
            };
        }
        let configs: Vec<(String, String)> = configs.into_iter().collect();
        self.check_configs(&configs)?;
        let mut t = t.clone();
        t.configs = configs;
        self.topics.insert(name.into(), t);
        Ok(())
    }

    /// Reserves the next `count` producer ids. Once this catalog is persisted, none of them is
    /// ever reserved again, whether or not it was used.
    pub fn reserve_producer_ids(&mut self, count: i64) -> Range<i64> {
        let start = self.next_producer_id;
        self.next_producer_id = start.saturating_add(count.max(1));
        start..self.next_producer_id
    }

    pub fn topic(&self, name: &str) -> Option<&TopicMeta> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &[u8; 16]) -> Option<&TopicMeta> {
        self.topics.values().find(|t| &t.id == id)
    }

    pub fn topics(&self) -> impl Iterator<Item = &TopicMeta> {
        self.topics.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn persist(c: &Catalog, dir: &Path) {
        meta::write_atomic(&dir.join(CLUSTER_META_FILE), &c.encode().expect("encode"))
            .expect("write");
    }

    #[test]
    fn catalog_persists_and_validates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Catalog::load(dir.path(), LogConfig::default()).expect("load");
        c.create_topic("orders", 3, vec![("retention.ms".into(), "1000".into())])
            .expect("create");
        assert!(matches!(
            c.create_topic("orders", 1, vec![]),
            Err(CatalogError::TopicExists(_))
        ));
        assert!(matches!(
            c.create_topic("bad name", 1, vec![]),
            Err(CatalogError::InvalidName(..))
        ));
        assert!(matches!(
            c.create_topic("x", 0, vec![]),
            Err(CatalogError::InvalidPartitions(0))
        ));
        assert!(c
            .create_topic("y", 1, vec![("segment.bytes".into(), "1".into())])
            .is_err());
        c.set_partition_count("orders", 5).expect("grow");
        c.alter_configs(
            "orders",
            &[("segment.bytes".into(), Some("1048576".into()))],
        )
        .expect("alter");
        let block = c.reserve_producer_ids(1000);
        persist(&c, dir.path());
        let mut c2 = Catalog::load(dir.path(), LogConfig::default()).expect("reload");
        let t = c2.topic("orders").expect("persisted");
        assert_eq!(t.partitions, 5);
        assert_eq!(c2.log_config("orders").expect("config").retention_ms, 1000);
        assert_eq!(
            c2.log_config("orders").expect("config").segment_bytes,
            1048576
        );
        assert!(c2.topic("y").is_none());
        let next = c2.reserve_producer_ids(1000);
        assert_eq!(
            next.start, block.end,
            "a reserved block is never reserved again"
        );
    }
}
