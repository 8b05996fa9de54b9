//! # rampart
//!
//! The command-line front of rampart:
//!
//! - `rampart validate -f fleet.yaml` prints every validation error with its path and exits
//!   non-zero if there is any;
//! - `rampart snapshot -f fleet.yaml` prints the sealed snapshot (JSON) and its content hash;
//! - `rampart gateway --config fleet.yaml --cell eu-1 --id gw-1` runs a gateway;
//! - `rampart demo-upstream --name jira --listen 127.0.0.1:18081` runs a demo origin.
//!
//! Errors are one clear line each, never a panic or a backtrace.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use rampart_eval::Evaluator;
use rampart_model::load::{LoadError, from_json, from_yaml};
use rampart_model::validate::validate;
use rampart_model::{Config, DeclaredImpact, Snapshot};

mod control_cmds;
mod load;
mod rollout_cmds;

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
    Gateway(Box<GatewayArgs>),
    /// Run a demo upstream that echoes requests as JSON (and answers /healthz).
    /// Run the demo in one process: a control plane on SQLite in ./rampart-data, the example
    /// fleet loaded into its `dev` environment through a change, the fleet's demo upstreams, and
    /// one gateway that follows the control plane. A second start reuses the data.
    Up {
        /// The fleet file to serve.
        #[arg(short = 'f', long = "file", default_value = "examples/fleet.yaml")]
        file: PathBuf,
        #[arg(long, default_value = "rampart-data")]
        data_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: SocketAddr,
        /// The control plane's admin API.
        #[arg(long, default_value = "127.0.0.1:7070")]
        control: SocketAddr,
    },
    DemoUpstream {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "127.0.0.1:18081")]
        listen: SocketAddr,
    },
    /// Open-loop HTTP load: fixed-rate requests, failures counted, latency from schedule.
    Load(load::LoadArgs),
    /// Run the control plane: the admin API over SQLite or PostgreSQL.
    Control(control_cmds::ControlArgs),
    /// Show the object-level diff a fleet file would make to an environment.
    Diff(control_cmds::DiffArgs),
    /// Turn a fleet file into a change of an environment and submit it.
    Apply(control_cmds::ApplyArgs),
    /// Read feature flags.
    Flag(control_cmds::FlagArgs),
    /// Submit, show, approve, reject, list and apply changes.
    Change(control_cmds::ChangeArgs),
    /// The audit log.
    Audit(control_cmds::AuditArgs),
    /// Which gateway runs which snapshot.
    Fleet(control_cmds::FleetViewArgs),
    /// List, show, watch, pause, resume and abort the staged rollouts of applied changes.
    Rollout(rollout_cmds::RolloutArgs),
    /// Put an environment back on its last known good snapshot, now.
    Rollback(rollout_cmds::RollbackArgs),
}

