//! The broker process: one pinned glommio executor per core, each accepting connections on the
//! same port (SO_REUSEPORT) and serving each connection as one task. Requests on a connection
//! are answered in order, as Kafka requires; consecutive Produce requests are pipelined.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use futures_lite::io::BufReader;
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use thiserror::Error;

use super::connection::{self, Handled};
use super::handlers::{self, api_versions, dispatch, produce, Ctx};
use super::response::ResponseBuf;
use crate::cluster::{Catalog, CatalogError};
use crate::config::BrokerConfig;
use crate::shard::{self, Shard};

/// How often each core looks for partitions whose flush.ms has passed.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(100);
/// How often executors look at the shutdown flag.
const SHUTDOWN_POLL: Duration = Duration::from_millis(50);
/// Registered (locked) memory per core for DMA buffers; beyond it buffers come from the heap.
const IO_MEMORY_PER_CORE: usize = 64 << 20;
/// Read buffer per connection.
const CONN_READ_BUFFER: usize = 256 * 1024;

#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("core {core}: {reason}")]
    Core { core: usize, reason: String },
}

/// Runs the broker until `shutdown` is set, then closes every partition cleanly.
pub fn run(config: BrokerConfig, shutdown: Arc<AtomicBool>) -> Result<(), ServerError> {
    let mut catalog = Catalog::load(&config.data_dir, config.log_defaults.clone())?;
    if let Some(peers) = &config.peers {
        catalog.set_brokers(peers.ids().map(|id| id as u64).collect());
    }
    let catalog = Arc::new(catalog);
    let config = Arc::new(config);
    let mesh = shard::mesh(config.cores);
    let cpus: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut rpc_wiring = config
        .peers
        .as_ref()
        .map(|_| crate::rpc::wiring(config.cores).into_iter());
    let mut handles = Vec::new();
    for core in 0..config.cores {
        let rpc = rpc_wiring.as_mut().and_then(Iterator::next);
        let placement = match cpus.get(core) {
            Some(cpu) => Placement::Fixed(*cpu),
            None => Placement::Unbound,
        };
        let (config, catalog, mesh, shutdown) = (
            config.clone(),
            catalog.clone(),
            mesh.clone(),
            shutdown.clone(),
        );
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("strata-core-{core}"))
            .io_memory(IO_MEMORY_PER_CORE)
            .spin_before_park(config.idle_spin)
            .spawn(
                move || async move { core_main(core, config, catalog, mesh, rpc, shutdown).await },
            )
            .map_err(|e| ServerError::Core {
                core,
                reason: e.to_string(),
            })?;
        handles.push(handle);
    }
    let mut first_error = None;
    for (core, h) in handles.into_iter().enumerate() {
        let result = h
            .join()
            .map_err(|e| ServerError::Core {
                core,
                reason: e.to_string(),
            })
            .and_then(|r| r);
        if let Err(e) = result {
            tracing::error!(core, error = %e, "core stopped with an error");
            shutdown.store(true, Ordering::SeqCst);
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// How long a clean stop waits for its partitions' leadership to move to other brokers.
const LEADERSHIP_HANDOVER_WAIT: Duration = Duration::from_secs(3);

async fn core_main(
    core: usize,
    config: Arc<BrokerConfig>,
    catalog: Arc<Catalog>,
    mesh: glommio::channels::channel_mesh::MeshBuilder<
        shard::Envelope,
        glommio::channels::channel_mesh::Full,
    >,
    rpc: Option<crate::rpc::CoreWiring>,
    shutdown: Arc<AtomicBool>,
) -> Result<(), ServerError> {
    let err = |reason: String| ServerError::Core { core, reason };
    let replication = config.peers.as_ref().map(|peers| {
        shard::replicas::Replication::new(
            peers.me(),
            peers.ids().collect(),
            config.cores,
            config.replica_lag_time_max,
        )
    });
    // What the transport receives goes to this core's replication host.
    let handler: Option<crate::rpc::Handler> = replication.as_ref().map(|r| {
        let host = Rc::downgrade(&r.host);
        let handler: crate::rpc::Handler = Rc::new(move |m: crate::rpc::Inbound| {
            if let Some(h) = host.upgrade() {
                h.deliver(m.channel, &m.payload);
            }
        });
        handler
    });
    let link = replication.as_ref().map(|r| r.link.clone());
    let settings = shard::ShardSettings {
        data_dir: config.data_dir.clone(),
        groups: config.groups.clone(),
        cache_bytes: config.cache_bytes_per_core,
        replication,
    };
    let shard = Shard::start(core, config.cores, catalog, settings, mesh)
        .await
        .map_err(|e| err(e.to_string()))?;
    let listener = TcpListener::bind(config.listen)
        .map_err(|e| err(format!("bind {}: {e}", config.listen)))?;
    let peers = crate::rpc::start::for_broker(&config, core, rpc, handler)
        .map_err(|e| err(e.to_string()))?
        .map(Rc::new);
    if let (Some(link), Some(t)) = (&link, &peers) {
        link.connect(t.clone());
    }
    if core == 0 {
        tracing::info!(listen = %config.listen, cores = config.cores, data_dir = %config.data_dir.display(), "strata is serving");
    }
    let ctx = Rc::new(Ctx {
        shard: shard.clone(),
        broker: config.clone(),
        produced: std::cell::Cell::new(0),
    });
    let housekeeping = glommio::spawn_local({
        let shard = shard.clone();
        let retention_interval = config.retention_check_interval;
        async move {
            let mut last_retention = std::time::Instant::now();
            loop {
                glommio::timer::sleep(HOUSEKEEPING_INTERVAL).await;
                let retention = last_retention.elapsed() >= retention_interval;
                if retention {
                    last_retention = std::time::Instant::now();
                }
                shard.housekeeping(retention).await;
            }
        }
    });
    // Leaderships go back to preferred replicas (only when clustered).
    let balance = config.leader_balance_interval;
    let balancing = (shard.replication.is_some() && !balance.is_zero()).then(|| {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(balance).await;
                let asked = shard.prefer_own_leaderships();
                if asked > 0 {
                    tracing::info!(core, asked, "asked for preferred leaderships back");
                }
            }
        })
    });
    let accept = async {
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    let ctx = ctx.clone();
                    glommio::spawn_local(async move { serve_connection(ctx, stream).await })
                        .detach();
                }
                Err(e) => {
                    tracing::warn!(core, error = %e, "accept failed");
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    };
    let stop = async {
        while !shutdown.load(Ordering::SeqCst) {
            glommio::timer::sleep(SHUTDOWN_POLL).await;
        }
    };
    futures_lite::future::or(accept, stop).await;
    if let Some(r) = &shard.replication {
        // A clean stop hands leadership over first: producers see a new leader at once,
        // not after an election timeout.
        let asked = r.host.hand_over_leadership();
        let start = std::time::Instant::now();
        while r.host.leading() > 0 && start.elapsed() < LEADERSHIP_HANDOVER_WAIT {
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
        tracing::info!(
            core,
            asked,
            still_leading = r.host.leading(),
            "handed leadership over"
        );
    }
    drop((housekeeping, balancing, peers));
    shard.close_all().await;
    tracing::info!(core, "core stopped cleanly");
    Ok(())
}

