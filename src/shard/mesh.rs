//! The channel mesh between cores, with typed calls: a [`Call`] is a `Send` value that runs on
//! the core it is sent to and answers with its own reply type. One generic path carries every
//! call, one-stage or two-stage (a call may report a first stage, [`Stage::reached`], before its
//! reply, as a produce reports "appended" before "durable").
//!
//! The mesh owns the envelopes, the pending calls and their ids; it knows nothing of what a
//! call does. Replies travel type-erased and are given back to the caller as the type its
//! call declared: the caller that registered an id is the only one that receives its reply.

use std::any::Any;
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;

use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use thiserror::Error;

/// Depth of each cross-core channel.
const MESH_CHANNEL_DEPTH: usize = 1024;

/// A future run on one core.
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Work sent to another core, answered with `Self::Reply`.
pub trait Call<C: 'static>: Send + 'static {
    type Reply: Send + 'static;
    /// Runs on the core the call was sent to; `stage` reports the first stage of a two-stage
    /// call (others ignore it).
    fn run(self, ctx: Rc<C>, stage: Stage) -> LocalFuture<Self::Reply>;
}

#[derive(Debug, Clone, Copy, Error, PartialEq, Eq)]
pub enum MeshError {
    /// The core did not take the call or went away before answering (it is shutting down).
    #[error("core {0} is unreachable")]
    Unreachable(usize),
}

/// A message on the mesh (opaque outside this module).
pub struct Envelope<C>(Message<C>);

enum Message<C> {
    Call {
        id: u64,
        from: usize,
        call: Box<dyn ErasedCall<C> + Send>,
    },
    Staged {
        id: u64,
    },
    Reply {
        id: u64,
        reply: Box<dyn Any + Send>,
    },
}

trait ErasedCall<C> {
    fn run(self: Box<Self>, ctx: Rc<C>, stage: Stage) -> LocalFuture<Box<dyn Any + Send>>;
}

impl<C: 'static, T: Call<C>> ErasedCall<C> for T {
    fn run(self: Box<Self>, ctx: Rc<C>, stage: Stage) -> LocalFuture<Box<dyn Any + Send>> {
        let fut = Call::run(*self, ctx, stage);
        Box::pin(async move { Box::new(fut.await) as Box<dyn Any + Send> })
    }
}

/// What a pending call hears back.
enum Event {
    Staged,
    Done(Box<dyn Any + Send>),
}

/// Reports that a two-stage call reached its first stage (once; later reports do nothing).
pub struct Stage(Option<Box<dyn FnOnce() -> LocalFuture<()>>>);

impl Stage {
    /// A stage nobody listens to (a one-stage call run in place).
    pub fn ignored() -> Stage {
        Stage(None)
    }

    pub async fn reached(&mut self) {
        if let Some(report) = self.0.take() {
            report().await;
        }
    }
}

/// A call on its way: [`Pending::staged`] waits for its first stage, [`Pending::reply`] for
/// its answer.
pub struct Pending<R> {
    rx: LocalReceiver<Event>,
    owner: usize,
    /// The answer, when it came before (instead of) the stage report.
    early: Option<Box<dyn Any + Send>>,
    lost: bool,
    _reply: PhantomData<R>,
}

impl<R: 'static> Pending<R> {
    /// Waits until the call reports its first stage, or has ended.
    pub async fn staged(&mut self) {
        if self.early.is_some() || self.lost {
            return;
        }
        match self.rx.recv().await {
            Some(Event::Staged) => {}
            Some(Event::Done(reply)) => self.early = Some(reply),
            None => self.lost = true,
        }
    }

    /// The call's answer.
    pub async fn reply(mut self) -> Result<R, MeshError> {
        self.staged().await;
        let reply = match self.early.take() {
            Some(reply) => reply,
            None if self.lost => return Err(MeshError::Unreachable(self.owner)),
            None => loop {
                match self.rx.recv().await {
                    Some(Event::Done(reply)) => break reply,
                    Some(Event::Staged) => continue,
                    None => return Err(MeshError::Unreachable(self.owner)),
                }
            },
        };
        match reply.downcast::<R>() {
            Ok(r) => Ok(*r),
            // Ids are registered by the caller awaiting exactly this type.
            Err(_) => unreachable!("a call's reply always has the call's reply type"),
        }
    }
}

/// One core's end of the mesh.
pub struct Mesh<C> {
    id: usize,
    senders: OnceCell<Senders<Envelope<C>>>,
    pending: RefCell<HashMap<u64, LocalSender<Event>>>,
    next_id: Cell<u64>,
}

