//! `strata stream`: runs a continuous query (`strata::stream`) against a topic through the
//! Kafka protocol, as a member of the consumer group `strata-stream-<name>` so that several
//! processes split the partitions.
//!
//! Exactly-once state: each partition's task state and the offset it reached are written
//! together, as one record, to the checkpoint topic `__strata_stream_<name>`; only then are the
//! group's offsets committed (to that same offset). The committed offset is therefore never
//! ahead of the checkpoint, so after a crash the records between them are read again and
//! skipped by the task (it knows the offset its state reached): nothing is counted twice and
//! nothing is lost. Results written before the crash are written again from the same state,
//! so the latest upsert of every (key, window) is the one an uninterrupted run writes.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_lite::future::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;

use super::{client_config, parse_key_value, CALL_TIMEOUT};
use strata::stream::aggregate::{Accumulator, Agg};
use strata::stream::query::{Query, Source};
use strata::stream::task::{Task, TaskState, Update};
use strata::stream::window::{parse_duration, WindowSpec, GLOBAL};

/// Records read backwards per step when looking for a partition's latest checkpoint.
const CHECKPOINT_SCAN_CHUNK: i64 = 1024;
/// Checkpoint record format version.
const CHECKPOINT_VERSION: u32 = 1;

#[derive(clap::Args)]
pub struct StreamArgs {
    /// Name of the query: its group, checkpoint topic and default output topic derive from it.
    #[arg(long)]
    pub name: String,
    /// Input topic.
    #[arg(long)]
    pub topic: String,
    /// Grouping key: `key` (record key), `json:PATH`, `const:TEXT` (one global group).
    #[arg(long, default_value = "const:all")]
    pub key: Source,
    /// Number aggregated by sum/min/max/mean: `value` (raw record value) or `json:PATH`.
    #[arg(long)]
    pub value: Option<Source>,
    /// What `distinct` counts (default: the value): `key`, `value`, `json:PATH`.
    #[arg(long)]
    pub distinct_of: Option<Source>,
    /// Aggregates, comma-separated: count, sum, min, max, mean, distinct.
    #[arg(long, default_value = "count", value_delimiter = ',')]
    pub agg: Vec<Agg>,
    /// `global` (everything up to now), `tumbling:1m`, `hopping:1m,10s`, `session:30s`.
    #[arg(long, default_value = "global")]
    pub window: WindowSpec,
    /// Event time: `timestamp` (the record's) or `json:PATH` (milliseconds).
    #[arg(long, default_value = "timestamp")]
    pub event_time: Source,
    /// How far behind the newest event time a record may arrive and still count.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub allowed_lateness: Duration,
    /// Output topic for the upserts (default `<name>-results`; created if missing).
    #[arg(long)]
    pub output: Option<String>,
    /// Also print each changed result on stdout, as a JSON line.
    #[arg(long)]
    pub print: bool,
    /// How often changed results are published.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub emit_interval: Duration,
    /// How often state and offsets are checkpointed.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub checkpoint_interval: Duration,
    /// Stop (after a final checkpoint) when no record arrived for this long while owning
    /// partitions.
    #[arg(long, value_parser = parse_duration)]
    pub exit_when_idle: Option<Duration>,
    /// A librdkafka setting for the consumer and producer, `name=value` (repeatable).
    #[arg(short = 'X', value_parser = parse_key_value)]
    pub property: Vec<(String, String)>,
}

impl StreamArgs {
    fn query(&self) -> Query {
        Query {
            key: self.key.clone(),
            value: self.value.clone(),
            distinct_of: self.distinct_of.clone(),
            aggregates: self.agg.clone(),
            window: self.window,
            event_time: self.event_time.clone(),
            allowed_lateness_ms: self.allowed_lateness.as_millis() as i64,
        }
    }
}

/// A checkpoint record's value.
#[derive(serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    version: u32,
    /// The query that made the state: a restart with another query under the same name must
    /// not reuse it.
    query: String,
    state: TaskState,
}

struct Runner {
    args: StreamArgs,
    query: Query,
    fingerprint: String,
    output: String,
    checkpoints: String,
    consumer: BaseConsumer,
    producer: BaseProducer,
    reader: BaseConsumer,
    tasks: HashMap<i32, Task>,
    /// Late and unreadable records reported so far (to report only changes).
    reported_drops: u64,
}

