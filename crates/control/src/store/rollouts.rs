//! Rollouts, their decisions, deployments, gateway reports and request samples.
//!
//! | table | what | mutability |
//! |---|---|---|
//! | `deployments(env, seq, hash, body, rollout_id, cause, created_at)` | what gateways run: the newest row of an environment is streamed to it | append-only |
//! | `rollouts(id, change_id, env, risk, state, plan, stage_index, ...)` | one row per rollout: its plan, its stage, the timestamps soak time is computed from | compare-and-set on `rev` |
//! | `rollout_decisions(rollout_id, seq, at, stage_index, stage, action, actor, evidence)` | every decision with its evidence | append-only |
//! | `sample_batches(env, id, gateway, at_ms, body)` | request samples gateways upload, for the impact test | pruned to the newest |
//! | `gateways.report` | the last [`GatewayReport`] of each gateway, for the gates | overwritten |

use rampart_api::RolloutState;
use rampart_model::EnumName;
use std::collections::BTreeMap;

use rampart_model::change::RolloutPlan;
use rampart_model::config::Environment;
use rampart_model::wire::{CohortCounters, GatewayReport, ImpactCounts};

use crate::gates::CohortWindow;
use rampart_model::{ContentHash, Risk, Snapshot};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{
    GatewaySeen, Result, Store, StoreError, StoreTx, arg_i64, corrupt, now_ms, parse_env,
    parse_risk, risk_name, stored_u64,
};

/// Where each gateway's part of a stage's window starts, by gateway id.
pub type Marks = BTreeMap<String, Mark>;

/// Where one gateway's part of a stage's window starts: its cumulative counters in its first
/// report under the stage, and what earlier processes of it counted in this stage (a gateway
/// that restarts starts its counters from zero; its evidence so far is carried, not lost).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// The process the counters belong to ([`GatewayReport::started_ms`]).
    #[serde(default)]
    pub started_ms: Option<u64>,
    /// Its cumulative counters at the start of its window; empty: from zero.
    pub cohorts: Vec<CohortCounters>,
    /// What earlier processes of this gateway counted in this stage, added together.
    #[serde(default)]
    pub carried: GatewayWindow,
    /// What this process had counted at the last look: carried over if it restarts.
    #[serde(default)]
    pub last: GatewayWindow,
}

/// One gateway's counts over (part of) a stage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayWindow {
    pub baseline: CohortWindow,
    pub candidate: CohortWindow,
    pub shadow: ImpactCounts,
    pub guard_tripped: bool,
}

impl GatewayWindow {
    pub fn add(&mut self, other: &GatewayWindow) {
        self.baseline.add(&other.baseline);
        self.candidate.add(&other.candidate);
        self.shadow.add(&other.shadow);
        self.guard_tripped |= other.guard_tripped;
    }
}

/// A stored rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutRecord {
    pub id: String,
    pub change_id: String,
    pub env: Environment,
    pub risk: Risk,
    pub state: RolloutState,
    /// Serialized flat: `stages` at the top of the rollout's JSON.
    #[serde(flatten)]
    pub plan: RolloutPlan,
    pub stage_index: usize,
    /// When the current stage started (ms since the epoch).
    pub stage_started_ms: u64,
    /// Set while paused: when the pause began.
    pub paused_at_ms: Option<u64>,
    /// Time paused during the current stage, not counted as soak.
    pub paused_total_ms: u64,
    #[serde(skip)]
    pub marks: Marks,
    pub baseline_version: u64,
    pub candidate_version: u64,
    pub baseline_hash: ContentHash,
    pub candidate_hash: ContentHash,
    /// The newest evaluation of the gates (JSON), for `rampart rollout watch`.
    pub last_eval: Option<serde_json::Value>,
    /// Why it ended, when it did not succeed.
    pub reason: Option<String>,
    /// Bumped by every update; updates compare-and-set on it.
    pub rev: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub finished_ms: Option<u64>,
}

