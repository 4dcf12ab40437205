//! The checks, as pure functions of files under a root folder plus a few facts that only a
//! live host can give (filesystem type, whether O_DIRECT works), so that fixtures can test them.

use std::path::{Path, PathBuf};

use super::{read, selected, Check, Setting, Status};

/// What cannot be read from files: measured on the live host by [`super::live`].
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// The data dir's filesystem name (`ext4`, `xfs`, `tmpfs`, ...).
    pub filesystem: Option<String>,
    /// Whether an O_DIRECT write worked in the data dir (`Err` says why not).
    pub o_direct: Option<Result<(), String>>,
    /// Whether an io_uring instance could be created.
    pub io_uring: Option<Result<(), String>>,
    /// The data dir's block device in sysfs form `MAJ:MIN`.
    pub block_device: Option<String>,
    /// Cores Strata will run on.
    pub cores: usize,
    /// Locked memory Strata needs (glommio's I/O memory for every core).
    pub memlock_needed: u64,
    /// Running as root (CAP_IPC_LOCK): the memlock limit does not apply.
    pub privileged: bool,
}

fn check(
    name: &'static str,
    status: Status,
    found: impl Into<String>,
    fix: Option<String>,
) -> Check {
    Check {
        name,
        status,
        found: found.into(),
        fix,
    }
}

fn at_least(root: &Path, name: &'static str, path: &str, want: u64, fix: String) -> Check {
    match read(root, path).and_then(|v| {
        v.split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
    }) {
        Some(v) if v >= want => check(name, Status::Pass, v.to_string(), None),
        Some(v) => check(
            name,
            Status::Warn,
            format!("{v} (want >= {want})"),
            Some(fix),
        ),
        None => check(name, Status::Info, format!("{path} not readable"), None),
    }
}

/// Parses `5.15.0-91-generic` into (5, 15).
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The "Max locked memory" soft limit from a `/proc/<pid>/limits` file; `None` = unlimited.
fn memlock_limit(limits: &str) -> Option<Option<u64>> {
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))?;
    let soft = line["Max locked memory".len()..]
        .split_whitespace()
        .next()?;
    Some(if soft == "unlimited" {
        None
    } else {
        Some(soft.parse().ok()?)
    })
}

/// sysfs folder of the whole disk behind `MAJ:MIN` (a partition's parent when needed).
fn disk_queue(root: &Path, dev: &str) -> Option<PathBuf> {
    let link = root.join("sys/dev/block").join(dev);
    let dir = std::fs::canonicalize(&link).unwrap_or(link);
    if dir.join("queue").is_dir() {
        return Some(dir.join("queue"));
    }
    let parent = dir.parent()?;
    parent.join("queue").is_dir().then(|| parent.join("queue"))
}

