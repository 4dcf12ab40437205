//! Stream processing over Strata topics: continuous queries that keep running aggregates
//! (count, sum, min, max, mean, approximate distinct) per key and window (global, tumbling,
//! hopping, session) over event time, in memory bounded by keys × open windows — never by the
//! number of records.
//!
//! This module is the engine: extraction ([`query`]), windows ([`window`]), aggregates
//! ([`aggregate`], [`hll`]) and per-partition tasks ([`task`]) whose state is checkpointed
//! together with the input offset. It is a client of the log, not part of the broker: it knows
//! nothing of storage or of the broker's internals; `strata stream` drives it through the Kafka
//! protocol (any Kafka-compatible broker), as a consumer group member.

pub mod aggregate;
pub mod hll;
pub mod query;
pub mod task;
pub mod window;
