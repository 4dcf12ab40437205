//! Consumer groups' committed offsets, stored in the internal topic `__consumer_offsets` on
//! Strata's own log. A group belongs to one partition of that topic (a hash of its id), and so
//! to the core that owns the partition; that core keeps the group's offsets in memory, rebuilt
//! from the partition when it is first used.
//!
//! Group membership (JoinGroup, SyncGroup, heartbeats, rebalances) is not implemented yet:
//! commits are accepted from simple consumers (no generation, no member id), which is what
//! `assign()`-based consumers and tools send.

pub mod offsets;

use crate::cluster::{CatalogError, SharedCatalog};
use crate::shard::TopicPartition;

/// Creates `__consumer_offsets` (compacted) the first time a group needs it.
pub fn ensure_offsets_topic(catalog: &SharedCatalog) -> Result<(), CatalogError> {
    if catalog
        .read()
        .map(|c| c.topic(offsets::OFFSETS_TOPIC).is_some())
        .unwrap_or(false)
    {
        return Ok(());
    }
    let mut c = catalog
        .write()
        .map_err(|_| CatalogError::InvalidConfig("catalog lock poisoned".into()))?;
    match c.create_topic(
        offsets::OFFSETS_TOPIC,
        offsets::OFFSETS_PARTITIONS,
        vec![("cleanup.policy".into(), "compact".into())],
    ) {
        Ok(_) | Err(CatalogError::TopicExists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The `__consumer_offsets` partition holding `group`.
pub fn group_partition(group: &str) -> TopicPartition {
    TopicPartition {
        topic: offsets::OFFSETS_TOPIC.into(),
        partition: offsets::offsets_partition(group),
    }
}
