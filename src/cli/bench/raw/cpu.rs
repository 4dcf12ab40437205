//! CPU accounting for a bench run, as deltas over the measured window: this process (the load
//! client, `getrusage`), the broker when its pid is given (`/proc/PID/stat`) and the whole
//! machine (`/proc/stat`: softirq work, such as loopback TCP receive processing, can escape a
//! per-process count). Used by both the raw and the librdkafka client.

use std::time::{Duration, Instant};

/// The counters at one moment.
#[derive(Clone, Debug)]
pub struct CpuSnapshot {
    at: Instant,
    /// User + system CPU of this process, all threads.
    client: Duration,
    /// User + system CPU of the broker, if its pid was given and readable.
    broker: Option<Duration>,
    machine: Option<MachineCpu>,
}

/// `/proc/stat`'s first line, in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MachineCpu {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn process_cpu() -> Duration {
    // SAFETY: getrusage writes one `rusage` into memory we own; zeroed is a valid rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF and a valid pointer to `ru`.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// utime + stime of `pid` from `/proc/PID/stat` text.
pub fn parse_pid_stat(text: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state), so field n is f[n - 3]: utime 14, stime 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The aggregate `cpu` line of `/proc/stat` text.
pub fn parse_proc_stat(text: &str) -> Option<MachineCpu> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(MachineCpu {
        user: at(0),
        nice: at(1),
        system: at(2),
        idle: at(3),
        iowait: at(4),
        irq: at(5),
        softirq: at(6),
        steal: at(7),
    })
}

pub fn snapshot(broker_pid: Option<u32>) -> CpuSnapshot {
    let tps = ticks_per_second();
    let broker = broker_pid.and_then(|pid| {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(Duration::from_secs_f64(parse_pid_stat(&text)? as f64 / tps))
    });
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| parse_proc_stat(&t));
    CpuSnapshot {
        at: Instant::now(),
        client: process_cpu(),
        broker,
        machine,
    }
}

/// CPU over `[a, b]` for `bytes` moved, as JSON: seconds and seconds per GB (10^9 bytes).
pub fn summary(a: &CpuSnapshot, b: &CpuSnapshot, bytes: u64) -> serde_json::Value {
    let gb = (bytes as f64 / 1e9).max(1e-12);
    let window = b.at.saturating_duration_since(a.at).as_secs_f64();
    let client = b.client.saturating_sub(a.client).as_secs_f64();
    let broker = match (a.broker, b.broker) {
        (Some(x), Some(y)) => Some(y.saturating_sub(x).as_secs_f64()),
        _ => None,
    };
    let machine = match (a.machine, b.machine) {
        (Some(x), Some(y)) => {
            let tps = ticks_per_second();
            let d = |f: fn(&MachineCpu) -> u64| f(&y).saturating_sub(f(&x)) as f64 / tps;
            let user = d(|m| m.user + m.nice);
            let system = d(|m| m.system);
            let softirq = d(|m| m.softirq);
            let irq = d(|m| m.irq);
            let iowait = d(|m| m.iowait);
            let steal = d(|m| m.steal);
            let busy = user + system + softirq + irq;
            serde_json::json!({
                "user_s": user, "system_s": system, "softirq_s": softirq, "irq_s": irq,
                "iowait_s": iowait, "steal_s": steal, "busy_s": busy,
                "busy_cores": busy / window.max(1e-9), "busy_cpu_s_per_gb": busy / gb,
            })
        }
        _ => serde_json::Value::Null,
    };
    serde_json::json!({
        "window_s": window,
        "client_cpu_s": client,
        "client_cpu_s_per_gb": client / gb,
        "broker_cpu_s": broker,
        "broker_cpu_s_per_gb": broker.map(|s| s / gb),
        "machine": machine,
    })
}

/// One line for the text report.
pub fn describe(cpu: &serde_json::Value) -> String {
    let f = |v: &serde_json::Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.3}"));
    let mut s = format!(
        "CPU-s per GB: client {}, broker {}",
        f(&cpu["client_cpu_s_per_gb"]),
        f(&cpu["broker_cpu_s_per_gb"])
    );
    let m = &cpu["machine"];
    if !m.is_null() {
        s += &format!(
            "; machine over {}s: user {}s, system {}s, softirq {}s, {} cores busy, {} busy CPU-s per GB",
            f(&cpu["window_s"]),
            f(&m["user_s"]),
            f(&m["system_s"]),
            f(&m["softirq_s"]),
            f(&m["busy_cores"]),
            f(&m["busy_cpu_s_per_gb"])
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_stat_fields_after_a_tricky_command_name() {
        let line =
            "1234 (strata (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 1 2 3";
        assert_eq!(parse_pid_stat(line), Some(325));
        assert_eq!(parse_pid_stat("garbage"), None);
    }

    #[test]
    fn proc_stat_first_line() {
        let t = "cpu  10 2 30 400 5 6 7 8 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n";
        let m = parse_proc_stat(t).expect("parsed");
        assert_eq!((m.user, m.nice, m.system, m.idle), (10, 2, 30, 400));
        assert_eq!((m.iowait, m.irq, m.softirq, m.steal), (5, 6, 7, 8));
    }

    #[test]
    fn own_cpu_grows_and_summary_divides_by_gigabytes() {
        let a = snapshot(Some(std::process::id()));
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let b = snapshot(Some(std::process::id()));
        let s = summary(&a, &b, 2_000_000_000);
        let c = s["client_cpu_s"].as_f64().expect("client");
        assert!(c > 0.0);
        assert!((s["client_cpu_s_per_gb"].as_f64().expect("per gb") - c / 2.0).abs() < 1e-9);
        assert!(s["broker_cpu_s"].as_f64().is_some());
    }
}
