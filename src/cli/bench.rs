//! `strata bench produce|consume`: a load generator built on librdkafka, so it measures any
//! Kafka-compatible broker the same way (in the spirit of rdkafka_performance and the
//! OpenMessaging Benchmark).
//!
//! Produce latency is measured from each record's *intended* send time (start + i / rate when a
//! rate is set) to its delivery report, so a stalled broker shows up as latency instead of
//! silently lowering the offered load (coordinated omission).
//!
//! `--client raw` swaps librdkafka for Strata's own pre-encoded, pipelined client
//! ([`raw`]), which costs the machine little enough that the broker's own capacity shows.
//! Either way the report states the client's and (with `--broker-pid`) the broker's CPU per GB
//! and the machine's CPU over the run.

pub mod raw;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_lite::future::block_on;
use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use self::raw::{cpu, ClientKind, RawConsumeSettings, RawProduceSettings};
use super::{client_config, parse_key_value, topic_partitions, CALL_TIMEOUT};

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Produce at a fixed or maximum rate and report throughput and latency.
    Produce(ProduceBench),
    /// Consume a topic from the beginning and report throughput.
    Consume(ConsumeBench),
    /// Produce at a fixed rate while consuming; end-to-end latency from the send time in
    /// each payload to its arrival at the consumer.
    E2e(E2eBench),
    /// The disk's ceiling on Strata's I/O path (no broker needed).
    Disk(super::bench_disk::DiskBench),
}