/// Every check, in report order, and the settings that would fix the warnings.
pub fn run_checks(root: &Path, facts: &HostFacts) -> (Vec<Check>, Vec<Setting>) {
    let mut out = Vec::new();
    let mut settings = Vec::new();

    out.push(
        match read(root, "/proc/sys/kernel/io_uring_disabled").as_deref() {
            Some("0") | None => match &facts.io_uring {
                Some(Err(e)) => check(
                    "io_uring",
                    Status::Fail,
                    format!("cannot create a ring: {e}"),
                    Some("enable io_uring (kernel 5.8+, sysctl kernel.io_uring_disabled=0)".into()),
                ),
                _ => check("io_uring", Status::Pass, "enabled", None),
            },
            Some(v) => {
                settings.push(Setting {
                    path: "/proc/sys/kernel/io_uring_disabled".into(),
                    value: "0".into(),
                    why: "Strata does all disk I/O through io_uring",
                });
                check(
                    "io_uring",
                    Status::Fail,
                    format!("kernel.io_uring_disabled = {v}"),
                    Some("sysctl -w kernel.io_uring_disabled=0".into()),
                )
            }
        },
    );

    out.push(match read(root, "/proc/sys/kernel/osrelease") {
        Some(r) => match kernel_version(&r) {
            Some(v) if v >= (5, 10) => check("kernel", Status::Pass, r, None),
            Some(v) if v >= (5, 8) => check(
                "kernel",
                Status::Warn,
                r,
                Some("glommio runs from 5.8; 5.10+ has the io_uring fixes Strata relies on".into()),
            ),
            _ => check(
                "kernel",
                Status::Fail,
                r,
                Some("upgrade to Linux 5.10 or later".into()),
            ),
        },
        None => check("kernel", Status::Info, "unknown", None),
    });

    out.push(match read(root, "/proc/self/limits").as_deref().and_then(memlock_limit) {
        _ if facts.privileged => check("memlock", Status::Pass, "running as root: not limited", None),
        Some(None) => check("memlock", Status::Pass, "unlimited", None),
        Some(Some(l)) if l >= facts.memlock_needed => check("memlock", Status::Pass, format!("{l} bytes"), None),
        Some(Some(l)) => check(
            "memlock",
            Status::Warn,
            format!("{l} bytes, Strata locks {}", facts.memlock_needed),
            Some("ulimit -l unlimited, or LimitMEMLOCK=infinity in the systemd unit (tuning/strata.service)".into()),
        ),
        None => check("memlock", Status::Info, "limits not readable", None),
    });

    out.push(match facts.filesystem.as_deref() {
        Some("xfs") | Some("ext4") => check(
            "filesystem",
            Status::Pass,
            facts.filesystem.clone().unwrap_or_default(),
            None,
        ),
        Some(fs) => check(
            "filesystem",
            Status::Warn,
            fs,
            Some("put the data dir on XFS or ext4".into()),
        ),
        None => check("filesystem", Status::Info, "not checked", None),
    });
    out.push(match &facts.o_direct {
        Some(Ok(())) => check(
            "o_direct",
            Status::Pass,
            "O_DIRECT writes work in the data dir",
            None,
        ),
        Some(Err(e)) => check(
            "o_direct",
            Status::Fail,
            e.clone(),
            Some("use a filesystem that supports O_DIRECT (XFS, ext4)".into()),
        ),
        None => check("o_direct", Status::Info, "not checked", None),
    });

    match facts
        .block_device
        .as_deref()
        .and_then(|d| disk_queue(root, d))
    {
        Some(queue) => {
            let rel = queue
                .strip_prefix(root)
                .map(|p| Path::new("/").join(p))
                .unwrap_or(queue.clone());
            let sched = std::fs::read_to_string(queue.join("scheduler")).unwrap_or_default();
            let sched = sched.trim();
            let current = selected(sched).unwrap_or(sched);
            out.push(match current {
                "" => check("scheduler", Status::Info, "unknown", None),
                "none" => check("scheduler", Status::Pass, "none", None),
                other => {
                    settings.push(Setting {
                        path: rel.join("scheduler"),
                        value: "none".into(),
                        why: "NVMe needs no I/O scheduler",
                    });
                    check(
                        "scheduler",
                        Status::Warn,
                        other,
                        Some(format!("echo none > {}", rel.join("scheduler").display())),
                    )
                }
            });
            let nr = std::fs::read_to_string(queue.join("nr_requests"))
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
            out.push(match nr {
                Some(n) if n >= 256 => check("nr_requests", Status::Pass, n.to_string(), None),
                Some(n) => check(
                    "nr_requests",
                    Status::Warn,
                    format!("{n} (want >= 256)"),
                    Some(format!("echo 1023 > {}", rel.join("nr_requests").display())),
                ),
                None => check("nr_requests", Status::Info, "unknown", None),
            });
            let ra = std::fs::read_to_string(queue.join("read_ahead_kb"))
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
            out.push(match ra {
                Some(kb) if kb <= 128 => {
                    check("read_ahead", Status::Pass, format!("{kb} KiB"), None)
                }
                Some(kb) => check(
                    "read_ahead",
                    Status::Warn,
                    format!("{kb} KiB (direct I/O does not use it)"),
                    Some(format!("echo 0 > {}", rel.join("read_ahead_kb").display())),
                ),
                None => check("read_ahead", Status::Info, "unknown", None),
            });
        }
        None => out.push(check(
            "scheduler",
            Status::Info,
            "data dir's block device not found in sysfs",
            None,
        )),
    }

    let cpus = (0..facts.cores.max(1))
        .filter_map(|c| {
            read(
                root,
                &format!("/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor"),
            )
            .map(|g| (c, g))
        })
        .collect::<Vec<_>>();
    out.push(if cpus.is_empty() {
        check(
            "cpu_governor",
            Status::Info,
            "no cpufreq (virtual machine?)",
            None,
        )
    } else if cpus.iter().all(|(_, g)| g == "performance") {
        check("cpu_governor", Status::Pass, "performance", None)
    } else {
        for (c, _) in cpus.iter().filter(|(_, g)| g != "performance") {
            settings.push(Setting {
                path: format!("/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor").into(),
                value: "performance".into(),
                why: "steady latency",
            });
        }
        let found: Vec<String> = cpus.iter().map(|(c, g)| format!("cpu{c}={g}")).collect();
        check(
            "cpu_governor",
            Status::Warn,
            found.join(" "),
            Some("set the performance governor (strata tune apply)".into()),
        )
    });

    out.push(
        match read(root, "/sys/kernel/mm/transparent_hugepage/enabled")
            .map(|s| selected(&s).unwrap_or(&s).to_string())
        {
            Some(s) if s == "madvise" || s == "never" => {
                check("transparent_hugepages", Status::Pass, s, None)
            }
            Some(s) => {
                settings.push(Setting {
                    path: "/sys/kernel/mm/transparent_hugepage/enabled".into(),
                    value: "madvise".into(),
                    why: "avoid compaction stalls",
                });
                check(
                    "transparent_hugepages",
                    Status::Warn,
                    s,
                    Some("echo madvise > /sys/kernel/mm/transparent_hugepage/enabled".into()),
                )
            }
            None => check("transparent_hugepages", Status::Info, "unknown", None),
        },
    );

    out.push(
        match read(root, "/proc/sys/vm/swappiness").and_then(|v| v.parse::<u64>().ok()) {
            Some(v) if v <= 1 => check("swappiness", Status::Pass, v.to_string(), None),
            Some(v) => {
                settings.push(Setting {
                    path: "/proc/sys/vm/swappiness".into(),
                    value: "1".into(),
                    why: "keep the broker in memory",
                });
                check(
                    "swappiness",
                    Status::Warn,
                    format!("{v} (want <= 1)"),
                    Some("sysctl -w vm.swappiness=1".into()),
                )
            }
            None => check("swappiness", Status::Info, "unknown", None),
        },
    );

    let sysctls: [(&'static str, &str, u64, &'static str); 4] = [
        (
            "aio_max_nr",
            "/proc/sys/fs/aio-max-nr",
            1_048_576,
            "room for io_uring/aio requests of every core",
        ),
        (
            "somaxconn",
            "/proc/sys/net/core/somaxconn",
            4096,
            "room for bursts of client connections",
        ),
        (
            "rmem_max",
            "/proc/sys/net/core/rmem_max",
            16 << 20,
            "large socket buffers for large fetches",
        ),
        (
            "wmem_max",
            "/proc/sys/net/core/wmem_max",
            16 << 20,
            "large socket buffers for large fetches",
        ),
    ];
    for (name, path, want, why) in sysctls {
        let c = at_least(
            root,
            name,
            path,
            want,
            format!(
                "sysctl -w {}={want}",
                path.trim_start_matches("/proc/sys/").replace('/', ".")
            ),
        );
        if c.status == Status::Warn {
            settings.push(Setting {
                path: path.into(),
                value: want.to_string(),
                why,
            });
        }
        out.push(c);
    }

    out.push(irq_affinity(root, facts.cores));

    out.push(match read(root, "/sys/devices/system/clocksource/clocksource0/current_clocksource") {
        Some(c) if c == "tsc" => check("clocksource", Status::Pass, c, None),
        Some(c) => check("clocksource", Status::Warn, c.clone(), Some(format!("{c} is slower to read than tsc; use tsc where the platform allows (clocksource=tsc on the kernel command line)"))),
        None => check("clocksource", Status::Info, "unknown", None),
    });
    (out, settings)
}

