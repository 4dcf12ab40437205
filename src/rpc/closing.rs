//! The signal that a core's transport was dropped, awaited by every one of its tasks.
//!
//! Unlike [`crate::notify::Notify`], a waiter keeps one waker slot however often its task is
//! polled (a connection's reader is woken for every read, and races this signal each time), and
//! gives the slot back when it is dropped.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub(super) struct Closing {
    closed: Cell<bool>,
    next: Cell<u64>,
    wakers: RefCell<HashMap<u64, Waker>>,
}

impl Closing {
    pub fn close(&self) {
        self.closed.set(true);
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for w in wakers.into_values() {
            w.wake();
        }
    }

    /// Completes once [`Closing::close`] was called.
    pub fn closed(&self) -> Closed<'_> {
        let id = self.next.get();
        self.next.set(id + 1);
        Closed { closing: self, id }
    }
}

pub(super) struct Closed<'a> {
    closing: &'a Closing,
    id: u64,
}

impl Future for Closed<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.closing.closed.get() {
            return Poll::Ready(());
        }
        let mut wakers = self.closing.wakers.borrow_mut();
        match wakers.get_mut(&self.id) {
            Some(w) if w.will_wake(cx.waker()) => {}
            Some(w) => *w = cx.waker().clone(),
            None => {
                wakers.insert(self.id, cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        self.closing.wakers.borrow_mut().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_polled_often_holds_one_slot_and_frees_it() {
        let closing = Closing::default();
        let waker = futures_lite::future::block_on(futures_lite::future::poll_fn(|cx| {
            Poll::Ready(cx.waker().clone())
        }));
        let mut cx = Context::from_waker(&waker);
        let mut f = Box::pin(closing.closed());
        for _ in 0..100 {
            assert!(f.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(closing.wakers.borrow().len(), 1);
        drop(f);
        assert!(closing.wakers.borrow().is_empty());
        let mut f = Box::pin(closing.closed());
        assert!(f.as_mut().poll(&mut cx).is_pending());
        closing.close();
        assert!(f.as_mut().poll(&mut cx).is_ready());
        assert!(Box::pin(closing.closed()).as_mut().poll(&mut cx).is_ready());
    }
}
