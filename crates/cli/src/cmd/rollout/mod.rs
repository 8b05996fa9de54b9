//! `rampart rollout`: the staged rollouts of applied changes, over the control plane's admin
//! API.
//!
//! ```text
//! export RAMPART_SERVER=http://127.0.0.1:7070 RAMPART_TOKEN=rpt_...
//! rampart rollout list --env prod                 # newest first: id, change, state, stage, candidate
//! rampart rollout show rol_...                    # stages, the last evaluation, the decisions log
//! rampart rollout watch rol_... --interval-ms 500 # live until it ends; exit 1 unless it succeeded
//! rampart rollout pause rol_... --reason "waiting for the on-call"
//! rampart rollout resume rol_... ; rampart rollout abort rol_... --reason "wrong upstream"
//! ```
//!
//! | module | what |
//! |---|---|
//! | [`reading`] | one reading of a rollout: the API's view and its last evaluation |
//! | [`show`] | what `list` and `show` print |
//! | [`watch`] | `watch`: live bars on a terminal, else a plain line per change |
//! | [`control`] | `pause`, `resume` and `abort` |
//!
//! `watch` prints the final state at the end; a rollout that did not succeed is reported as
//! `rollout ID ended ROLLED_BACK: reason` on stderr and the command exits 1. Errors are one
//! line, like the other client commands; `--json` prints the API's JSON.

use anyhow::Result;
use clap::{Args, Subcommand};
use rampart_api::{RolloutAction, RolloutList, RolloutView};

use super::ClientArgs;
use crate::client::{client, enc, parse_env};
use crate::output::{answer, out};

mod control;
mod reading;
mod show;
#[cfg(test)]
mod tests;
mod watch;

use reading::Reading;

#[derive(Debug, Args)]
pub(crate) struct RolloutArgs {
    #[command(subcommand)]
    cmd: RolloutCmd,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum RolloutCmd {
    /// The rollouts of an environment, newest first.
    List {
        /// The environment: dev, staging or prod.
        #[arg(long)]
        env: String,
    },
    /// A rollout: its stages, its last evaluation and its decisions.
    Show { id: String },
    /// Follow a rollout until it ends; exit 1 unless it succeeded.
    Watch {
        id: String,
        /// How often the rollout is read, in milliseconds.
        #[arg(long, default_value_t = 500)]
        interval_ms: u64,
    },
    /// Hold a rollout at its current stage.
    Pause {
        id: String,
        /// Why: recorded with the decision.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Let a paused rollout go on.
    Resume {
        id: String,
        /// Why: recorded with the decision.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Stop a rollout and put its environment back on the baseline.
    Abort {
        id: String,
        /// Why: recorded with the decision.
        #[arg(long)]
        reason: Option<String>,
    },
}

pub(crate) fn run(a: RolloutArgs) -> Result<()> {
    let json = a.client.json;
    if let RolloutCmd::List { env } = &a.cmd {
        // Refuse a bad environment before any network call.
        parse_env(env)?;
    }
    client(&a.client, |api| async move {
        match a.cmd {
            RolloutCmd::List { env } => {
                let (env, v): (_, RolloutList) = api.get_env(&env, "/rollouts").await?;
                answer(json, &v, |v| {
                    out(&format!("{} rollout(s) in {env}", v.rollouts.len()))?;
                    for r in &v.rollouts {
                        out(&format!("  {}", show::list_line(&Reading::from(r.clone()))))?;
                    }
                    Ok(())
                })
            }
            RolloutCmd::Show { id } => {
                let v: RolloutView = api.get(&format!("/v1/rollouts/{}", enc(&id))).await?;
                answer(json, &v, |v| {
                    for line in show::show_lines(&Reading::from(v.clone())) {
                        out(&line)?;
                    }
                    Ok(())
                })
            }
            RolloutCmd::Watch { id, interval_ms } => {
                watch::watch(&api, &id, interval_ms, json).await
            }
            RolloutCmd::Pause { id, reason } => {
                control::act(&api, &id, RolloutAction::Pause, reason, json).await
            }
            RolloutCmd::Resume { id, reason } => {
                control::act(&api, &id, RolloutAction::Resume, reason, json).await
            }
            RolloutCmd::Abort { id, reason } => {
                control::act(&api, &id, RolloutAction::Abort, reason, json).await
            }
        }
    })
}
