//! The inter-broker transport between "brokers" in one process: every core of every node on
//! its own glommio executor thread, talking over loopback.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::{LocalExecutorBuilder, Placement};
use strata::cluster::peers::{NodeId, Peers};
use strata::rpc::frame::{self, Kind};
use strata::rpc::handshake::{Handshake, PROTOCOL_VERSION};
use strata::rpc::{self, Inbound, Transport, TransportConfig};

/// (receiving core, from node, from core, channel, payload)
type Log = Arc<Mutex<Vec<(usize, NodeId, u16, u64, Bytes)>>>;

mod common;

use common::broker::free_port;

fn cluster(n: i32) -> BTreeMap<NodeId, std::net::SocketAddr> {
    (1..=n)
        .map(|id| {
            (
                id,
                format!("127.0.0.1:{}", free_port()).parse().expect("addr"),
            )
        })
        .collect()
}

fn config(
    addrs: &BTreeMap<NodeId, std::net::SocketAddr>,
    me: NodeId,
    core: usize,
    cores: usize,
) -> TransportConfig {
    TransportConfig {
        peers: Peers::new(me, addrs.clone(), None).expect("peers"),
        core,
        cores,
        kafka_listener: format!("broker{me}.test:{}", 9090 + me),
        cluster_id: 0,
    }
}

/// A handler that records what core `core` receives.
fn recorder(log: &Log, core: usize) -> rpc::Handler {
    let log = log.clone();
    Rc::new(move |m: Inbound| {
        log.lock()
            .expect("log")
            .push((core, m.from_node, m.from_core, m.channel, m.payload))
    })
}

fn count(log: &Log) -> usize {
    log.lock().expect("log").len()
}

/// Runs `f` on a fresh executor thread.
fn on_core<T, F, Fut>(f: F) -> glommio::ExecutorJoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .spawn(f)
        .expect("executor")
}

/// Waits (inside an executor) until `cond` holds, at most 20 s.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }
}

/// Starts the transport of a node with one core.
fn one_core(
    addrs: &BTreeMap<NodeId, std::net::SocketAddr>,
    me: NodeId,
    handler: rpc::Handler,
) -> Result<Transport, rpc::RpcError> {
    let wiring = rpc::wiring(1).pop().expect("one core");
    Transport::start(config(addrs, me, 0, 1), wiring, handler)
}

/// Node `me` (one core) on its own executor, handing what it receives to the handler `make`
/// builds, until `done` is set; returns its counters.
fn serve_until(
    addrs: &BTreeMap<NodeId, std::net::SocketAddr>,
    me: NodeId,
    make: impl FnOnce() -> rpc::Handler + Send + 'static,
    done: &Arc<AtomicBool>,
) -> glommio::ExecutorJoinHandle<rpc::CounterSnapshot> {
    let (addrs, done) = (addrs.clone(), done.clone());
    on_core(move || async move {
        let t = one_core(&addrs, me, make()).expect("start");
        until("done", || done.load(Ordering::SeqCst)).await;
        t.counters()
    })
}

/// Node `me` (one core, ignoring what it receives) with its connection to `to` up.
async fn connected(
    addrs: &BTreeMap<NodeId, std::net::SocketAddr>,
    me: NodeId,
    to: (NodeId, usize),
) -> Transport {
    let t = one_core(addrs, me, Rc::new(|_| {})).expect("start");
    t.connect(to).expect("connect");
    until("connected", || t.counters().connects == 1).await;
    t
}

fn seq_payload(seq: u32, len: usize) -> Bytes {
    let mut v = seq.to_be_bytes().to_vec();
    v.resize(len.max(4), (seq % 251) as u8);
    Bytes::from(v)
}

