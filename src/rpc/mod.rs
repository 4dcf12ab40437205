//! The transport between brokers: each core of a broker sends messages to any core of any other
//! broker of the cluster, batched per peer core, over TCP with a versioned handshake and a
//! CRC-32C on every frame. It carries bytes for its callers (the replication engine's Raft
//! messages, one channel per Raft group) and knows nothing of what they mean.
//!
//! **Addressing.** A message goes to `(node id, core index)`. Each broker has one inter-broker
//! address (its `--peers` entry, or `--rpc-listen`); core 0 of the broker listens there, reads
//! the handshake, which names the core the dialer wants, and hands the connection to that core
//! (the socket's file descriptor moves over a glommio shared channel; the handshake is
//! answered first). From then on the connection belongs to the target core alone, so a
//! message is never copied between cores. One port per broker means the operator lists one
//! address per broker, whatever the core counts, and brokers on one host may take consecutive
//! ports.
//!
//! **Connections.** One connection per ordered pair (local core, remote node and core), dialed
//! lazily by the first `send` (or [`Transport::connect`]) to that core and kept up from then on
//! with reconnects under exponential backoff. A connection carries messages one way, from the
//! dialer to the acceptor: a pair of cores that talk both ways has two connections, and
//! neither side has to decide which of two simultaneous dials survives. Messages to one
//! `(node, core)` from one core arrive in the order they were sent, per connection.
//!
//! **Batching.** `send` only queues the message and wakes the peer's flusher task. The flusher
//! runs once the sending task yields, so everything queued in that executor loop pass (every
//! Raft group's heartbeats to that peer) goes out as one frame (up to
//! [`RPC_FRAME_TARGET_BYTES`](crate::limits::RPC_FRAME_TARGET_BYTES) of messages; more is split
//! into frames written back to back); while a write is in progress new messages gather for the
//! next frame. Small payloads are copied beside their headers;
//! payloads of [`RPC_COPY_BELOW_BYTES`](crate::limits::RPC_COPY_BELOW_BYTES) or more are
//! written from their own buffers with one `sendmsg` for the whole frame (no re-encoding of
//! record bytes).
//!
//! **Loss, not growth.** A peer's queue is bounded in messages and bytes; when a peer is down
//! or slow the oldest queued messages are dropped and counted. Raft tolerates lost messages.
//!
//! **Inbound.** Each message is handed to the [`Handler`] the owner gave at start, on the core
//! it was addressed to, as an [`Inbound`] whose payload is a slice of the received frame. The
//! handler is called synchronously from the connection's reader and must not block; it queues
//! work for its own tasks. A frame is delivered whole after its CRC and structure were
//! checked, or the connection is closed with a logged error and nothing of it is delivered.
//!
//! This module must not touch partitions, storage or Kafka requests.

mod closing;
mod counters;
pub mod frame;
pub mod handshake;
mod inbound;
mod outbound;
pub mod start;
mod wire;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};
use thiserror::Error;

pub use counters::CounterSnapshot;

use crate::cluster::peers::{NodeId, Peers};
use crate::limits::RPC_MAX_FRAME_BYTES;

/// One message received from a peer.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub from_node: NodeId,
    pub from_core: u16,
    pub channel: u64,
    pub payload: Bytes,
}

/// Where received messages go (see the module doc).
pub type Handler = Rc<dyn Fn(Inbound)>;

/// What a core's transport needs to know.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    pub peers: Peers,
    /// This core's index, and how many cores this broker runs.
    pub core: usize,
    pub cores: usize,
    /// This broker's advertised Kafka listener (host:port), told to every peer.
    pub kafka_listener: String,
    /// All zero until the controller assigns the cluster an id.
    pub cluster_id: u128,
}

#[derive(Debug, Error)]
pub enum RpcError {
    #[error("cannot listen for peers on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("transport of core {0}: {1}")]
    Setup(usize, String),
}

#[derive(Debug, Error, PartialEq)]
pub enum SendError {
    #[error("node {0} is this broker")]
    ToSelf(NodeId),
    #[error("node {0} is not in the peers list")]
    UnknownNode(NodeId),
    #[error("core {0} cannot be addressed")]
    BadCore(usize),
    #[error("a message of {0} bytes is above the frame limit")]
    TooLarge(usize),
}

/// A connection accepted by core 0 for another core, with its handshake done.
struct Handoff {
    fd: std::os::fd::OwnedFd,
    hello: handshake::Handshake,
    leftover: bytes::BytesMut,
}

/// The channels one core's transport needs to the broker's other cores, made before the
/// executors start (see [`wiring`]).
pub struct CoreWiring {
    core: usize,
    /// Core 0: a sender to each other core, in core order.
    to_cores: Vec<SharedSender<Handoff>>,
    /// Other cores: the hand-offs from core 0.
    from_core0: Option<SharedReceiver<Handoff>>,
}

/// Hand-off channels of a broker with `cores` cores, one entry per core, to be moved into each
/// core's executor and given to [`Transport::start`].
pub fn wiring(cores: usize) -> Vec<CoreWiring> {
    let mut to_cores = Vec::new();
    let mut wired = vec![CoreWiring {
        core: 0,
        to_cores: Vec::new(),
        from_core0: None,
    }];
    for core in 1..cores {
        let (tx, rx) = shared_channel::new_bounded(HANDOFF_QUEUE);
        to_cores.push(tx);
        wired.push(CoreWiring {
            core,
            to_cores: Vec::new(),
            from_core0: Some(rx),
        });
    }
    wired[0].to_cores = to_cores;
    wired
}

/// Connections core 0 may have handed to one core and that core not yet taken.
const HANDOFF_QUEUE: usize = 64;