#[derive(Debug, Args)]
struct GatewayArgs {
    /// A fleet file (YAML or JSON) or a snapshot file to serve; watched for edits. Without it,
    /// the gateway boots from its last known good snapshot.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// This gateway's cell (failure domain).
    #[arg(long)]
    cell: String,
    /// This gateway's id.
    #[arg(long)]
    id: String,
    /// The proxy listener: HTTP/1.1 and h2c.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The admin listener: /metrics, /healthz, /readyz, /cohorts, /samples, /config.
    #[arg(long, default_value = "127.0.0.1:9901")]
    admin: SocketAddr,
    /// An HTTPS listener (HTTP/2 and HTTP/1.1 by ALPN); needs --tls-cert and --tls-key.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    tls_listen: Option<SocketAddr>,
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// Where the last known good snapshot and the crash-loop guard's state live.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The control plane to follow (`http://host:port`); needs --control-token.
    #[arg(long, value_name = "URL", requires = "control_token")]
    control: Option<String>,
    /// A gateway token for the control plane.
    #[arg(long, value_name = "TOKEN")]
    control_token: Option<String>,
    /// The environment to follow on the control plane.
    #[arg(long, default_value = "prod", value_parser = ["dev", "staging", "prod"])]
    env: String,
    /// How often the config file is checked for edits, in milliseconds.
    #[arg(long, default_value_t = 500)]
    poll_ms: u64,
    /// How long a snapshot must run before it becomes the last known good, in seconds.
    #[arg(long, default_value_t = 30)]
    stability_secs: u64,
    /// How long shutdown waits for in-flight requests, in seconds.
    #[arg(long, default_value_t = 15)]
    drain_secs: u64,
    /// Keep one request in this many as a sample for the impact test.
    #[arg(long, default_value_t = 8)]
    sample_every: u64,
    /// Samples kept.
    #[arg(long, default_value_t = 2048)]
    sample_capacity: usize,
    /// Local guard: candidate requests in the window before it judges.
    #[arg(long, default_value_t = 20)]
    guard_min_requests: u64,
    /// Local guard: candidate error rate that trips it.
    #[arg(long, default_value_t = 0.5)]
    guard_error_rate: f64,
    /// Local guard: the window, in seconds.
    #[arg(long, default_value_t = 10)]
    guard_window_secs: u64,
    /// Requests in flight at once; beyond it the gateway sheds load with 503 `overloaded`.
    #[arg(long, default_value_t = 10_000)]
    max_inflight: usize,
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
        Command::Gateway(args) => gateway(*args),
        Command::Load(args) => load::run(args),
        Command::Control(args) => control_cmds::control(args),
        Command::Diff(args) => control_cmds::diff_cmd(args),
        Command::Apply(args) => control_cmds::apply_cmd(args),
        Command::Flag(args) => control_cmds::flag_cmd(args),
        Command::Change(args) => control_cmds::change_cmd(args),
        Command::Audit(args) => control_cmds::audit_cmd(args),
        Command::Fleet(args) => control_cmds::fleet_cmd(args),
        Command::Rollout(args) => rollout_cmds::rollout_cmd(args),
        Command::Rollback(args) => rollout_cmds::rollback_cmd(args),
        Command::Up {
            file,
            data_dir,
            listen,
            admin,
            control,
        } => up(file, data_dir, listen, admin, control),
        Command::DemoUpstream { name, listen } => runtime()?.block_on(async move {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            out(&format!(
                "demo upstream {name} listening on {}",
                listener.local_addr()?
            ))?;
            tokio::select! {
                _ = rampart_gateway::demo::serve(listener, name) => {}
                _ = shutdown_signal() => {}
            }
            Ok(())
        }),
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

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The rules `rampart up` runs with: the defaults, except that the demo's `dev` environment
/// needs no approvals, so the example fleet can be loaded through the normal change path.
/// (Rules are configurable per environment; the prod floors do not apply to dev.)
fn demo_rules() -> Result<rampart_control::rules::RulesConfig> {
    use rampart_control::rules::{EnvRules, RiskPolicy, RulesConfig};
    let open = || RiskPolicy::new(0, None, false);
    let dev = EnvRules::new([open()?, open()?, open()?, open()?], vec![])?;
    Ok(RulesConfig::new(
        dev,
        EnvRules::defaults(rampart_model::Environment::Staging),
        EnvRules::defaults(rampart_model::Environment::Prod),
    )?)
}

/// A secret kept in a file of the data directory, created on the first start.
async fn kept_secret(
    service: &rampart_control::service::Service,
    path: &Path,
    name: &str,
    kind: rampart_api::TokenKind,
    role: Option<rampart_api::Role>,
) -> Result<String> {
    if let Ok(secret) = std::fs::read_to_string(path) {
        return Ok(secret.trim().to_owned());
    }
    let (_, secret) = service
        .create_token("rampart-up", name, kind, role)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the {name} token: {e}"))?;
    control_cmds::write_secret(path, &secret)?;
    Ok(secret)
}

/// The rollout rules `rampart up` runs with: the defaults, except that the demo's `dev`
/// environment rolls every change out in two short stages (25%, then 100%, 5 s soak each) fed
/// by the demo's own traffic, so a change is seen progressing in seconds.
fn demo_rollouts() -> rampart_control::plan::RolloutConfig {
    use rampart_control::plan::{RolloutConfig, RolloutRules};
    use rampart_model::change::StageDef;
    // The gates of a live stage, as the default plans set them.
    let gates = RolloutRules::default()
        .plan(rampart_model::Risk::Low, false, None)
        .stages[0]
        .gates
        .clone();
    let stages = || -> Vec<StageDef> {
        [25.0, 100.0]
            .into_iter()
            .map(|percent| StageDef {
                name: format!("{percent}%"),
                scope: rampart_model::StageScope {
                    cells: vec![],
                    gateways: vec![],
                    percent,
                },
                shadow: false,
                min_soak_secs: 5,
                min_samples: 20,
                gates: gates.clone(),
            })
            .collect()
    };
    let mut dev = RolloutRules {
        min_samples: 20,
        ..RolloutRules::default()
    };
    for risk in [
        rampart_model::Risk::Low,
        rampart_model::Risk::Medium,
        rampart_model::Risk::High,
        rampart_model::Risk::Critical,
    ] {
        dev.plans.insert(risk, stages());
    }
    dev.impact.min_samples = 20;
    RolloutConfig {
        dev,
        ..RolloutConfig::default()
    }
}

/// One request per route of the fleet: its host (a wildcard's `demo` subdomain) and path;
/// and the header that names the tenant.
fn demo_targets(cfg: &Config) -> (String, Vec<(String, String)>) {
    use rampart_model::config::PathMatch;
    let targets = cfg
        .routes
        .iter()
        .filter(|r| r.matcher.headers.is_empty())
        .map(|r| {
            let host = r.matcher.host.clone().unwrap_or_else(|| "localhost".into());
            let host = host.replace("*.", "demo.");
            let path = match &r.matcher.path {
                PathMatch::Prefix(p) => format!("{}demo", p.trim_end_matches('/').to_owned() + "/"),
                PathMatch::Exact(p) => p.clone(),
            };
            (host, path)
        })
        .collect();
    (cfg.settings.tenant_header.clone(), targets)
}

/// A gentle stream of demo requests (50 per second) through the gateway, so rollout
/// gates in `rampart up` have traffic to judge. It stops with the process.
/// Requests spread over 200 tenants, so sticky buckets split them as they would real traffic.
async fn demo_traffic(
    proxy: SocketAddr,
    (tenant_header, targets): (String, Vec<(String, String)>),
) {
    if targets.is_empty() {
        return;
    }
    let Ok(client) = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
    else {
        return;
    };
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    for i in 0usize.. {
        tick.tick().await;
        let (host, path) = &targets[i % targets.len()];
        let req = client
            .get(format!("http://{proxy}{path}"))
            .header("host", host.as_str())
            .header(tenant_header.as_str(), format!("tenant-{}", i % 200));
        let _ = req.send().await;
    }
}

/// Load the fleet into the demo environment through a change, if the environment is empty.
async fn load_fleet(service: &rampart_control::service::Service, cfg: &Config) -> Result<()> {
    use rampart_control::store::Objects as _;
    use rampart_model::change::Edit;
    let env = rampart_model::Environment::Dev;
    let store = service.store();
    if store
        .head(env)
        .await
        .context("cannot read the demo environment")?
        > 0
    {
        return Ok(());
    }
    let edits: Vec<Edit> = cfg.objects().map(Edit::Upsert).collect();
    let view = service
        .submit(
            "rampart-up",
            rampart_control::service::Submission {
                env,
                reason: "rampart up: load the example fleet".into(),
                declared_impact: Default::default(),
                edits,
                base_version: 0,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("the fleet was refused: {e}"))?;
    service
        .apply(&view.record.id, "rampart-up")
        .await
        .map_err(|e| anyhow::anyhow!("cannot apply the fleet: {e}"))?;
    Ok(())
}

fn up(
    file: PathBuf,
    data_dir: PathBuf,
    listen: SocketAddr,
    admin: SocketAddr,
    control: SocketAddr,
) -> Result<()> {
    let cfg = load(&FleetArgs {
        file: file.clone(),
        declare_deny_all: vec![],
    })?;
    check(
        &FleetArgs {
            file: file.clone(),
            declare_deny_all: vec![],
        },
        &cfg,
    )?;
    // One demo origin per loopback endpoint of the fleet.
    let mut origins: Vec<(String, SocketAddr)> = Vec::new();
    for u in &cfg.upstreams {
        for (i, e) in u.endpoints.iter().enumerate() {
            if let Ok(addr) = e.parse::<SocketAddr>()
                && addr.ip().is_loopback()
            {
                origins.push((format!("{}-{}", u.name, i + 1), addr));
            }
        }
    }
    let version =
        semver::Version::parse(env!("CARGO_PKG_VERSION")).context("the build's version")?;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    runtime()?.block_on(async move {
        // The control plane, on SQLite in the data directory.
        let db = format!("sqlite://{}/control.db", data_dir.display());
        let store = rampart_control::store::Store::connect(&db)
            .await
            .with_context(|| format!("cannot open {db}"))?;
        let service = rampart_control::service::Service::new(store.clone(), demo_rules()?)
            .with_rollouts(demo_rollouts());
        let admin_token = kept_secret(
            &service,
            &data_dir.join("admin-token"),
            "admin",
            rampart_api::TokenKind::User,
            Some(rampart_api::Role::Admin),
        )
        .await?;
        let gateway_token = kept_secret(
            &service,
            &data_dir.join("gateway-token"),
            "gw-1",
            rampart_api::TokenKind::Gateway,
            None,
        )
        .await?;
        load_fleet(&service, &cfg).await?;
        let listener = tokio::net::TcpListener::bind(control)
            .await
            .with_context(|| format!("cannot listen for the control plane on {control}"))?;
        let control_addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut control_stop = rx.clone();
        tokio::spawn(
            rampart_control::rollout::Engine::new(
                service.clone(),
                std::time::Duration::from_millis(100),
            )
            .run(),
        );
        let control_task = tokio::spawn(async move {
            let app = rampart_control::api::router_with(service);
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = control_stop.changed().await;
                })
                .await
        });
        for (name, addr) in &origins {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot start the demo upstream {name} on {addr}"))?;
            tokio::spawn(rampart_gateway::demo::serve(listener, name.clone()));
        }
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            let _ = tx.send(true);
        });
        let opts = rampart_gateway::GatewayOptions {
            identity: rampart_model::GatewayIdentity {
                id: "gw-1".into(),
                cell: "local".into(),
                version,
            },
            listen,
            tls: None,
            admin,
            data_dir: data_dir.join("gateway-gw-1"),
            config: None,
            control: Some((
                format!("http://{control_addr}"),
                gateway_token,
                rampart_model::Environment::Dev,
            )),
            poll: std::time::Duration::from_millis(500),
            stability: std::time::Duration::from_secs(30),
            drain: std::time::Duration::from_secs(10),
            guard: Default::default(),
            sample_every: 2,
            sample_capacity: 2048,
            max_inflight: 10_000,
        };
        let origins = origins.len();
        let fleet = file.display().to_string();
        let targets = demo_targets(&cfg);
        let served = rampart_gateway::run(opts, rx, move |proxy, admin, _| {
            tokio::spawn(demo_traffic(proxy, targets));
            let _ = out(&format!(
                "rampart is up: a control plane, {origins} demo upstreams and one gateway\n  \
                 control http://{control_addr}   admin token: {admin_token}\n  \
                 proxy   http://{proxy}   try: curl -i -H 'host: jira.example.com' http://{proxy}/browse/X-1\n  \
                 admin   http://{admin}/metrics  /cohorts  /samples  /readyz\n  \
                 change the fleet: edit {fleet}, then rampart apply -f {fleet} --env dev --server http://{control_addr} --token <admin token>\n  \
                 Ctrl-C stops it; ./{} keeps the data for the next start.",
                "rampart-data"
            ));
        })
        .await
        .map_err(anyhow::Error::from);
        let _ = control_task.await;
        store.close().await;
        served
    })
}

