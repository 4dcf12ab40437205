//! Broker settings, resolved from (in order of precedence) command-line flags, `STRATA_*`
//! environment variables, a TOML file given with `--config`, and built-in defaults that make
//! `strata serve` work with no configuration at all.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use serde::Deserialize;
use thiserror::Error;

use crate::group::coordinator::{
    GroupSettings, DEFAULT_OFFSETS_RETENTION_CHECK_INTERVAL, DEFAULT_OFFSETS_RETENTION_MINUTES,
};
use crate::limits::{
    DEFAULT_RETENTION_CHECK_INTERVAL, MAX_DEFAULT_CACHE_BYTES_PER_CORE,
    MAX_OFFSETS_RETENTION_MINUTES, MAX_RETENTION_CHECK_INTERVAL_MS,
};
use crate::storage::LogConfig;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("bad config file {0}: {1}")]
    Parse(PathBuf, String),
    #[error("bad value for {0}: {1}")]
    Value(&'static str, String),
    #[error(transparent)]
    Peers(#[from] crate::cluster::peers::PeersError),
}

/// Settings as given; every field optional so that layers can be merged.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub advertised_listener: Option<String>,
    pub cores: Option<usize>,
    pub default_partitions: Option<i32>,
    pub auto_create_topics: Option<bool>,
    /// Fault injection for tests: close the connection instead of answering every Nth
    /// Produce request (after it was applied), as a lost response would. 0 = off.
    #[serde(default)]
    pub fault_drop_produce_response_every: Option<u32>,
    /// Kafka's `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty
    /// group waits for more members (default 3000).
    pub group_initial_rebalance_delay_ms: Option<u64>,
    /// Kafka's `group.consumer.heartbeat.interval.ms`: how often consumer-protocol (KIP-848)
    /// members heartbeat (default 5000).
    pub group_consumer_heartbeat_interval_ms: Option<u64>,
    /// Kafka's `group.consumer.session.timeout.ms`: a consumer-protocol member silent this
    /// long is removed (default 45000).
    pub group_consumer_session_timeout_ms: Option<u64>,
    /// Kafka's `offsets.retention.minutes`: committed offsets of a group empty this long (or,
    /// for groups without members, committed this long ago) are expired (default 10080, 7 days).
    pub offsets_retention_minutes: Option<u64>,
    /// Memory per core for the tail caches of its partitions (recent batches served to
    /// consumers without a disk read). Default: a quarter of the RAM shared by the cores, at
    /// most 1 GiB per core.
    pub cache_bytes_per_core: Option<u64>,
    /// How long, in microseconds, an idle core polls for work before it sleeps (default 0).
    /// Polling answers a message from another core without a wake-up through the kernel
    /// (a cross-core round trip took 15 us with 100 us of polling, 62 us without), but burns
    /// the CPU time that clients or other services on the same cores need.
    pub idle_spin_us: Option<u64>,
    /// How often each core enforces retention and starts its log cleaner, in ms (Kafka's
    /// `log.retention.check.interval.ms`, 5 minutes there; 30 s here by default). The cleaner
    /// then visits every partition of the core and cleans those that are due.
    pub log_retention_check_interval_ms: Option<u64>,
    /// Kafka's `replica.lag.time.max.ms`: a follower that has not caught up with its leader
    /// for this long leaves the partition's in-sync replicas (default 30000).
    pub replica_lag_time_max_ms: Option<u64>,
    /// How often, in ms, each partition whose preferred replica (the first of its assignment)
    /// is on this broker and in sync asks for its leadership back (Kafka's
    /// `auto.leader.rebalance.enable` with `leader.imbalance.check.interval.seconds`, 300 s);
    /// 0 turns it off.
    pub leader_imbalance_check_interval_ms: Option<u64>,
    /// This broker's id in the cluster (Kafka's `node.id`); required with `peers`. Without it
    /// (and without `peers`) the broker is a one-node cluster with id 0, as before clusters.
    pub node_id: Option<i32>,
    /// Every broker of the cluster as `id=host:port` (its inter-broker address), comma
    /// separated: `"1=127.0.0.1:19092,2=127.0.0.1:19093,3=127.0.0.1:19094"`. In the TOML file
    /// this is the same string, not a table. Absent: a one-node cluster, no RPC listener.
    pub peers: Option<String>,
    /// Where this broker accepts inter-broker connections, overriding its own `peers` entry.
    pub rpc_listen: Option<String>,
    /// Topic defaults, by Kafka config name (`retention.ms`, `segment.bytes`, ...).
    #[serde(default)]
    pub topic_defaults: std::collections::BTreeMap<String, String>,
}