/// Builds the mesh that connects `cores` cores; every core must join it ([`Mesh::join`]).
pub fn builder<C: 'static>(cores: usize) -> MeshBuilder<Envelope<C>, Full> {
    MeshBuilder::full(cores, MESH_CHANNEL_DEPTH)
}

impl<C: 'static> Mesh<C> {
    /// Core `id`'s end. With one core there is nothing to join.
    pub async fn join(
        id: usize,
        cores: usize,
        builder: MeshBuilder<Envelope<C>, Full>,
    ) -> Result<(Rc<Mesh<C>>, Option<Receivers<Envelope<C>>>), MeshError> {
        let mesh = Rc::new(Mesh {
            id,
            senders: OnceCell::new(),
            pending: RefCell::new(HashMap::new()),
            next_id: Cell::new(1),
        });
        if cores <= 1 {
            return Ok((mesh, None));
        }
        let (senders, receivers) = builder
            .join()
            .await
            .map_err(|_| MeshError::Unreachable(id))?;
        let _ = mesh.senders.set(senders);
        Ok((mesh, Some(receivers)))
    }

    /// Serves calls from the other cores with `ctx`, and routes their replies to our callers.
    pub fn serve(self: &Rc<Self>, ctx: Rc<C>, mut receivers: Receivers<Envelope<C>>) {
        for (_, stream) in receivers.streams() {
            let (mesh, ctx) = (self.clone(), ctx.clone());
            glommio::spawn_local(async move {
                while let Some(Envelope(msg)) = stream.recv().await {
                    match msg {
                        Message::Call { id, from, call } => {
                            let (mesh, ctx) = (mesh.clone(), ctx.clone());
                            glommio::spawn_local(async move {
                                let stage = {
                                    let mesh = mesh.clone();
                                    Stage(Some(Box::new(move || {
                                        Box::pin(async move {
                                            mesh.send(from, Message::Staged { id }).await;
                                        })
                                    })))
                                };
                                let reply = call.run(ctx, stage).await;
                                mesh.send(from, Message::Reply { id, reply }).await;
                            })
                            .detach();
                        }
                        Message::Staged { id } => {
                            if let Some(tx) = mesh.pending.borrow().get(&id) {
                                let _ = tx.try_send(Event::Staged);
                            }
                        }
                        Message::Reply { id, reply } => {
                            if let Some(tx) = mesh.pending.borrow_mut().remove(&id) {
                                let _ = tx.try_send(Event::Done(reply));
                            }
                        }
                    }
                }
            })
            .detach();
        }
    }

    async fn send(&self, to: usize, msg: Message<C>) -> bool {
        match self.senders.get() {
            Some(senders) => senders.send_to(to, Envelope(msg)).await.is_ok(),
            None => false,
        }
    }

    /// Starts `call` on core `owner` (this one included) and returns at once.
    pub fn call<T: Call<C>>(
        self: &Rc<Self>,
        ctx: &Rc<C>,
        owner: usize,
        call: T,
    ) -> Pending<T::Reply> {
        // Two events at most: the stage report and the reply.
        let (tx, rx) = local_channel::new_bounded(2);
        let pending = Pending {
            rx,
            owner,
            early: None,
            lost: false,
            _reply: PhantomData,
        };
        if owner == self.id {
            let ctx = ctx.clone();
            let tx = Rc::new(tx);
            glommio::spawn_local(async move {
                let stage = {
                    let tx = tx.clone();
                    Stage(Some(Box::new(move || {
                        Box::pin(async move {
                            let _ = tx.try_send(Event::Staged);
                        })
                    })))
                };
                let reply = call.run(ctx, stage).await;
                let _ = tx.try_send(Event::Done(Box::new(reply)));
            })
            .detach();
            return pending;
        }
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.pending.borrow_mut().insert(id, tx);
        let mesh = self.clone();
        glommio::spawn_local(async move {
            let msg = Message::Call {
                id,
                from: mesh.id,
                call: Box::new(call),
            };
            if !mesh.send(owner, msg).await {
                // Dropping the sender tells the caller the call is lost.
                mesh.pending.borrow_mut().remove(&id);
            }
        })
        .detach();
        pending
    }

    /// Runs a one-stage `call` on core `owner` and waits for its answer; on this core it runs
    /// in place, with no task and no channel.
    pub async fn run<T: Call<C>>(
        self: &Rc<Self>,
        ctx: &Rc<C>,
        owner: usize,
        call: T,
    ) -> Result<T::Reply, MeshError> {
        if owner == self.id {
            return Ok(call.run(ctx.clone(), Stage::ignored()).await);
        }
        self.call(ctx, owner, call).reply().await
    }
}
