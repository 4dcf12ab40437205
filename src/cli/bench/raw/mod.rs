//! `strata bench produce|consume --client raw`: a load client that speaks the Kafka protocol
//! itself and costs almost nothing, so that a benchmark measures the broker rather than the
//! client library.
//!
//! Produce: record batches are encoded once before the run (a pool of distinct batches with
//! random payloads, rotated) and sent again and again; the broker rewrites the base offset.
//! Each connection has a writer (its own thread, blocking socket, TCP_NODELAY) that keeps up to
//! `--window` requests in flight, one batch of one partition per request, and a reader thread
//! that decodes the answers and records each request's latency from its intended send time
//! (so a stalled broker shows as latency, not as a lower offered load). `--idempotent` asks for
//! a producer id and patches id, epoch and sequence into every batch (CRC recomputed).
//!
//! Consume: per connection one thread keeps a fetch in flight for each of its partitions (up
//! to `--window`), parses only the batch headers of what comes back (record count, offsets)
//! and discards the rest.
//!
//! Every report states the connections and the window, and the CPU the run cost: this
//! process's, the broker's (`--broker-pid`) and the machine's, per GB.

pub mod batches;
pub mod cpu;
pub mod filepool;
pub mod wire;

use std::collections::VecDeque;
use std::io::BufReader;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse,
    InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataRequest, MetadataResponse, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use self::filepool::{FilePool, SendMode};
use self::wire::{error_name, Conn, ProduceParts, Versions, WireError};
use strata::storage::batch::iter_batches;

/// Which client carries the load.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientKind {
    /// librdkafka: what users see.
    #[default]
    Rdkafka,
    /// Strata's own pre-encoded, pipelined client: what the broker can do.
    Raw,
}

/// Connection settings of the raw client.
#[derive(clap::Args, Debug, Clone)]
pub struct RawConnSettings {
    /// --client raw: TCP connections to the broker (partitions are spread over them).
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// --client raw: requests in flight per connection (a consumer keeps at most one fetch
    /// per partition in flight).
    #[arg(long, default_value_t = 8)]
    pub window: usize,
}

/// Produce settings of the raw client.
#[derive(clap::Args, Debug, Clone)]
pub struct RawProduceSettings {
    #[command(flatten)]
    pub conn: RawConnSettings,
    /// --client raw: bytes per record batch, one batch per request (as many records as fit,
    /// at least one).
    #[arg(long, default_value_t = 1 << 20)]
    pub batch_bytes: usize,
    /// --client raw: bytes of distinct pre-encoded batches (random payloads), rotated.
    #[arg(long, default_value_t = 64 << 20)]
    pub pool_bytes: usize,
    /// --client raw: be an idempotent producer (InitProducerId; producer id, epoch and
    /// sequence patched into every batch and its CRC recomputed), as the Java client is by
    /// default.
    #[arg(long)]
    pub idempotent: bool,
    /// --client raw: how batches reach the socket: writev from user memory (the kernel copies
    /// them) or sendfile from a memfd (the kernel references the pages; costlier on a host
    /// without huge shmem pages, see `filepool`).
    #[arg(long, value_enum, default_value_t = SendMode::Writev)]
    pub send: SendMode,
}

/// Consume settings of the raw client.
#[derive(clap::Args, Debug, Clone)]
pub struct RawConsumeSettings {
    #[command(flatten)]
    pub conn: RawConnSettings,
    /// --client raw: partition_max_bytes of each fetch.
    #[arg(long, default_value_t = 8 << 20)]
    pub fetch_bytes: i32,
    /// --client raw: start at this offset in every partition (clamped to what the log holds)
    /// instead of the beginning.
    #[arg(long)]
    pub offset: Option<i64>,
}

/// How long a produce request may wait for its acknowledgement on the broker.
const PRODUCE_TIMEOUT_MS: i32 = 30_000;
/// Kafka's TOPIC_ALREADY_EXISTS.
const TOPIC_ALREADY_EXISTS: i16 = 36;

pub fn parse_acks(s: &str) -> Result<i16> {
    Ok(match s {
        "all" | "-1" => -1,
        "1" => 1,
        "0" => 0,
        _ => bail!("--acks {s}: expected 0, 1 or all"),
    })
}

