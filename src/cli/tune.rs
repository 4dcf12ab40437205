//! `strata tune check|apply`: is this host ready for Strata, and make it so.

use std::path::PathBuf;

use anyhow::{bail, Result};
use strata::tune::{self, Applied, Status};

#[derive(clap::Subcommand)]
pub enum TuneCommand {
    /// Report, line by line, what matters for Strata on this host, with the fix.
    Check(TuneArgs),
    /// Apply the sysctl and sysfs settings the checks recommend (needs root).
    Apply {
        #[command(flatten)]
        args: TuneArgs,
        /// Print what would change without changing it.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(clap::Args)]
pub struct TuneArgs {
    /// The data dir Strata will use (its filesystem and disk are checked).
    #[arg(long, default_value = "strata-data")]
    pub data_dir: PathBuf,
    /// Cores Strata will run on (default: all).
    #[arg(long)]
    pub cores: Option<usize>,
}

/// glommio's locked I/O memory per core, as the broker configures it.
const MEMLOCK_PER_CORE: u64 = 64 << 20;

fn gather(a: &TuneArgs) -> (Vec<tune::Check>, Vec<tune::Setting>) {
    let cores = a.cores.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let facts = tune::live::facts(&a.data_dir, cores, MEMLOCK_PER_CORE * cores as u64);
    tune::run_checks(std::path::Path::new("/"), &facts)
}

pub fn run(cmd: TuneCommand) -> Result<()> {
    match cmd {
        TuneCommand::Check(a) => {
            let (checks, _) = gather(&a);
            let mut failed = 0;
            for c in &checks {
                println!("{:<5} {:<22} {}", c.status.to_string(), c.name, c.found);
                if let Some(fix) = &c.fix {
                    println!("      {:<22} fix: {fix}", "");
                }
                failed += usize::from(c.status == Status::Fail);
            }
            if failed > 0 {
                bail!("{failed} check(s) failed");
            }
        }
        TuneCommand::Apply { args, dry_run } => {
            let (_, settings) = gather(&args);
            if settings.is_empty() {
                println!("nothing to change");
            }
            let mut failed = 0;
            for (s, outcome) in tune::apply(std::path::Path::new("/"), &settings, dry_run) {
                let p = s.path.display();
                match outcome {
                    Applied::Unchanged => println!("unchanged  {p} = {}", s.value),
                    Applied::Changed { from } => {
                        println!("changed    {p}: {from} -> {}  ({})", s.value, s.why)
                    }
                    Applied::WouldChange { from } => {
                        println!("would set  {p}: {from} -> {}  ({})", s.value, s.why)
                    }
                    Applied::Failed(e) => {
                        failed += 1;
                        println!("failed     {p}: {e}");
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} setting(s) could not be applied");
            }
        }
    }
    Ok(())
}