fn ensure_topic(brokers: &str, name: &str, configs: &[(&str, &str)]) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(brokers).create().context("admin client")?;
    let mut t = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let opts = AdminOptions::new().request_timeout(Some(CALL_TIMEOUT));
    for r in block_on(admin.create_topics([&t], &opts))? {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => bail!("cannot create {t}: {e}"),
        }
    }
    Ok(())
}

fn window_json(start: i64, end: i64) -> (serde_json::Value, serde_json::Value) {
    if (start, end) == (GLOBAL.start, GLOBAL.end) {
        (json!(null), json!(null))
    } else {
        (json!(start), json!(end))
    }
}

pub fn run(brokers: &str, args: StreamArgs, stop: Arc<AtomicBool>) -> Result<()> {
    let query = args.query();
    if args.value.is_none()
        && args
            .agg
            .iter()
            .any(|a| matches!(a, Agg::Sum | Agg::Min | Agg::Max | Agg::Mean))
    {
        bail!("sum, min, max and mean need --value");
    }
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| format!("{}-results", args.name));
    let checkpoints = format!("__strata_stream_{}", args.name);
    ensure_topic(brokers, &checkpoints, &[("cleanup.policy", "compact")])?;
    ensure_topic(brokers, &output, &[])?;
    let mut consumer_config = client_config(brokers);
    consumer_config
        .set("group.id", format!("strata-stream-{}", args.name))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    let mut producer_config = client_config(brokers);
    producer_config
        .set("enable.idempotence", "true")
        .set("linger.ms", "5");
    for (k, v) in &args.property {
        consumer_config.set(k, v);
        producer_config.set(k, v);
    }
    let consumer: BaseConsumer = consumer_config.create().context("consumer")?;
    consumer.subscribe(&[&args.topic])?;
    let reader: BaseConsumer = client_config(brokers)
        .set("group.id", format!("strata-stream-{}-reader", args.name))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .context("checkpoint reader")?;
    let mut r = Runner {
        fingerprint: format!("{query:?}"),
        query,
        output,
        checkpoints,
        consumer,
        producer: producer_config.create().context("producer")?,
        reader,
        tasks: HashMap::new(),
        reported_drops: 0,
        args,
    };
    r.run(stop)
}

