//! What a continuous query computes and how it reads records: where the grouping key, the
//! value and the event time come from (the record itself or a field of its JSON value), which
//! aggregates, which window, how late a record may be.

use super::aggregate::Agg;
use super::window::WindowSpec;

/// Where a piece of a record comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The record key (as UTF-8 text).
    RecordKey,
    /// The whole record value (text; a number for values).
    RecordValue,
    /// The record timestamp (event time only).
    RecordTimestamp,
    /// A field of the JSON value, by dotted path (`venue`, `payload.count`).
    Json(String),
    /// The same for every record (a single global group).
    Constant(String),
}

impl std::str::FromStr for Source {
    type Err = String;
    /// `key`, `value`, `timestamp`, `json:PATH` (or a bare `PATH`), `const:TEXT`.
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "key" => Source::RecordKey,
            "value" => Source::RecordValue,
            "timestamp" => Source::RecordTimestamp,
            _ => match s.split_once(':') {
                Some(("json", p)) if !p.is_empty() => Source::Json(p.to_string()),
                Some(("const", c)) => Source::Constant(c.to_string()),
                Some((other, _)) => return Err(format!("unknown source '{other}:'")),
                None if !s.is_empty() => Source::Json(s.to_string()),
                None => return Err("empty source".into()),
            },
        })
    }
}

#[derive(Debug, Clone)]
pub struct Query {
    pub key: Source,
    /// The number aggregated by sum/min/max/mean (`None`: count only).
    pub value: Option<Source>,
    /// What distinct counts (default: the value).
    pub distinct_of: Option<Source>,
    pub aggregates: Vec<Agg>,
    pub window: WindowSpec,
    pub event_time: Source,
    /// How far behind the newest event time a record may be and still count.
    pub allowed_lateness_ms: i64,
}

/// A record as the query sees it, once its pieces are extracted.
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    pub key: String,
    pub event_time: i64,
    pub value: Option<f64>,
    pub distinct: Option<Vec<u8>>,
}

/// Why a record could not be read by the query (it is counted and skipped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error("value is not JSON")]
    NotJson,
    #[error("missing field {0}")]
    Missing(String),
    #[error("field {0} is not a number")]
    NotANumber(String),
}

fn json_path<'a>(v: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(v, |v, part| v.get(part))
}

fn as_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn as_number(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl Query {
    fn needs_json(&self) -> bool {
        [
            Some(&self.key),
            self.value.as_ref(),
            self.distinct_of.as_ref(),
            Some(&self.event_time),
        ]
        .into_iter()
        .flatten()
        .any(|s| matches!(s, Source::Json(_)))
    }

    /// Reads the pieces the query needs from a record.
    pub fn extract(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
    ) -> Result<Extracted, ExtractError> {
        let json = if self.needs_json() {
            Some(
                serde_json::from_slice::<serde_json::Value>(value.unwrap_or_default())
                    .map_err(|_| ExtractError::NotJson)?,
            )
        } else {
            None
        };
        let field = |path: &str| {
            json.as_ref()
                .and_then(|j| json_path(j, path))
                .filter(|v| !v.is_null())
                .ok_or_else(|| ExtractError::Missing(path.to_string()))
        };
        let text = |s: &Source| -> Result<String, ExtractError> {
            Ok(match s {
                Source::RecordKey => String::from_utf8_lossy(key.unwrap_or_default()).into_owned(),
                Source::RecordValue => {
                    String::from_utf8_lossy(value.unwrap_or_default()).into_owned()
                }
                Source::RecordTimestamp => timestamp.to_string(),
                Source::Json(p) => as_text(field(p)?),
                Source::Constant(c) => c.clone(),
            })
        };
        let number = |s: &Source| -> Result<f64, ExtractError> {
            match s {
                Source::Json(p) => {
                    as_number(field(p)?).ok_or_else(|| ExtractError::NotANumber(p.clone()))
                }
                Source::RecordTimestamp => Ok(timestamp as f64),
                other => text(other)?
                    .trim()
                    .parse()
                    .map_err(|_| ExtractError::NotANumber(format!("{other:?}"))),
            }
        };
        let event_time = match &self.event_time {
            Source::RecordTimestamp => timestamp,
            other => number(other)? as i64,
        };
        let value = self.value.as_ref().map(number).transpose()?;
        let distinct = if self.aggregates.contains(&Agg::Distinct) {
            let source = self.distinct_of.as_ref().or(self.value.as_ref());
            Some(match source {
                Some(s) => text(s)?.into_bytes(),
                None => value.unwrap_or_default().to_string().into_bytes(),
            })
        } else {
            None
        };
        Ok(Extracted {
            key: text(&self.key)?,
            event_time,
            value,
            distinct,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_from_json_and_record_fields() {
        let q = Query {
            key: "venue".parse().expect("key"),
            value: Some("json:n.attendees".parse().expect("value")),
            distinct_of: Some("json:user".parse().expect("distinct")),
            aggregates: vec![Agg::Sum, Agg::Distinct],
            window: WindowSpec::Global,
            event_time: "json:ts".parse().expect("ts"),
            allowed_lateness_ms: 0,
        };
        let e = q
            .extract(
                None,
                Some(br#"{"venue":"hall","n":{"attendees":"12"},"user":7,"ts":1000}"#),
                5,
            )
            .expect("extract");
        assert_eq!(
            e,
            Extracted {
                key: "hall".into(),
                event_time: 1000,
                value: Some(12.0),
                distinct: Some(b"7".to_vec())
            }
        );
        assert_eq!(
            q.extract(None, Some(b"not json"), 0),
            Err(ExtractError::NotJson)
        );
        assert_eq!(
            q.extract(None, Some(br#"{"venue":"x","ts":1,"user":1}"#), 0),
            Err(ExtractError::Missing("n.attendees".into()))
        );
        let raw = Query {
            key: Source::RecordKey,
            value: Some(Source::RecordValue),
            distinct_of: None,
            aggregates: vec![Agg::Sum],
            window: WindowSpec::Global,
            event_time: Source::RecordTimestamp,
            allowed_lateness_ms: 0,
        };
        let e = raw.extract(Some(b"k"), Some(b" 3.5"), 42).expect("raw");
        assert_eq!(
            (e.key.as_str(), e.value, e.event_time),
            ("k", Some(3.5), 42)
        );
        assert!(raw.extract(Some(b"k"), Some(b"abc"), 42).is_err());
    }
}
