//! The writable catalog, held by the one core that owns it. Changes are taken one at a time:
//! each is applied to a copy, the copy is persisted to `cluster.meta` (temporary file, fsync,
//! rename, fsync of the folder) on glommio's blocking pool so the owning executor never waits
//! on a sync, and only then does the copy become the catalog. A change that fails validation
//! or persistence leaves the catalog as it was.
//!
//! The store decides nothing about who sees a change when: the shard broadcasts the new
//! catalog and answers the client once every core has it.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use glommio::sync::{Permit, Semaphore};

use super::{Catalog, CatalogError, CLUSTER_META_FILE};
use crate::storage::meta;

pub struct CatalogStore {
    path: PathBuf,
    current: RefCell<Catalog>,
    /// One change at a time, from validation until every core has the result.
    turn: Semaphore,
    /// One reservation of local producer ids at a time (clustered brokers).
    local: Semaphore,
}

/// A change's turn: held until the changed catalog has reached every core, so that cores see
/// changes in the order they were persisted.
pub struct Turn<'a>(#[allow(dead_code)] Permit<'a>);

impl CatalogStore {
    pub fn new(data_dir: &Path, catalog: Catalog) -> CatalogStore {
        CatalogStore {
            path: data_dir.join(CLUSTER_META_FILE),
            current: RefCell::new(catalog),
            turn: Semaphore::new(1),
            local: Semaphore::new(1),
        }
    }

    /// Waits for the turn to change the catalog.
    pub async fn turn(&self) -> Result<Turn<'_>, CatalogError> {
        self.turn
            .acquire_permit(1)
            .await
            .map(Turn)
            .map_err(|_| CatalogError::Unreachable)
    }

    /// The turn to reserve producer ids from this broker's own counter.
    pub async fn local_turn(&self) -> Result<Turn<'_>, CatalogError> {
        self.local
            .acquire_permit(1)
            .await
            .map(Turn)
            .map_err(|_| CatalogError::Unreachable)
    }

    /// The writable catalog as it is now.
    pub fn current(&self) -> Catalog {
        self.current.borrow().clone()
    }

    /// Makes `catalog` the catalog, persisted first: the controller's log committed it
    /// (clustered brokers change their catalog only this way).
    pub async fn install_committed(&self, catalog: Catalog) -> Result<(), CatalogError> {
        let bytes = catalog.encode()?;
        meta::write_atomic_off_core(self.path.clone(), bytes).await?;
        *self.current.borrow_mut() = catalog;
        Ok(())
    }

    /// Applies `change` (holding `_turn`), persists the result and makes it the catalog.
    pub async fn apply<T>(
        &self,
        _turn: &Turn<'_>,
        change: impl FnOnce(&mut Catalog) -> Result<T, CatalogError>,
    ) -> Result<(Arc<Catalog>, T), CatalogError> {
        let mut next = self.current.borrow().clone();
        let out = change(&mut next)?;
        let bytes = next.encode()?;
        meta::write_atomic_off_core(self.path.clone(), bytes).await?;
        *self.current.borrow_mut() = next.clone();
        Ok((Arc::new(next), out))
    }
}
