//! The shard router: which core owns which partition, and how a request for a partition
//! reaches its owner. Each core runs one [`Shard`]; a call for a partition owned elsewhere
//! travels over glommio's channel mesh as a [`ShardOp`] and its [`ShardReply`] comes back the
//! same way. Payloads are `bytes::Bytes`: they move between cores, they are not copied.
//!
//! The shard owns the open partitions of its core. It knows nothing of Kafka's wire format.

mod groups;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};
use glommio::channels::local_channel;
use thiserror::Error;

use crate::cluster::SharedCatalog;
use crate::group::coordinator::GroupSettings;
use crate::group::{GroupOp, GroupReply};
use crate::partition::{Partition, PartitionError};
use crate::storage::{AppendInfo, CacheBudget, PartitionLog, StorageError, SystemClock};

/// Bytes of one partition's cache given back per step of [`Shard::trim_caches`].
const CACHE_TRIM_STEP_BYTES: usize = 8 << 20;

/// Depth of each cross-core channel.
const MESH_CHANNEL_DEPTH: usize = 1024;

/// A topic partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// The core that owns a partition: a stable hash, so ownership survives restarts.
pub fn owner_of(tp: &TopicPartition, shards: usize) -> usize {
    let h = crc32c::crc32c_append(
        crc32c::crc32c(tp.topic.as_bytes()),
        &tp.partition.to_be_bytes(),
    );
    (h as usize) % shards.max(1)
}

/// Folder of a partition under the data dir (Kafka's `<topic>-<partition>`).
pub fn partition_dir(data_dir: &Path, tp: &TopicPartition) -> PathBuf {
    data_dir.join(format!("{}-{}", tp.topic, tp.partition))
}

#[derive(Debug, Error)]
pub enum ShardError {
    #[error("unknown topic or partition")]
    UnknownPartition,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("shard {0} is unreachable")]
    Unreachable(usize),
    #[error(transparent)]
    Partition(PartitionError),
}

impl From<PartitionError> for ShardError {
    fn from(e: PartitionError) -> Self {
        match e {
            PartitionError::Storage(s) => ShardError::Storage(s),
            other => ShardError::Partition(other),
        }
    }
}

/// Work for the owner of a partition.
#[derive(Debug)]
pub enum ShardOp {
    Produce {
        tp: TopicPartition,
        records: Bytes,
    },
    Fetch {
        tp: TopicPartition,
        offset: i64,
        max_bytes: usize,
    },
    WaitForData {
        tp: TopicPartition,
        offset: i64,
        wait: Duration,
    },
    ListOffset {
        tp: TopicPartition,
        timestamp: i64,
    },
    /// Close the partition and delete its files (topic deleted).
    Drop {
        tp: TopicPartition,
    },
    /// Re-read the topic's config from the catalog.
    Reconfigure {
        tp: TopicPartition,
    },
    /// A group operation, on the core owning the group's `__consumer_offsets` partition `tp`.
    Group {
        tp: TopicPartition,
        op: GroupOp,
    },
}

/// What a fetch found in one partition.
#[derive(Debug, Default)]
pub struct Fetched {
    pub high_watermark: i64,
    pub log_start: i64,
    /// Whole stored batches, in as few contiguous slices as the log could give.
    pub chunks: Vec<Bytes>,
}

#[derive(Debug)]
pub enum ShardReply {
    /// The first of a produce's two replies: its batches are appended (see [`ProduceCall`]).
    Appended,
    Produced(Result<(AppendInfo, i64), ShardError>),
    Fetched(Result<Fetched, ShardError>),
    Offset(Result<Option<(i64, i64)>, ShardError>),
    Done(Result<(), ShardError>),
    Group(Result<GroupReply, ShardError>),
}

/// A message on the mesh between cores (opaque outside this module).
pub struct Envelope(Message);

enum Message {
    Call { id: u64, from: usize, op: ShardOp },
    Reply { id: u64, reply: ShardReply },
}

/// Timestamps of ListOffsets with a special meaning.
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;

/// The per-core state: owned partitions and the links to the other cores.
pub struct Shard {
    pub id: usize,
    pub shards: usize,
    pub data_dir: PathBuf,
    pub catalog: SharedCatalog,
    partitions: RefCell<HashMap<TopicPartition, Rc<Partition>>>,
    /// Loaded `__consumer_offsets` partitions of this core: offsets and groups.
    offsets: RefCell<HashMap<i32, Rc<groups::OffsetsPartition>>>,
    group_settings: GroupSettings,
    /// Memory the tail caches of this core's partitions share.
    cache: Rc<CacheBudget>,
    opening: RefCell<HashMap<TopicPartition, Rc<glommio::sync::Semaphore>>>,
    senders: std::cell::OnceCell<Senders<Envelope>>,
    pending: RefCell<HashMap<u64, Rc<local_channel::LocalSender<ShardReply>>>>,
    next_id: Cell<u64>,
}