#[test]
fn messages_arrive_in_order_per_peer_and_channel() {
    const PER_SENDER: u32 = 3000;
    const CHANNELS: u64 = 5;
    let addrs = cluster(3);
    let log: Log = Default::default();
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (addrs, log, done) = (addrs.clone(), log.clone(), done.clone());
        on_core(move || async move {
            let t = one_core(&addrs, 1, recorder(&log, 0)).expect("start");
            until("every message", || count(&log) == 2 * PER_SENDER as usize).await;
            let c = t.counters();
            done.store(true, Ordering::SeqCst);
            (c, t.kafka_listeners())
        })
    };
    let senders: Vec<_> = [2, 3]
        .into_iter()
        .map(|me| {
            let (addrs, done) = (addrs.clone(), done.clone());
            on_core(move || async move {
                let t = one_core(&addrs, me, Rc::new(|_| {})).expect("start");
                let started = Instant::now();
                for seq in 0..PER_SENDER {
                    // Small and large payloads, on interleaved channels, in bursts.
                    let len = if seq % 97 == 0 {
                        70_000
                    } else {
                        8 + (seq as usize % 300)
                    };
                    t.send((1, 0), seq as u64 % CHANNELS, seq_payload(seq, len))
                        .expect("send");
                    if seq % 50 == 0 {
                        glommio::yield_if_needed().await;
                        glommio::timer::sleep(Duration::from_micros(100)).await;
                    }
                }
                until("the receiver is done", || done.load(Ordering::SeqCst)).await;
                (t.counters(), started.elapsed())
            })
        })
        .collect();
    let (rc, learned) = receiver.join().expect("receiver");
    for s in senders {
        let (c, took) = s.join().expect("sender");
        assert_eq!(c.messages_sent, PER_SENDER as u64, "{c:?}");
        assert_eq!(c.messages_dropped, 0, "{c:?}");
        assert!(c.frames_sent < PER_SENDER as u64, "batched: {c:?}");
        eprintln!(
            "sender: {} messages in {} frames, {:?} ({:.0} messages/s)",
            c.messages_sent,
            c.frames_sent,
            took,
            c.messages_sent as f64 / took.as_secs_f64()
        );
    }
    assert_eq!(rc.messages_received, 2 * PER_SENDER as u64);
    let got = log.lock().expect("log");
    for from in [2, 3] {
        for channel in 0..CHANNELS {
            let seqs: Vec<u32> = got
                .iter()
                .filter(|m| m.1 == from && m.3 == channel)
                .map(|m| u32::from_be_bytes([m.4[0], m.4[1], m.4[2], m.4[3]]))
                .collect();
            let want: Vec<u32> = (0..PER_SENDER)
                .filter(|s| *s as u64 % CHANNELS == channel)
                .collect();
            assert_eq!(seqs, want, "from {from} channel {channel}");
        }
    }
    for m in got.iter() {
        let seq = u32::from_be_bytes([m.4[0], m.4[1], m.4[2], m.4[3]]);
        let len = if seq % 97 == 0 {
            70_000
        } else {
            8 + (seq as usize % 300)
        };
        assert_eq!(m.4, seq_payload(seq, len), "payload of {seq} intact");
    }
    assert_eq!(
        learned,
        BTreeMap::from([
            (2, "broker2.test:9092".to_string()),
            (3, "broker3.test:9093".to_string())
        ])
    );
}