fn gateway(a: GatewayArgs) -> Result<()> {
    let version =
        semver::Version::parse(env!("CARGO_PKG_VERSION")).context("the build's version")?;
    let tls = match (a.tls_listen, a.tls_cert, a.tls_key) {
        (Some(addr), Some(cert), Some(key)) => Some((addr, cert, key)),
        _ => None,
    };
    let opts = rampart_gateway::GatewayOptions {
        identity: rampart_model::GatewayIdentity {
            id: a.id.clone(),
            cell: a.cell,
            version,
        },
        listen: a.listen,
        tls,
        admin: a.admin,
        data_dir: a
            .data_dir
            .unwrap_or_else(|| PathBuf::from(format!("rampart-data/gateway-{}", a.id))),
        config: a.config,
        control: a.control.zip(a.control_token).map(|(url, token)| {
            let env = match a.env.as_str() {
                "dev" => rampart_model::Environment::Dev,
                "staging" => rampart_model::Environment::Staging,
                _ => rampart_model::Environment::Prod,
            };
            (url, token, env)
        }),
        poll: std::time::Duration::from_millis(a.poll_ms.max(10)),
        stability: std::time::Duration::from_secs(a.stability_secs),
        drain: std::time::Duration::from_secs(a.drain_secs),
        guard: rampart_gateway::GuardConfig {
            window_secs: a.guard_window_secs.max(1),
            min_requests: a.guard_min_requests,
            max_error_rate: a.guard_error_rate,
            ..Default::default()
        },
        sample_every: a.sample_every,
        sample_capacity: a.sample_capacity,
        max_inflight: a.max_inflight,
    };
    runtime()?.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            let _ = tx.send(true);
        });
        rampart_gateway::run(opts, rx, |proxy, admin, tls| {
            let tls = tls.map(|t| format!(" tls={t}")).unwrap_or_default();
            let _ = out(&format!(
                "rampart gateway ready proxy={proxy} admin={admin}{tls}"
            ));
        })
        .await
        .map_err(anyhow::Error::from)
    })
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
