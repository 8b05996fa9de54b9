//! The commands of the control plane: `rampart control` (the server) and the clients of its
//! admin API, one module per command.
//!
//! ```text
//! rampart control --db sqlite://rampart-data/control.db --listen 127.0.0.1:7070
//! export RAMPART_SERVER=http://127.0.0.1:7070 RAMPART_TOKEN=rpt_...
//! rampart diff -f fleet.yaml --env prod          # the object-level plan, like `terraform plan`
//! rampart apply -f fleet.yaml --env staging      # the plan, then one change of every edit
//! rampart change list|show|approve|reject|apply|submit ...
//! rampart flag list|get ... ; rampart fleet --env prod ; rampart audit verify
//! rampart rollout list|show|watch|pause|resume|abort ... ; rampart rollback --env prod
//! ```
//!
//! | module | command |
//! |---|---|
//! | [`control`] | `rampart control`: the server |
//! | [`diff`] | `rampart diff`, and the object-level diff `apply` shares |
//! | [`apply`] | `rampart apply` |
//! | [`change`] | `rampart change`, and how a change is printed |
//! | [`flag`] | `rampart flag` |
//! | [`audit`] | `rampart audit` |
//! | [`fleet`] | `rampart fleet` |
//! | [`rollout`] | `rampart rollout` |
//! | [`rollback`] | `rampart rollback` |
//!
//! Every client decodes the API's answers into `rampart-api` types through [`crate::client`].
//! Client errors (network, 4xx, 5xx) are one line with the API's code and message, then one
//! line per field path; the command exits 1. Output is human-readable, or with `--json` the
//! API's JSON ([`crate::output::json_out`]).

use clap::Args;

pub(crate) mod apply;
pub(crate) mod audit;
pub(crate) mod change;
pub(crate) mod control;
pub(crate) mod diff;
pub(crate) mod flag;
pub(crate) mod fleet;
pub(crate) mod rollback;
pub(crate) mod rollout;

/// Where the control plane is and who is calling: every client command flattens these.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClientArgs {
    /// The control plane's admin API.
    #[arg(
        long,
        env = "RAMPART_SERVER",
        default_value = "http://127.0.0.1:7070",
        global = true
    )]
    pub(crate) server: String,
    /// An API token (`rpt_...`).
    #[arg(long, env = "RAMPART_TOKEN", hide_env_values = true, global = true)]
    pub(crate) token: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// An environment, and the connection: the arguments of `fleet` and `rollback`.
#[derive(Debug, Args)]
pub(crate) struct EnvArgs {
    /// The environment: dev, staging or prod.
    #[arg(long)]
    pub(crate) env: String,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}