#[test]
fn sends_in_one_loop_pass_leave_as_one_frame() {
    const N: usize = 200;
    let addrs = cluster(2);
    let log: Log = Default::default();
    let done = Arc::new(AtomicBool::new(false));
    let b = {
        let log = log.clone();
        serve_until(&addrs, 2, move || recorder(&log, 0), &done)
    };
    let a = {
        let (addrs, log, done) = (addrs.clone(), log.clone(), done.clone());
        on_core(move || async move {
            let t = connected(&addrs, 1, (2, 0)).await;
            let before = t.counters();
            // One pass: no await between the sends. Every tenth payload is large (written
            // from its own buffer, not copied).
            for i in 0..N {
                let len = if i % 10 == 0 { 20_000 } else { 16 };
                t.send((2, 0), i as u64, seq_payload(i as u32, len))
                    .expect("send");
            }
            until("delivered", || count(&log) == N).await;
            let after = t.counters();
            // A second pass, with a yield after every send: more frames.
            for i in 0..20 {
                t.send((2, 0), 7, seq_payload(i, 16)).expect("send");
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
            until("delivered", || count(&log) == N + 20).await;
            let last = t.counters();
            // A pass of 3 MB: split into frames of about RPC_FRAME_TARGET_BYTES (35 such
            // messages pass 1 MiB).
            for i in 0..100 {
                t.send((2, 0), 8, seq_payload(i, 30_000)).expect("send");
            }
            until("delivered", || count(&log) == N + 120).await;
            let big = t.counters();
            done.store(true, Ordering::SeqCst);
            (before, after, last, big)
        })
    };
    let (before, after, last, big) = a.join().expect("a");
    assert_eq!(big.frames_sent - last.frames_sent, 3, "{big:?}");
    let bc = b.join().expect("b");
    assert_eq!(after.frames_sent - before.frames_sent, 1, "{after:?}");
    assert_eq!(after.messages_sent - before.messages_sent, N as u64);
    assert!(last.frames_sent - after.frames_sent > 1, "{last:?}");
    assert_eq!(bc.frames_received, big.frames_sent);
    assert_eq!(bc.messages_received, (N + 120) as u64);
    let got = log.lock().expect("log");
    for (i, m) in got.iter().take(N).enumerate() {
        let len = if i % 10 == 0 { 20_000 } else { 16 };
        assert_eq!((m.3, &m.4), (i as u64, &seq_payload(i as u32, len)));
    }
}

#[test]
fn a_restarted_peer_is_reconnected() {
    let addrs = cluster(2);
    let log: Log = Default::default();
    let phase = Arc::new(AtomicUsize::new(0));
    let b = {
        let (addrs, log, phase) = (addrs.clone(), log.clone(), phase.clone());
        on_core(move || async move {
            let t = one_core(&addrs, 2, recorder(&log, 0)).expect("start");
            until("a first message", || count(&log) > 0).await;
            drop(t);
            phase.store(1, Ordering::SeqCst);
            glommio::timer::sleep(Duration::from_millis(300)).await;
            // The old listener goes away asynchronously: retry the bind for a while.
            let start = Instant::now();
            let t = loop {
                match one_core(&addrs, 2, recorder(&log, 0)) {
                    Ok(t) => break t,
                    Err(e) => {
                        assert!(start.elapsed() < Duration::from_secs(10), "{e}");
                        glommio::timer::sleep(Duration::from_millis(20)).await;
                    }
                }
            };
            phase.store(2, Ordering::SeqCst);
            let before = count(&log);
            until("a message after the restart", || count(&log) > before).await;
            phase.store(3, Ordering::SeqCst);
            t.counters()
        })
    };
    let a = {
        let (addrs, phase) = (addrs.clone(), phase.clone());
        on_core(move || async move {
            let t = one_core(&addrs, 1, Rc::new(|_| {})).expect("start");
            let mut i = 0u64;
            while phase.load(Ordering::SeqCst) < 3 {
                t.send((2, 0), 1, Bytes::from(i.to_be_bytes().to_vec()))
                    .expect("send");
                i += 1;
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
            t.counters()
        })
    };
    let ac = a.join().expect("a");
    let bc = b.join().expect("b");
    assert!(ac.connects >= 2, "{ac:?}");
    assert_eq!(bc.accepts, 1, "{bc:?}");
    // What was received is in order: a restart loses messages, never reorders them.
    let got: Vec<u64> = log
        .lock()
        .expect("log")
        .iter()
        .map(|m| u64::from_be_bytes(m.4[..8].try_into().expect("8 bytes")))
        .collect();
    assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
}

/// Connects a raw client to `addr`, writes `bytes`, and returns what the broker answered
/// before it closed the connection.
fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    match s.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the connection was not closed: {e}"),
    }
    answer
}

fn hello(from: NodeId, to: NodeId) -> Handshake {
    Handshake {
        version: PROTOCOL_VERSION,
        cluster_id: 0,
        from_node: from,
        to_node: to,
        from_core: 0,
        to_core: 0,
        kafka_listener: "raw:1".into(),
    }
}

