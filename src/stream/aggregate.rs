//! The running aggregates of one (key, window): count, sum, min, max (mean is sum / count) and
//! an optional HyperLogLog of distinct values. Constant size whatever the number of records,
//! and mergeable, so windows (sessions) and partitions can be combined.

use serde::{Deserialize, Serialize};

use super::hll::Hll;

/// What a query computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Count,
    Sum,
    Min,
    Max,
    Mean,
    Distinct,
}

impl std::str::FromStr for Agg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim() {
            "count" => Agg::Count,
            "sum" => Agg::Sum,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "mean" | "avg" => Agg::Mean,
            "distinct" => Agg::Distinct,
            other => {
                return Err(format!(
                    "unknown aggregate '{other}' (count, sum, min, max, mean, distinct)"
                ))
            }
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accumulator {
    pub count: u64,
    pub sum: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct: Option<Box<Hll>>,
}

impl Accumulator {
    pub fn add(&mut self, value: Option<f64>, distinct_item: Option<&[u8]>) {
        self.count += 1;
        if let Some(v) = value {
            self.sum += v;
            self.min = Some(self.min.map_or(v, |m| m.min(v)));
            self.max = Some(self.max.map_or(v, |m| m.max(v)));
        }
        if let Some(item) = distinct_item {
            self.distinct.get_or_insert_with(Default::default).add(item);
        }
    }

    pub fn merge(&mut self, other: &Accumulator) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some(o) = &other.distinct {
            self.distinct.get_or_insert_with(Default::default).merge(o);
        }
    }

    /// The asked-for aggregates as JSON fields.
    pub fn fields(&self, aggs: &[Agg]) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::json;
        let mut out = serde_json::Map::new();
        for a in aggs {
            let (name, v) = match a {
                Agg::Count => ("count", json!(self.count)),
                Agg::Sum => ("sum", json!(self.sum)),
                Agg::Min => ("min", json!(self.min)),
                Agg::Max => ("max", json!(self.max)),
                Agg::Mean => (
                    "mean",
                    json!((self.count > 0 && self.min.is_some())
                        .then(|| self.sum / self.count as f64)),
                ),
                Agg::Distinct => (
                    "distinct",
                    json!(self
                        .distinct
                        .as_ref()
                        .map_or(0, |h| h.estimate().round() as u64)),
                ),
            };
            out.insert(name.to_string(), v);
        }
        out
    }
}
