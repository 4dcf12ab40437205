//! Incoming connections: core 0 accepts them, checks the handshake, answers it and hands each
//! connection to the core it names; that core reads its frames and delivers the messages.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use glommio::channels::shared_channel::{ConnectedSender, SharedReceiver, SharedSender};
use glommio::net::{TcpListener, TcpStream};

use super::counters::bump;
use super::frame::{self, Kind};
use super::handshake::{Handshake, PROTOCOL_VERSION};
use super::outbound::HANDSHAKE_TIMEOUT;
use super::wire::{self, FrameReader};
use super::{Handoff, Inbound, Shared};
use crate::limits::{RPC_MAX_FRAME_BYTES, RPC_MAX_HANDSHAKE_BYTES};

/// Binds the broker's inter-broker address without SO_REUSEPORT: a second broker configured
/// with the same address fails to start instead of sharing its connections.
pub(super) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    // SAFETY: the descriptor is a listening TCP socket whose ownership moves to glommio here.
    Ok(unsafe { TcpListener::from_raw_fd(std_listener.into_raw_fd()) })
}

/// Core 0: accepts connections for every core of this broker.
pub(super) async fn listen(
    shared: Rc<Shared>,
    listener: TcpListener,
    to_cores: Vec<SharedSender<Handoff>>,
) {
    let mut senders = Vec::with_capacity(to_cores.len());
    for tx in to_cores {
        senders.push(tx.connect().await);
    }
    let senders = Rc::new(senders);
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let (s, senders) = (shared.clone(), senders.clone());
                shared.spawn(async move { accept(s, stream, &senders).await });
            }
            Err(e) => {
                tracing::warn!(error = %e, "rpc accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// Other cores: serves the connections core 0 hands over.
pub(super) async fn take_handoffs(shared: Rc<Shared>, rx: SharedReceiver<Handoff>) {
    let rx = rx.connect().await;
    while let Some(h) = rx.recv().await {
        // SAFETY: core 0 gave up this descriptor (a connected TCP socket) when it sent it.
        let stream = unsafe { TcpStream::from_raw_fd(h.fd.into_raw_fd()) };
        let s = shared.clone();
        shared.spawn(async move { serve(s, stream, h.hello, h.leftover).await });
    }
}

/// Checks one new connection's handshake and gives the connection to the core it is for.
async fn accept(shared: Rc<Shared>, mut stream: TcpStream, senders: &[ConnectedSender<Handoff>]) {
    let _ = stream.set_nodelay(true);
    let remote = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut reader = FrameReader::new(BytesMut::new(), RPC_MAX_HANDSHAKE_BYTES);
    let read = async { Some(reader.next(&mut stream).await) };
    let timed_out = async {
        glommio::timer::sleep(HANDSHAKE_TIMEOUT).await;
        None
    };
    let checked = match futures_lite::future::or(read, timed_out).await {
        None => Err("no handshake in time".to_string()),
        Some(Ok(Some((Kind::Handshake, body)))) => Handshake::decode(body)
            .map_err(|e| e.to_string())
            .and_then(|h| check_hello(&shared, &h).map(|()| h)),
        Some(Ok(Some((kind, _)))) => Err(format!("a {kind:?} frame instead of a handshake")),
        Some(Ok(None)) => Err("closed before the handshake".into()),
        Some(Err(e)) => Err(e.to_string()),
    };
    let hello = match checked {
        Ok(h) => h,
        Err(why) => {
            bump(&shared.counters.handshake_failures, 1);
            tracing::warn!(%remote, error = %why, "refused an inter-broker connection");
            let refusal = Bytes::from(frame::encode(Kind::Refused, why.as_bytes()));
            let _ = wire::write_all(&mut stream, &[refusal]).await;
            return;
        }
    };
    let reply = Handshake {
        version: PROTOCOL_VERSION,
        cluster_id: shared.config.cluster_id,
        from_node: shared.me(),
        to_node: hello.from_node,
        from_core: hello.to_core,
        to_core: hello.from_core,
        kafka_listener: shared.config.kafka_listener.clone(),
    };
    let reply = Bytes::from(frame::encode(Kind::Handshake, &reply.encode()));
    if let Err(e) = wire::write_all(&mut stream, &[reply]).await {
        tracing::debug!(%remote, error = %e, "handshake answer failed");
        return;
    }
    let leftover = reader.into_leftover();
    let target = hello.to_core as usize;
    if target == shared.config.core {
        return serve(shared, stream, hello, leftover).await;
    }
    // SAFETY: dup(2) of a descriptor `stream` owns; the copy is owned by the OwnedFd below.
    let fd = unsafe { libc::dup(stream.as_raw_fd()) };
    if fd < 0 {
        tracing::warn!(%remote, error = %std::io::Error::last_os_error(), "cannot hand a connection over");
        return;
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    drop(stream);
    let Some(tx) = target.checked_sub(1).and_then(|i| senders.get(i)) else {
        return;
    };
    if tx
        .send(Handoff {
            fd,
            hello,
            leftover,
        })
        .await
        .is_err()
    {
        tracing::warn!(core = target, "core does not take inter-broker connections");
    }
}

fn check_hello(shared: &Shared, h: &Handshake) -> Result<(), String> {
    let me = shared.me();
    if h.to_node != me {
        return Err(format!("this is node {me}, not node {}", h.to_node));
    }
    if h.from_node == me || !shared.config.peers.contains(h.from_node) {
        return Err(format!(
            "node {} is not a peer of node {me} (peers: {:?})",
            h.from_node,
            shared.config.peers.ids().collect::<Vec<_>>()
        ));
    }
    if h.to_core as usize >= shared.config.cores {
        return Err(format!(
            "node {me} has {} cores, no core {}",
            shared.config.cores, h.to_core
        ));
    }
    check_cluster(shared, h.cluster_id)
}

/// Cluster ids must agree once both sides have one.
pub(super) fn check_cluster(shared: &Shared, theirs: u128) -> Result<(), String> {
    let ours = shared.config.cluster_id;
    if ours != 0 && theirs != 0 && ours != theirs {
        return Err(format!("cluster {theirs:032x} is not cluster {ours:032x}"));
    }
    Ok(())
}

/// Reads one connection's frames and delivers their messages until it closes or breaks.
async fn serve(shared: Rc<Shared>, mut stream: TcpStream, hello: Handshake, leftover: BytesMut) {
    bump(&shared.counters.accepts, 1);
    shared.learn_listener(hello.from_node, &hello.kafka_listener);
    let (node, core) = (hello.from_node, hello.from_core);
    let mut reader = FrameReader::new(leftover, RPC_MAX_FRAME_BYTES);
    loop {
        let body = match reader.next(&mut stream).await {
            Ok(Some((Kind::Messages, body))) => body,
            Ok(None) => {
                tracing::debug!(node, peer_core = core, "peer closed its connection");
                return;
            }
            Ok(Some((kind, _))) => {
                bump(&shared.counters.bad_frames, 1);
                tracing::warn!(
                    node,
                    peer_core = core,
                    ?kind,
                    "unexpected frame; closing the connection"
                );
                return;
            }
            Err(e) => {
                bump(&shared.counters.bad_frames, 1);
                tracing::warn!(node, peer_core = core, error = %e, "bad frame; closing the connection");
                return;
            }
        };
        // The whole frame is checked before any of it is delivered.
        if let Some(Err(e)) = frame::messages(body.clone()).find(Result::is_err) {
            bump(&shared.counters.bad_frames, 1);
            tracing::warn!(node, peer_core = core, error = %e, "malformed frame; closing the connection");
            return;
        }
        bump(&shared.counters.frames_received, 1);
        for (channel, payload) in frame::messages(body).flatten() {
            bump(&shared.counters.messages_received, 1);
            (shared.handler)(Inbound {
                from_node: node,
                from_core: core,
                channel,
                payload,
            });
        }
    }
}
