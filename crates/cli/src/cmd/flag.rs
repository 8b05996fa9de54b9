//! `rampart flag`: the feature flags of an environment, or one of them.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rampart_api::FlagsResponse;
use rampart_model::{EnumName, Flag};
use serde_json::Value;

use super::ClientArgs;
use crate::client::{client, enc};
use crate::output::{answer, out};

#[derive(Debug, Args)]
pub(crate) struct FlagArgs {
    #[command(subcommand)]
    cmd: FlagCmd,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum FlagCmd {
    /// Every flag of an environment.
    List {
        #[arg(long)]
        env: String,
    },
    /// One flag.
    Get {
        name: String,
        #[arg(long)]
        env: String,
    },
}

pub(crate) fn run(a: FlagArgs) -> Result<()> {
    let json = a.client.json;
    client(&a.client, |api| async move {
        match a.cmd {
            FlagCmd::List { env } => {
                let (env, v): (_, FlagsResponse) = api.get_env(&env, "/flags").await?;
                answer(json, &v, |v| {
                    out(&format!(
                        "{} flag(s) in {env} (version {})",
                        v.flags.len(),
                        v.version
                    ))?;
                    for f in &v.flags {
                        out(&format!(
                            "  {}  {}  default={}",
                            f.name,
                            f.kind.as_str(),
                            f.default
                        ))?;
                    }
                    Ok(())
                })
            }
            FlagCmd::Get { name, env } => {
                let rest = format!("/flags/{}", enc(&name));
                let (env, v): (_, Flag) = api.get_env(&env, &rest).await?;
                answer(json, &v, |v| {
                    out(&format!("flag {name} in {env}"))?;
                    // Every field as the API sends it, by name, the name itself aside.
                    let Value::Object(fields) =
                        serde_json::to_value(v).context("cannot encode the flag")?
                    else {
                        return Ok(());
                    };
                    for (k, val) in fields.iter().filter(|(k, _)| *k != "name") {
                        out(&format!("  {k}: {val}"))?;
                    }
                    Ok(())
                })
            }
        }
    })
}