/// Serves one connection until the peer closes it or breaks the protocol.
async fn serve_connection(ctx: Rc<Ctx>, stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let host = stream
        .peer_addr()
        .map(|a| format!("/{}", a.ip()))
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let (reader, writer) = futures_lite::io::split(stream);
    let reader = BufReader::with_capacity(CONN_READ_BUFFER, reader);
    let ctx = &*ctx;
    let host = host.as_str();
    connection::serve(reader, writer, &peer, |frame| {
        handle_frame(ctx, host, frame)
    })
    .await;
}

/// A response buffer holding the length placeholder and the response header; the body is
/// encoded straight after it, so the response is never copied before it reaches the socket.
fn start_response(correlation_id: i32, header_version: i16) -> Result<ResponseBuf, String> {
    let mut out = ResponseBuf::with_capacity(64);
    out.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, header_version)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Writes the frame length into a response made by [`start_response`]: its parts, to write
/// in order.
fn finish_response(mut out: ResponseBuf) -> Vec<Bytes> {
    let len = (out.len() - 4) as i32;
    out.patch_start(&len.to_be_bytes());
    out.into_parts()
}

/// Handles one request frame, up to the point where its answer only waits for durability.
/// An `Err` answer means the connection must be closed (Kafka's answer to an unknown API, an
/// unsupported version other than ApiVersions', or a malformed request).
async fn handle_frame<'a>(ctx: &'a Ctx, host: &str, frame: Bytes) -> Handled<'a> {
    match handle_request(ctx, host, frame).await {
        Ok(handled) => handled,
        Err(reason) => Handled::Now(Err(reason)),
    }
}

async fn handle_request<'a>(
    ctx: &'a Ctx,
    host: &str,
    mut frame: Bytes,
) -> Result<Handled<'a>, String> {
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(api_key).map_err(|_| format!("unknown api key {api_key}"))?;
    let Some((lo, hi)) = handlers::supported(api) else {
        return Err(format!("unsupported api {api:?}"));
    };
    if version < lo || version > hi {
        if api == ApiKey::ApiVersions {
            // KIP-511: answer in v0 format so any client can read which versions we speak.
            let mut out = start_response(correlation_id, 0)?;
            api_versions::response(super::errors::UNSUPPORTED_VERSION)
                .encode(&mut out, 0)
                .map_err(|e| e.to_string())?;
            return Ok(Handled::Now(Ok(Some(finish_response(out)))));
        }
        return Err(format!("{api:?} v{version} is not supported (v{lo}-v{hi})"));
    }
    let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(|e| format!("bad request header: {e}"))?;
    debug_assert_eq!(header.correlation_id, correlation_id);
    let mut out = start_response(correlation_id, api.response_header_version(version))?;
    if api == ApiKey::Produce {
        let req = handlers::decode(api, version, &mut frame).map_err(|e| e.to_string())?;
        // The records are slices of the frame: with the frame and the header let go, a
        // request's only partition owns its buffer and is appended without a copy.
        drop((frame, header));
        let staged = produce::stage(ctx, req, version).await;
        return Ok(Handled::Later(Box::pin(async move {
            let answer = staged.finish().await;
            if dropped_by_fault_injection(ctx) {
                return Err("fault injection: produce applied, response dropped".into());
            }
            let Some(resp) = answer else {
                return Ok(None);
            };
            handlers::encode(api, version, &resp, &mut out).map_err(|e| e.to_string())?;
            Ok(Some(finish_response(out)))
        })));
    }
    let client = handlers::Client {
        id: header.client_id.as_deref().unwrap_or_default(),
        host,
    };
    let respond = dispatch(ctx, &client, api, version, &mut frame, &mut out)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Handled::Now(Ok(respond.then(|| finish_response(out)))))
}

/// `--fault-drop-produce-response-every N`: whether this produce's answer is lost.
fn dropped_by_fault_injection(ctx: &Ctx) -> bool {
    let every = ctx.broker.fault_drop_produce_response_every as u64;
    if every == 0 {
        return false;
    }
    ctx.produced.set(ctx.produced.get() + 1);
    ctx.produced.get() % every == 0
}
