//! Fleet files: reading and checking them, and the two commands that do only that,
//! `rampart validate` and `rampart snapshot`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use rampart_eval::Evaluator;
use rampart_model::load::{from_json, from_yaml};
use rampart_model::validate::validate;
use rampart_model::{Config, DeclaredImpact, Snapshot};

use crate::output::{Reported, out};

#[derive(Debug, Args)]
pub(crate) struct FleetArgs {
    /// The fleet file: YAML, or JSON if it starts with `{`.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub(crate) file: PathBuf,
    /// Declare that a policy denies all traffic on this route (repeatable), as a change would.
    #[arg(long = "declare-deny-all", value_name = "ROUTE")]
    pub(crate) declare_deny_all: Vec<String>,
}

/// `rampart validate`: every validation error with its path, or a one-line summary.
pub(crate) fn validate_cmd(args: &FleetArgs) -> Result<()> {
    let cfg = load(args)?;
    check(args, &cfg)?;
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

/// `rampart snapshot`: the sealed snapshot as JSON (hash on stderr), or only its hash.
pub(crate) fn snapshot_cmd(args: &FleetArgs, hash_only: bool) -> Result<()> {
    let cfg = load(args)?;
    check(args, &cfg)?;
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

/// Read and parse the fleet file; a parse error is reported on stderr with the file's name.
pub(crate) fn load(args: &FleetArgs) -> Result<Config> {
    let path = &args.file;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(path, &text)
}

/// Parse a fleet's text (YAML, or JSON if it starts with `{`); errors are reported on stderr
/// under `name`.
pub(crate) fn parse(name: &Path, text: &str) -> Result<Config> {
    let parsed = if text.trim_start().starts_with('{') {
        from_json(text)
    } else {
        from_yaml(text)
    };
    parsed.map_err(|e| {
        eprintln!("{}: {e}", name.display());
        Reported.into()
    })
}

/// Validate the fleet with the declarations of `args`; every error is reported on stderr.
pub(crate) fn check(args: &FleetArgs, cfg: &Config) -> Result<()> {
    let declared = DeclaredImpact {
        changed_percent: 0.0,
        denies_all: args.declare_deny_all.clone(),
    };
    validate(cfg, &declared).map_err(|errors| {
        report(&args.file, &errors.0);
        Reported.into()
    })
}

fn report(path: &Path, errors: &[rampart_model::ValidationError]) {
    eprintln!("{}: {} validation error(s)", path.display(), errors.len());
    for e in errors {
        eprintln!("  {}: {}", e.path, e.message);
    }
}
