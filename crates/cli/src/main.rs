//! # rampart
//!
//! The command-line front of rampart. Today it checks and seals fleet files:
//!
//! - `rampart validate -f fleet.yaml` prints every validation error with its path and exits
//!   non-zero if there is any;
//! - `rampart snapshot -f fleet.yaml` prints the sealed snapshot (JSON) and its content hash.
//!
//! Errors are one clear line each, never a panic or a backtrace.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use rampart_eval::Evaluator;
use rampart_model::load::{LoadError, from_json, from_yaml};
use rampart_model::validate::validate;
use rampart_model::{Config, DeclaredImpact, Snapshot};

#[derive(Debug, Parser)]
#[command(
    name = "rampart",
    version,
    about = "An API gateway whose every change takes one guarded path"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a fleet file against every validation rule; print each error with its path.
    Validate(FleetArgs),
    /// Validate and compile a fleet file, then print the snapshot as JSON and its hash.
    Snapshot {
        #[command(flatten)]
        fleet: FleetArgs,
        /// Print only the content hash.
        #[arg(long)]
        hash_only: bool,
    },
}

#[derive(Debug, Args)]
struct FleetArgs {
    /// The fleet file: YAML, or JSON if it starts with `{`.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: PathBuf,
    /// Declare that a policy denies all traffic on this route (repeatable), as a change would.
    #[arg(long = "declare-deny-all", value_name = "ROUTE")]
    declare_deny_all: Vec<String>,
}

/// A failure already explained to the user.
#[derive(Debug)]
struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("reported")
    }
}

impl std::error::Error for Reported {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Reported>() => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Validate(args) => {
            let cfg = load(&args)?;
            check(&args, &cfg)?;
            out(&format!(
                "{}: valid ({} products, {} upstreams, {} policies, {} routes, {} flags)",
                args.file.display(),
                cfg.products.len(),
                cfg.upstreams.len(),
                cfg.policies.len(),
                cfg.routes.len(),
                cfg.flags.len()
            ))
        }
        Command::Snapshot { fleet, hash_only } => {
            let cfg = load(&fleet)?;
            check(&fleet, &cfg)?;
            let snapshot = Snapshot::new(cfg, vec![]);
            Evaluator::compile(&snapshot).context("the validated snapshot does not compile")?;
            if hash_only {
                out(&snapshot.hash().to_string())
            } else {
                out(&snapshot.to_json_pretty())?;
                eprintln!("sha256:{}", snapshot.hash());
                Ok(())
            }
        }
    }
}

/// Print a line to stdout; a reader that went away (`| head`) is not an error.
fn out(line: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

fn load(args: &FleetArgs) -> Result<Config> {
    let path = &args.file;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let parsed: Result<Config, LoadError> = if text.trim_start().starts_with('{') {
        from_json(&text)
    } else {
        from_yaml(&text)
    };
    parsed.map_err(|e| {
        eprintln!("{}: {e}", path.display());
        Reported.into()
    })
}

fn check(args: &FleetArgs, cfg: &Config) -> Result<()> {
    let declared = DeclaredImpact {
        changed_percent: 0.0,
        denies_all: args.declare_deny_all.clone(),
    };
    match validate(cfg, &declared) {
        Ok(()) => Ok(()),
        Err(errors) => {
            report(&args.file, &errors.0);
            Err(Reported.into())
        }
    }
}

fn report(path: &Path, errors: &[rampart_model::ValidationError]) {
    eprintln!("{}: {} validation error(s)", path.display(), errors.len());
    for e in errors {
        eprintln!("  {}: {}", e.path, e.message);
    }
}
