//! `rampart gateway`: one gateway of the data plane, from a fleet file, a snapshot file, its
//! last known good snapshot, or a control plane it follows.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use rampart_model::{EnumName, Environment};
use strum::VariantArray;

use crate::listen_args::ListenArgs;
use crate::output::out;
use crate::runtime::{runtime, stop_on_signal};

#[derive(Debug, Args)]
pub(crate) struct GatewayArgs {
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
    /// The admin listener: /metrics, /healthz, /readyz, /cohorts, /samples, /config. A
    /// non-loopback address needs an admin token.
    #[arg(long, default_value = "127.0.0.1:9901")]
    admin: SocketAddr,
    /// A file holding the admin listener's bearer token (16+ visible ASCII characters,
    /// surrounding whitespace trimmed). With it, every admin endpoint but /healthz and /readyz
    /// needs `Authorization: Bearer <token>`.
    #[arg(long, value_name = "FILE", conflicts_with = "admin_token")]
    admin_token_file: Option<PathBuf>,
    /// The admin token itself (prefer --admin-token-file: a flag shows in `ps`).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "RAMPART_ADMIN_TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
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
    #[arg(long, default_value = "prod", value_parser = environment_parser())]
    env: Environment,
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
    #[command(flatten)]
    listen_limits: ListenArgs,
}

/// The admin token from `--admin-token-file` or `--admin-token`, checked.
fn admin_token(
    file: Option<&std::path::Path>,
    flag: Option<&str>,
) -> Result<Option<rampart_gateway::admin::AdminToken>> {
    let text = match (file, flag) {
        (Some(path), _) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the admin token file {}", path.display()))?
            .trim()
            .to_owned(),
        (None, Some(t)) => t.to_owned(),
        (None, None) => return Ok(None),
    };
    let token = rampart_gateway::admin::AdminToken::new(&text)
        .map_err(|e| anyhow::anyhow!("admin token: {e}"))?;
    Ok(Some(token))
}

/// `--env`: clap lists the environments' names (in help, and in the error for any other
/// value), and each accepted name becomes its `Environment` through the one parser.
fn environment_parser() -> impl clap::builder::TypedValueParser<Value = Environment> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(Environment::VARIANTS.iter().map(|e| e.as_str()))
        .try_map(|name| rampart_model::parse_name::<Environment>("environment", &name))
}

/// The version this binary reports to the control plane.
pub(crate) fn build_version() -> Result<semver::Version> {
    semver::Version::parse(env!("CARGO_PKG_VERSION")).context("the build's version")
}

/// `rampart gateway`.
pub(crate) fn run(a: GatewayArgs) -> Result<()> {
    let tls = match (a.tls_listen, a.tls_cert, a.tls_key) {
        (Some(addr), Some(cert), Some(key)) => Some((addr, cert, key)),
        _ => None,
    };
    let limits = a.listen_limits.limits()?;
    let admin_token = admin_token(a.admin_token_file.as_deref(), a.admin_token.as_deref())?;
    let opts = rampart_gateway::GatewayOptions {
        identity: rampart_model::GatewayIdentity {
            id: a.id.clone(),
            cell: a.cell,
            version: build_version()?,
        },
        listen: a.listen,
        tls,
        admin: a.admin,
        data_dir: a
            .data_dir
            .unwrap_or_else(|| PathBuf::from(format!("rampart-data/gateway-{}", a.id))),
        config: a.config,
        control: a
            .control
            .zip(a.control_token)
            .map(|(url, token)| (url, token, a.env)),
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
        limits,
        admin_token,
    };
    runtime()?.block_on(async move {
        rampart_gateway::run(opts, stop_on_signal(), |proxy, admin, tls| {
            let tls = tls.map(|t| format!(" tls={t}")).unwrap_or_default();
            let _ = out(&format!(
                "rampart gateway ready proxy={proxy} admin={admin}{tls}"
            ));
        })
        .await
        .map_err(anyhow::Error::from)
    })
}