impl Settings {
    pub fn from_toml_file(path: &std::path::Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse(path.into(), e.to_string()))
    }

    /// `self` wins over `lower` field by field.
    pub fn over(self, lower: Settings) -> Settings {
        let mut topic_defaults = lower.topic_defaults;
        topic_defaults.extend(self.topic_defaults);
        Settings {
            data_dir: self.data_dir.or(lower.data_dir),
            listen: self.listen.or(lower.listen),
            advertised_listener: self.advertised_listener.or(lower.advertised_listener),
            cores: self.cores.or(lower.cores),
            default_partitions: self.default_partitions.or(lower.default_partitions),
            auto_create_topics: self.auto_create_topics.or(lower.auto_create_topics),
            fault_drop_produce_response_every: self
                .fault_drop_produce_response_every
                .or(lower.fault_drop_produce_response_every),
            group_initial_rebalance_delay_ms: self
                .group_initial_rebalance_delay_ms
                .or(lower.group_initial_rebalance_delay_ms),
            group_consumer_heartbeat_interval_ms: self
                .group_consumer_heartbeat_interval_ms
                .or(lower.group_consumer_heartbeat_interval_ms),
            group_consumer_session_timeout_ms: self
                .group_consumer_session_timeout_ms
                .or(lower.group_consumer_session_timeout_ms),
            offsets_retention_minutes: self
                .offsets_retention_minutes
                .or(lower.offsets_retention_minutes),
            cache_bytes_per_core: self.cache_bytes_per_core.or(lower.cache_bytes_per_core),
            idle_spin_us: self.idle_spin_us.or(lower.idle_spin_us),
            log_retention_check_interval_ms: self
                .log_retention_check_interval_ms
                .or(lower.log_retention_check_interval_ms),
            replica_lag_time_max_ms: self
                .replica_lag_time_max_ms
                .or(lower.replica_lag_time_max_ms),
            leader_imbalance_check_interval_ms: self
                .leader_imbalance_check_interval_ms
                .or(lower.leader_imbalance_check_interval_ms),
            node_id: self.node_id.or(lower.node_id),
            peers: self.peers.or(lower.peers),
            rpc_listen: self.rpc_listen.or(lower.rpc_listen),
            topic_defaults,
        }
    }

    pub fn resolve(self) -> Result<BrokerConfig, ConfigError> {
        let listen_s = self.listen.unwrap_or_else(|| "127.0.0.1:9092".into());
        let listen: SocketAddr = listen_s
            .to_socket_addrs()
            .map_err(|e| ConfigError::Value("listen", e.to_string()))?
            .next()
            .ok_or_else(|| ConfigError::Value("listen", listen_s.clone()))?;
        let advertised = self.advertised_listener.unwrap_or_else(|| listen_s.clone());
        let (host, port) = advertised
            .rsplit_once(':')
            .and_then(|(h, p)| {
                p.parse::<u16>()
                    .ok()
                    .map(|p| (h.trim_matches(['[', ']']).to_string(), p))
            })
            .ok_or_else(|| {
                ConfigError::Value(
                    "advertised-listener",
                    format!("'{advertised}' is not host:port"),
                )
            })?;
        let available = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let cores = self.cores.unwrap_or(available);
        if cores == 0 || cores > available {
            return Err(ConfigError::Value(
                "cores",
                format!("{cores} (this machine has {available})"),
            ));
        }
        let default_partitions = self.default_partitions.unwrap_or(1);
        if default_partitions < 1 {
            return Err(ConfigError::Value(
                "default-partitions",
                default_partitions.to_string(),
            ));
        }
        let mut log_defaults = LogConfig::default();
        for (k, v) in &self.topic_defaults {
            log_defaults
                .set(k, v)
                .map_err(|e| ConfigError::Value("topic-defaults", e.to_string()))?;
        }
        let consumer_defaults = crate::group::consumer::Settings::default();
        let ms = |v: Option<u64>, default: std::time::Duration| {
            v.map_or(default, std::time::Duration::from_millis)
        };
        let consumer_groups = crate::group::consumer::Settings {
            heartbeat_interval: ms(
                self.group_consumer_heartbeat_interval_ms,
                consumer_defaults.heartbeat_interval,
            ),
            session_timeout: ms(
                self.group_consumer_session_timeout_ms,
                consumer_defaults.session_timeout,
            ),
            ..consumer_defaults
        };
        // Kafka requires the interval below the timeout: members would expire between beats.
        if consumer_groups.heartbeat_interval.is_zero()
            || consumer_groups.heartbeat_interval >= consumer_groups.session_timeout
        {
            return Err(ConfigError::Value(
                "group-consumer-heartbeat-interval-ms",
                format!(
                    "{:?} must be above 0 and below the session timeout {:?}",
                    consumer_groups.heartbeat_interval, consumer_groups.session_timeout
                ),
            ));
        }
        if self.node_id.is_some_and(|id| id < 0) {
            return Err(ConfigError::Value(
                "node-id",
                format!("{:?} is below 0", self.node_id),
            ));
        }
        let peers = crate::cluster::peers::Peers::from_settings(
            self.node_id,
            self.peers.as_deref(),
            self.rpc_listen.as_deref(),
        )?;
        let retention_minutes = self
            .offsets_retention_minutes
            .unwrap_or(DEFAULT_OFFSETS_RETENTION_MINUTES);
        if retention_minutes == 0 || retention_minutes > MAX_OFFSETS_RETENTION_MINUTES {
            return Err(ConfigError::Value(
                "offsets-retention-minutes",
                format!("{retention_minutes} (must be in [1, {MAX_OFFSETS_RETENTION_MINUTES}])"),
            ));
        }
        let offsets_retention = std::time::Duration::from_secs(retention_minutes * 60);
        let cache_bytes_per_core =
            self.cache_bytes_per_core
                .unwrap_or_else(|| default_cache_bytes_per_core(cores)) as usize;
        let retention_check_interval = match self.log_retention_check_interval_ms {
            None => DEFAULT_RETENTION_CHECK_INTERVAL,
            Some(ms) if (1..=MAX_RETENTION_CHECK_INTERVAL_MS).contains(&ms) => {
                std::time::Duration::from_millis(ms)
            }
            Some(ms) => {
                return Err(ConfigError::Value(
                    "log-retention-check-interval-ms",
                    format!("{ms} (must be in [1, {MAX_RETENTION_CHECK_INTERVAL_MS}])"),
                ))
            }
        };
        let replica_lag_time_max = match self.replica_lag_time_max_ms {
            None => {
                std::time::Duration::from_millis(crate::limits::DEFAULT_REPLICA_LAG_TIME_MAX_MS)
            }
            Some(ms)
                if (crate::limits::RAFT_TICK_MS..=MAX_RETENTION_CHECK_INTERVAL_MS)
                    .contains(&ms) =>
            {
                std::time::Duration::from_millis(ms)
            }
            Some(ms) => {
                return Err(ConfigError::Value(
                    "replica-lag-time-max-ms",
                    format!(
                        "{ms} (must be in [{}, {MAX_RETENTION_CHECK_INTERVAL_MS}])",
                        crate::limits::RAFT_TICK_MS
                    ),
                ))
            }
        };
        let leader_balance_interval = std::time::Duration::from_millis(
            self.leader_imbalance_check_interval_ms
                .unwrap_or(crate::limits::DEFAULT_LEADER_IMBALANCE_CHECK_INTERVAL_MS),
        );
        Ok(BrokerConfig {
            replica_lag_time_max,
            leader_balance_interval,
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from("strata-data")),
            listen,
            advertised_host: host,
            advertised_port: port,
            cores,
            default_partitions,
            auto_create_topics: self.auto_create_topics.unwrap_or(true),
            node_id: self.node_id.unwrap_or(0),
            peers,
            cluster_id: "strata".into(),
            log_defaults,
            fault_drop_produce_response_every: self.fault_drop_produce_response_every.unwrap_or(0),
            cache_bytes_per_core,
            idle_spin: std::time::Duration::from_micros(self.idle_spin_us.unwrap_or(0)),
            retention_check_interval,
            groups: GroupSettings {
                initial_rebalance_delay: std::time::Duration::from_millis(
                    self.group_initial_rebalance_delay_ms.unwrap_or(3000),
                ),
                consumer: consumer_groups,
                offsets_retention,
                // Kafka's interval, or sooner when the retention is shorter.
                offsets_retention_check_interval: DEFAULT_OFFSETS_RETENTION_CHECK_INTERVAL
                    .min(offsets_retention),
                ..GroupSettings::default()
            },
        })
    }
}