#[derive(clap::Args)]
pub struct ProduceBench {
    #[arg(long, default_value = "strata-bench")]
    pub topic: String,
    /// Partitions of the topic if the tool creates it.
    #[arg(long, default_value_t = 8)]
    pub partitions: i32,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 1024)]
    pub message_size: usize,
    /// Key the records `k0` … `k{N-1}` in turn (librdkafka client): a compacted topic refuses
    /// keyless records, and the cleaner keeps the latest of each key. 0: no key.
    #[arg(long, default_value_t = 0)]
    pub keys: u64,
    /// librdkafka batch.size (bytes per partition batch).
    #[arg(long, default_value_t = 1_000_000)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    #[arg(long, default_value = "all")]
    pub acks: String,
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// Producer clients (threads).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Target records per second over all producers; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// How long to produce, in seconds.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Stop after this many records instead (over all producers).
    #[arg(long)]
    pub records: Option<u64>,
    /// The load client: librdkafka (what users see) or Strata's raw client (what the broker
    /// can do; see --connections, --window, --batch-bytes, --idempotent).
    #[arg(long = "client", value_enum, default_value_t = ClientKind::Rdkafka)]
    pub client_kind: ClientKind,
    #[command(flatten)]
    pub raw: RawProduceSettings,
    /// The broker's pid, to report its CPU per GB (from /proc/PID/stat) beside the client's.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    #[command(flatten)]
    pub client: ClientSettings,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ConsumeBench {
    #[arg(long, default_value = "strata-bench")]
    pub topic: String,
    /// Stop after this many records (default: until the end offsets seen at start).
    #[arg(long)]
    pub records: Option<u64>,
    /// The load client: librdkafka or Strata's raw client (see --connections, --window,
    /// --fetch-bytes, --offset).
    #[arg(long = "client", value_enum, default_value_t = ClientKind::Rdkafka)]
    pub client_kind: ClientKind,
    #[command(flatten)]
    pub raw: RawConsumeSettings,
    /// The broker's pid, to report its CPU per GB (from /proc/PID/stat) beside the client's.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    #[command(flatten)]
    pub client: ClientSettings,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct E2eBench {
    #[arg(long, default_value = "strata-bench-e2e")]
    pub topic: String,
    #[arg(long, default_value_t = 8)]
    pub partitions: i32,
    /// Bytes of each record's value (at least 16: it carries the send time).
    #[arg(long, default_value_t = 1024)]
    pub message_size: usize,
    /// Records per second.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    #[arg(long, default_value = "all")]
    pub acks: String,
    #[arg(long, default_value_t = 1)]
    pub linger_ms: u64,
    #[command(flatten)]
    pub client: ClientSettings,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What `-X` adds to the configuration of the tool's clients.
#[derive(clap::Args, Debug, Default)]
pub struct ClientSettings {
    /// A librdkafka setting for the tool's clients, `-X name=value` (repeatable, as in
    /// rdkafka_performance); applied last, so it wins over the flags above.
    #[arg(short = 'X', long = "client-config", value_parser = parse_key_value)]
    pub client_config: Vec<(String, String)>,
}

/// The configuration of the clients that carry the load. librdkafka leaves Nagle's algorithm
/// on by default; with it a request's last segment can wait for the peer's delayed ACK, which
/// showed as 40-100 ms produce latency tails at 16 MB/s. The Java client always sets
/// TCP_NODELAY, and so does this tool (`-X socket.nagle.disable=false` brings Nagle back).
fn load_client_config(brokers: &str) -> rdkafka::ClientConfig {
    let mut c = client_config(brokers);
    c.set("socket.nagle.disable", "true");
    c
}

/// `-X` settings on top of a client configuration.
trait SetAll {
    fn set_all(&mut self, settings: &ClientSettings) -> &mut Self;
}
impl SetAll for rdkafka::ClientConfig {
    fn set_all(&mut self, settings: &ClientSettings) -> &mut Self {
        for (name, value) in &settings.client_config {
            self.set(name, value);
        }
        self
    }
}

fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Delivery reports go into a shared histogram (microseconds).
struct Reports {
    latency: Mutex<Histogram<u64>>,
    delivered: AtomicU64,
    bytes: AtomicU64,
    failed: AtomicU64,
}

struct BenchContext(Arc<Reports>);
impl ClientContext for BenchContext {}
impl ProducerContext for BenchContext {
    type DeliveryOpaque = Box<Instant>;
    fn delivery(&self, r: &DeliveryResult<'_>, intended: Box<Instant>) {
        match r {
            Ok(m) => {
                let us = intended.elapsed().as_micros() as u64;
                if let Ok(mut h) = self.0.latency.lock() {
                    let _ = h.record(us.max(1));
                }
                self.0.delivered.fetch_add(1, Ordering::Relaxed);
                self.0
                    .bytes
                    .fetch_add(m.payload_len() as u64, Ordering::Relaxed);
            }
            Err(_) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Sends a record, waiting while librdkafka's queue is full.
fn send_waiting(
    producer: &ThreadedProducer<BenchContext>,
    mut rec: BaseRecord<'_, [u8], [u8], Box<Instant>>,
) -> Result<()> {
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((e, back))
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
            {
                std::thread::sleep(Duration::from_micros(200));
                rec = back;
            }
            Err((e, _)) => bail!("send: {e}"),
        }
    }
}

impl Reports {
    fn new() -> Result<Arc<Reports>> {
        Ok(Arc::new(Reports {
            latency: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram")?),
            delivered: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }))
    }
}

fn ensure_topic(brokers: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(brokers).create()?;
    let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for r in block_on(admin.create_topics(
        [&t],
        &AdminOptions::new().request_timeout(Some(CALL_TIMEOUT)),
    ))? {
        match r {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => bail!("cannot create {t}: {e}"),
        }
    }
    Ok(())
}

fn progress(label: &str, start: Instant, records: u64, bytes: u64) {
    let s = start.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "{label}: {:>6.1}s  {:>10.0} records/s  {:>8.1} MB/s",
        s,
        records as f64 / s,
        bytes as f64 / s / 1e6
    );
}

pub fn produce(brokers: &str, a: ProduceBench) -> Result<()> {
    if a.client_kind == ClientKind::Raw {
        if a.keys > 0 {
            bail!("--keys is for the librdkafka client (the raw client's batches carry no key)");
        }
        return raw::produce(brokers, &a);
    }
    let keys = a.keys;
    ensure_topic(brokers, &a.topic, a.partitions)?;
    let reports = Reports::new()?;
    let payload = vec![b'x'; a.message_size];
    let per_producer_rate = a.rate as f64 / a.producers as f64;
    let limit = a.records.map(|r| r / a.producers as u64);
    let deadline = Duration::from_secs(a.duration);
    let mut handles = Vec::new();
    let mut producers = Vec::new();
    for _ in 0..a.producers {
        let producer: ThreadedProducer<BenchContext> = load_client_config(brokers)
            .set("acks", &a.acks)
            .set("compression.type", &a.compression)
            .set("linger.ms", a.linger_ms.to_string())
            .set("batch.size", a.batch_size.to_string())
            .set("queue.buffering.max.kbytes", "1048576")
            .set("enable.idempotence", "false")
            .set_all(&a.client)
            .create_with_context(BenchContext(reports.clone()))
            .context("producer")?;
        producers.push(producer);
    }
    // The clock and the CPU count start once the clients exist.
    let cpu0 = cpu::snapshot(a.broker_pid);
    let start = Instant::now();
    for producer in producers {
        let (topic, payload) = (a.topic.clone(), payload.clone());
        handles.push(std::thread::spawn(move || -> Result<()> {
            let mut i = 0u64;
            loop {
                if limit.is_some_and(|l| i >= l) || (limit.is_none() && start.elapsed() >= deadline)
                {
                    break;
                }
                let intended = if per_producer_rate > 0.0 {
                    let t = start + Duration::from_secs_f64(i as f64 / per_producer_rate);
                    if let Some(wait) = t.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    t
                } else {
                    Instant::now()
                };
                let key = (keys > 0).then(|| format!("k{}", i % keys));
                let mut rec: BaseRecord<'_, [u8], [u8], Box<Instant>> =
                    BaseRecord::with_opaque_to(&topic, Box::new(intended))
                        .payload(payload.as_slice());
                if let Some(k) = &key {
                    rec = rec.key(k.as_bytes());
                }
                send_waiting(&producer, rec)?;
                i += 1;
            }
            producer.flush(Duration::from_secs(60)).context("flush")?;
            Ok(())
        }));
    }
    let mut last = Instant::now();
    while handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            progress(
                "produce",
                start,
                reports.delivered.load(Ordering::Relaxed),
                reports.bytes.load(Ordering::Relaxed),
            );
        }
    }
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu1 = cpu::snapshot(a.broker_pid);
    let records = reports.delivered.load(Ordering::Relaxed);
    let bytes = reports.bytes.load(Ordering::Relaxed);
    let failed = reports.failed.load(Ordering::Relaxed);
    let cpu = cpu::summary(&cpu0, &cpu1, bytes);
    let h = reports
        .latency
        .lock()
        .map_err(|_| anyhow::anyhow!("histogram lock"))?;
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let summary = serde_json::json!({
        "records": records, "failed": failed, "seconds": secs,
        "records_per_sec": records as f64 / secs, "mb_per_sec": bytes as f64 / secs / 1e6,
        "latency_ms": { "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p999": ms(0.999), "max": h.max() as f64 / 1000.0 },
        "message_size": a.message_size, "acks": a.acks, "compression": a.compression, "producers": a.producers, "rate": a.rate,
        "client": "rdkafka", "cpu": cpu,
    });
    if a.json {
        println!("{summary}");
    } else {
        println!(
            "produced {records} records ({failed} failed) in {secs:.1}s: {:.0} records/s, {:.1} MB/s; latency ms p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
            records as f64 / secs, bytes as f64 / secs / 1e6, ms(0.5), ms(0.9), ms(0.99), ms(0.999), h.max() as f64 / 1000.0
        );
        println!(
            "librdkafka client, {} producers; {}",
            a.producers,
            cpu::describe(&summary["cpu"])
        );
    }
    if failed > 0 {
        bail!("{failed} records were not acknowledged");
    }
    Ok(())
}