fn refusal(answer: &[u8]) -> String {
    let mut buf = bytes::BytesMut::from(answer);
    match frame::decode(&mut buf, 1 << 20) {
        Ok(Some((Kind::Refused, why))) => String::from_utf8_lossy(&why).to_string(),
        other => panic!("not a refusal: {other:?}"),
    }
}

#[test]
fn garbage_and_strangers_are_refused_and_the_peers_keep_working() {
    let addrs = cluster(2);
    let b_addr = addrs[&2];
    let log: Log = Default::default();
    let phase = Arc::new(AtomicUsize::new(0));
    let b = {
        let (addrs, log, phase) = (addrs.clone(), log.clone(), phase.clone());
        on_core(move || async move {
            let t = one_core(&addrs, 2, recorder(&log, 0)).expect("start");
            phase.store(1, Ordering::SeqCst);
            until("the test is done", || phase.load(Ordering::SeqCst) == 3).await;
            t.counters()
        })
    };
    let a = {
        let (addrs, phase) = (addrs.clone(), phase.clone());
        on_core(move || async move {
            let t = one_core(&addrs, 1, Rc::new(|_| {})).expect("start");
            t.connect((2, 0)).expect("connect");
            until("connected", || t.counters().connects == 1).await;
            until("the garbage was sent", || phase.load(Ordering::SeqCst) == 2).await;
            for i in 0..10u8 {
                t.send((2, 0), 5, Bytes::from(vec![i; 10])).expect("send");
            }
            until("the test is done", || phase.load(Ordering::SeqCst) == 3).await;
            t.counters()
        })
    };
    while phase.load(Ordering::SeqCst) < 1 {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Not a frame at all: an HTTP request (its "length" is far above the handshake limit).
    let why = refusal(&raw_exchange(b_addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert!(why.contains("above the limit"), "{why}");
    // A frame, but its CRC is wrong.
    let mut bad_crc = frame::encode(Kind::Handshake, &hello(1, 2).encode());
    bad_crc[12] ^= 1;
    let why = refusal(&raw_exchange(b_addr, &bad_crc));
    assert!(why.contains("checksum mismatch"), "{why}");
    // A stranger, a wrong version, a wrong magic, a wrong target: refused with the reason.
    let why = refusal(&raw_exchange(
        b_addr,
        &frame::encode(Kind::Handshake, &hello(9, 2).encode()),
    ));
    assert!(why.contains("node 9 is not a peer of node 2"), "{why}");
    let mut old = hello(1, 2).encode();
    old[5] = 99;
    let why = refusal(&raw_exchange(b_addr, &frame::encode(Kind::Handshake, &old)));
    assert!(why.contains("protocol version 99"), "{why}");
    let mut magic = hello(1, 2).encode();
    magic[..4].copy_from_slice(b"KAFK");
    let why = refusal(&raw_exchange(
        b_addr,
        &frame::encode(Kind::Handshake, &magic),
    ));
    assert!(why.contains("not a Strata broker"), "{why}");
    let why = refusal(&raw_exchange(
        b_addr,
        &frame::encode(Kind::Handshake, &hello(1, 3).encode()),
    ));
    assert!(why.contains("this is node 2, not node 3"), "{why}");
    // A proper handshake (posing as node 1), then a messages frame with a broken CRC: the
    // connection is closed and nothing of the frame is delivered.
    let mut forged = frame::encode(Kind::Messages, &{
        let mut body = 77u64.to_be_bytes().to_vec();
        body.extend_from_slice(&3u32.to_be_bytes());
        body.extend_from_slice(b"bad");
        body
    });
    let last = forged.len() - 1;
    forged[last] ^= 0xff;
    let mut stream = frame::encode(Kind::Handshake, &hello(1, 2).encode());
    stream.extend_from_slice(&forged);
    let answer = raw_exchange(b_addr, &stream);
    let mut answer = bytes::BytesMut::from(&answer[..]);
    assert!(matches!(
        frame::decode(&mut answer, 1 << 20),
        Ok(Some((Kind::Handshake, _)))
    ));
    // The same, truncated: closed mid-frame, nothing delivered.
    let mut cut = frame::encode(Kind::Handshake, &hello(1, 2).encode());
    cut.extend_from_slice(&frame::encode(Kind::Messages, &[0u8; 40])[..20]);
    raw_exchange(b_addr, &cut);
    phase.store(2, Ordering::SeqCst);
    let start = Instant::now();
    while count(&log) < 10 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the real peer stopped working"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    phase.store(3, Ordering::SeqCst);
    let ac = a.join().expect("a");
    let bc = b.join().expect("b");
    assert_eq!(ac.messages_sent, 10);
    assert_eq!(
        bc.messages_received, 10,
        "only the real peer's messages: {bc:?}"
    );
    assert!(log
        .lock()
        .expect("log")
        .iter()
        .all(|m| m.1 == 1 && m.3 == 5));
    assert_eq!(bc.handshake_failures, 6, "{bc:?}");
    assert_eq!(bc.bad_frames, 2, "{bc:?}");
}

#[test]
fn a_connection_reaches_the_core_it_names() {
    let addrs = cluster(2);
    let log: Log = Default::default();
    let done = Arc::new(AtomicBool::new(false));
    // Node 2 runs two cores; core 0 accepts and hands connections for core 1 over.
    let b_cores: Vec<_> = rpc::wiring(2)
        .into_iter()
        .enumerate()
        .map(|(core, wiring)| {
            let (addrs, log, done) = (addrs.clone(), log.clone(), done.clone());
            on_core(move || async move {
                let t = Transport::start(config(&addrs, 2, core, 2), wiring, recorder(&log, core))
                    .expect("start");
                // Core 1 of node 2 also talks back to node 1.
                if core == 1 {
                    t.send((1, 0), 9, Bytes::from_static(b"from core 1"))
                        .expect("send");
                }
                until("done", || done.load(Ordering::SeqCst)).await;
                (t.counters(), t.kafka_listeners())
            })
        })
        .collect();
    let a = {
        let (addrs, log, done) = (addrs.clone(), log.clone(), done.clone());
        on_core(move || async move {
            let t = one_core(&addrs, 1, recorder(&log, 100)).expect("start");
            for i in 0..50u32 {
                t.send((2, (i % 2) as usize), i as u64, seq_payload(i, 20))
                    .expect("send");
            }
            assert_eq!(
                t.send((1, 0), 0, Bytes::new()),
                Err(rpc::SendError::ToSelf(1))
            );
            assert_eq!(
                t.send((5, 0), 0, Bytes::new()),
                Err(rpc::SendError::UnknownNode(5))
            );
            // A core node 2 does not have: the handshake is refused, the messages are lost.
            t.send((2, 7), 0, Bytes::new()).expect("queued");
            until("all delivered", || count(&log) == 51).await;
            until("the refusal", || t.counters().handshake_failures > 0).await;
            done.store(true, Ordering::SeqCst);
            t.counters()
        })
    };
    let ac = a.join().expect("a");
    let mut b_counters = Vec::new();
    for h in b_cores {
        b_counters.push(h.join().expect("b core"));
    }
    let got = log.lock().expect("log");
    for m in got.iter().filter(|m| m.1 == 1) {
        let seq = u32::from_be_bytes([m.4[0], m.4[1], m.4[2], m.4[3]]);
        assert_eq!(
            m.0,
            (seq % 2) as usize,
            "message {seq} went to core {}",
            m.0
        );
    }
    assert_eq!(got.iter().filter(|m| m.0 == 1).count(), 25);
    assert!(got
        .iter()
        .any(|m| m.0 == 100 && m.1 == 2 && m.2 == 1 && &m.4[..] == b"from core 1"));
    assert!(ac.handshake_failures >= 1);
    assert_eq!(ac.connects, 2, "{ac:?}");
    assert_eq!(b_counters[1].0.accepts, 1);
    assert_eq!(
        b_counters[1].1.get(&1).map(String::as_str),
        Some("broker1.test:9091")
    );
}

/// Not a benchmark (debug build, shared cores), but a number: messages per second over
/// loopback when the sender queues bursts of 500 per loop pass.
#[test]
fn loopback_throughput_is_reported() {
    for (total, size) in [(100_000u64, 100usize), (4_000, 16 * 1024)] {
        let addrs = cluster(2);
        let received = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let b = {
            let r = received.clone();
            let count = move || -> rpc::Handler {
                Rc::new(move |_| {
                    r.fetch_add(1, Ordering::Relaxed);
                })
            };
            serve_until(&addrs, 2, count, &done)
        };
        let a = {
            let (addrs, received, done) = (addrs.clone(), received.clone(), done.clone());
            on_core(move || async move {
                let t = connected(&addrs, 1, (2, 0)).await;
                let payload = Bytes::from(vec![7u8; size]);
                let start = Instant::now();
                let mut sent = 0u64;
                while sent < total {
                    for _ in 0..500.min(total - sent) {
                        t.send((2, 0), sent % 64, payload.clone()).expect("send");
                        sent += 1;
                    }
                    futures_lite::future::yield_now().await;
                    while t.queued((2, 0)) > 2_000 {
                        glommio::timer::sleep(Duration::from_micros(50)).await;
                    }
                }
                until("all received", || {
                    received.load(Ordering::Relaxed) as u64 == total
                })
                .await;
                let took = start.elapsed();
                done.store(true, Ordering::SeqCst);
                (t.counters(), took)
            })
        };
        let (c, took) = a.join().expect("a");
        let bc = b.join().expect("b");
        assert_eq!((c.messages_sent, c.messages_dropped), (total, 0));
        assert_eq!(bc.messages_received, total);
        eprintln!(
            "{total} messages of {size} B in {took:?}: {:.0} messages/s, {:.1} MB/s, {} frames ({:.0} messages per frame)",
            total as f64 / took.as_secs_f64(),
            (total * size as u64) as f64 / took.as_secs_f64() / 1e6,
            c.frames_sent,
            total as f64 / c.frames_sent as f64
        );
    }
}

#[test]
fn a_peer_that_is_down_costs_a_bounded_queue_and_gets_the_newest() {
    use strata::limits::RPC_MAX_QUEUED_MESSAGES;
    let extra = 1000;
    let total = (RPC_MAX_QUEUED_MESSAGES + extra) as u32;
    let addrs = cluster(2);
    let log: Log = Default::default();
    let queued = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let a = {
        let (addrs, queued, done) = (addrs.clone(), queued.clone(), done.clone());
        on_core(move || async move {
            let t = one_core(&addrs, 1, Rc::new(|_| {})).expect("start");
            // Node 2 is not running: everything waits in the queue, the oldest dropped.
            for seq in 0..total {
                t.send((2, 0), 0, seq_payload(seq, 8)).expect("send");
            }
            let while_down = (t.counters(), t.queued((2, 0)));
            queued.store(true, Ordering::SeqCst);
            until("done", || done.load(Ordering::SeqCst)).await;
            (while_down, t.counters())
        })
    };
    while !queued.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let b = {
        let log = log.clone();
        serve_until(&addrs, 2, move || recorder(&log, 0), &done)
    };
    let start = Instant::now();
    while count(&log) < RPC_MAX_QUEUED_MESSAGES {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "got {}",
            count(&log)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    done.store(true, Ordering::SeqCst);
    let ((down, depth), after) = a.join().expect("a");
    b.join().expect("b");
    assert_eq!(down.messages_dropped, extra as u64);
    assert_eq!(depth, RPC_MAX_QUEUED_MESSAGES);
    assert_eq!(after.messages_sent, RPC_MAX_QUEUED_MESSAGES as u64);
    let seqs: Vec<u32> = log
        .lock()
        .expect("log")
        .iter()
        .map(|m| u32::from_be_bytes([m.4[0], m.4[1], m.4[2], m.4[3]]))
        .collect();
    assert_eq!(
        seqs,
        (extra as u32..total).collect::<Vec<_>>(),
        "the newest, in order"
    );
}