/// The resolved settings of a running broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub advertised_host: String,
    pub advertised_port: u16,
    pub cores: usize,
    pub default_partitions: i32,
    pub auto_create_topics: bool,
    pub node_id: i32,
    /// The cluster's members; `None`: a one-node cluster (no inter-broker transport).
    pub peers: Option<crate::cluster::peers::Peers>,
    pub cluster_id: String,
    pub log_defaults: LogConfig,
    /// See [`Settings::fault_drop_produce_response_every`].
    pub fault_drop_produce_response_every: u32,
    /// See [`Settings::cache_bytes_per_core`].
    pub cache_bytes_per_core: usize,
    /// See [`Settings::idle_spin_us`].
    pub idle_spin: std::time::Duration,
    /// See [`Settings::log_retention_check_interval_ms`].
    pub retention_check_interval: std::time::Duration,
    /// See [`Settings::replica_lag_time_max_ms`].
    pub replica_lag_time_max: std::time::Duration,
    /// See [`Settings::leader_imbalance_check_interval_ms`] (zero: off).
    pub leader_balance_interval: std::time::Duration,
    /// Group coordinator settings.
    pub groups: GroupSettings,
}

/// A quarter of physical memory over the cores, at most [`MAX_DEFAULT_CACHE_BYTES_PER_CORE`].
fn default_cache_bytes_per_core(cores: usize) -> u64 {
    // SAFETY: sysconf only reads system constants.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let ram = (pages.max(0) as u64).saturating_mul(page.max(0) as u64);
    (ram / 4 / cores.max(1) as u64).min(MAX_DEFAULT_CACHE_BYTES_PER_CORE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_file_and_layers_merge() {
        let c = Settings::default().resolve().expect("defaults");
        assert_eq!(c.listen.to_string(), "127.0.0.1:9092");
        assert_eq!(
            (c.advertised_host.as_str(), c.advertised_port),
            ("127.0.0.1", 9092)
        );
        assert_eq!(c.data_dir, PathBuf::from("strata-data"));
        let file: Settings = toml::from_str("listen = \"127.0.0.1:9999\"\ndefault-partitions = 4\n[topic-defaults]\n\"retention.ms\" = \"1000\"\n").expect("toml");
        let flags = Settings {
            default_partitions: Some(8),
            ..Default::default()
        };
        let c = flags.over(file).resolve().expect("merged");
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.default_partitions, 8);
        assert_eq!(c.log_defaults.retention_ms, 1000);
        assert!(Settings {
            cores: Some(0),
            ..Default::default()
        }
        .resolve()
        .is_err());
        assert!(toml::from_str::<Settings>("bogus = 1").is_err());
    }

    #[test]
    fn the_cache_defaults_to_a_share_of_memory_and_can_be_set() {
        let c = Settings::default().resolve().expect("defaults");
        assert!(c.cache_bytes_per_core > 0);
        assert!(c.cache_bytes_per_core as u64 <= MAX_DEFAULT_CACHE_BYTES_PER_CORE);
        let file: Settings = toml::from_str("cache-bytes-per-core = 4096\n").expect("toml");
        assert_eq!(file.resolve().expect("set").cache_bytes_per_core, 4096);
    }

    #[test]
    fn idle_cores_sleep_at_once_unless_told_to_poll() {
        use std::time::Duration;
        let c = Settings::default().resolve().expect("defaults");
        assert_eq!(c.idle_spin, Duration::ZERO);
        let file: Settings = toml::from_str("idle-spin-us = 100\n").expect("toml");
        let flags = Settings {
            idle_spin_us: Some(20),
            ..Default::default()
        };
        assert_eq!(
            file.clone().resolve().expect("set").idle_spin,
            Duration::from_micros(100)
        );
        assert_eq!(
            flags.over(file).resolve().expect("set").idle_spin,
            Duration::from_micros(20)
        );
    }

    #[test]
    fn the_retention_and_cleaner_interval_is_30_s_unless_set_and_bounded() {
        use std::time::Duration;
        let c = Settings::default().resolve().expect("defaults");
        assert_eq!(c.retention_check_interval, Duration::from_secs(30));
        let file: Settings =
            toml::from_str("log-retention-check-interval-ms = 250\n").expect("toml");
        assert_eq!(
            file.resolve().expect("set").retention_check_interval,
            Duration::from_millis(250)
        );
        for bad in [0, MAX_RETENTION_CHECK_INTERVAL_MS + 1] {
            let s = Settings {
                log_retention_check_interval_ms: Some(bad),
                ..Default::default()
            };
            assert!(matches!(
                s.resolve(),
                Err(ConfigError::Value("log-retention-check-interval-ms", _))
            ));
        }
    }
}