fn first_broker(brokers: &str) -> Result<String> {
    brokers
        .split(',')
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_string)
        .context("no broker address")
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// Creates `topic` with `partitions` (replication 1), as the librdkafka bench does; an
/// existing topic is used as it is.
fn ensure_topic(ctl: &mut Conn, v: &Versions, topic: &str, partitions: i32) -> Result<()> {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(30_000);
    let resp: CreateTopicsResponse = ctl.call(ApiKey::CreateTopics, v.create_topics, &req)?;
    for t in resp.topics {
        if t.error_code != 0 && t.error_code != TOPIC_ALREADY_EXISTS {
            bail!(
                "cannot create {topic}: {}{}",
                error_name(t.error_code),
                t.error_message
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// The partition ids of `topic` (sorted), once every one has a leader. The raw client talks to
/// the one broker it was given: partitions led by several brokers are refused.
fn partitions(ctl: &mut Conn, v: &Versions, topic: &str) -> Result<Vec<i32>> {
    let mut req = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
    ]));
    if v.metadata >= 4 {
        req = req.with_allow_auto_topic_creation(false);
    }
    let started = Instant::now();
    loop {
        let resp: MetadataResponse = ctl.call(ApiKey::Metadata, v.metadata, &req)?;
        let t = resp
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic));
        // UNKNOWN_TOPIC_OR_PARTITION (3) and LEADER_NOT_AVAILABLE (5) pass once a new topic
        // is set up.
        let retry = match t {
            None => true,
            Some(t) if t.error_code == 3 || t.error_code == 5 => true,
            Some(t) if t.error_code != 0 => bail!("{topic}: {}", error_name(t.error_code)),
            Some(t) => t.partitions.is_empty() || t.partitions.iter().any(|p| p.leader_id.0 < 0),
        };
        if !retry {
            let t = t.context("topic vanished")?;
            let mut leaders: Vec<i32> = t.partitions.iter().map(|p| p.leader_id.0).collect();
            leaders.sort_unstable();
            leaders.dedup();
            if leaders.len() > 1 {
                bail!("{topic}: partitions are led by brokers {leaders:?}; the raw client talks to one broker");
            }
            let mut ids: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
            ids.sort_unstable();
            return Ok(ids);
        }
        if started.elapsed() > Duration::from_secs(10) {
            bail!("{topic}: no metadata with a leader for every partition after 10 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The offset of each partition at `timestamp` (-2 the log start, -1 the end).
fn list_offsets(
    ctl: &mut Conn,
    v: &Versions,
    topic: &str,
    parts: &[i32],
    timestamp: i64,
) -> Result<Vec<i64>> {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                parts
                    .iter()
                    .map(|p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(*p)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    let resp: ListOffsetsResponse = ctl.call(ApiKey::ListOffsets, v.list_offsets, &req)?;
    parts
        .iter()
        .map(|p| {
            let r = resp
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .find(|r| r.partition_index == *p)
                .with_context(|| format!("no offset for partition {p}"))?;
            if r.error_code != 0 {
                bail!("offsets of {topic}/{p}: {}", error_name(r.error_code));
            }
            Ok(r.offset)
        })
        .collect()
}

fn init_producer_id(ctl: &mut Conn, v: &Versions) -> Result<(i64, i16)> {
    let version = v
        .init_producer_id
        .context("--idempotent: the broker does not offer InitProducerId")?;
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let resp: InitProducerIdResponse = ctl.call(ApiKey::InitProducerId, version, &req)?;
    if resp.error_code != 0 {
        bail!("InitProducerId: {}", error_name(resp.error_code));
    }
    Ok((resp.producer_id.0, resp.producer_epoch))
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram")
}

fn latency_json(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    serde_json::json!({ "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p999": ms(0.999), "max": h.max() as f64 / 1000.0 })
}

/// `partitions` dealt round robin over `n` connections; a connection left without one shares
/// one (only when sequences do not matter).
fn deal(partitions: &[i32], n: usize) -> Vec<Vec<i32>> {
    (0..n)
        .map(|c| {
            let mine: Vec<i32> = partitions.iter().skip(c).step_by(n).copied().collect();
            if mine.is_empty() {
                vec![partitions[c % partitions.len()]]
            } else {
                mine
            }
        })
        .collect()
}

/// Counters the progress line reads while a run goes on.
#[derive(Default)]
struct Progress {
    records: AtomicU64,
    bytes: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
}

fn progress_line(label: &str, start: Instant, p: &Progress) {
    let s = start.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "{label}: {:>6.1}s  {:>10.0} records/s  {:>8.1} MB/s",
        s,
        p.records.load(Ordering::Relaxed) as f64 / s,
        p.bytes.load(Ordering::Relaxed) as f64 / s / 1e6
    );
}

/// Waits for `handles`, printing progress each second.
fn watch<T>(
    label: &str,
    start: Instant,
    p: &Progress,
    handles: Vec<std::thread::JoinHandle<Result<T>>>,
) -> Result<Vec<T>> {
    let mut last = Instant::now();
    while handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(20));
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            progress_line(label, start, p);
        }
    }
    let mut out = Vec::new();
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(t)) => out.push(t),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(anyhow::anyhow!("{label} thread panicked"));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// One request in flight, as the reader expects its answer.
struct InFlight {
    correlation_id: i32,
    intended: Instant,
    records: u64,
}

