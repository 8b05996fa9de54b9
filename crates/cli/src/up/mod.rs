//! `rampart up`: the whole demo in one process. A control plane on SQLite in the data
//! directory, the fleet (the example fleet built into the binary, unless `-f` names one)
//! loaded into its `dev` environment through a change, one demo origin per loopback endpoint
//! of the fleet, one gateway that follows the control plane, and demo traffic through it.
//! It reads nothing from the directory it starts in but its data directory, so it runs from
//! anywhere; a second start reuses the data.

mod control;
mod fleet;
mod rules;
mod traffic;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use rampart_model::Environment;

use crate::gateway::build_version;
use crate::output::out;
use crate::runtime::{runtime, stop_on_signal};
use control::ControlPlane;

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// The fleet file to serve; without it, the example fleet built into rampart
    /// (examples/fleet.yaml).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    #[arg(long, default_value = "rampart-data")]
    data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:9901")]
    admin: SocketAddr,
    /// The control plane's admin API.
    #[arg(long, default_value = "127.0.0.1:7070")]
    control: SocketAddr,
    /// Put the demo origins on free loopback ports, and the fleet's endpoints with them, so
    /// that several `up`s run side by side (tests). Meant for a fresh data directory: a fleet
    /// already stored keeps the ports it was loaded with.
    #[arg(long, hide = true)]
    free_demo_ports: bool,
    #[command(flatten)]
    listen_limits: crate::listen_args::ListenArgs,
}

/// `rampart up`: serve until SIGTERM or Ctrl-C.
pub(crate) fn run(args: UpArgs) -> Result<()> {
    let (fleet, cfg) = fleet::fleet(args.file.as_deref())?;
    let version = build_version()?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    runtime()?.block_on(serve(args, &fleet, cfg, version))
}

async fn serve(
    args: UpArgs,
    fleet: &Path,
    mut cfg: rampart_model::Config,
    version: semver::Version,
) -> Result<()> {
    let origins = fleet::bind_origins(&mut cfg, args.free_demo_ports).await?;
    let stop = stop_on_signal();
    let limits = args.listen_limits.limits()?;
    let control = ControlPlane::start(
        &args.data_dir,
        args.control,
        &cfg,
        limits.clone(),
        stop.clone(),
    )
    .await?;
    let origin_count = origins.len();
    for (name, listener) in origins {
        tokio::spawn(rampart_gateway::demo::serve(listener, name));
    }
    let opts = rampart_gateway::GatewayOptions {
        identity: rampart_model::GatewayIdentity {
            id: "gw-1".into(),
            cell: "local".into(),
            version,
        },
        listen: args.listen,
        tls: None,
        admin: args.admin,
        data_dir: args.data_dir.join("gateway-gw-1"),
        config: None,
        control: Some((
            format!("http://{}", control.addr),
            control.gateway_token.clone(),
            Environment::Dev,
        )),
        poll: Duration::from_millis(500),
        stability: Duration::from_secs(30),
        drain: Duration::from_secs(10),
        guard: Default::default(),
        sample_every: 2,
        sample_capacity: 2048,
        max_inflight: 10_000,
        limits,
        admin_token: None,
    };
    let targets = traffic::Targets::of(&cfg);
    let banner = Banner {
        origins: origin_count,
        control: control.addr,
        admin_token: control.admin_token.clone(),
        fleet: fleet.display().to_string(),
        data_dir: args.data_dir.clone(),
    };
    let served = rampart_gateway::run(opts, stop, move |proxy, admin, _| {
        tokio::spawn(traffic::run(proxy, targets));
        let _ = out(&banner.text(proxy, admin));
    })
    .await
    .map_err(anyhow::Error::from);
    control.stopped().await;
    served
}

/// What `rampart up` prints once everything listens. Tests read its addresses and token, up
/// to the line that says how to stop it.
struct Banner {
    origins: usize,
    control: SocketAddr,
    admin_token: String,
    fleet: String,
    data_dir: PathBuf,
}

impl Banner {
    fn text(&self, proxy: SocketAddr, admin: SocketAddr) -> String {
        let Self {
            origins,
            control,
            admin_token,
            fleet,
            data_dir,
        } = self;
        let data_dir = if data_dir.is_relative() {
            format!("./{}", data_dir.display())
        } else {
            data_dir.display().to_string()
        };
        format!(
            "rampart is up: a control plane, {origins} demo upstreams and one gateway\n  \
             control http://{control}   admin token: {admin_token}\n  \
             proxy   http://{proxy}   try: curl -i -H 'host: jira.example.com' http://{proxy}/browse/X-1\n  \
             admin   http://{admin}/metrics  /cohorts  /samples  /readyz\n  \
             change the fleet: edit {fleet}, then rampart apply -f {fleet} --env dev --server http://{control} --token <admin token>\n  \
             Ctrl-C stops it; {data_dir} keeps the data for the next start."
        )
    }
}
