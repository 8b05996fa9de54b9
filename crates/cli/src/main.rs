//! # rampart
//!
//! The command-line front of rampart. Each command lives in its own module; this file holds
//! the command line and the dispatch.
//!
//! Fleet files ([`fleet_file`]):
//! - `rampart validate -f fleet.yaml` prints every validation error with its path and exits
//!   non-zero if there is any;
//! - `rampart snapshot -f fleet.yaml` prints the sealed snapshot (JSON) and its content hash.
//!
//! Processes:
//! - `rampart up` runs the whole demo in one process ([`up`]): a control plane on SQLite in
//!   `./rampart-data`, the example fleet built into the binary loaded through a change, its
//!   demo upstreams, a gateway that follows the control plane, and demo traffic;
//! - `rampart gateway --config fleet.yaml --cell eu-1 --id gw-1` runs a gateway ([`gateway`]);
//! - `rampart control --db sqlite://rampart-data/control.db` runs the control plane
//!   ([`cmd::control`]);
//! - `rampart demo-upstream --name jira --listen 127.0.0.1:18081` runs a demo origin
//!   ([`demo_upstream`]);
//! - `rampart apikey new --id ci --tenant acme` mints an API key and prints its fleet entry
//!   ([`apikey`]);
//! - `rampart load --url http://127.0.0.1:8080/ --rate 1000` sends open-loop load ([`load`]).
//!
//! Clients of the control plane's admin API, one module each under [`cmd`], all through the
//! typed [`client`]:
//! - `rampart diff` and `rampart apply` compare a fleet file with an environment and turn it
//!   into a change;
//! - `rampart change` submits, shows, approves, rejects, lists and applies changes;
//! - `rampart flag` reads feature flags; `rampart audit verify` checks the audit log's hash
//!   chain;
//! - `rampart fleet` shows which gateway runs which snapshot;
//! - `rampart rollout` lists, shows, watches, pauses, resumes and aborts staged rollouts;
//! - `rampart rollback` puts an environment back on its last known good snapshot.
//!
//! Errors are one clear line each, never a panic or a backtrace.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod apikey;
mod client;
mod cmd;
mod demo_upstream;
mod fleet_file;
mod gateway;
mod listen_args;
mod load;
mod output;
mod runtime;
mod up;

use fleet_file::FleetArgs;
use output::Reported;

/// mimalloc instead of the system allocator: the proxy allocates small buffers per request,
/// and glibc's malloc spent a fifth of the gateway's CPU under load (see docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run a gateway: the data plane.
    Gateway(Box<gateway::GatewayArgs>),
    /// Run the demo in one process: a control plane on SQLite in ./rampart-data, the example
    /// fleet loaded into its `dev` environment through a change, the fleet's demo upstreams, and
    /// one gateway that follows the control plane. A second start reuses the data.
    Up(up::UpArgs),
    /// Run a demo upstream that echoes requests as JSON (and answers /healthz).
    DemoUpstream(demo_upstream::DemoUpstreamArgs),
    /// Open-loop HTTP load: fixed-rate requests, failures counted, latency from schedule.
    Load(load::LoadArgs),
    /// Run the control plane: the admin API over SQLite or PostgreSQL.
    Control(cmd::control::ControlArgs),
    /// Show the object-level diff a fleet file would make to an environment.
    Diff(cmd::diff::DiffArgs),
    /// Turn a fleet file into a change of an environment and submit it.
    Apply(cmd::apply::ApplyArgs),
    /// Read feature flags.
    Flag(cmd::flag::FlagArgs),
    /// Submit, show, approve, reject, list and apply changes.
    Change(cmd::change::ChangeArgs),
    /// The audit log.
    Audit(cmd::audit::AuditArgs),
    /// Which gateway runs which snapshot.
    Fleet(cmd::EnvArgs),
    /// List, show, watch, pause, resume and abort the staged rollouts of applied changes.
    Rollout(cmd::rollout::RolloutArgs),
    /// Put an environment back on its last known good snapshot, now.
    Rollback(cmd::EnvArgs),
    /// Mint API keys in rampart's format (256 random bits; required in prod).
    Apikey(apikey::ApiKeyArgs),
}

fn main() -> ExitCode {
    let _failpoints = rampart_gateway::failpoints();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
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
        Command::Validate(args) => fleet_file::validate_cmd(&args),
        Command::Snapshot { fleet, hash_only } => fleet_file::snapshot_cmd(&fleet, hash_only),
        Command::Gateway(args) => gateway::run(*args),
        Command::Up(args) => up::run(args),
        Command::DemoUpstream(args) => demo_upstream::run(args),
        Command::Load(args) => load::run(args),
        Command::Control(args) => cmd::control::run(args),
        Command::Diff(args) => cmd::diff::run(args),
        Command::Apply(args) => cmd::apply::run(args),
        Command::Flag(args) => cmd::flag::run(args),
        Command::Change(args) => cmd::change::run(args),
        Command::Audit(args) => cmd::audit::run(args),
        Command::Fleet(args) => cmd::fleet::run(args),
        Command::Rollout(args) => cmd::rollout::run(args),
        Command::Rollback(args) => cmd::rollback::run(args),
        Command::Apikey(args) => apikey::run(args),
    }
}