impl Runner {
    fn run(&mut self, stop: Arc<AtomicBool>) -> Result<()> {
        let (mut last_emit, mut last_checkpoint) = (Instant::now(), Instant::now());
        let mut last_record = Instant::now();
        loop {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    last_record = Instant::now();
                    let p = m.partition();
                    if !self.tasks.contains_key(&p) {
                        let loaded = self.load_assigned(p)?;
                        self.tasks.extend(loaded);
                    }
                    let extracted = self
                        .query
                        .extract(m.key(), m.payload(), m.timestamp().to_millis().unwrap_or(0))
                        .inspect_err(|e| tracing::debug!(partition = p, offset = m.offset(), error = %e, "record skipped"))
                        .ok();
                    if let Some(task) = self.tasks.get_mut(&p) {
                        if task.state.next_offset.is_some_and(|n| m.offset() > n) {
                            tracing::warn!(partition = p, from = ?task.state.next_offset, to = m.offset(), "input records missing (deleted by retention?)");
                        }
                        task.process(m.offset(), extracted.as_ref());
                    }
                }
                Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
                None => {}
            }
            if last_emit.elapsed() >= self.args.emit_interval {
                self.emit()?;
                if !self.forget_revoked() {
                    // Idle means no records while owning partitions, not waiting to join.
                    last_record = Instant::now();
                }
                last_emit = Instant::now();
            }
            if last_checkpoint.elapsed() >= self.args.checkpoint_interval {
                self.checkpoint()?;
                last_checkpoint = Instant::now();
            }
            if self
                .args
                .exit_when_idle
                .is_some_and(|idle| last_record.elapsed() >= idle)
            {
                break;
            }
        }
        self.checkpoint()?;
        let stats: Vec<String> = self
            .tasks
            .iter()
            .map(|(p, t)| {
                format!(
                    "partition {p}: {} records, {} late, {} invalid, {} open windows",
                    t.state.processed,
                    t.state.late_dropped,
                    t.state.invalid,
                    t.open_windows()
                )
            })
            .collect();
        tracing::info!(stats = ?stats, "stream stopped after a final checkpoint");
        self.consumer.unsubscribe();
        Ok(())
    }

    /// Loads the checkpointed state of every assigned partition that has no task yet
    /// (`partition` at least, which a record just came from).
    fn load_assigned(&self, partition: i32) -> Result<Vec<(i32, Task)>> {
        let mut wanted: Vec<i32> = self
            .consumer
            .assignment()?
            .elements_for_topic(&self.args.topic)
            .iter()
            .map(|e| e.partition())
            .filter(|p| !self.tasks.contains_key(p))
            .collect();
        if !wanted.contains(&partition) {
            wanted.push(partition);
        }
        let found = self.read_checkpoints(&wanted)?;
        let mut loaded = Vec::new();
        for p in wanted {
            let state = match found.get(&p) {
                Some(c) if c.query != self.fingerprint => bail!(
                    "the checkpoint of stream '{}' was made by another query ({}); use another --name",
                    self.args.name,
                    c.query
                ),
                Some(c) => {
                    tracing::info!(partition = p, offset = ?c.state.next_offset, "resumed from checkpoint");
                    c.state.clone()
                }
                None => TaskState::default(),
            };
            let task = Task::new(self.query.window, self.query.allowed_lateness_ms, state);
            loaded.push((p, task));
        }
        Ok(loaded)
    }

    /// The latest checkpoint of each wanted partition, reading the checkpoint topic backwards
    /// from its end (it is written often, so the latest ones are near the end).
    fn read_checkpoints(&self, wanted: &[i32]) -> Result<HashMap<i32, Checkpoint>> {
        let (low, high) = self
            .reader
            .fetch_watermarks(&self.checkpoints, 0, CALL_TIMEOUT)?;
        let keys: HashMap<String, i32> = wanted
            .iter()
            .map(|p| (format!("{}/{p}", self.args.topic), *p))
            .collect();
        let mut found: HashMap<i32, Checkpoint> = HashMap::new();
        let mut to = high;
        while to > low && found.len() < wanted.len() {
            let from = (to - CHECKPOINT_SCAN_CHUNK).max(low);
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&self.checkpoints, 0, Offset::Offset(from))?;
            self.reader.assign(&tpl)?;
            let mut chunk: Vec<(i64, String, Option<Vec<u8>>)> = Vec::new();
            let deadline = Instant::now() + CALL_TIMEOUT;
            let mut next = from;
            while next < to {
                if Instant::now() > deadline {
                    bail!("timed out reading checkpoints from {}", self.checkpoints);
                }
                if let Some(m) = self.reader.poll(Duration::from_millis(100)) {
                    let m = m?;
                    next = m.offset() + 1;
                    if m.offset() < to {
                        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                        chunk.push((m.offset(), key, m.payload().map(<[u8]>::to_vec)));
                    }
                }
            }
            for (offset, key, value) in chunk.into_iter().rev() {
                let Some(p) = keys.get(&key) else { continue };
                if found.contains_key(p) {
                    continue;
                }
                let Some(v) = value else { continue };
                match serde_json::from_slice::<Checkpoint>(&v) {
                    Ok(c) if c.version == CHECKPOINT_VERSION => {
                        found.insert(*p, c);
                    }
                    Ok(c) => bail!(
                        "checkpoint at offset {offset} has unknown version {}",
                        c.version
                    ),
                    Err(e) => bail!(
                        "checkpoint at offset {offset} of {} is unreadable: {e}",
                        self.checkpoints
                    ),
                }
            }
            to = from;
        }
        self.reader.unassign()?;
        Ok(found)
    }

    /// Drops the tasks of partitions this member no longer owns (their state lives on in the
    /// checkpoint, from which the new owner resumes). Returns whether it owns any.
    fn forget_revoked(&mut self) -> bool {
        let Ok(assignment) = self.consumer.assignment() else {
            return false;
        };
        let owned: Vec<i32> = assignment
            .elements_for_topic(&self.args.topic)
            .iter()
            .map(|e| e.partition())
            .collect();
        self.tasks.retain(|p, _| owned.contains(p));
        !owned.is_empty()
    }

    /// Publishes every changed (key, window) to the output topic and, with --print, stdout.
    fn emit(&mut self) -> Result<()> {
        // (key, window start) → (window end, merged aggregates, final, partitions merged)
        type Printed = (i64, Accumulator, bool, Vec<i32>);
        let mut printed: BTreeMap<(String, i64), Printed> = BTreeMap::new();
        let mut updates: Vec<(i32, Update)> = Vec::new();
        for (p, task) in self.tasks.iter_mut() {
            updates.extend(task.drain().into_iter().map(|u| (*p, u)));
        }
        for (p, u) in &updates {
            let (start, end) = window_json(u.window.start, u.window.end);
            let key = json!({"key": u.key, "window_start": start, "partition": p}).to_string();
            let value = u.acc.as_ref().map(|acc| {
                let mut v = acc.fields(&self.query.aggregates);
                v.insert("key".into(), json!(u.key));
                v.insert("window_start".into(), start.clone());
                v.insert("window_end".into(), end.clone());
                v.insert("partition".into(), json!(p));
                v.insert("final".into(), json!(u.closed));
                // "Up to time t": the newest event time this partition's result includes.
                let t = self.tasks.get(p).and_then(|t| t.state.max_event_time);
                v.insert("up_to".into(), json!(t));
                serde_json::Value::Object(v).to_string()
            });
            let mut record = BaseRecord::<String, String>::to(&self.output).key(&key);
            if let Some(v) = &value {
                record = record.payload(v);
            }
            self.send(record)?;
            if self.args.print {
                if let Some(acc) = &u.acc {
                    let e = printed.entry((u.key.clone(), u.window.start)).or_insert((
                        u.window.end,
                        Accumulator::default(),
                        true,
                        Vec::new(),
                    ));
                    e.1.merge(acc);
                    e.2 &= u.closed;
                    e.3.push(*p);
                }
            }
        }
        self.producer.poll(Duration::ZERO);
        if self.args.print && !printed.is_empty() {
            let mut out = std::io::stdout().lock();
            for ((key, start), (end, acc, closed, merged_from)) in printed {
                // Other partitions owned here may hold other parts of the same (key, window).
                let mut merged = acc;
                for (p, task) in &self.tasks {
                    if merged_from.contains(p) {
                        continue;
                    }
                    if let Some((_, a)) = task.state.windows.get(&key).and_then(|w| w.get(&start)) {
                        merged.merge(a);
                    }
                }
                let (s, e) = window_json(start, end);
                let mut v = merged.fields(&self.query.aggregates);
                v.insert("key".into(), json!(key));
                v.insert("window_start".into(), s);
                v.insert("window_end".into(), e);
                v.insert("final".into(), json!(closed));
                let t = self
                    .tasks
                    .values()
                    .filter_map(|t| t.state.max_event_time)
                    .max();
                v.insert("up_to".into(), json!(t));
                writeln!(out, "{}", serde_json::Value::Object(v))?;
            }
        }
        Ok(())
    }

    fn send(&self, record: BaseRecord<'_, String, String>) -> Result<()> {
        super::send_waiting(&self.producer, record)
    }

    /// Results out, then state and offsets together per partition, then the group commit.
    fn checkpoint(&mut self) -> Result<()> {
        // Never checkpoint a partition that moved to another member: its newer checkpoint
        // would be overwritten by this older state.
        self.forget_revoked();
        self.emit()?;
        let (late, invalid) = self.tasks.values().fold((0, 0), |(l, i), t| {
            (l + t.state.late_dropped, i + t.state.invalid)
        });
        if late + invalid != self.reported_drops {
            self.reported_drops = late + invalid;
            tracing::info!(late, invalid, "records dropped so far (late: behind the watermark; invalid: unreadable by the query)");
        }
        self.producer
            .flush(CALL_TIMEOUT)
            .context("publishing results before a checkpoint")?;
        let mut commits = TopicPartitionList::new();
        for (p, task) in &self.tasks {
            let Some(next) = task.state.next_offset else {
                continue;
            };
            let c = Checkpoint {
                version: CHECKPOINT_VERSION,
                query: self.fingerprint.clone(),
                state: task.state.clone(),
            };
            let value = serde_json::to_string(&c)?;
            let key = format!("{}/{p}", self.args.topic);
            self.send(BaseRecord::to(&self.checkpoints).key(&key).payload(&value))?;
            commits.add_partition_offset(&self.args.topic, *p, Offset::Offset(next))?;
        }
        self.producer
            .flush(CALL_TIMEOUT)
            .context("writing checkpoints")?;
        if commits.count() > 0 {
            // Only after the checkpoints are stored: the commit must never be ahead of them.
            if let Err(e) = self.consumer.commit(&commits, CommitMode::Sync) {
                tracing::debug!(error = %e, "offset commit refused (rebalancing); the checkpoint holds the position");
            }
        }
        Ok(())
    }
}