#[derive(Default)]
struct ProduceStats {
    records: u64,
    failed: u64,
    requests: u64,
    first_error: Option<String>,
}

/// What one produce connection sends.
struct ProducePlan {
    index: usize,
    connections: usize,
    partitions: Vec<i32>,
    pool: Vec<Vec<u8>>,
    parts: Vec<ProduceParts>,
    /// The pool again, in a memfd for sendfile (when every partition's suffix is the same).
    file: Option<FilePool>,
    /// A last, shorter batch when `--records` is not a multiple of a batch's records.
    tail: Option<(Vec<u8>, Vec<ProduceParts>, u64)>,
    total_batches: Option<u64>,
}

struct ProduceRun {
    addr: String,
    version: i16,
    acks: i16,
    window: usize,
    records_per_batch: u64,
    message_size: u64,
    producer: Option<(i64, i16)>,
    /// Requests per second per connection; 0 = as fast as the window allows.
    request_rate: f64,
    deadline: Duration,
}

fn produce_reader(
    mut r: BufReader<TcpStream>,
    rx: Receiver<InFlight>,
    version: i16,
    message_size: u64,
    progress: Arc<Progress>,
) -> Result<(ProduceStats, Histogram<u64>)> {
    let mut hist = histogram()?;
    let mut stats = ProduceStats::default();
    let mut buf = Vec::new();
    while let Ok(f) = rx.recv() {
        let n = wire::read_frame(&mut r, &mut buf)?;
        let (id, resp): (i32, ProduceResponse) =
            wire::decode_response(&buf[..n], ApiKey::Produce, version)?;
        if id != f.correlation_id {
            return Err(WireError::Correlation {
                api: ApiKey::Produce,
                got: id,
                want: f.correlation_id,
            }
            .into());
        }
        let us = f.intended.elapsed().as_micros() as u64;
        let _ = hist.record(us.max(1));
        stats.requests += 1;
        let mut answered = false;
        let mut error = None;
        for p in resp.responses.iter().flat_map(|t| &t.partition_responses) {
            answered = true;
            if p.error_code != 0 && error.is_none() {
                error = Some(format!(
                    "partition {}: {}{}",
                    p.index,
                    error_name(p.error_code),
                    p.error_message
                        .as_ref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ));
            }
        }
        if !answered {
            error = Some("a produce answer without its partition".into());
        }
        match error {
            None => {
                stats.records += f.records;
                progress.records.fetch_add(f.records, Ordering::Relaxed);
                progress
                    .bytes
                    .fetch_add(f.records * message_size, Ordering::Relaxed);
            }
            Some(e) => {
                stats.failed += f.records;
                progress.failed.fetch_add(f.records, Ordering::Relaxed);
                stats.first_error.get_or_insert(e);
            }
        }
    }
    Ok((stats, hist))
}