/// Builds the mesh that connects `shards` cores; every core must call [`Shard::start`] with it.
pub fn mesh(shards: usize) -> MeshBuilder<Envelope, Full> {
    MeshBuilder::full(shards, MESH_CHANNEL_DEPTH)
}

impl Shard {
    /// Creates the shard of core `id`, joins the mesh, opens the partitions it owns and starts
    /// serving calls from other cores.
    pub async fn start(
        id: usize,
        shards: usize,
        data_dir: PathBuf,
        catalog: SharedCatalog,
        group_settings: GroupSettings,
        cache_bytes: usize,
        mesh: MeshBuilder<Envelope, Full>,
    ) -> Result<Rc<Shard>, ShardError> {
        let shard = Rc::new(Shard {
            id,
            shards,
            data_dir,
            catalog,
            partitions: RefCell::new(HashMap::new()),
            offsets: RefCell::new(HashMap::new()),
            group_settings,
            cache: CacheBudget::new(cache_bytes),
            opening: RefCell::new(HashMap::new()),
            senders: std::cell::OnceCell::new(),
            pending: RefCell::new(HashMap::new()),
            next_id: Cell::new(1),
        });
        if shards > 1 {
            let (senders, receivers) = mesh.join().await.map_err(|e| {
                ShardError::Storage(StorageError::Io(std::io::Error::other(e.to_string())))
            })?;
            let _ = shard.senders.set(senders);
            shard.clone().serve(receivers);
        }
        let owned: Vec<TopicPartition> = {
            let cat = shard
                .catalog
                .read()
                .map_err(|_| ShardError::Unreachable(id))?;
            cat.topics()
                .flat_map(|t| {
                    (0..t.partitions).map(move |p| TopicPartition {
                        topic: t.name.clone(),
                        partition: p,
                    })
                })
                .filter(|tp| owner_of(tp, shards) == id)
                .collect()
        };
        for tp in owned {
            shard.partition(&tp).await?;
        }
        Ok(shard)
    }

    fn serve(self: Rc<Self>, mut receivers: Receivers<Envelope>) {
        for (_, stream) in receivers.streams() {
            let shard = self.clone();
            glommio::spawn_local(async move {
                while let Some(Envelope(msg)) = stream.recv().await {
                    match msg {
                        Message::Call {
                            id,
                            from,
                            op: ShardOp::Produce { tp, records },
                        } => {
                            let shard = shard.clone();
                            glommio::spawn_local(async move {
                                let reply = shard
                                    .execute_produce(tp, records, async {
                                        let appended = ShardReply::Appended;
                                        shard
                                            .send(
                                                from,
                                                Message::Reply {
                                                    id,
                                                    reply: appended,
                                                },
                                            )
                                            .await;
                                    })
                                    .await;
                                shard.send(from, Message::Reply { id, reply }).await;
                            })
                            .detach();
                        }
                        Message::Call { id, from, op } => {
                            let shard = shard.clone();
                            glommio::spawn_local(async move {
                                let reply = shard.execute(op).await;
                                shard.send(from, Message::Reply { id, reply }).await;
                            })
                            .detach();
                        }
                        Message::Reply { id, reply } => {
                            // A produce's first reply leaves the call pending for its second.
                            let tx = match reply {
                                ShardReply::Appended => shard.pending.borrow().get(&id).cloned(),
                                _ => shard.pending.borrow_mut().remove(&id),
                            };
                            if let Some(tx) = tx {
                                let _ = tx.try_send(reply);
                            }
                        }
                    }
                }
            })
            .detach();
        }
    }

    async fn send(&self, to: usize, msg: Message) -> bool {
        match self.senders.get() {
            Some(senders) => senders.send_to(to, Envelope(msg)).await.is_ok(),
            None => false,
        }
    }

    /// Runs `op` on the core that owns its partition.
    pub async fn call(self: &Rc<Self>, op: ShardOp) -> ShardReply {
        let owner = owner_of(op.tp(), self.shards);
        if owner == self.id {
            return self.execute(op).await;
        }
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (tx, rx) = local_channel::new_bounded(1);
        self.pending.borrow_mut().insert(id, Rc::new(tx));
        let unreachable = op.fail(ShardError::Unreachable(owner));
        if !self
            .send(
                owner,
                Message::Call {
                    id,
                    from: self.id,
                    op,
                },
            )
            .await
        {
            self.pending.borrow_mut().remove(&id);
            return unreachable;
        }
        rx.recv().await.unwrap_or(unreachable)
    }

