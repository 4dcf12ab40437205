//! One peer core's queue and the task that dials it and writes the queue out, one frame per
//! wake-up, reconnecting with backoff for as long as the transport lives.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::AsyncReadExt;
use glommio::net::TcpStream;

use super::counters::{bump, Counters};
use super::frame::{self, Kind, MessagesFrame, MESSAGE_HEADER_LEN};
use super::handshake::{Handshake, PROTOCOL_VERSION};
use super::wire::{self, FrameReader};
use super::Shared;
use crate::cluster::peers::NodeId;
use crate::limits::{
    RPC_COPY_BELOW_BYTES, RPC_FRAME_TARGET_BYTES, RPC_MAX_FRAME_BYTES, RPC_MAX_HANDSHAKE_BYTES,
    RPC_MAX_QUEUED_BYTES, RPC_MAX_QUEUED_MESSAGES,
};
use crate::notify::Notify;

const RECONNECT_MIN: Duration = Duration::from_millis(20);
const RECONNECT_MAX: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages waiting for one peer core.
#[derive(Default)]
pub(super) struct Outbox {
    queue: RefCell<VecDeque<(u64, Bytes)>>,
    bytes: Cell<usize>,
    wake: Notify,
}

impl Outbox {
    /// Queues a message, dropping the oldest ones beyond the bounds, and wakes the flusher.
    pub fn push(&self, channel: u64, payload: Bytes, counters: &Counters) {
        let mut q = self.queue.borrow_mut();
        self.bytes.set(self.bytes.get() + payload.len());
        q.push_back((channel, payload));
        while q.len() > 1
            && (q.len() > RPC_MAX_QUEUED_MESSAGES || self.bytes.get() > RPC_MAX_QUEUED_BYTES)
        {
            if let Some((_, old)) = q.pop_front() {
                self.bytes.set(self.bytes.get() - old.len());
                bump(&counters.messages_dropped, 1);
            }
        }
        drop(q);
        self.wake.notify();
    }

    pub fn len(&self) -> usize {
        self.queue.borrow().len()
    }

    /// Takes the queued messages that fit in one frame (at least one, if any): all of them,
    /// unless they pass [`RPC_FRAME_TARGET_BYTES`].
    fn take_frame(&self) -> Option<(Vec<Bytes>, u64)> {
        let mut q = self.queue.borrow_mut();
        if q.is_empty() {
            return None;
        }
        let mut f = MessagesFrame::new(RPC_COPY_BELOW_BYTES);
        let mut n = 0;
        while let Some((_, p)) = q.front() {
            let grown = f.body_len() + MESSAGE_HEADER_LEN + p.len();
            if n > 0 && (grown > RPC_MAX_FRAME_BYTES || f.body_len() >= RPC_FRAME_TARGET_BYTES) {
                break;
            }
            let Some((c, p)) = q.pop_front() else { break };
            self.bytes.set(self.bytes.get() - p.len());
            f.push(c, p);
            n += 1;
        }
        Some((f.finish(), n))
    }
}

/// Keeps a connection to core `to.1` of node `to.0` up and writes its outbox out.
pub(super) async fn run(
    shared: Rc<Shared>,
    to: (NodeId, u16),
    addr: SocketAddr,
    outbox: Rc<Outbox>,
) {
    let core = shared.config.core;
    let mut backoff = RECONNECT_MIN;
    let mut failures = 0u32;
    loop {
        match dial(&shared, to, addr).await {
            Ok(mut stream) => {
                if failures > 0 {
                    tracing::info!(core, node = to.0, peer_core = to.1, "reconnected to peer");
                }
                failures = 0;
                backoff = RECONNECT_MIN;
                if let Err(e) = pump(&shared, &outbox, &mut stream).await {
                    tracing::warn!(core, node = to.0, peer_core = to.1, error = %e, "connection to peer lost");
                }
            }
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(core, node = to.0, peer_core = to.1, %addr, error = %e, "cannot reach peer; retrying");
                } else {
                    tracing::debug!(core, node = to.0, peer_core = to.1, %addr, error = %e, "cannot reach peer");
                }
            }
        }
        glommio::timer::sleep(backoff).await;
        backoff = (backoff * 2).min(RECONNECT_MAX);
    }
}

