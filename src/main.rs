//! The `strata` binary: `strata serve` runs the broker; the other subcommands are tools.
//! This is the edge of the program: errors become `anyhow` reports here and nowhere else.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use strata::config::Settings;

mod cli;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "strata", version, about = "A Kafka-compatible log appliance")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker (data in ./strata-data, listening on 127.0.0.1:9092 by default).
    Serve(ServeArgs),
    /// Manage topics on a broker.
    Topic {
        #[command(flatten)]
        brokers: Brokers,
        #[command(subcommand)]
        command: cli::topic::TopicCommand,
    },
    /// Produce lines from standard input as records.
    Produce {
        #[command(flatten)]
        brokers: Brokers,
        #[command(flatten)]
        args: cli::produce::ProduceArgs,
    },
    /// Load-test a Kafka-compatible broker.
    Bench {
        #[command(flatten)]
        brokers: Brokers,
        #[command(subcommand)]
        command: cli::bench::BenchCommand,
    },
    /// Inspect a cluster: brokers, controller, under-replicated and offline partitions.
    Cluster {
        #[command(flatten)]
        brokers: Brokers,
        #[command(subcommand)]
        command: cli::cluster::ClusterCommand,
    },
    /// Inspect and manage consumer groups.
    Group {
        #[command(flatten)]
        brokers: Brokers,
        #[command(subcommand)]
        command: cli::group::GroupCommand,
    },
    /// Run a continuous query over a topic (running aggregates per key and window).
    Stream {
        #[command(flatten)]
        brokers: Brokers,
        #[command(flatten)]
        args: cli::stream::StreamArgs,
    },
    /// Produce a demo data stream.
    Demo {
        #[command(flatten)]
        brokers: Brokers,
        #[command(subcommand)]
        command: cli::demo::DemoCommand,
    },
    /// Check (and apply) host settings for Strata.
    Tune {
        #[command(subcommand)]
        command: cli::tune::TuneCommand,
    },
    /// Print records of a topic.
    Consume {
        #[command(flatten)]
        brokers: Brokers,
        #[command(flatten)]
        args: cli::consume::ConsumeArgs,
    },
}

/// Where the tools connect: any Kafka-compatible broker.
#[derive(clap::Args)]
struct Brokers {
    /// Bootstrap broker(s), host:port[,host:port...].
    #[arg(
        long = "brokers",
        env = "STRATA_BROKERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    list: String,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML file with the same settings (flags and STRATA_* variables win over it).
    #[arg(long, env = "STRATA_CONFIG")]
    config: Option<PathBuf>,
    /// Folder holding all partitions and cluster metadata.
    #[arg(long, env = "STRATA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on (every core accepts on it).
    #[arg(long, env = "STRATA_LISTEN")]
    listen: Option<String>,
    /// host:port clients are told to connect to (defaults to --listen).
    #[arg(long, env = "STRATA_ADVERTISED_LISTENER")]
    advertised_listener: Option<String>,
    /// Number of cores (executors) to run, default all.
    #[arg(long, env = "STRATA_CORES")]
    cores: Option<usize>,
    /// Partitions of an auto-created topic.
    #[arg(long, env = "STRATA_DEFAULT_PARTITIONS")]
    default_partitions: Option<i32>,
    /// Create unknown topics when a client asks for their metadata.
    #[arg(long, env = "STRATA_AUTO_CREATE_TOPICS")]
    auto_create_topics: Option<bool>,
    /// How often each core enforces retention and starts its log cleaner, in ms (Kafka's
    /// log.retention.check.interval.ms; default 30000).
    #[arg(long, env = "STRATA_LOG_RETENTION_CHECK_INTERVAL_MS")]
    log_retention_check_interval_ms: Option<u64>,
    /// A topic default, as Kafka names it: `--topic-default retention.ms=86400000` (repeatable).
    #[arg(long = "topic-default", value_parser = cli::parse_key_value)]
    topic_defaults: Vec<(String, String)>,
    /// How long the first rebalance of an empty consumer group waits for more members
    /// (Kafka's group.initial.rebalance.delay.ms, default 3000).
    #[arg(long, env = "STRATA_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    group_initial_rebalance_delay_ms: Option<u64>,
    /// How often consumer-protocol (KIP-848) members heartbeat (Kafka's
    /// group.consumer.heartbeat.interval.ms, default 5000).
    #[arg(long, env = "STRATA_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS")]
    group_consumer_heartbeat_interval_ms: Option<u64>,
    /// How long a silent consumer-protocol member stays in its group (Kafka's
    /// group.consumer.session.timeout.ms, default 45000).
    #[arg(long, env = "STRATA_GROUP_CONSUMER_SESSION_TIMEOUT_MS")]
    group_consumer_session_timeout_ms: Option<u64>,
    /// How long committed offsets outlive their group's last member (Kafka's
    /// offsets.retention.minutes, default 10080 = 7 days).
    #[arg(long, env = "STRATA_OFFSETS_RETENTION_MINUTES")]
    offsets_retention_minutes: Option<u64>,
    /// Memory per core for caching the newest batches of its partitions (default: a quarter of
    /// the RAM shared by the cores, at most 512 MiB each).
    #[arg(long, env = "STRATA_CACHE_BYTES_PER_CORE")]
    cache_bytes_per_core: Option<u64>,
    /// Microseconds an idle core polls for work before it sleeps (default 0: polling answers
    /// other cores faster but takes CPU from whatever shares the cores).
    #[arg(long, env = "STRATA_IDLE_SPIN_US")]
    idle_spin_us: Option<u64>,
    /// How long a follower may lag behind its leader and stay in the in-sync replicas, in ms
    /// (Kafka's replica.lag.time.max.ms, default 30000).
    #[arg(long, env = "STRATA_REPLICA_LAG_TIME_MAX_MS")]
    replica_lag_time_max_ms: Option<u64>,
    /// How often partitions whose preferred replica is here (and in sync) ask for their
    /// leadership back, in ms (Kafka's leader.imbalance.check.interval.seconds, default
    /// 300000; 0: never).
    #[arg(long, env = "STRATA_LEADER_IMBALANCE_CHECK_INTERVAL_MS")]
    leader_imbalance_check_interval_ms: Option<u64>,
    /// This broker's id in the cluster (required with --peers; default 0 alone).
    #[arg(long, env = "STRATA_NODE_ID")]
    node_id: Option<i32>,
    /// Every broker of the cluster and its inter-broker address:
    /// `1=10.0.0.1:19092,2=10.0.0.2:19092,3=10.0.0.3:19092` (this broker listens on its own
    /// entry). Without it the broker is a one-node cluster.
    #[arg(long, env = "STRATA_PEERS")]
    peers: Option<String>,
    /// Address for inter-broker connections, instead of this broker's --peers entry.
    #[arg(long, env = "STRATA_RPC_LISTEN")]
    rpc_listen: Option<String>,
    /// Fault injection for tests: drop the response of every Nth Produce request.
    #[arg(long, hide = true)]
    fault_drop_produce_response_every: Option<u32>,
}