impl RolloutRecord {
    /// Milliseconds of soak in the current stage at `now`: time since the stage started,
    /// pauses excluded.
    pub fn soaked_ms(&self, now: u64) -> u64 {
        let paused_now = self.paused_at_ms.map_or(0, |p| now.saturating_sub(p));
        now.saturating_sub(self.stage_started_ms)
            .saturating_sub(self.paused_total_ms)
            .saturating_sub(paused_now)
    }
}

/// One decision of a rollout, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub at_ms: u64,
    pub stage_index: usize,
    pub stage: String,
    /// `started`, `advanced`, `paused`, `resumed`, `aborted`, `rolled_back`, `succeeded`.
    pub action: String,
    pub actor: String,
    pub evidence: serde_json::Value,
}

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

/// A gateway's row and its last report.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayState {
    pub seen: GatewaySeen,
    pub report: Option<GatewayReport>,
}

const ROLLOUT_COLUMNS: &str = "SELECT id, change_id, env, risk, state, plan, stage_index, \
     stage_started_ms, paused_at_ms, paused_total_ms, marks, baseline_version, candidate_version, \
     baseline_hash, candidate_hash, last_eval, reason, rev, created_at, updated_at, finished_at \
     FROM rollouts";

fn json<T: Serialize>(v: &T, what: &str) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid {
        reason: format!("cannot encode {what}: {e}"),
    })
}

fn opt_u64(v: Option<i64>, what: &str) -> Result<Option<u64>> {
    v.map(|v| stored_u64(v, what)).transpose()
}

fn rollout_from(row: &AnyRow) -> Result<RolloutRecord> {
    let id: String = row.try_get("id")?;
    let what = || format!("rollout {id}");
    let decode = |col: &str| -> Result<String> { Ok(row.try_get::<String, _>(col)?) };
    let plan: RolloutPlan =
        serde_json::from_str(&decode("plan")?).map_err(|e| corrupt(what(), e))?;
    let marks: Marks = serde_json::from_str(&decode("marks")?).map_err(|e| corrupt(what(), e))?;
    let last_eval: Option<String> = row.try_get("last_eval")?;
    let last_eval = last_eval
        .map(|s| serde_json::from_str(&s))
        .transpose()
        .map_err(|e| corrupt(what(), e))?;
    let hash = |col: &str| -> Result<ContentHash> {
        ContentHash::try_from(decode(col)?).map_err(|e| corrupt(what(), e))
    };
    let stage_index = stored_u64(row.try_get("stage_index")?, "rollouts.stage_index")?;
    let stage_index = usize::try_from(stage_index).map_err(|e| corrupt(what(), e))?;
    if stage_index >= plan.stages.len() {
        return Err(corrupt(
            what(),
            format!("stage {stage_index} of a {}-stage plan", plan.stages.len()),
        ));
    }
    Ok(RolloutRecord {
        change_id: row.try_get("change_id")?,
        env: parse_env(&decode("env")?)?,
        risk: parse_risk(&decode("risk")?)?,
        state: decode("state")?.parse().map_err(|e| corrupt(what(), e))?,
        plan,
        stage_index,
        stage_started_ms: stored_u64(
            row.try_get("stage_started_ms")?,
            "rollouts.stage_started_ms",
        )?,
        paused_at_ms: opt_u64(row.try_get("paused_at_ms")?, "rollouts.paused_at_ms")?,
        paused_total_ms: stored_u64(row.try_get("paused_total_ms")?, "rollouts.paused_total_ms")?,
        marks,
        baseline_version: stored_u64(
            row.try_get("baseline_version")?,
            "rollouts.baseline_version",
        )?,
        candidate_version: stored_u64(
            row.try_get("candidate_version")?,
            "rollouts.candidate_version",
        )?,
        baseline_hash: hash("baseline_hash")?,
        candidate_hash: hash("candidate_hash")?,
        last_eval,
        reason: row.try_get("reason")?,
        rev: stored_u64(row.try_get("rev")?, "rollouts.rev")?,
        created_ms: stored_u64(row.try_get("created_at")?, "rollouts.created_at")?,
        updated_ms: stored_u64(row.try_get("updated_at")?, "rollouts.updated_at")?,
        finished_ms: opt_u64(row.try_get("finished_at")?, "rollouts.finished_at")?,
        id,
    })
}

