//! `rampart audit verify`: check the audit log's hash chain; exit 1 if an entry was edited or
//! removed.

use anyhow::Result;
use clap::{Args, Subcommand};
use rampart_api::AuditReport;

use super::ClientArgs;
use crate::client::client;
use crate::output::{Reported, json_out, out};

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    #[command(subcommand)]
    cmd: AuditCmd,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// Check the audit log's hash chain; exit 1 if an entry was edited or removed.
    Verify,
}

pub(crate) fn run(a: AuditArgs) -> Result<()> {
    let json = a.client.json;
    client(&a.client, |api| async move {
        match a.cmd {
            AuditCmd::Verify => {
                let v: AuditReport = api.get("/v1/audit/verify").await?;
                if json {
                    json_out(&v)?;
                } else if v.ok {
                    out(&format!(
                        "audit log OK: {} entries, head seq {} hash {}",
                        v.entries, v.head_seq, v.head_hash
                    ))?;
                }
                if v.ok {
                    return Ok(());
                }
                eprintln!(
                    "error: the audit log is broken at seq {}: {}",
                    v.bad_seq
                        .map_or_else(|| "null".to_owned(), |s| s.to_string()),
                    v.error.as_deref().unwrap_or("verification failed")
                );
                Err(Reported.into())
            }
        }
    })
}