fn produce_connection(
    run: Arc<ProduceRun>,
    mut plan: ProducePlan,
    barrier: Arc<Barrier>,
    progress: Arc<Progress>,
) -> Result<(ProduceStats, Histogram<u64>)> {
    let mut stream = wire::connect(&run.addr)?;
    let reader = if run.acks != 0 {
        let rs = BufReader::with_capacity(64 << 10, stream.try_clone().context("socket clone")?);
        // At most `window` in flight: this many queued for the reader, plus the one it reads.
        let (tx, rx) = sync_channel::<InFlight>(run.window.saturating_sub(1));
        let (version, size, p) = (run.version, run.message_size, progress.clone());
        let h = std::thread::Builder::new()
            .name(format!("raw-rx-{}", plan.index))
            .spawn(move || produce_reader(rs, rx, version, size, p))
            .context("reader thread")?;
        Some((tx, h))
    } else {
        None
    };
    barrier.wait();
    let start = Instant::now();
    let mut head = Vec::with_capacity(256);
    let mut sequences = vec![0i32; plan.partitions.len()];
    let mut sent = ProduceStats::default();
    let mut k: u64 = 0;
    let write_result: Result<()> = (|| {
        loop {
            let global = plan.index as u64 + k * plan.connections as u64;
            match plan.total_batches {
                Some(t) if global >= t => break,
                None if start.elapsed() >= run.deadline => break,
                _ => {}
            }
            if progress.stop.load(Ordering::Relaxed) {
                break;
            }
            let intended = if run.request_rate > 0.0 {
                let due = Duration::from_secs_f64(k as f64 / run.request_rate);
                if plan.total_batches.is_none() && due >= run.deadline {
                    break;
                }
                let t = start + due;
                if let Some(wait) = t.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                t
            } else {
                Instant::now()
            };
            let pi = (k as usize) % plan.partitions.len();
            let is_tail = plan.tail.is_some() && plan.total_batches == Some(global + 1);
            let pool_len = plan.pool.len();
            let slot = (k as usize) % pool_len;
            let (batch, parts, records) = match (&mut plan.tail, is_tail) {
                (Some((b, parts, n)), true) => (b, &parts[pi], *n),
                _ => (&mut plan.pool[slot], &plan.parts[pi], run.records_per_batch),
            };
            let file = plan.file.as_ref().filter(|_| !is_tail);
            if let Some((id, epoch)) = run.producer {
                batches::set_producer(batch, id, epoch, sequences[pi]);
                if let Some(f) = file {
                    let h = batches::PATCHED_HEADER;
                    f.patch(slot, h.start, &batch[h])
                        .context("patching the pool file")?;
                }
                // Kafka's sequences wrap from i32::MAX to 0.
                sequences[pi] =
                    ((sequences[pi] as i64 + records as i64) % (i32::MAX as i64 + 1)) as i32;
            }
            let correlation_id = (k % i32::MAX as u64) as i32;
            if let Some((tx, _)) = &reader {
                let f = InFlight {
                    correlation_id,
                    intended,
                    records,
                };
                if tx.send(f).is_err() {
                    break; // the reader stopped: its error is reported below
                }
            }
            parts.head(&mut head, run.version, correlation_id)?;
            match file {
                Some(f) => f.send(&mut stream, &head, slot),
                None => filepool::send_writev(&mut stream, &head, batch, &parts.suffix),
            }
            .context("sending a produce request")?;
            sent.requests += 1;
            if reader.is_none() {
                sent.records += records;
                progress.records.fetch_add(records, Ordering::Relaxed);
                progress
                    .bytes
                    .fetch_add(records * run.message_size, Ordering::Relaxed);
            }
            k += 1;
        }
        Ok(())
    })();
    match reader {
        Some((tx, h)) => {
            drop(tx);
            let r = h
                .join()
                .map_err(|_| anyhow::anyhow!("reader thread panicked"))?;
            // A reader's error explains a writer's (a closed connection) better than the reverse.
            let r = r?;
            write_result?;
            Ok(r)
        }
        None => {
            write_result?;
            Ok((sent, histogram()?))
        }
    }
}

