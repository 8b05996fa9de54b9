//! `rampart apply`: the plan of `rampart diff`, then one change of every edit, submitted.

use anyhow::Result;
use clap::Args;
use rampart_api::{ChangeView, SubmitRequest};
use rampart_model::DeclaredImpact;

use super::ClientArgs;
use super::change::print_change;
use super::diff::{Plan, compare, print_diff, to_edits};
use crate::client::{client, parse_env};
use crate::fleet_file::{FleetArgs, check, load};
use crate::output::json_out;

#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    /// The environment: dev, staging or prod.
    #[arg(long)]
    env: String,
    /// Why: recorded with the change.
    #[arg(long, default_value = "applied from a fleet file")]
    reason: String,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) fn run(a: ApplyArgs) -> Result<()> {
    let env = parse_env(&a.env)?;
    let desired = load(&a.fleet)?;
    check(&a.fleet, &desired)?;
    let json = a.client.json;
    let declared = DeclaredImpact {
        changed_percent: 0.0,
        denies_all: a.fleet.declare_deny_all.clone(),
    };
    let reason = a.reason;
    client(&a.client, |api| async move {
        let c = compare(&api, env, &desired).await?;
        if !json {
            print_diff(env, &c)?;
        }
        let (d, version) = (&c.diff, c.version);
        let plan = |change| Plan {
            env,
            base_version: version,
            diff: d,
            order: c.order.as_ref(),
            change: Some(change),
        };
        if d.is_empty() {
            return if json { json_out(&plan(None)) } else { Ok(()) };
        }
        let body = SubmitRequest {
            reason,
            declared_impact: declared,
            edits: to_edits(d),
            base_version: version,
        };
        let view: ChangeView = api.post(&format!("/v1/envs/{env}/changes"), &body).await?;
        if json {
            json_out(&plan(Some(&view)))
        } else {
            print_change(&view)
        }
    })
}
