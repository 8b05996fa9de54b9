//! `rampart control`: the control plane, serving the admin API until Ctrl-C or SIGTERM.
//!
//! The first start on an empty database creates an admin token and prints it once
//! (`admin token: rpt_...`; `--bootstrap-token-file` writes it to a 0600 file too); then
//! `rampart control listening on http://ADDR`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use rampart_api::{Role, TokenKind};
use rampart_control::rules::RulesConfig;
use rampart_control::service::Service;
use rampart_model::Environment;
use rampart_model::load::from_yaml;
use rampart_store::Store;
use rampart_store::ops::*;
use serde::Deserialize;

use crate::output::{out, write_secret};
use crate::runtime::{runtime, shutdown_signal};

#[derive(Debug, Args)]
pub(crate) struct ControlArgs {
    /// The database: `sqlite://PATH` (created if needed) or `postgres://...`.
    #[arg(long, default_value = "sqlite://rampart-data/control.db")]
    db: String,
    /// The admin API's listener.
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// On first start (no tokens yet), also write the admin token to this file (mode 0600).
    #[arg(long, value_name = "PATH")]
    bootstrap_token_file: Option<PathBuf>,
    /// The control plane's configuration (YAML): `rules:` (approvals per risk and
    /// environment) and `rollouts:` (stages, soak, gates and the impact test per environment).
    /// Without it, the defaults of both.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// How often the rollout driver looks at each running rollout, in milliseconds.
    #[arg(long, default_value_t = 100)]
    rollout_tick_ms: u64,
    #[command(flatten)]
    listen_limits: crate::listen_args::ListenArgs,
}

/// The file given to `rampart control --config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ControlConfig {
    #[serde(default)]
    pub rules: Option<RulesConfig>,
    #[serde(default)]
    pub rollouts: rampart_control::plan::RolloutConfig,
}

impl ControlConfig {
    /// Read and check a configuration file; errors name the file and the field.
    pub(crate) fn load(path: &std::path::Path) -> Result<ControlConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let cfg: ControlConfig =
            from_yaml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        for env in [Environment::Dev, Environment::Staging, Environment::Prod] {
            cfg.rollouts
                .for_env(env)
                .check(&format!("rollouts.{env}"))
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        }
        Ok(cfg)
    }
}

/// Run the control plane until Ctrl-C or SIGTERM.
pub(crate) fn run(a: ControlArgs) -> Result<()> {
    let limits = a.listen_limits.limits()?;
    runtime()?.block_on(async move {
        if let Some(path) = a.db.strip_prefix("sqlite://")
            && let Some(dir) = std::path::Path::new(path.split('?').next().unwrap_or(path))
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let store = Store::connect(&a.db)
            .await
            .with_context(|| format!("cannot open the database {}", redact(&a.db)))?;
        let cfg = match &a.config {
            Some(path) => ControlConfig::load(path)?,
            None => ControlConfig::default(),
        };
        let service =
            Service::new(store.clone(), cfg.rules.unwrap_or_default()).with_rollouts(cfg.rollouts);
        let tokens = store.list_tokens().await.context("cannot list tokens")?;
        if tokens.is_empty() {
            let (_, secret) = service
                .create_token("bootstrap", "admin", TokenKind::User, Some(Role::Admin))
                .await
                .map_err(|e| anyhow::anyhow!("cannot create the admin token: {e}"))?;
            if let Some(path) = &a.bootstrap_token_file {
                write_secret(path, &secret)?;
            }
            out(&format!("admin token: {secret}"))?;
        }
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("cannot listen on {}", a.listen))?;
        let addr = listener.local_addr()?;
        out(&format!("rampart control listening on http://{addr}"))?;
        let engine = tokio::spawn(
            rampart_control::rollout::Engine::new(
                service.clone(),
                std::time::Duration::from_millis(a.rollout_tick_ms.max(10)),
            )
            .run(),
        );
        let app = rampart_control::api::router_with(service);
        serve_api(listener, app, limits, async {
            shutdown_signal().await;
            tracing::info!("shutting down");
        })
        .await;
        engine.abort();
        store.close().await;
        Ok(())
    })
}

/// Serve the control plane's API under the listener limits until `shutdown` completes, then
/// drain its connections for up to 15 s.
pub(crate) async fn serve_api(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: rampart_listen::Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let listener = rampart_listen::Listener {
        tcp: listener,
        tls: None,
        limits,
        stats: Default::default(),
        name: "control",
    };
    let make = move |_peer| hyper_util::service::TowerToHyperService::new(app.clone());
    rampart_listen::serve(listener, make, shutdown, std::time::Duration::from_secs(15)).await;
}

/// A database URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