pub fn produce(brokers: &str, a: &super::ProduceBench) -> Result<()> {
    let acks = parse_acks(&a.acks)?;
    if a.compression != "none" {
        bail!(
            "--client raw sends uncompressed batches (--compression {})",
            a.compression
        );
    }
    let raw = &a.raw;
    let addr = first_broker(brokers)?;
    let mut ctl = Conn::connect(&addr)?;
    let v = ctl.negotiate()?;
    ensure_topic(&mut ctl, &v, &a.topic, a.partitions)?;
    let parts = partitions(&mut ctl, &v, &a.topic)?;
    if parts.is_empty() {
        bail!("{} has no partition", a.topic);
    }
    let producer = if raw.idempotent {
        Some(init_producer_id(&mut ctl, &v)?)
    } else {
        None
    };
    let mut connections = raw.conn.connections.max(1);
    if raw.idempotent {
        // A partition's sequence is kept by one connection, so a connection needs its own.
        connections = connections.min(parts.len());
    }
    let window = raw.conn.window.max(1);
    let rpb = batches::records_per_batch(a.message_size, raw.batch_bytes);
    let blen = batches::batch_len(rpb, a.message_size);
    let dealt = deal(&parts, connections);
    if raw.idempotent {
        let per_part = window.div_ceil(dealt.iter().map(Vec::len).min().unwrap_or(1));
        if per_part > 5 {
            tracing::warn!(
                per_part,
                "more than 5 batches of one partition in flight: Kafka refuses that for an idempotent producer"
            );
        }
    }
    // More batches than the window: a batch is rewritten (idempotent) or its pages re-sent
    // only after the request that last carried it was answered.
    let pool_count = (raw.pool_bytes / connections / blen.max(1))
        .clamp(2 * window + 2, 4096.max(2 * window + 2));
    let total_batches = a.records.map(|r| r.div_ceil(rpb as u64));
    let tail_records = a.records.map(|r| r % rpb as u64).filter(|r| *r != 0);
    let tail_owner = total_batches.map(|t| (t.saturating_sub(1) % connections as u64) as usize);
    let rate = if a.rate > 0 {
        a.rate as f64 / rpb as f64 / connections as f64
    } else {
        0.0
    };
    let run = Arc::new(ProduceRun {
        addr,
        version: v.produce,
        acks,
        window,
        records_per_batch: rpb as u64,
        message_size: a.message_size as u64,
        producer,
        request_rate: rate,
        deadline: Duration::from_secs(a.duration),
    });
    tracing::info!(
        connections,
        window,
        records_per_batch = rpb,
        batch_bytes = blen,
        pool_batches = pool_count,
        produce_version = v.produce,
        "raw produce"
    );
    let barrier = Arc::new(Barrier::new(connections + 1));
    let progress = Arc::new(Progress::default());
    let mut handles = Vec::new();
    for (index, mine) in dealt.into_iter().enumerate() {
        let (run, barrier, progress) = (run.clone(), barrier.clone(), progress.clone());
        let topic = a.topic.clone();
        let message_size = a.message_size;
        let raw_send = raw.send;
        let tail_n = tail_records.filter(|_| tail_owner == Some(index));
        handles.push(
            std::thread::Builder::new()
                .name(format!("raw-tx-{index}"))
                .spawn(move || {
                    // Built before the barrier, so neither the clock nor the CPU count sees it.
                    let built: Result<ProducePlan> = (|| {
                        let seed = ((std::process::id() as u64) << 20) | index as u64;
                        let pool = batches::pool(seed, pool_count, rpb, message_size);
                        let cut = |len: usize| -> Result<Vec<ProduceParts>> {
                            mine.iter()
                                .map(|p| {
                                    Ok(ProduceParts::new(
                                        run.version,
                                        &topic,
                                        *p,
                                        run.acks,
                                        PRODUCE_TIMEOUT_MS,
                                        len,
                                    )?)
                                })
                                .collect()
                        };
                        let parts = cut(blen)?;
                        let same_suffix = parts.windows(2).all(|w| w[0].suffix == w[1].suffix);
                        let file = match (raw_send, parts.first()) {
                            (SendMode::Sendfile, Some(p)) if same_suffix => {
                                Some(FilePool::new(&pool, &p.suffix).context("batch pool memfd")?)
                            }
                            _ => None,
                        };
                        let tail = match tail_n {
                            Some(n) => {
                                let b = batches::pool(seed ^ 0x7a11, 1, n as usize, message_size)
                                    .remove(0);
                                let p = cut(b.len())?;
                                Some((b, p, n))
                            }
                            None => None,
                        };
                        Ok(ProducePlan {
                            index,
                            connections,
                            partitions: mine,
                            pool,
                            parts,
                            file,
                            tail,
                            total_batches,
                        })
                    })();
                    match built {
                        Ok(plan) => produce_connection(run, plan, barrier, progress),
                        Err(e) => {
                            progress.stop.store(true, Ordering::Relaxed);
                            barrier.wait();
                            Err(e)
                        }
                    }
                })
                .context("producer thread")?,
        );
    }
    barrier.wait();
    let cpu0 = cpu::snapshot(a.broker_pid);
    let start = Instant::now();
    let results = watch("produce", start, &progress, handles)?;
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let cpu1 = cpu::snapshot(a.broker_pid);
    let mut hist = histogram()?;
    let mut total = ProduceStats::default();
    for (s, h) in results {
        hist.add(&h).context("histogram merge")?;
        total.records += s.records;
        total.failed += s.failed;
        total.requests += s.requests;
        if total.first_error.is_none() {
            total.first_error = s.first_error;
        }
    }
    let bytes = total.records * a.message_size as u64;
    let cpu = cpu::summary(&cpu0, &cpu1, bytes);
    let summary = serde_json::json!({
        "client": "raw", "records": total.records, "failed": total.failed, "seconds": secs,
        "records_per_sec": total.records as f64 / secs, "mb_per_sec": bytes as f64 / secs / 1e6,
        "latency_ms": latency_json(&hist), "latency_of": "request, from its intended send time",
        "requests": total.requests,
        "message_size": a.message_size, "acks": a.acks, "compression": "none", "rate": a.rate,
        "connections": connections, "window": window, "records_per_batch": rpb, "batch_bytes": blen,
        "pool_batches_per_connection": pool_count, "idempotent": raw.idempotent,
        "send": format!("{:?}", raw.send).to_lowercase(),
        "produce_version": v.produce, "first_error": total.first_error.clone(), "cpu": cpu,
    });
    if a.json {
        println!("{summary}");
    } else {
        let l = &summary["latency_ms"];
        println!(
            "produced {} records ({} failed) in {secs:.1}s: {:.0} records/s, {:.1} MB/s; latency per request ms p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
            total.records,
            total.failed,
            total.records as f64 / secs,
            bytes as f64 / secs / 1e6,
            l["p50"].as_f64().unwrap_or(0.0),
            l["p99"].as_f64().unwrap_or(0.0),
            l["p999"].as_f64().unwrap_or(0.0),
            l["max"].as_f64().unwrap_or(0.0),
        );
        println!(
            "raw client: {connections} connections x window {window}, {rpb} records of {} bytes per batch ({blen} bytes), {pool_count} distinct batches per connection, sent by {:?}{}; {}",
            a.message_size,
            raw.send,
            if raw.idempotent { ", idempotent" } else { "" },
            cpu::describe(&summary["cpu"])
        );
    }
    if total.failed > 0 {
        bail!(
            "{} records were not acknowledged: {}",
            total.failed,
            total.first_error.unwrap_or_default()
        );
    }
    Ok(())
}