pub fn consume(brokers: &str, a: ConsumeBench) -> Result<()> {
    if a.client_kind == ClientKind::Raw {
        return raw::consume(brokers, &a);
    }
    let c: BaseConsumer = load_client_config(brokers)
        .set("group.id", "strata-bench")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.max.messages.kbytes", "1048576")
        .set_all(&a.client)
        .create()
        .context("consumer")?;
    let mut tpl = TopicPartitionList::new();
    let mut target = 0u64;
    for p in topic_partitions(&c, &a.topic)? {
        let (lo, hi) = c.fetch_watermarks(&a.topic, p, CALL_TIMEOUT)?;
        target += (hi - lo).max(0) as u64;
        tpl.add_partition_offset(&a.topic, p, Offset::Beginning)?;
    }
    let target = a.records.unwrap_or(target).min(target);
    if target == 0 {
        bail!("{} is empty: produce first (strata bench produce)", a.topic);
    }
    c.assign(&tpl)?;
    let cpu0 = cpu::snapshot(a.broker_pid);
    // Throughput is timed from the first record on: connecting and the first fetch's round
    // trip are reported apart (they would dominate a short run over a hot tail).
    let assigned = Instant::now();
    let mut start = None;
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut last = Instant::now();
    let mut idle = Instant::now();
    while records < target {
        match c.poll(Duration::from_millis(100)) {
            Some(m) => {
                let m = m?;
                start.get_or_insert_with(Instant::now);
                records += 1;
                bytes += m.payload_len() as u64;
                idle = Instant::now();
            }
            None if idle.elapsed() > Duration::from_secs(10) => {
                bail!("no record for 10 s after {records} of {target}")
            }
            None => {}
        }
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            progress("consume", start.unwrap_or(assigned), records, bytes);
        }
    }
    let start = start.unwrap_or(assigned);
    let first_record_s = (start - assigned).as_secs_f64();
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let cpu = cpu::summary(&cpu0, &cpu::snapshot(a.broker_pid), bytes);
    let summary = serde_json::json!({"records": records, "seconds": secs, "first_record_after_s": first_record_s,
        "records_per_sec": records as f64 / secs, "mb_per_sec": bytes as f64 / secs / 1e6,
        "client": "rdkafka", "cpu": cpu});
    if a.json {
        println!("{summary}");
    } else {
        println!(
            "consumed {records} records in {secs:.2}s from the first one ({first_record_s:.2}s after assignment): {:.0} records/s, {:.1} MB/s",
            records as f64 / secs,
            bytes as f64 / secs / 1e6
        );
        println!("librdkafka client; {}", cpu::describe(&summary["cpu"]));
    }
    Ok(())
}