    /// Starts a produce on the core that owns `tp`. The returned call first reports when the
    /// batches are appended (from then on, a later produce to `tp` is ordered after this one),
    /// then the outcome, once the data is as durable as the flush policy asks.
    pub fn produce(self: &Rc<Self>, tp: TopicPartition, records: Bytes) -> ProduceCall {
        let (tx, rx) = local_channel::new_bounded(2);
        let owner = owner_of(&tp, self.shards);
        let shard = self.clone();
        if owner == self.id {
            glommio::spawn_local(async move {
                let reply = shard
                    .execute_produce(tp, records, async {
                        let _ = tx.try_send(ShardReply::Appended);
                    })
                    .await;
                let _ = tx.try_send(reply);
            })
            .detach();
            return ProduceCall {
                rx,
                owner,
                early: None,
            };
        }
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        self.pending.borrow_mut().insert(id, Rc::new(tx));
        glommio::spawn_local(async move {
            let op = ShardOp::Produce { tp, records };
            let call = Message::Call {
                id,
                from: shard.id,
                op,
            };
            if !shard.send(owner, call).await {
                if let Some(tx) = shard.pending.borrow_mut().remove(&id) {
                    let _ = tx.try_send(ShardReply::Produced(Err(ShardError::Unreachable(owner))));
                }
            }
        })
        .detach();
        ProduceCall {
            rx,
            owner,
            early: None,
        }
    }

    /// A produce on this core: append, tell `appended`, then commit.
    async fn execute_produce(
        &self,
        tp: TopicPartition,
        records: Bytes,
        appended: impl std::future::Future<Output = ()>,
    ) -> ShardReply {
        let appended_info = async {
            let p = self.partition(&tp).await?;
            let info = p.append(records).await?;
            Ok::<_, ShardError>((p, info))
        }
        .await;
        let (p, info) = match appended_info {
            Ok(v) => v,
            Err(e) => return ShardReply::Produced(Err(e)),
        };
        appended.await;
        ShardReply::Produced(
            async {
                p.commit(&info).await?;
                Ok((info, p.log.log_start()))
            }
            .await,
        )
    }

    /// The open partition `tp`, opening (and recovering) it on first use if the catalog has it.
    pub async fn partition(&self, tp: &TopicPartition) -> Result<Rc<Partition>, ShardError> {
        if let Some(p) = self.partitions.borrow().get(tp) {
            return Ok(p.clone());
        }
        let config = {
            let cat = self
                .catalog
                .read()
                .map_err(|_| ShardError::Unreachable(self.id))?;
            match cat.topic(&tp.topic) {
                Some(t) if tp.partition >= 0 && tp.partition < t.partitions => {
                    cat.log_config(&tp.topic)
                }
                _ => None,
            }
        };
        let Some(config) = config else {
            return Err(ShardError::UnknownPartition);
        };
        // One opener per partition: concurrent first requests wait for the same recovery.
        let gate = self
            .opening
            .borrow_mut()
            .entry(tp.clone())
            .or_insert_with(|| Rc::new(glommio::sync::Semaphore::new(1)))
            .clone();
        let _permit = gate
            .acquire_permit(1)
            .await
            .map_err(|_| ShardError::UnknownPartition)?;
        if let Some(p) = self.partitions.borrow().get(tp) {
            return Ok(p.clone());
        }
        let dir = partition_dir(&self.data_dir, tp);
        let (log, report) =
            PartitionLog::open_cached(&dir, config, Rc::new(SystemClock), self.cache.clone())
                .await?;
        tracing::debug!(topic = %tp.topic, partition = tp.partition, ?report, "opened partition");
        let p = Partition::open(log).await?;
        self.partitions.borrow_mut().insert(tp.clone(), p.clone());
        self.opening.borrow_mut().remove(tp);
        Ok(p)
    }

