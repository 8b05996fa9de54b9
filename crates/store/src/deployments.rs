//! Deployments: what each environment's gateways run, newest last. With PostgreSQL each one
//! is announced on [`DEPLOYED_CHANNEL`] at commit.

use rampart_model::config::Environment;
use rampart_model::{EnumName, Snapshot};
use sqlx::Row;

use crate::codec::{corrupt, json, now_ms, opt_u64, stored_u64};
use crate::{Backend, DEPLOYED_CHANNEL, Handle, Result};

/// What gateways run: one deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub env: Environment,
    pub seq: u64,
    pub snapshot: Snapshot,
    pub rollout_id: Option<String>,
    pub cause: String,
    pub created_ms: u64,
}

/// Deployments, on any [`Handle`].
pub trait Deployments: Handle {
    /// Append a deployment: what the environment's gateways run next. Returns its `seq`.
    async fn put_deployment(
        self,
        snapshot: &Snapshot,
        rollout_id: Option<&str>,
        cause: &str,
    ) -> Result<u64> {
        let backend = self.backend();
        self.atomic(async |c| {
            let env = snapshot.config().environment;
            sqlx::query("UPDATE locks SET n = n + 1 WHERE name = 'deploy'")
                .execute(&mut *c)
                .await?;
            let seq: Option<i64> =
                sqlx::query_scalar("SELECT MAX(seq) FROM deployments WHERE env = $1")
                    .bind(env.as_str())
                    .fetch_one(&mut *c)
                    .await?;
            let seq = seq.unwrap_or(0) + 1;
            sqlx::query(
                "INSERT INTO deployments (env, seq, hash, body, rollout_id, cause, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(env.as_str())
            .bind(seq)
            .bind(snapshot.hash().to_string())
            .bind(json(snapshot, "the snapshot")?)
            .bind(rollout_id.map(str::to_owned))
            .bind(cause)
            .bind(now_ms())
            .execute(&mut *c)
            .await?;
            if backend == Backend::Postgres {
                // Delivered at commit, to every replica listening.
                // The payload is one of three fixed names: no quoting to get wrong.
                sqlx::query(&format!("NOTIFY {DEPLOYED_CHANNEL}, '{}'", env.as_str()))
                    .execute(&mut *c)
                    .await?;
            }
            stored_u64(seq, "deployments.seq")
        })
        .await
    }

    /// The newest deployment of `env`.
    async fn latest_deployment(self, env: Environment) -> Result<Option<Deployment>> {
        self.run(async |c| {
            let row = sqlx::query(
                "SELECT seq, hash, body, rollout_id, cause, created_at FROM deployments \
                 WHERE env = $1 ORDER BY seq DESC LIMIT 1",
            )
            .bind(env.as_str())
            .fetch_optional(&mut *c)
            .await?;
            let Some(r) = row else { return Ok(None) };
            let seq = stored_u64(r.try_get("seq")?, "deployments.seq")?;
            let what = || format!("deployment {seq} of {env}");
            let body: String = r.try_get("body")?;
            let snapshot = Snapshot::from_json(&body).map_err(|e| corrupt(what(), e))?;
            let hash: String = r.try_get("hash")?;
            if snapshot.hash().to_string() != hash {
                return Err(corrupt(what(), "its content does not match its hash"));
            }
            Ok(Some(Deployment {
                env,
                seq,
                snapshot,
                rollout_id: r.try_get("rollout_id")?,
                cause: r.try_get("cause")?,
                created_ms: stored_u64(r.try_get("created_at")?, "deployments.created_at")?,
            }))
        })
        .await
    }

    /// The `seq` of the newest deployment of `env`.
    async fn deployment_seq(self, env: Environment) -> Result<Option<u64>> {
        self.run(async |c| {
            let seq: Option<i64> =
                sqlx::query_scalar("SELECT MAX(seq) FROM deployments WHERE env = $1")
                    .bind(env.as_str())
                    .fetch_one(&mut *c)
                    .await?;
            opt_u64(seq, "deployments.seq")
        })
        .await
    }

    /// The hash of the newest deployment of `env` and the rollout it belongs to.
    async fn deployed_hash(self, env: Environment) -> Result<Option<(String, Option<String>)>> {
        self.run(async |c| {
            let row = sqlx::query(
                "SELECT hash, rollout_id FROM deployments WHERE env = $1 \
                 ORDER BY seq DESC LIMIT 1",
            )
            .bind(env.as_str())
            .fetch_optional(&mut *c)
            .await?;
            row.map(|r| Ok((r.try_get("hash")?, r.try_get("rollout_id")?)))
                .transpose()
        })
        .await
    }

    /// The hashes deployed for a rollout.
    async fn rollout_hashes(self, rollout_id: &str) -> Result<Vec<String>> {
        self.run(async |c| {
            Ok(
                sqlx::query_scalar("SELECT hash FROM deployments WHERE rollout_id = $1")
                    .bind(rollout_id)
                    .fetch_all(&mut *c)
                    .await?,
            )
        })
        .await
    }
}

impl<H: Handle> Deployments for H {}