#[cfg(test)]
mod cluster_settings {
    use super::*;

    const LIST: &str = "1=127.0.0.1:19092,2=127.0.0.1:19093,3=127.0.0.1:19094";

    #[test]
    fn without_peers_the_broker_is_node_0_alone() {
        let c = Settings::default().resolve().expect("defaults");
        assert_eq!(c.node_id, 0);
        assert!(c.peers.is_none());
    }

    #[test]
    fn peers_come_from_the_file_and_flags_win() {
        let file: Settings = toml::from_str(&format!(
            "node-id = 1\npeers = \"{LIST}\"\nrpc-listen = \"0.0.0.0:29092\"\n"
        ))
        .expect("toml");
        let c = file.clone().resolve().expect("file alone");
        assert_eq!(c.node_id, 1);
        let p = c.peers.expect("a cluster");
        assert_eq!(p.rpc_listen().to_string(), "0.0.0.0:29092");
        assert_eq!(p.len(), 3);
        let flags = Settings {
            node_id: Some(3),
            rpc_listen: Some("127.0.0.1:29094".into()),
            ..Default::default()
        };
        let c = flags.over(file).resolve().expect("merged");
        assert_eq!(c.node_id, 3);
        let p = c.peers.expect("a cluster");
        assert_eq!((p.me(), p.rpc_listen().port()), (3, 29094));
    }

