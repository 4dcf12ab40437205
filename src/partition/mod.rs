//! A partition as the broker sees it: its log plus what the log must not know about —
//! when to sync per the flush policy, and consumers long-polling for new data.
//!
//! A partition lives on the core that owns it and is never touched from another thread.

use std::rc::Rc;
use std::time::Duration;

use crate::storage::notify::Notify;
use crate::storage::{AppendInfo, PartitionLog, Result};

pub struct Partition {
    pub log: PartitionLog,
    /// Fired whenever new data becomes readable.
    pub data: Notify,
}

impl Partition {
    pub fn new(log: PartitionLog) -> Rc<Partition> {
        Rc::new(Partition {
            log,
            data: Notify::default(),
        })
    }

    /// Appends and, per the flush policy, syncs before returning (the caller acknowledges
    /// only after this returns). Waiting consumers are woken once the data is readable.
    pub async fn produce(&self, records: &[u8]) -> Result<AppendInfo> {
        let info = self.log.append(records).await?;
        if self.log.config().sync_every_append() || self.log.flush_due() {
            self.log.flush(info.last_offset + 1).await?;
        } else if self.log.write_out_due() {
            self.log.write_out().await?;
        }
        self.data.notify();
        Ok(info)
    }

    /// Waits until data beyond `offset` is readable or `wait` passes.
    pub async fn wait_for_data(&self, offset: i64, wait: Duration) {
        if self.log.high_watermark() > offset {
            return;
        }
        let notified = self.data.notified();
        futures_lite::future::or(notified, async {
            glommio::timer::sleep(wait).await;
        })
        .await;
    }
}
