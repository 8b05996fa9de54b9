//! `rampart fleet`: which gateway of an environment runs which snapshot.

use anyhow::Result;
use rampart_api::Fleet;

use super::EnvArgs;
use crate::client::{ApiFailure, client, parse_env};
use crate::output::{Reported, answer, out};

pub(crate) fn run(a: EnvArgs) -> Result<()> {
    let json = a.client.json;
    let env = parse_env(&a.env)?;
    client(&a.client, |api| async move {
        let v: Fleet = match api.get(&format!("/v1/fleet?env={env}")).await {
            Ok(v) => v,
            Err(e) => match e.downcast_ref::<ApiFailure>() {
                Some(f) if f.status == 404 && f.message() == "no such endpoint" => {
                    eprintln!(
                        "error: the fleet view is not available on this control plane (GET /v1/fleet: 404)"
                    );
                    return Err(Reported.into());
                }
                _ => return Err(e),
            },
        };
        answer(json, &v, |v| {
            out(&format!("{} gateway(s) in {env}", v.gateways.len()))?;
            for g in &v.gateways {
                out(&format!(
                    "  {}  env={} cell={} version={} hash={} last_seen={} last_nack={}",
                    g.id,
                    g.env,
                    g.cell,
                    g.version,
                    g.hash.as_deref().unwrap_or("-"),
                    g.last_seen_ms,
                    g.last_nack.as_deref().unwrap_or("-")
                ))?;
            }
            Ok(())
        })
    })
}