/// State shared by a core's transport and its tasks.
struct Shared {
    config: TransportConfig,
    handler: Handler,
    counters: counters::Counters,
    outboxes: RefCell<HashMap<(NodeId, u16), Rc<outbound::Outbox>>>,
    kafka_listeners: RefCell<BTreeMap<NodeId, String>>,
    closing: closing::Closing,
}

impl Shared {
    fn me(&self) -> NodeId {
        self.config.peers.me()
    }

    /// Runs `work` as a task of this transport: it ends when the work does or the transport
    /// is dropped.
    fn spawn(self: &Rc<Self>, work: impl std::future::Future<Output = ()> + 'static) {
        let shared = self.clone();
        glommio::spawn_local(async move {
            futures_lite::future::or(work, shared.closing.closed()).await;
        })
        .detach();
    }

    fn learn_listener(&self, node: NodeId, listener: &str) {
        let mut known = self.kafka_listeners.borrow_mut();
        if known.get(&node).map(String::as_str) != Some(listener) {
            tracing::info!(
                core = self.config.core,
                node,
                kafka_listener = listener,
                "learned a peer broker's Kafka listener"
            );
            known.insert(node, listener.to_string());
        }
    }
}

/// One core's end of the inter-broker transport. Dropping it stops its listener, connections
/// and tasks.
pub struct Transport {
    shared: Rc<Shared>,
    listen_addr: Option<SocketAddr>,
}

impl Transport {
    /// Starts this core's transport: on core 0 the listener (bound before this returns), on
    /// the others the task that takes the connections core 0 hands over. Outgoing connections
    /// are made by the first message to each peer core.
    pub fn start(
        config: TransportConfig,
        wiring: CoreWiring,
        handler: Handler,
    ) -> Result<Transport, RpcError> {
        let core = config.core;
        if wiring.core != core || core >= config.cores || config.cores > u16::MAX as usize {
            return Err(RpcError::Setup(
                core,
                format!(
                    "wiring of core {} for core {core} of {}",
                    wiring.core, config.cores
                ),
            ));
        }
        let shared = Rc::new(Shared {
            config,
            handler,
            counters: Default::default(),
            outboxes: Default::default(),
            kafka_listeners: Default::default(),
            closing: Default::default(),
        });
        let listen_addr = if core == 0 {
            let addr = shared.config.peers.rpc_listen();
            let listener = inbound::bind(addr).map_err(|e| RpcError::Bind(addr, e))?;
            let bound = listener.local_addr().ok();
            shared.spawn(inbound::listen(shared.clone(), listener, wiring.to_cores));
            bound
        } else {
            let rx = wiring
                .from_core0
                .ok_or_else(|| RpcError::Setup(core, "no hand-off channel".into()))?;
            shared.spawn(inbound::take_handoffs(shared.clone(), rx));
            None
        };
        Ok(Transport {
            shared,
            listen_addr,
        })
    }

    /// Queues `payload` for core `to.1` of node `to.0` on `channel` (see the module doc: it
    /// leaves in one frame with everything else queued for that core in this loop pass).
    /// An error means the address can never be reached; a message that cannot be delivered
    /// now is dropped and counted instead.
    pub fn send(&self, to: (NodeId, usize), channel: u64, payload: Bytes) -> Result<(), SendError> {
        if payload.len() > RPC_MAX_FRAME_BYTES - frame::MESSAGE_HEADER_LEN {
            counters::bump(&self.shared.counters.messages_dropped, 1);
            return Err(SendError::TooLarge(payload.len()));
        }
        let outbox = self.outbox(to)?;
        outbox.push(channel, payload, &self.shared.counters);
        Ok(())
    }

    /// Dials core `to.1` of node `to.0` now rather than at the first message (and keeps the
    /// connection up from then on).
    pub fn connect(&self, to: (NodeId, usize)) -> Result<(), SendError> {
        self.outbox(to).map(drop)
    }

    fn outbox(&self, (node, core): (NodeId, usize)) -> Result<Rc<outbound::Outbox>, SendError> {
        if node == self.shared.me() {
            return Err(SendError::ToSelf(node));
        }
        let addr = self
            .shared
            .config
            .peers
            .addr(node)
            .ok_or(SendError::UnknownNode(node))?;
        let core = u16::try_from(core).map_err(|_| SendError::BadCore(core))?;
        if let Some(o) = self.shared.outboxes.borrow().get(&(node, core)) {
            return Ok(o.clone());
        }
        let outbox = Rc::new(outbound::Outbox::default());
        self.shared
            .outboxes
            .borrow_mut()
            .insert((node, core), outbox.clone());
        self.shared.spawn(outbound::run(
            self.shared.clone(),
            (node, core),
            addr,
            outbox.clone(),
        ));
        Ok(outbox)
    }

    /// Messages queued for core `to.1` of node `to.0` and not yet written (for callers that
    /// want to slow down before the queue's bound drops messages).
    pub fn queued(&self, (node, core): (NodeId, usize)) -> usize {
        let key = (node, u16::try_from(core).unwrap_or(u16::MAX));
        self.shared
            .outboxes
            .borrow()
            .get(&key)
            .map_or(0, |o| o.len())
    }

    pub fn counters(&self) -> CounterSnapshot {
        self.shared.counters.snapshot()
    }

    /// The Kafka listeners of the peers this core has exchanged a handshake with.
    pub fn kafka_listeners(&self) -> BTreeMap<NodeId, String> {
        self.shared.kafka_listeners.borrow().clone()
    }

    /// Where this core listens (core 0 only).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen_addr
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.shared.closing.close();
        self.shared.outboxes.borrow_mut().clear();
    }
}