/// Where the interrupts of NVMe, virtio and network queues land, compared with Strata's cores.
fn irq_affinity(root: &Path, cores: usize) -> Check {
    let Some(interrupts) = read(root, "/proc/interrupts") else {
        return check(
            "irq_affinity",
            Status::Info,
            "/proc/interrupts not readable",
            None,
        );
    };
    let mut found = Vec::new();
    let mut on_strata_cores = 0;
    for line in interrupts.lines() {
        let Some((irq, rest)) = line.trim_start().split_once(':') else {
            continue;
        };
        let Ok(irq) = irq.parse::<u32>() else {
            continue;
        };
        let name = rest.split_whitespace().last().unwrap_or_default();
        let data_queue = name.starts_with("nvme")
            || name.contains("-req.")
            || name.contains("-input.")
            || name.contains("-output.");
        if !(data_queue
            || name.starts_with("eth")
            || name.starts_with("ens")
            || name.starts_with("mlx"))
        {
            continue;
        }
        let list =
            read(root, &format!("/proc/irq/{irq}/smp_affinity_list")).unwrap_or_else(|| "?".into());
        if list_covers_strata(&list, cores) {
            on_strata_cores += 1;
        }
        found.push(format!("{name}:{list}"));
    }
    if found.is_empty() {
        return check(
            "irq_affinity",
            Status::Info,
            "no NVMe, virtio or NIC interrupts found",
            None,
        );
    }
    let summary = format!(
        "{} queue interrupts, {on_strata_cores} may land on Strata's cores ({})",
        found.len(),
        found.iter().take(6).cloned().collect::<Vec<_>>().join(" ")
    );
    if on_strata_cores == found.len() && cores > 1 {
        check("irq_affinity", Status::Warn, summary, Some("with all cores running Strata, spread queue interrupts evenly (irqbalance --oneshot) or leave a core for them (--cores)".into()))
    } else {
        check("irq_affinity", Status::Pass, summary, None)
    }
}

/// Whether an affinity list such as `0-3,8` includes any of cores `0..cores`.
fn list_covers_strata(list: &str, cores: usize) -> bool {
    list.split(',').any(|part| {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        match (lo.trim().parse::<usize>(), hi.trim().parse::<usize>()) {
            (Ok(lo), Ok(_)) => lo < cores,
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(kernel_version("6.18.44-fc-v595"), Some((6, 18)));
        assert_eq!(kernel_version("5.4.0"), Some((5, 4)));
        assert_eq!(selected("always [madvise] never"), Some("madvise"));
        assert_eq!(
            memlock_limit(
                "Max locked memory         8388608              8388608              bytes\n"
            ),
            Some(Some(8388608))
        );
        assert_eq!(
            memlock_limit(
                "Max locked memory         unlimited            unlimited            bytes\n"
            ),
            Some(None)
        );
        assert!(list_covers_strata("0-3", 2));
        assert!(!list_covers_strata("4-7", 2));
        assert!(list_covers_strata("5,1", 2));
    }
}
