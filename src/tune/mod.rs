//! Host checks and settings for running Strata well (what Redpanda's `rpk redpanda tune`
//! covers): every check reads files under a root folder (`/` on a live host, a fixture tree
//! in tests), says pass, warn or fail, and names the fix. [`apply`] changes the sysctl and
//! sysfs settings the checks recommend. This module touches no Strata data.

mod checks;
pub mod live;

use std::path::{Path, PathBuf};

pub use checks::{run_checks, HostFacts};

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Warn,
    Fail,
    /// Nothing to judge (e.g. no cpufreq in a VM); reported for information.
    Info,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pass => "pass",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Info => "info",
        })
    }
}

/// One line of `strata tune check`.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    /// What was found.
    pub found: String,
    /// How to fix it, when it is not a pass.
    pub fix: Option<String>,
}

/// A file the tuner would write, and the value it wants there.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub path: PathBuf,
    pub value: String,
    pub why: &'static str,
}

/// Reads a file under `root` (a path such as `/proc/sys/vm/swappiness`), trimmed.
pub fn read(root: &Path, path: &str) -> Option<String> {
    std::fs::read_to_string(root.join(path.trim_start_matches('/')))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The selected entry of a sysfs choice list such as `always [madvise] never`.
pub fn selected(choices: &str) -> Option<&str> {
    let start = choices.find('[')?;
    let end = choices[start..].find(']')? + start;
    Some(&choices[start + 1..end])
}

/// Result of applying one setting.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Unchanged,
    Changed { from: String },
    WouldChange { from: String },
    Failed(String),
}

/// Writes each setting under `root` whose current value differs (or only reports it, when
/// `dry_run`). Choice lists (`[a] b c`) compare by their selected entry.
pub fn apply(root: &Path, settings: &[Setting], dry_run: bool) -> Vec<(Setting, Applied)> {
    settings
        .iter()
        .map(|s| {
            let path = root.join(s.path.strip_prefix("/").unwrap_or(&s.path));
            let current = match std::fs::read_to_string(&path) {
                Ok(c) => c.trim().to_string(),
                Err(e) => {
                    return (
                        s.clone(),
                        Applied::Failed(format!("cannot read {}: {e}", path.display())),
                    )
                }
            };
            let effective = selected(&current).unwrap_or(&current).to_string();
            let outcome = if effective == s.value {
                Applied::Unchanged
            } else if dry_run {
                Applied::WouldChange { from: effective }
            } else {
                match std::fs::write(&path, &s.value) {
                    Ok(()) => Applied::Changed { from: effective },
                    Err(e) => Applied::Failed(format!("cannot write {}: {e}", path.display())),
                }
            };
            (s.clone(), outcome)
        })
        .collect()
}