/// Blocks SIGINT and SIGTERM in every thread and returns a flag set when one arrives.
fn shutdown_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    // SAFETY: sigset_t is plain data initialised by sigemptyset before use; pthread_sigmask is
    // called before any other thread exists, so every thread inherits the blocked set and the
    // signals are only ever consumed by the sigwait below.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            anyhow::bail!("cannot block SIGINT/SIGTERM");
        }
        set
    };
    let f = flag.clone();
    std::thread::Builder::new()
        .name("strata-signals".into())
        .spawn(move || {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` is a valid, initialised signal set and `sig` a valid out-pointer.
            if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                tracing::info!(signal = sig, "shutting down");
                f.store(true, Ordering::SeqCst);
            }
        })?;
    Ok(flag)
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let flags = Settings {
        data_dir: args.data_dir,
        listen: args.listen,
        advertised_listener: args.advertised_listener,
        cores: args.cores,
        default_partitions: args.default_partitions,
        auto_create_topics: args.auto_create_topics,
        fault_drop_produce_response_every: args.fault_drop_produce_response_every,
        group_initial_rebalance_delay_ms: args.group_initial_rebalance_delay_ms,
        group_consumer_heartbeat_interval_ms: args.group_consumer_heartbeat_interval_ms,
        group_consumer_session_timeout_ms: args.group_consumer_session_timeout_ms,
        offsets_retention_minutes: args.offsets_retention_minutes,
        cache_bytes_per_core: args.cache_bytes_per_core,
        idle_spin_us: args.idle_spin_us,
        log_retention_check_interval_ms: args.log_retention_check_interval_ms,
        replica_lag_time_max_ms: args.replica_lag_time_max_ms,
        leader_imbalance_check_interval_ms: args.leader_imbalance_check_interval_ms,
        node_id: args.node_id,
        peers: args.peers,
        rpc_listen: args.rpc_listen,
        topic_defaults: args.topic_defaults.into_iter().collect(),
    };
    let file = match &args.config {
        Some(p) => Settings::from_toml_file(p)?,
        None => Settings::default(),
    };
    let config = flags.over(file).resolve()?;
    let shutdown = shutdown_on_signals()?;
    strata::kafka::server::run(config, shutdown).context("broker failed")
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        // Tools print to stdout: let `strata group describe g | head` end quietly, like any
        // Unix tool, instead of panicking on a closed pipe. (The broker keeps SIGPIPE ignored:
        // a peer closing its socket must not kill it.)
        // SAFETY: called before any thread is spawned; SIG_DFL is a valid disposition.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Topic { brokers, command } => cli::topic::run(&brokers.list, command),
        Command::Produce { brokers, args } => cli::produce::run(&brokers.list, args),
        Command::Cluster { brokers, command } => cli::cluster::run(&brokers.list, command),
        Command::Consume { brokers, args } => cli::consume::run(&brokers.list, args),
        Command::Group { brokers, command } => cli::group::run(&brokers.list, command),
        Command::Stream { brokers, args } => {
            cli::stream::run(&brokers.list, args, shutdown_on_signals()?)
        }
        Command::Demo { brokers, command } => cli::demo::run(&brokers.list, command),
        Command::Tune { command } => cli::tune::run(command),
        Command::Bench { brokers, command } => match command {
            cli::bench::BenchCommand::Produce(a) => cli::bench::produce(&brokers.list, a),
            cli::bench::BenchCommand::Consume(a) => cli::bench::consume(&brokers.list, a),
            cli::bench::BenchCommand::E2e(a) => cli::bench::e2e(&brokers.list, a),
            cli::bench::BenchCommand::Disk(a) => cli::bench_disk::run(a),
        },
    }
}
