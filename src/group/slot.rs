//! A one-shot, single-threaded reply slot: a request that must wait for other members (a
//! JoinGroup waiting for the rebalance to complete, a SyncGroup waiting for the leader's
//! assignment) parks on it, and the coordinator fills it when the answer is known.

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

struct State<T> {
    value: Option<T>,
    filled: bool,
    waker: Option<Waker>,
}

pub struct Slot<T>(Rc<RefCell<State<T>>>);

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Slot(self.0.clone())
    }
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot(Rc::new(RefCell::new(State {
            value: None,
            filled: false,
            waker: None,
        })))
    }
}

impl<T> Slot<T> {
    /// Gives the waiter its answer; only the first fill counts.
    pub fn fill(&self, v: T) {
        let waker = {
            let mut s = self.0.borrow_mut();
            if s.filled {
                return;
            }
            s.filled = true;
            s.value = Some(v);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub fn is_filled(&self) -> bool {
        self.0.borrow().filled
    }

    /// The answer, if it was given and not taken yet.
    pub fn take(&self) -> Option<T> {
        self.0.borrow_mut().value.take()
    }

    /// Waits for the answer.
    pub async fn wait(&self) -> Option<T> {
        poll_fn(|cx| {
            let mut s = self.0.borrow_mut();
            if s.filled {
                Poll::Ready(s.value.take())
            } else {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}