/// One partition a consume connection reads.
struct FetchState {
    partition: i32,
    next: i64,
    end: i64,
    busy: bool,
}

#[derive(Default)]
struct ConsumeStats {
    records: u64,
    bytes: u64,
    fetches: u64,
}

struct ConsumeRun {
    addr: String,
    topic: String,
    version: i16,
    window: usize,
    fetch_bytes: i32,
    limit: u64,
}

fn fetch_request(topic: &str, partition: i32, offset: i64, max_bytes: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(max_bytes)])])
}

/// Records of the batches in `records` that fall in `[from, end)`, their bytes, and the offset
/// after the last whole batch. Only batch headers are read.
fn count_batches(records: &[u8], from: i64, end: i64) -> (u64, u64, i64) {
    let (mut n, mut bytes, mut next) = (0u64, 0u64, from);
    for (_, h) in iter_batches(records) {
        let lo = h.base_offset.max(from);
        let hi = h.next_offset().min(end);
        if hi > lo {
            n += (hi - lo) as u64;
            bytes += h.total_size() as u64;
        }
        next = next.max(h.next_offset());
    }
    (n, bytes, next)
}

fn consume_connection(
    run: Arc<ConsumeRun>,
    mut parts: Vec<FetchState>,
    barrier: Arc<Barrier>,
    progress: Arc<Progress>,
) -> Result<(ConsumeStats, Histogram<u64>)> {
    let connected = wire::connect(&run.addr);
    barrier.wait();
    let mut stream = connected?;
    let mut hist = histogram()?;
    let mut stats = ConsumeStats::default();
    let mut inflight: VecDeque<(i32, usize, Instant)> = VecDeque::new();
    let mut out = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut next_id = 0i32;
    let mut cursor = 0usize;
    let mut last_progress = Instant::now();
    let window = run.window.max(1);
    loop {
        let stop = progress.stop.load(Ordering::Relaxed)
            || progress.records.load(Ordering::Relaxed) >= run.limit;
        while !stop && inflight.len() < window {
            let Some(i) = (0..parts.len())
                .map(|j| (cursor + j) % parts.len())
                .find(|&i| !parts[i].busy && parts[i].next < parts[i].end)
            else {
                break;
            };
            cursor = i + 1;
            let p = &mut parts[i];
            let req = fetch_request(&run.topic, p.partition, p.next, run.fetch_bytes);
            next_id = next_id.wrapping_add(1);
            wire::encode_request(&mut out, ApiKey::Fetch, run.version, next_id, &req)?;
            std::io::Write::write_all(&mut stream, &out).context("sending a fetch")?;
            p.busy = true;
            inflight.push_back((next_id, i, Instant::now()));
        }
        let Some((want, i, sent)) = inflight.pop_front() else {
            break;
        };
        let n = wire::read_frame(&mut stream, &mut buf)?;
        let whole = Bytes::from(std::mem::take(&mut buf));
        {
            let (id, resp): (i32, FetchResponse) =
                wire::decode_response(whole.slice(..n), ApiKey::Fetch, run.version)?;
            if id != want {
                return Err(WireError::Correlation {
                    api: ApiKey::Fetch,
                    got: id,
                    want,
                }
                .into());
            }
            let _ = hist.record((sent.elapsed().as_micros() as u64).max(1));
            stats.fetches += 1;
            if resp.error_code != 0 {
                bail!("fetch: {}", error_name(resp.error_code));
            }
            let p = &mut parts[i];
            p.busy = false;
            for d in resp.responses.iter().flat_map(|t| &t.partitions) {
                if d.partition_index != p.partition {
                    continue;
                }
                if d.error_code != 0 {
                    bail!(
                        "fetch {}/{} at {}: {}",
                        run.topic,
                        p.partition,
                        p.next,
                        error_name(d.error_code)
                    );
                }
                if let Some(records) = &d.records {
                    let (cnt, bytes, next) = count_batches(records, p.next, p.end);
                    if cnt > 0 {
                        last_progress = Instant::now();
                    }
                    stats.records += cnt;
                    stats.bytes += bytes;
                    progress.records.fetch_add(cnt, Ordering::Relaxed);
                    progress.bytes.fetch_add(bytes, Ordering::Relaxed);
                    p.next = next;
                }
            }
        }
        // The response is gone: take the buffer back (its bytes need no zeroing next time).
        buf = whole.try_into_mut().map(Vec::from).unwrap_or_default();
        if last_progress.elapsed() > Duration::from_secs(10) {
            bail!("no record for 10 s after {} records", stats.records);
        }
    }
    Ok((stats, hist))
}