    #[test]
    fn bad_cluster_settings_are_refused() {
        let bad = |s: Settings| s.resolve().expect_err("invalid").to_string();
        let peers = |id: Option<i32>, list: &str| Settings {
            node_id: id,
            peers: Some(list.into()),
            ..Default::default()
        };
        assert!(bad(peers(None, LIST)).contains("--peers needs --node-id"));
        assert!(bad(peers(Some(9), LIST)).contains("node id 9 is not in the peers list"));
        assert!(bad(peers(Some(1), "1=127.0.0.1:1,1=127.0.0.1:2")).contains("listed twice"));
        assert!(bad(peers(Some(1), "1=127.0.0.1:x")).contains("cannot resolve"));
        assert!(bad(Settings {
            node_id: Some(-1),
            ..Default::default()
        })
        .contains("node-id"));
        assert!(toml::from_str::<Settings>("peers = { 1 = \"127.0.0.1:1\" }").is_err());
    }
}

#[cfg(test)]
mod sample_file {
    use super::*;

    #[test]
    fn consumer_group_timeouts_default_to_kafkas_and_are_checked() {
        use std::time::Duration;
        let c = Settings::default().resolve().expect("defaults");
        assert_eq!(
            c.groups.consumer.heartbeat_interval,
            Duration::from_millis(5000)
        );
        assert_eq!(
            c.groups.consumer.session_timeout,
            Duration::from_millis(45_000)
        );
        let file: Settings = toml::from_str(
            "group-consumer-heartbeat-interval-ms = 500\ngroup-consumer-session-timeout-ms = 6000\n",
        )
        .expect("toml");
        let c = file.resolve().expect("set");
        assert_eq!(
            c.groups.consumer.heartbeat_interval,
            Duration::from_millis(500)
        );
        assert_eq!(
            c.groups.consumer.session_timeout,
            Duration::from_millis(6000)
        );
        let bad = Settings {
            group_consumer_heartbeat_interval_ms: Some(50_000),
            ..Default::default()
        };
        assert!(
            bad.resolve().is_err(),
            "heartbeats less often than the session timeout"
        );
    }

    #[test]
    fn offsets_retention_defaults_to_kafkas_seven_days_and_is_checked() {
        use std::time::Duration;
        let c = Settings::default().resolve().expect("defaults");
        assert_eq!(
            c.groups.offsets_retention,
            Duration::from_secs(7 * 24 * 3600)
        );
        assert_eq!(
            c.groups.offsets_retention_check_interval,
            Duration::from_secs(600)
        );
        let file: Settings = toml::from_str("offsets-retention-minutes = 2\n").expect("toml");
        let c = file.resolve().expect("set");
        assert_eq!(c.groups.offsets_retention, Duration::from_secs(120));
        let zero = Settings {
            offsets_retention_minutes: Some(0),
            ..Default::default()
        };
        assert!(zero.resolve().is_err(), "at least a minute, as Kafka");
    }

    #[test]
    fn the_documented_sample_config_parses_and_resolves() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning/strata.toml");
        let s = Settings::from_toml_file(&path).expect("tuning/strata.toml parses");
        let c = s.resolve().expect("and resolves");
        assert_eq!(c.listen.port(), 9092);
        assert_eq!(c.advertised_host, "broker1.example.com");
        assert_eq!(
            c.log_defaults,
            crate::storage::LogConfig::default(),
            "the sample documents the defaults"
        );
    }
}
