//! A partition as the broker sees it: its log plus what the log must not know about —
//! when to sync per the flush policy, and consumers long-polling for new data.
//!
//! A partition lives on the core that owns it and is never touched from another thread.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::storage::{AppendInfo, PartitionLog, Result};

/// Wakes every waiter when new data becomes readable.
#[derive(Default)]
pub struct DataNotify {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl DataNotify {
    pub fn notify(&self) {
        self.generation.set(self.generation.get() + 1);
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Completes at the next `notify` after the call.
    pub fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            seen: self.generation.get(),
        }
    }
}

pub struct Notified<'a> {
    notify: &'a DataNotify,
    seen: u64,
}

impl Future for Notified<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.seen {
            return Poll::Ready(());
        }
        self.notify.wakers.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}

pub struct Partition {
    pub log: PartitionLog,
    pub data: DataNotify,
}

impl Partition {
    pub fn new(log: PartitionLog) -> Rc<Partition> {
        Rc::new(Partition {
            log,
            data: DataNotify::default(),
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
