//! DescribeConfigs (key 32): the effective configs of topics (type 2), each with its Kafka
//! config type (v3+) and, when asked, documentation; of this broker (type 4), its settings
//! under Kafka's names, read-only since they are fixed when it starts ("", the cluster-wide
//! dynamic defaults, has none). As in Kafka, an invalid topic name gets
//! INVALID_TOPIC_EXCEPTION and a broker resource naming another broker INVALID_REQUEST.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::{str_bytes, Ctx};
use crate::kafka::errors;
use crate::storage::config::CONFIG_NAMES;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
/// Config sources (KIP-226): a topic override, or the default.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// Kafka's config types (DescribeConfigsResponse `ConfigType`).
const TYPE_UNKNOWN: i8 = 0;
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;
pub const TYPE_LIST: i8 = 7;

/// The type Kafka gives a topic config (its `LogConfig` definition).
pub fn config_type(name: &str) -> i8 {
    match name {
        "cleanup.policy" => TYPE_LIST,
        "message.timestamp.type" => TYPE_STRING,
        "index.interval.bytes" | "max.message.bytes" | "segment.bytes" | "min.insync.replicas" => {
            TYPE_INT
        }
        "flush.messages"
        | "flush.ms"
        | "retention.bytes"
        | "retention.ms"
        | "segment.ms"
        | "message.timestamp.before.max.ms"
        | "message.timestamp.after.max.ms"
        | "delete.retention.ms"
        | "min.compaction.lag.ms"
        | "max.compaction.lag.ms" => TYPE_LONG,
        "min.cleanable.dirty.ratio" => TYPE_DOUBLE,
        _ => TYPE_UNKNOWN,
    }
}

/// What a topic config does (DescribeConfigs v3+ with `include_documentation`).
pub fn documentation(name: &str) -> Option<&'static str> {
    Some(match name {
        "cleanup.policy" => "What happens to old segments: delete (by retention.ms and retention.bytes), compact (the latest record of each key is kept), or both.",
        "delete.retention.ms" => "How long a tombstone is kept after the clean that first saw it.",
        "min.cleanable.dirty.ratio" => "The share of a log not yet cleaned past which the cleaner cleans it.",
        "min.compaction.lag.ms" => "How old a record must be before the cleaner may remove it.",
        "min.insync.replicas" => "The fewest in-sync replicas with which a produce with acks=all is taken (NOT_ENOUGH_REPLICAS otherwise); a majority of the replicas acknowledges it in any case.",
        "max.compaction.lag.ms" => "How long a record may stay uncompacted: older dirty records are cleaned whatever the dirty ratio, and the active segment is rolled at this age.",
        "message.timestamp.before.max.ms" => "How far before the broker's clock a CreateTime batch's timestamps may be.",
        "message.timestamp.after.max.ms" => "How far after the broker's clock a CreateTime batch's timestamps may be.",
        "flush.messages" => "How many messages may be acknowledged before they are synced to disk; 1 syncs every batch before its acknowledgement.",
        "flush.ms" => "How long acknowledged messages may wait before they are synced to disk.",
        "index.interval.bytes" => "How many bytes of batches lie between two entries of the offset index.",
        "max.message.bytes" => "The largest record batch a producer may send to this topic.",
        "message.timestamp.type" => "Whether a record's timestamp is the producer's (CreateTime) or the broker's (LogAppendTime).",
        "retention.bytes" => "The size a partition may grow to before its oldest segments are deleted; -1 for no limit.",
        "retention.ms" => "How long a segment is kept after its newest record; -1 for no limit.",
        "segment.bytes" => "The size at which a partition's active segment is rolled.",
        "segment.ms" => "The age at which a partition's active segment is rolled.",
        _ => return None,
    })
}