pub fn consume(brokers: &str, a: &super::ConsumeBench) -> Result<()> {
    let raw = &a.raw;
    let addr = first_broker(brokers)?;
    let mut ctl = Conn::connect(&addr)?;
    let v = ctl.negotiate()?;
    let ids = partitions(&mut ctl, &v, &a.topic)?;
    let lo = list_offsets(&mut ctl, &v, &a.topic, &ids, -2)?;
    let hi = list_offsets(&mut ctl, &v, &a.topic, &ids, -1)?;
    let states: Vec<FetchState> = ids
        .iter()
        .zip(lo.iter().zip(&hi))
        .map(|(p, (lo, hi))| FetchState {
            partition: *p,
            next: raw.offset.map_or(*lo, |o| o.clamp(*lo, *hi)),
            end: *hi,
            busy: false,
        })
        .filter(|s| s.next < s.end)
        .collect();
    let available: u64 = states.iter().map(|s| (s.end - s.next) as u64).sum();
    let limit = a.records.unwrap_or(available).min(available);
    if limit == 0 {
        bail!("{} is empty: produce first (strata bench produce)", a.topic);
    }
    let connections = raw.conn.connections.max(1).min(states.len());
    let mut dealt: Vec<Vec<FetchState>> = (0..connections).map(|_| Vec::new()).collect();
    for (i, s) in states.into_iter().enumerate() {
        dealt[i % connections].push(s);
    }
    let run = Arc::new(ConsumeRun {
        addr,
        topic: a.topic.clone(),
        version: v.fetch,
        window: raw.conn.window,
        fetch_bytes: raw.fetch_bytes.max(1),
        limit,
    });
    let barrier = Arc::new(Barrier::new(connections + 1));
    let progress = Arc::new(Progress::default());
    let mut handles = Vec::new();
    for (index, mine) in dealt.into_iter().enumerate() {
        let (run, barrier, progress) = (run.clone(), barrier.clone(), progress.clone());
        handles.push(
            std::thread::Builder::new()
                .name(format!("raw-fetch-{index}"))
                .spawn(move || consume_connection(run, mine, barrier, progress))
                .context("consumer thread")?,
        );
    }
    barrier.wait();
    let cpu0 = cpu::snapshot(a.broker_pid);
    let start = Instant::now();
    let results = watch("consume", start, &progress, handles)?;
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let cpu1 = cpu::snapshot(a.broker_pid);
    let mut hist = histogram()?;
    let mut total = ConsumeStats::default();
    for (s, h) in results {
        hist.add(&h).context("histogram merge")?;
        total.records += s.records;
        total.bytes += s.bytes;
        total.fetches += s.fetches;
    }
    let cpu = cpu::summary(&cpu0, &cpu1, total.bytes);
    let summary = serde_json::json!({
        "client": "raw", "records": total.records, "seconds": secs,
        "records_per_sec": total.records as f64 / secs, "mb_per_sec": total.bytes as f64 / secs / 1e6,
        "bytes": total.bytes, "bytes_of": "record batches as stored",
        "fetches": total.fetches, "latency_ms": latency_json(&hist), "latency_of": "fetch request",
        "connections": connections, "window": raw.conn.window, "fetch_bytes": raw.fetch_bytes,
        "fetch_version": v.fetch, "cpu": cpu,
    });
    if a.json {
        println!("{summary}");
    } else {
        println!(
            "consumed {} records ({} bytes of batches) in {secs:.2}s: {:.0} records/s, {:.1} MB/s; {} fetches",
            total.records,
            total.bytes,
            total.records as f64 / secs,
            total.bytes as f64 / secs / 1e6,
            total.fetches
        );
        println!(
            "raw client: {connections} connections x window {} (at most one fetch per partition in flight); {}",
            raw.conn.window,
            cpu::describe(&summary["cpu"])
        );
    }
    if total.records < limit {
        bail!("consumed {} of {limit} records", total.records);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_parse_as_kafka_spells_them() {
        assert_eq!(parse_acks("all").ok(), Some(-1));
        assert_eq!(parse_acks("-1").ok(), Some(-1));
        assert_eq!(parse_acks("1").ok(), Some(1));
        assert_eq!(parse_acks("0").ok(), Some(0));
        assert!(parse_acks("2").is_err());
    }

    #[test]
    fn partitions_are_dealt_round_robin_and_none_is_left_without() {
        assert_eq!(deal(&[0, 1, 2, 3, 4], 2), vec![vec![0, 2, 4], vec![1, 3]]);
        assert_eq!(deal(&[0], 3), vec![vec![0], vec![0], vec![0]]);
    }

    #[test]
    fn batch_counting_keeps_to_the_asked_range() {
        let mut two = Vec::new();
        for base in [10i64, 13] {
            let mut b = batches::pool(base as u64, 1, 3, 8).remove(0);
            strata::storage::batch::set_base_offset(&mut b, base);
            two.extend_from_slice(&b);
        }
        let len = two.len() as u64;
        assert_eq!(count_batches(&two, 10, 100), (6, len, 16));
        // From the middle of the first batch; the end cuts the second.
        assert_eq!(count_batches(&two, 11, 14), (3, len, 16));
        // A torn last batch is not counted and not passed.
        assert_eq!(
            count_batches(&two[..two.len() - 1], 10, 100),
            (3, len / 2, 13)
        );
    }
}
