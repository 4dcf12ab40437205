//! Windows over event time: the global window ("everything up to now"), tumbling (fixed,
//! non-overlapping), hopping (fixed size, advancing by less than the size, so a record falls
//! in several) and session windows (a key's activity separated by gaps longer than `gap`).

use std::time::Duration;

/// Most hopping windows one record may fall into (size / advance), so a query cannot make
/// each record cost unbounded work and memory.
pub const MAX_WINDOWS_PER_RECORD: i64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    Global,
    Tumbling { size_ms: i64 },
    Hopping { size_ms: i64, advance_ms: i64 },
    Session { gap_ms: i64 },
}

/// Parses a duration such as `500ms`, `30s`, `5m`, `2h`, `1d` (a bare number is milliseconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("bad duration '{s}'"))?;
    let ms = match unit {
        "" | "ms" => n,
        "s" => n * 1000,
        "m" | "min" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => return Err(format!("bad duration unit in '{s}' (ms, s, m, h, d)")),
    };
    Ok(Duration::from_millis(ms))
}

impl std::str::FromStr for WindowSpec {
    type Err = String;
    /// `global`, `tumbling:1m`, `hopping:1m,10s`, `session:30s`.
    fn from_str(s: &str) -> Result<Self, String> {
        let ms = |d: &str| -> Result<i64, String> {
            let v = parse_duration(d)?.as_millis() as i64;
            if v <= 0 {
                return Err(format!("window durations must be positive: '{d}'"));
            }
            Ok(v)
        };
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        let w = match kind {
            "global" => WindowSpec::Global,
            "tumbling" => WindowSpec::Tumbling { size_ms: ms(arg)? },
            "hopping" => {
                let (size, advance) = arg
                    .split_once(',')
                    .ok_or("hopping needs size,advance: hopping:1m,10s")?;
                let (size_ms, advance_ms) = (ms(size)?, ms(advance)?);
                if advance_ms > size_ms || size_ms / advance_ms > MAX_WINDOWS_PER_RECORD {
                    return Err(format!(
                        "hopping advance must be ≤ size and size/advance ≤ {MAX_WINDOWS_PER_RECORD}"
                    ));
                }
                WindowSpec::Hopping {
                    size_ms,
                    advance_ms,
                }
            }
            "session" => WindowSpec::Session { gap_ms: ms(arg)? },
            _ => {
                return Err(format!(
                "unknown window '{s}' (global, tumbling:SIZE, hopping:SIZE,ADVANCE, session:GAP)"
            ))
            }
        };
        Ok(w)
    }
}

/// A window's bounds, `[start, end)` in event-time milliseconds. The global window is
/// `[i64::MIN, i64::MAX)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

pub const GLOBAL: Window = Window {
    start: i64::MIN,
    end: i64::MAX,
};

impl WindowSpec {
    /// The fixed windows holding event time `t` (not for sessions, which depend on the key's
    /// other records).
    pub fn windows_of(&self, t: i64) -> Vec<Window> {
        match *self {
            WindowSpec::Global => vec![GLOBAL],
            WindowSpec::Tumbling { size_ms } => {
                let start = t.div_euclid(size_ms) * size_ms;
                vec![Window {
                    start,
                    end: start + size_ms,
                }]
            }
            WindowSpec::Hopping {
                size_ms,
                advance_ms,
            } => {
                // Windows start at multiples of `advance`; those with start ≤ t < start + size.
                let last = t.div_euclid(advance_ms) * advance_ms;
                let mut out = Vec::new();
                let mut start = last;
                while start > t - size_ms {
                    out.push(Window {
                        start,
                        end: start + size_ms,
                    });
                    start -= advance_ms;
                }
                out.reverse();
                out
            }
            WindowSpec::Session { .. } => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_assigns_windows() {
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5 parsecs").is_err());
        let t: WindowSpec = "tumbling:10s".parse().expect("tumbling");
        assert_eq!(
            t.windows_of(25_000),
            vec![Window {
                start: 20_000,
                end: 30_000
            }]
        );
        assert_eq!(
            t.windows_of(-1),
            vec![Window {
                start: -10_000,
                end: 0
            }]
        );
        let h: WindowSpec = "hopping:10s,5s".parse().expect("hopping");
        assert_eq!(
            h.windows_of(12_000),
            vec![
                Window {
                    start: 5_000,
                    end: 15_000
                },
                Window {
                    start: 10_000,
                    end: 20_000
                }
            ]
        );
        assert!(
            "hopping:10s,1ms".parse::<WindowSpec>().is_err(),
            "too many windows"
        );
        assert!("hopping:1s,2s".parse::<WindowSpec>().is_err());
        assert!("tumbling:0s".parse::<WindowSpec>().is_err());
        assert_eq!(
            "session:30s".parse(),
            Ok(WindowSpec::Session { gap_ms: 30_000 })
        );
    }
}