/// A broker's settings under Kafka's broker config names, with their types: fixed when it
/// starts (flags, environment, file), so all read-only. Topic defaults carry their `log.`
/// names, as in Kafka.
pub fn broker_configs(b: &crate::config::BrokerConfig) -> Vec<(&'static str, String, i8)> {
    let g = &b.groups;
    let mut out = vec![
        ("broker.id", b.node_id.to_string(), TYPE_INT),
        ("node.id", b.node_id.to_string(), TYPE_INT),
        (
            "listeners",
            format!("PLAINTEXT://{}", b.listen),
            TYPE_STRING,
        ),
        (
            "advertised.listeners",
            format!("PLAINTEXT://{}:{}", b.advertised_host, b.advertised_port),
            TYPE_STRING,
        ),
        ("log.dirs", b.data_dir.display().to_string(), TYPE_STRING),
        ("num.partitions", b.default_partitions.to_string(), TYPE_INT),
        (
            "auto.create.topics.enable",
            b.auto_create_topics.to_string(),
            TYPE_BOOLEAN,
        ),
        (
            "group.initial.rebalance.delay.ms",
            g.initial_rebalance_delay.as_millis().to_string(),
            TYPE_INT,
        ),
        (
            "group.min.session.timeout.ms",
            g.min_session_timeout.as_millis().to_string(),
            TYPE_INT,
        ),
        (
            "group.max.session.timeout.ms",
            g.max_session_timeout.as_millis().to_string(),
            TYPE_INT,
        ),
        (
            "offsets.retention.minutes",
            (g.offsets_retention.as_secs() / 60).to_string(),
            TYPE_INT,
        ),
        (
            "offsets.retention.check.interval.ms",
            g.offsets_retention_check_interval.as_millis().to_string(),
            TYPE_LONG,
        ),
        (
            "offsets.topic.num.partitions",
            crate::group::offsets::OFFSETS_PARTITIONS.to_string(),
            TYPE_INT,
        ),
        (
            "offsets.topic.replication.factor",
            "1".to_string(),
            TYPE_INT,
        ),
        (
            "socket.request.max.bytes",
            crate::limits::MAX_REQUEST_FRAME_BYTES.to_string(),
            TYPE_INT,
        ),
    ];
    const LOG_NAMES: &[(&str, &str)] = &[
        ("cleanup.policy", "log.cleanup.policy"),
        ("flush.messages", "log.flush.interval.messages"),
        ("flush.ms", "log.flush.interval.ms"),
        ("index.interval.bytes", "log.index.interval.bytes"),
        ("max.message.bytes", "message.max.bytes"),
        ("message.timestamp.type", "log.message.timestamp.type"),
        (
            "message.timestamp.before.max.ms",
            "log.message.timestamp.before.max.ms",
        ),
        (
            "message.timestamp.after.max.ms",
            "log.message.timestamp.after.max.ms",
        ),
        ("delete.retention.ms", "log.cleaner.delete.retention.ms"),
        (
            "min.cleanable.dirty.ratio",
            "log.cleaner.min.cleanable.ratio",
        ),
        ("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms"),
        ("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms"),
        ("min.insync.replicas", "min.insync.replicas"),
        ("retention.bytes", "log.retention.bytes"),
        ("retention.ms", "log.retention.ms"),
        ("segment.bytes", "log.segment.bytes"),
        ("segment.ms", "log.roll.ms"),
    ];
    for (topic_name, broker_name) in LOG_NAMES {
        if let Some(v) = b.log_defaults.get(topic_name) {
            out.push((broker_name, v, config_type(topic_name)));
        }
    }
    // Kafka's everyday name for the retention, when it is a whole number of hours.
    if let Some(ms) = b
        .log_defaults
        .get("retention.ms")
        .and_then(|v| v.parse::<i64>().ok())
    {
        if ms > 0 && ms % 3_600_000 == 0 {
            out.push((
                "log.retention.hours",
                (ms / 3_600_000).to_string(),
                TYPE_INT,
            ));
        }
    }
    out
}

/// The error of a broker resource: only this broker ("" is the cluster-wide default) exists.
fn broker_resource_error(name: &str, node_id: i32) -> Option<String> {
    if name.is_empty() || name.parse::<i32>().is_ok_and(|id| id == node_id) {
        None
    } else {
        Some(format!(
            "unexpected broker id '{name}': this is broker {node_id}"
        ))
    }
}

