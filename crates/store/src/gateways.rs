//! The fleet: what each gateway last said, and its last report for the gates.

use std::collections::BTreeMap;

use rampart_api::GatewaySeen;
use rampart_model::EnumName;
use rampart_model::config::Environment;
use rampart_model::wire::GatewayReport;
use sqlx::{AnyConnection, Row};

use crate::codec::{arg_i64, from_json, json, stored_u64};
use crate::{Handle, Result};

/// A gateway's row and its last report.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayState {
    pub seen: GatewaySeen,
    pub report: Option<GatewayReport>,
}

/// The fleet, on any [`Handle`].
pub trait Gateways: Handle {
    /// Record what a gateway said: its identity and the time, and (when given) the snapshot
    /// it runs and its last NACK. Fields given as `None` keep their stored value.
    async fn upsert_gateway(self, seen: &GatewaySeen) -> Result<()> {
        self.run(async |c| {
            sqlx::query(
                "INSERT INTO gateways (env, id, cell, version, hash, last_seen_ms, last_nack) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (env, id) DO UPDATE SET cell = excluded.cell, \
                 version = excluded.version, hash = COALESCE(excluded.hash, gateways.hash), \
                 last_seen_ms = excluded.last_seen_ms, \
                 last_nack = COALESCE(excluded.last_nack, gateways.last_nack)",
            )
            .bind(seen.env.as_str())
            .bind(&seen.id)
            .bind(&seen.cell)
            .bind(&seen.version)
            .bind(seen.hash.clone())
            .bind(arg_i64(seen.last_seen_ms, "last_seen_ms")?)
            .bind(seen.last_nack.clone())
            .execute(&mut *c)
            .await?;
            Ok(())
        })
        .await
    }

    /// Every gateway of `env`, by id.
    async fn gateways(self, env: Environment) -> Result<Vec<GatewaySeen>> {
        self.run(async |c| gateways(c, env).await).await
    }

    /// Store a gateway's last report (its row must exist: see [`Gateways::upsert_gateway`]).
    async fn put_report(self, env: Environment, report: &GatewayReport) -> Result<()> {
        self.run(async |c| {
            sqlx::query("UPDATE gateways SET report = $1 WHERE env = $2 AND id = $3")
                .bind(json(report, "the report")?)
                .bind(env.as_str())
                .bind(&report.gateway.id)
                .execute(&mut *c)
                .await?;
            Ok(())
        })
        .await
    }

    /// Every gateway of `env`, with its last report if it was seen at or after `since_ms`
    /// (reports of gateways gone quiet are not read: the gates ignore them anyway).
    async fn gateway_states(self, env: Environment, since_ms: u64) -> Result<Vec<GatewayState>> {
        self.run(async |c| {
            let seen = gateways(c, env).await?;
            let rows = sqlx::query(
                "SELECT id, report FROM gateways WHERE env = $1 AND last_seen_ms >= $2 \
                 AND report IS NOT NULL",
            )
            .bind(env.as_str())
            .bind(arg_i64(since_ms, "since_ms")?)
            .fetch_all(&mut *c)
            .await?;
            let mut reports = BTreeMap::new();
            for r in &rows {
                let id: String = r.try_get("id")?;
                let report: GatewayReport = from_json(
                    &r.try_get::<String, _>("report")?,
                    format!("report of gateway {id}"),
                )?;
                reports.insert(id, report);
            }
            Ok(seen
                .into_iter()
                .map(|s| GatewayState {
                    report: reports.remove(&s.id),
                    seen: s,
                })
                .collect())
        })
        .await
    }
}

impl<H: Handle> Gateways for H {}

async fn gateways(c: &mut AnyConnection, env: Environment) -> Result<Vec<GatewaySeen>> {
    let rows = sqlx::query(
        "SELECT id, cell, version, hash, last_seen_ms, last_nack FROM gateways \
         WHERE env = $1 ORDER BY id",
    )
    .bind(env.as_str())
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(GatewaySeen {
                env,
                id: r.try_get("id")?,
                cell: r.try_get("cell")?,
                version: r.try_get("version")?,
                hash: r.try_get("hash")?,
                last_seen_ms: stored_u64(r.try_get("last_seen_ms")?, "gateways.last_seen_ms")?,
                last_nack: r.try_get("last_nack")?,
            })
        })
        .collect()
}