async fn insert_rollout(conn: &mut AnyConnection, r: &RolloutRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO rollouts (id, change_id, env, risk, state, plan, stage_index, \
         stage_started_ms, paused_at_ms, paused_total_ms, marks, baseline_version, \
         candidate_version, baseline_hash, candidate_hash, last_eval, reason, rev, created_at, \
         updated_at, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
         $13, $14, $15, $16, $17, $18, $19, $20, $21)",
    )
    .bind(&r.id)
    .bind(&r.change_id)
    .bind(r.env.as_str())
    .bind(risk_name(r.risk))
    .bind(r.state.as_str())
    .bind(json(&r.plan, "the plan")?)
    .bind(arg_i64(r.stage_index as u64, "stage_index")?)
    .bind(arg_i64(r.stage_started_ms, "stage_started_ms")?)
    .bind(
        r.paused_at_ms
            .map(|v| arg_i64(v, "paused_at_ms"))
            .transpose()?,
    )
    .bind(arg_i64(r.paused_total_ms, "paused_total_ms")?)
    .bind(json(&r.marks, "the marks")?)
    .bind(arg_i64(r.baseline_version, "baseline_version")?)
    .bind(arg_i64(r.candidate_version, "candidate_version")?)
    .bind(r.baseline_hash.to_string())
    .bind(r.candidate_hash.to_string())
    .bind(r.last_eval.as_ref().map(|v| v.to_string()))
    .bind(r.reason.clone())
    .bind(arg_i64(r.rev, "rev")?)
    .bind(arg_i64(r.created_ms, "created_at")?)
    .bind(arg_i64(r.updated_ms, "updated_at")?)
    .bind(
        r.finished_ms
            .map(|v| arg_i64(v, "finished_at"))
            .transpose()?,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Write `r` over the stored row if its `rev` is still `r.rev`; bumps `r.rev` and
/// `r.updated_ms`. [`StoreError::Conflict`] if another writer moved the rollout first.
async fn update_rollout(conn: &mut AnyConnection, r: &mut RolloutRecord) -> Result<()> {
    let now = now_ms().max(0) as u64;
    let moved = sqlx::query(
        "UPDATE rollouts SET state = $1, stage_index = $2, stage_started_ms = $3, \
         paused_at_ms = $4, paused_total_ms = $5, marks = $6, last_eval = $7, reason = $8, \
         rev = $9, updated_at = $10, finished_at = $11 WHERE id = $12 AND rev = $13",
    )
    .bind(r.state.as_str())
    .bind(arg_i64(r.stage_index as u64, "stage_index")?)
    .bind(arg_i64(r.stage_started_ms, "stage_started_ms")?)
    .bind(
        r.paused_at_ms
            .map(|v| arg_i64(v, "paused_at_ms"))
            .transpose()?,
    )
    .bind(arg_i64(r.paused_total_ms, "paused_total_ms")?)
    .bind(json(&r.marks, "the marks")?)
    .bind(r.last_eval.as_ref().map(|v| v.to_string()))
    .bind(r.reason.clone())
    .bind(arg_i64(r.rev + 1, "rev")?)
    .bind(arg_i64(now, "updated_at")?)
    .bind(
        r.finished_ms
            .map(|v| arg_i64(v, "finished_at"))
            .transpose()?,
    )
    .bind(&r.id)
    .bind(arg_i64(r.rev, "rev")?)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if moved != 1 {
        return Err(StoreError::Conflict {
            expected: r.rev,
            actual: r.rev + 1,
        });
    }
    r.rev += 1;
    r.updated_ms = now;
    Ok(())
}

async fn add_decision(conn: &mut AnyConnection, rollout_id: &str, d: &Decision) -> Result<()> {
    let seq: Option<i64> =
        sqlx::query_scalar("SELECT MAX(seq) FROM rollout_decisions WHERE rollout_id = $1")
            .bind(rollout_id)
            .fetch_one(&mut *conn)
            .await?;
    sqlx::query(
        "INSERT INTO rollout_decisions (rollout_id, seq, at, stage_index, stage, action, actor, \
         evidence) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(rollout_id)
    .bind(seq.unwrap_or(0) + 1)
    .bind(arg_i64(d.at_ms, "at")?)
    .bind(arg_i64(d.stage_index as u64, "stage_index")?)
    .bind(&d.stage)
    .bind(&d.action)
    .bind(&d.actor)
    .bind(d.evidence.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn put_deployment(
    conn: &mut AnyConnection,
    snapshot: &Snapshot,
    rollout_id: Option<&str>,
    cause: &str,
) -> Result<u64> {
    let env = snapshot.config().environment;
    sqlx::query("UPDATE locks SET n = n + 1 WHERE name = 'deploy'")
        .execute(&mut *conn)
        .await?;
    let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM deployments WHERE env = $1")
        .bind(env.as_str())
        .fetch_one(&mut *conn)
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
    .execute(&mut *conn)
    .await?;
    stored_u64(seq, "deployments.seq")
}

async fn set_change_impact(
    conn: &mut AnyConnection,
    change_id: &str,
    impact: &serde_json::Value,
) -> Result<()> {
    sqlx::query("UPDATE changes SET impact = $1 WHERE id = $2")
        .bind(impact.to_string())
        .bind(change_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl StoreTx {
    /// See [`Store::insert_rollout`].
    pub async fn insert_rollout(&mut self, r: &RolloutRecord) -> Result<()> {
        let res = insert_rollout(&mut self.tx, r).await;
        self.track(res)
    }

    /// See [`Store::update_rollout`].
    pub async fn update_rollout(&mut self, r: &mut RolloutRecord) -> Result<()> {
        let res = update_rollout(&mut self.tx, r).await;
        self.track(res)
    }

    /// See [`Store::add_decision`].
    pub async fn add_decision(&mut self, rollout_id: &str, d: &Decision) -> Result<()> {
        let res = add_decision(&mut self.tx, rollout_id, d).await;
        self.track(res)
    }

    /// See [`Store::put_deployment`].
    pub async fn put_deployment(
        &mut self,
        snapshot: &Snapshot,
        rollout_id: Option<&str>,
        cause: &str,
    ) -> Result<u64> {
        let res = put_deployment(&mut self.tx, snapshot, rollout_id, cause).await;
        let seq = self.track(res)?;
        if self.backend == super::Backend::Postgres {
            // Delivered at commit, to every replica listening.
            // The payload is one of three fixed names: no quoting to get wrong.
            let env = snapshot.config().environment;
            let notify = format!("NOTIFY {}, '{}'", super::DEPLOYED_CHANNEL, env.as_str());
            let res = sqlx::query(&notify)
                .execute(&mut *self.tx)
                .await
                .map(|_| ())
                .map_err(StoreError::from);
            self.track(res)?;
        }
        Ok(seq)
    }

    /// See [`Store::set_change_impact`].
    pub async fn set_change_impact(
        &mut self,
        change_id: &str,
        impact: &serde_json::Value,
    ) -> Result<()> {
        let res = set_change_impact(&mut self.tx, change_id, impact).await;
        self.track(res)
    }
}

impl Store {
    /// Record a new rollout.
    pub async fn insert_rollout(&self, r: &RolloutRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.insert_rollout(r).await?;
        tx.commit().await
    }

    /// Compare-and-set a rollout on its `rev`; see the module docs.
    pub async fn update_rollout(&self, r: &mut RolloutRecord) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.update_rollout(r).await?;
        tx.commit().await
    }

    /// Append a decision to a rollout's log.
    pub async fn add_decision(&self, rollout_id: &str, d: &Decision) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.add_decision(rollout_id, d).await?;
        tx.commit().await
    }

    /// Append a deployment: what the environment's gateways run next. Returns its `seq`.
    pub async fn put_deployment(
        &self,
        snapshot: &Snapshot,
        rollout_id: Option<&str>,
        cause: &str,
    ) -> Result<u64> {
        let mut tx = self.begin().await?;
        let seq = tx.put_deployment(snapshot, rollout_id, cause).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Store a change's impact report.
    pub async fn set_change_impact(
        &self,
        change_id: &str,
        impact: &serde_json::Value,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.set_change_impact(change_id, impact).await?;
        tx.commit().await
    }

    /// A change's impact report, if the impact test ran.
    pub async fn change_impact(&self, change_id: &str) -> Result<Option<serde_json::Value>> {
        let raw: Option<Option<String>> =
            sqlx::query_scalar("SELECT impact FROM changes WHERE id = $1")
                .bind(change_id)
                .fetch_optional(&self.pool)
                .await?;
        raw.flatten()
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| corrupt(format!("impact of change {change_id}"), e))
    }

    /// A rollout by id.
    pub async fn rollout(&self, id: &str) -> Result<Option<RolloutRecord>> {
        let row = sqlx::query(&format!("{ROLLOUT_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rollout_from).transpose()
    }

    /// The rollout of a change, if it has one.
    pub async fn rollout_of_change(&self, change_id: &str) -> Result<Option<RolloutRecord>> {
        let row = sqlx::query(&format!(
            "{ROLLOUT_COLUMNS} WHERE change_id = $1 ORDER BY created_at DESC LIMIT 1"
        ))
        .bind(change_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rollout_from).transpose()
    }

    /// The newest rollouts of `env`, newest first.
    pub async fn rollouts(&self, env: Environment, limit: u32) -> Result<Vec<RolloutRecord>> {
        let rows = sqlx::query(&format!(
            "{ROLLOUT_COLUMNS} WHERE env = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(env.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rollout_from).collect()
    }

    /// Every rollout still running or paused, oldest first.
    pub async fn active_rollouts(&self) -> Result<Vec<RolloutRecord>> {
        let rows = sqlx::query(&format!(
            "{ROLLOUT_COLUMNS} WHERE state IN ('running', 'paused') ORDER BY created_at"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rollout_from).collect()
    }

    /// A rollout's decisions, in order.
    pub async fn decisions(&self, rollout_id: &str) -> Result<Vec<Decision>> {
        let rows = sqlx::query(
            "SELECT at, stage_index, stage, action, actor, evidence FROM rollout_decisions \
             WHERE rollout_id = $1 ORDER BY seq",
        )
        .bind(rollout_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let evidence: String = r.try_get("evidence")?;
                Ok(Decision {
                    at_ms: stored_u64(r.try_get("at")?, "rollout_decisions.at")?,
                    stage_index: stored_u64(
                        r.try_get("stage_index")?,
                        "rollout_decisions.stage_index",
                    )? as usize,
                    stage: r.try_get("stage")?,
                    action: r.try_get("action")?,
                    actor: r.try_get("actor")?,
                    evidence: serde_json::from_str(&evidence)
                        .map_err(|e| corrupt(format!("decision of rollout {rollout_id}"), e))?,
                })
            })
            .collect()
    }

    /// The newest deployment of `env`.
    pub async fn latest_deployment(&self, env: Environment) -> Result<Option<Deployment>> {
        let row = sqlx::query(
            "SELECT seq, hash, body, rollout_id, cause, created_at FROM deployments \
             WHERE env = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(env.as_str())
        .fetch_optional(&self.pool)
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
    }

    /// The `seq` of the newest deployment of `env`.
    pub async fn deployment_seq(&self, env: Environment) -> Result<Option<u64>> {
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT MAX(seq) FROM deployments WHERE env = $1")
                .bind(env.as_str())
                .fetch_one(&self.pool)
                .await?;
        opt_u64(seq, "deployments.seq")
    }

    /// The hash of the newest deployment of `env` and the rollout it belongs to.
    pub async fn deployed_hash(
        &self,
        env: Environment,
    ) -> Result<Option<(String, Option<String>)>> {
        let row = sqlx::query(
            "SELECT hash, rollout_id FROM deployments WHERE env = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(env.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("hash")?, r.try_get("rollout_id")?)))
            .transpose()
    }

    /// The hashes deployed for a rollout.
    pub async fn rollout_hashes(&self, rollout_id: &str) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT hash FROM deployments WHERE rollout_id = $1")
                .bind(rollout_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Store a gateway's last report (its row must exist: see [`Store::upsert_gateway`]).
    pub async fn put_report(&self, env: Environment, report: &GatewayReport) -> Result<()> {
        sqlx::query("UPDATE gateways SET report = $1 WHERE env = $2 AND id = $3")
            .bind(json(report, "the report")?)
            .bind(env.as_str())
            .bind(&report.gateway.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every gateway of `env`, with its last report if it was seen at or after `since_ms`
    /// (reports of gateways gone quiet are not read: the gates ignore them anyway).
    pub async fn gateway_states(
        &self,
        env: Environment,
        since_ms: u64,
    ) -> Result<Vec<GatewayState>> {
        let seen = self.gateways(env).await?;
        let rows = sqlx::query(
            "SELECT id, report FROM gateways WHERE env = $1 AND last_seen_ms >= $2 \
             AND report IS NOT NULL",
        )
        .bind(env.as_str())
        .bind(arg_i64(since_ms, "since_ms")?)
        .fetch_all(&self.pool)
        .await?;
        let mut reports = BTreeMap::new();
        for r in &rows {
            let id: String = r.try_get("id")?;
            let text: String = r.try_get("report")?;
            let parsed: GatewayReport = serde_json::from_str(&text)
                .map_err(|e| corrupt(format!("report of gateway {id}"), e))?;
            reports.insert(id, parsed);
        }
        Ok(seen
            .into_iter()
            .map(|s| GatewayState {
                report: reports.remove(&s.id),
                seen: s,
            })
            .collect())
    }

    /// Keep a batch of request samples (its JSON), and prune `env` to its newest `keep`
    /// batches.
    pub async fn put_samples(
        &self,
        env: Environment,
        gateway: &str,
        body: &str,
        keep: u32,
    ) -> Result<()> {
        let id = super::new_id("smp")?;
        let mut tx = self.begin().await?;
        let r = async {
            sqlx::query(
                "INSERT INTO sample_batches (env, id, gateway, at_ms, body) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(env.as_str())
            .bind(&id)
            .bind(gateway)
            .bind(now_ms())
            .bind(body)
            .execute(&mut *tx.tx)
            .await?;
            sqlx::query(
                "DELETE FROM sample_batches WHERE env = $1 AND id NOT IN \
                 (SELECT id FROM sample_batches WHERE env = $1 ORDER BY at_ms DESC, id DESC LIMIT $2)",
            )
            .bind(env.as_str())
            .bind(i64::from(keep))
            .execute(&mut *tx.tx)
            .await?;
            Ok(())
        }
        .await;
        tx.track(r)?;
        tx.commit().await
    }

    /// The newest sample batches of `env` (their JSON), newest first.
    pub async fn sample_batches(&self, env: Environment, limit: u32) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT body FROM sample_batches WHERE env = $1 ORDER BY at_ms DESC, id DESC LIMIT $2",
        )
        .bind(env.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }
}