    /// Executes an op on this core (which must own the partition).
    async fn execute(&self, op: ShardOp) -> ShardReply {
        match op {
            ShardOp::Produce { tp, records } => self.execute_produce(tp, records, async {}).await,
            ShardOp::Fetch {
                tp,
                offset,
                max_bytes,
            } => ShardReply::Fetched(
                async {
                    let p = self.partition(&tp).await?;
                    let hw = p.log.high_watermark();
                    let read = p.log.read(offset, max_bytes, hw).await?;
                    Ok(Fetched {
                        high_watermark: hw,
                        log_start: p.log.log_start(),
                        chunks: read.chunks,
                    })
                }
                .await,
            ),
            ShardOp::WaitForData { tp, offset, wait } => ShardReply::Done(
                async {
                    let p = self.partition(&tp).await?;
                    p.wait_for_data(offset, wait).await;
                    Ok(())
                }
                .await,
            ),
            ShardOp::ListOffset { tp, timestamp } => ShardReply::Offset(
                async {
                    let p = self.partition(&tp).await?;
                    Ok(match timestamp {
                        LATEST_TIMESTAMP => Some((p.log.high_watermark(), -1)),
                        EARLIEST_TIMESTAMP => Some((p.log.log_start(), -1)),
                        ts => p.log.offset_for_timestamp(ts).await?,
                    })
                }
                .await,
            ),
            ShardOp::Drop { tp } => ShardReply::Done(
                async {
                    let p = self.partitions.borrow_mut().remove(&tp);
                    if let Some(p) = p {
                        p.log.close().await?;
                        p.data.notify();
                    }
                    let dir = partition_dir(&self.data_dir, &tp);
                    match std::fs::remove_dir_all(&dir) {
                        Ok(()) => Ok(()),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                        Err(e) => Err(StorageError::from(e).into()),
                    }
                }
                .await,
            ),
            ShardOp::Reconfigure { tp } => ShardReply::Done(
                async {
                    let config = self
                        .catalog
                        .read()
                        .ok()
                        .and_then(|c| c.log_config(&tp.topic));
                    if let (Some(p), Some(c)) = (self.partitions.borrow().get(&tp), config) {
                        p.log.set_config(c);
                    }
                    Ok(())
                }
                .await,
            ),
            ShardOp::Group { tp, op } => ShardReply::Group(self.group_op(&tp, op).await),
        }
    }

    /// Gives back tail-cache memory while the core is over its budget, the oldest batches of
    /// the core first (whichever partition holds them).
    pub fn trim_caches(&self) {
        while self.cache.over() {
            let oldest = self
                .partitions
                .borrow()
                .values()
                .filter_map(|p| p.log.oldest_cached().map(|seq| (seq, p.clone())))
                .min_by_key(|(seq, _)| *seq);
            let Some((_, p)) = oldest else {
                return; // what is left is not on disk yet
            };
            p.log.evict_cached(CACHE_TRIM_STEP_BYTES);
        }
    }

    /// Runs group timers, flushes due partitions, trims the caches and enforces retention;
    /// called periodically on each core.
    pub async fn housekeeping(&self, retention: bool) {
        self.trim_caches();
        self.tick_groups().await;
        let parts: Vec<Rc<Partition>> = self.partitions.borrow().values().cloned().collect();
        for p in parts {
            if p.log.flush_due() {
                if let Err(e) = p.log.flush(p.log.log_end()).await {
                    tracing::error!(dir = %p.log.dir().display(), error = %e, "periodic flush failed");
                }
                p.data.notify();
            }
            if retention {
                if let Err(e) = p.log.enforce_retention().await {
                    tracing::error!(dir = %p.log.dir().display(), error = %e, "retention failed");
                }
            }
        }
    }

    /// Closes every partition of this core (clean shutdown).
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

/// A produce in flight on the owning core; see [`Shard::produce`].
pub struct ProduceCall {
    rx: local_channel::LocalReceiver<ShardReply>,
    owner: usize,
    /// The outcome, when it came instead of the `Appended` report (the append failed).
    early: Option<ShardReply>,
}

impl ProduceCall {
    /// Waits until the batches are appended, or the produce has failed.
    pub async fn appended(&mut self) {
        if self.early.is_some() {
            return;
        }
        match self.rx.recv().await {
            Some(ShardReply::Appended) => {}
            other => self.early = Some(other.unwrap_or_else(|| self.lost())),
        }
    }

    /// The produce's outcome: offsets and log start, or why it failed.
    pub async fn outcome(mut self) -> ShardReply {
        self.appended().await;
        match self.early.take() {
            Some(reply) => reply,
            None => self.rx.recv().await.unwrap_or_else(|| self.lost()),
        }
    }

    /// The reply when the owner went away without answering.
    fn lost(&self) -> ShardReply {
        ShardReply::Produced(Err(ShardError::Unreachable(self.owner)))
    }
}

impl ShardOp {
    fn tp(&self) -> &TopicPartition {
        match self {
            ShardOp::Produce { tp, .. }
            | ShardOp::Fetch { tp, .. }
            | ShardOp::WaitForData { tp, .. }
            | ShardOp::ListOffset { tp, .. }
            | ShardOp::Drop { tp }
            | ShardOp::Reconfigure { tp }
            | ShardOp::Group { tp, .. } => tp,
        }
    }

    /// The reply of the right kind carrying `e`.
    fn fail(&self, e: ShardError) -> ShardReply {
        match self {
            ShardOp::Produce { .. } => ShardReply::Produced(Err(e)),
            ShardOp::Fetch { .. } => ShardReply::Fetched(Err(e)),
            ShardOp::ListOffset { .. } => ShardReply::Offset(Err(e)),
            ShardOp::WaitForData { .. } | ShardOp::Drop { .. } | ShardOp::Reconfigure { .. } => {
                ShardReply::Done(Err(e))
            }
            ShardOp::Group { .. } => ShardReply::Group(Err(e)),
        }
    }
}