pub fn e2e(brokers: &str, a: E2eBench) -> Result<()> {
    ensure_topic(brokers, &a.topic, a.partitions)?;
    let c: BaseConsumer = load_client_config(brokers)
        .set("group.id", "strata-bench-e2e")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .set("fetch.min.bytes", "1")
        .set_all(&a.client)
        .create()
        .context("consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in topic_partitions(&c, &a.topic)? {
        tpl.add_partition_offset(&a.topic, p, Offset::End)?;
    }
    c.assign(&tpl)?;
    // Let the consumer reach the end before the clock starts.
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(500) {
        c.poll(Duration::from_millis(50));
    }
    let producer: ThreadedProducer<BenchContext> = load_client_config(brokers)
        .set("acks", &a.acks)
        .set("linger.ms", a.linger_ms.to_string())
        .set("enable.idempotence", "false")
        .set_all(&a.client)
        .create_with_context(BenchContext(Reports::new()?))
        .context("producer")?;
    let total = a.rate * a.duration;
    let size = a.message_size.max(16);
    let topic = a.topic.clone();
    let rate = a.rate.max(1) as f64;
    let sender = std::thread::spawn(move || -> Result<()> {
        let start = Instant::now();
        let mut payload = vec![b'e'; size];
        for i in 0..total {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            // The intended send time, so that a stalled producer counts against latency too.
            let intended = unix_micros()
                .saturating_sub(Instant::now().saturating_duration_since(due).as_micros() as u64);
            payload[..8].copy_from_slice(&intended.to_be_bytes());
            let rec: BaseRecord<'_, [u8], [u8], Box<Instant>> =
                BaseRecord::with_opaque_to(&topic, Box::new(due)).payload(payload.as_slice());
            send_waiting(&producer, rec)?;
        }
        producer.flush(Duration::from_secs(60)).context("flush")?;
        Ok(())
    });
    let mut lat = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).context("histogram")?;
    let start = Instant::now();
    let mut last = Instant::now();
    let mut idle = Instant::now();
    while lat.len() < total {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m?;
            if let Some(p) = m.payload().filter(|p| p.len() >= 8) {
                let mut ts = [0u8; 8];
                ts.copy_from_slice(&p[..8]);
                lat.record(unix_micros().saturating_sub(u64::from_be_bytes(ts)).max(1))?;
            }
            idle = Instant::now();
        } else if idle.elapsed() > Duration::from_secs(10) {
            bail!("no record for 10 s after {} of {total}", lat.len());
        }
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            eprintln!(
                "e2e: {:>6.1}s  {} records, p99 so far {:.2} ms",
                start.elapsed().as_secs_f64(),
                lat.len(),
                lat.value_at_quantile(0.99) as f64 / 1000.0
            );
        }
    }
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("producer thread panicked"))??;
    let ms = |q: f64| lat.value_at_quantile(q) as f64 / 1000.0;
    let summary = serde_json::json!({"records": lat.len(), "rate": a.rate, "message_size": size,
        "latency_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p999": ms(0.999), "max": lat.max() as f64 / 1000.0}});
    if a.json {
        println!("{summary}");
    } else {
        println!("end-to-end latency of {} records at {} records/s: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            lat.len(), a.rate, ms(0.5), ms(0.9), ms(0.99), ms(0.999), lat.max() as f64 / 1000.0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_clients_disable_nagle_and_take_x_settings_last() {
        let mut c = load_client_config("127.0.0.1:1");
        assert_eq!(c.get("socket.nagle.disable"), Some("true"));
        c.set("linger.ms", "5").set_all(&ClientSettings {
            client_config: vec![
                ("linger.ms".into(), "0.5".into()),
                ("socket.nagle.disable".into(), "false".into()),
            ],
        });
        assert_eq!(c.get("linger.ms"), Some("0.5"));
        assert_eq!(c.get("socket.nagle.disable"), Some("false"));
    }

    #[test]
    fn x_parses_as_name_value() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            bench: BenchCommand,
        }
        let cli = Cli::parse_from([
            "strata",
            "produce",
            "-X",
            "linger.ms=0.5",
            "--client-config",
            "acks=1",
        ]);
        let BenchCommand::Produce(p) = cli.bench else {
            panic!("not produce")
        };
        assert_eq!(
            p.client.client_config,
            vec![
                ("linger.ms".to_string(), "0.5".to_string()),
                ("acks".to_string(), "1".to_string())
            ]
        );
    }
}