pub async fn handle(ctx: &Ctx, req: DescribeConfigsRequest) -> Option<DescribeConfigsResponse> {
    let cat = ctx.shard.catalog();
    let mut results = Vec::new();
    for r in req.resources {
        let name = r.resource_name.to_string();
        let mut out = DescribeConfigsResult::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        match r.resource_type {
            RESOURCE_TOPIC if crate::cluster::validate_topic_name(&name).is_err() => {
                out = out
                    .with_error_code(errors::INVALID_TOPIC_EXCEPTION)
                    .with_error_message(Some(str_bytes(&format!("invalid topic name '{name}'"))))
            }
            RESOURCE_TOPIC => match (cat.topic(&name), cat.log_config(&name)) {
                (Some(t), Some(config)) => {
                    let keys: Vec<String> = match &r.configuration_keys {
                        Some(k) => k.iter().map(|s| s.to_string()).collect(),
                        None => CONFIG_NAMES.iter().map(|s| s.to_string()).collect(),
                    };
                    let configs = keys
                        .iter()
                        .filter_map(|k| {
                            let v = config.get(k)?;
                            let overridden = t.configs.iter().any(|(n, _)| n == k);
                            Some(
                                DescribeConfigsResourceResult::default()
                                    .with_name(str_bytes(k))
                                    .with_value(Some(str_bytes(&v)))
                                    .with_config_type(config_type(k))
                                    .with_documentation(if req.include_documentation {
                                        documentation(k).map(str_bytes)
                                    } else {
                                        None
                                    })
                                    .with_config_source(if overridden {
                                        SOURCE_TOPIC
                                    } else {
                                        SOURCE_DEFAULT
                                    }),
                            )
                        })
                        .collect();
                    out = out.with_configs(configs);
                }
                _ => {
                    out = out
                        .with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION)
                        .with_error_message(Some(str_bytes(&format!("unknown topic '{name}'"))))
                }
            },
            RESOURCE_BROKER => {
                if let Some(msg) = broker_resource_error(&name, ctx.broker.node_id) {
                    out = out
                        .with_error_code(errors::INVALID_REQUEST)
                        .with_error_message(Some(str_bytes(&msg)))
                } else if !name.is_empty() {
                    // The broker's own settings; "" (the cluster-wide dynamic defaults) has none.
                    let wanted = |k: &str| {
                        r.configuration_keys
                            .as_ref()
                            .is_none_or(|keys| keys.iter().any(|w| w.as_str() == k))
                    };
                    let configs = broker_configs(&ctx.broker)
                        .into_iter()
                        .filter(|(k, _, _)| wanted(k))
                        .map(|(k, v, t)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(k))
                                .with_value(Some(str_bytes(&v)))
                                .with_read_only(true)
                                .with_config_type(t)
                                .with_config_source(SOURCE_STATIC_BROKER)
                        })
                        .collect();
                    out = out.with_configs(configs);
                }
            }
            other => {
                out = out
                    .with_error_code(errors::INVALID_REQUEST)
                    .with_error_message(Some(str_bytes(&format!(
                        "resource type {other} is not supported"
                    ))))
            }
        }
        results.push(out);
    }
    Some(DescribeConfigsResponse::default().with_results(results))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::config::CONFIG_NAMES;

    #[test]
    fn every_topic_config_has_kafkas_type() {
        for name in CONFIG_NAMES {
            assert_ne!(config_type(name), TYPE_UNKNOWN, "{name}");
        }
        assert_eq!(config_type("cleanup.policy"), TYPE_LIST);
        assert_eq!(config_type("segment.bytes"), TYPE_INT);
        assert_eq!(config_type("retention.ms"), TYPE_LONG);
        assert_eq!(config_type("message.timestamp.type"), TYPE_STRING);
        for name in CONFIG_NAMES {
            assert!(documentation(name).is_some_and(|d| !d.is_empty()), "{name}");
        }
        assert_eq!(documentation("no.such"), None);
    }

    #[test]
    fn a_broker_describes_its_settings_under_kafkas_names() {
        let b = crate::config::Settings::default()
            .resolve()
            .expect("defaults");
        let configs = broker_configs(&b);
        let get = |k: &str| {
            configs
                .iter()
                .find(|(n, _, _)| *n == k)
                .map(|(_, v, _)| v.clone())
        };
        assert_eq!(
            get("num.partitions"),
            Some(b.default_partitions.to_string())
        );
        assert_eq!(get("node.id"), Some(b.node_id.to_string()));
        assert_eq!(get("log.retention.ms"), b.log_defaults.get("retention.ms"));
        assert_eq!(get("log.retention.hours").as_deref(), Some("168"));
        assert_eq!(
            get("log.segment.bytes"),
            b.log_defaults.get("segment.bytes")
        );
        assert_eq!(
            get("message.max.bytes"),
            b.log_defaults.get("max.message.bytes")
        );
        assert_eq!(
            get("auto.create.topics.enable"),
            Some(b.auto_create_topics.to_string())
        );
        for (name, _, t) in &configs {
            assert_ne!(*t, TYPE_UNKNOWN, "{name}");
        }
    }

    #[test]
    fn only_this_broker_or_the_default_is_a_broker_resource() {
        assert_eq!(broker_resource_error("", 0), None);
        assert_eq!(broker_resource_error("0", 0), None);
        assert!(broker_resource_error("1", 0).is_some());
        assert!(broker_resource_error("broker", 0).is_some());
    }
}