/// Writes frames until the connection fails; while there is nothing to write, watches for the
/// peer closing the connection (which carries nothing back after the handshake).
async fn pump(shared: &Shared, outbox: &Outbox, stream: &mut TcpStream) -> Result<(), String> {
    loop {
        let woken = outbox.wake.notified();
        let Some((parts, n)) = outbox.take_frame() else {
            let closed = async {
                let mut byte = [0u8; 1];
                Some(match stream.read(&mut byte).await {
                    Ok(0) => "closed by the peer".to_string(),
                    Ok(_) => "the peer sent data on a one-way connection".to_string(),
                    Err(e) => e.to_string(),
                })
            };
            if let Some(why) = futures_lite::future::or(
                async {
                    woken.await;
                    None
                },
                closed,
            )
            .await
            {
                return Err(why);
            }
            continue;
        };
        if let Err(e) = wire::write_all(stream, &parts).await {
            bump(&shared.counters.messages_dropped, n);
            return Err(format!("write failed: {e}"));
        }
        bump(&shared.counters.frames_sent, 1);
        bump(&shared.counters.messages_sent, n);
    }
}

/// Connects and exchanges handshakes.
async fn dial(shared: &Shared, to: (NodeId, u16), addr: SocketAddr) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let hello = Handshake {
        version: PROTOCOL_VERSION,
        cluster_id: shared.config.cluster_id,
        from_node: shared.me(),
        to_node: to.0,
        from_core: shared.config.core as u16,
        to_core: to.1,
        kafka_listener: shared.config.kafka_listener.clone(),
    };
    let exchange = async {
        wire::write_all(
            &mut stream,
            &[Bytes::from(frame::encode(Kind::Handshake, &hello.encode()))],
        )
        .await
        .map_err(|e| format!("write handshake: {e}"))?;
        let mut reader = FrameReader::new(BytesMut::new(), RPC_MAX_HANDSHAKE_BYTES);
        match reader.next(&mut stream).await {
            Ok(Some((Kind::Handshake, body))) => {
                let reply = Handshake::decode(body).map_err(|e| e.to_string())?;
                check_reply(shared, &hello, &reply)?;
                Ok(reply)
            }
            Ok(Some((Kind::Refused, why))) => Err(format!(
                "refused by the peer: {}",
                String::from_utf8_lossy(&why)
            )),
            Ok(Some((kind, _))) => Err(format!("a {kind:?} frame instead of a handshake")),
            Ok(None) => Err("closed before the handshake".into()),
            Err(e) => Err(e.to_string()),
        }
    };
    let timed_out = async {
        glommio::timer::sleep(HANDSHAKE_TIMEOUT).await;
        Err("no handshake in time".to_string())
    };
    match futures_lite::future::or(exchange, timed_out).await {
        Ok(reply) => {
            bump(&shared.counters.connects, 1);
            shared.learn_listener(reply.from_node, &reply.kafka_listener);
            Ok(stream)
        }
        Err(e) => {
            bump(&shared.counters.handshake_failures, 1);
            Err(format!("handshake with node {}: {e}", to.0))
        }
    }
}

fn check_reply(shared: &Shared, ours: &Handshake, reply: &Handshake) -> Result<(), String> {
    if (reply.from_node, reply.from_core) != (ours.to_node, ours.to_core) {
        return Err(format!(
            "answered by node {} core {}, not node {} core {}",
            reply.from_node, reply.from_core, ours.to_node, ours.to_core
        ));
    }
    if (reply.to_node, reply.to_core) != (ours.from_node, ours.from_core) {
        return Err(format!(
            "the answer is for node {} core {}",
            reply.to_node, reply.to_core
        ));
    }
    super::inbound::check_cluster(shared, reply.cluster_id)
}
