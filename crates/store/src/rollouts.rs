//! Rollouts (compare-and-set on `rev`) and their decision logs.

use std::collections::BTreeMap;

use rampart_api::{RolloutDecision, RolloutState, RolloutView, StageEval};
use rampart_model::change::RolloutPlan;
use rampart_model::config::Environment;
use rampart_model::wire::{CohortCounters, CohortWindow, ImpactCounts};
use rampart_model::{ContentHash, EnumName, Risk};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::codec::{
    arg_i64, corrupt, from_json, json, now_ms, opt_arg_i64, opt_u64, stored_name, stored_u64,
};
use crate::{Handle, Result, StoreError};

/// Where each gateway's part of a stage's window starts, by gateway id.
pub type Marks = BTreeMap<String, Mark>;

/// Where one gateway's part of a stage's window starts: its cumulative counters in its first
/// report under the stage, and what earlier processes of it counted in this stage (a gateway
/// that restarts starts its counters from zero; its evidence so far is carried, not lost).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// The process the counters belong to
    /// ([`GatewayReport::started_ms`](rampart_model::wire::GatewayReport::started_ms)).
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
    /// The newest evaluation of the gates, for `rampart rollout watch`.
    pub last_eval: Option<rampart_api::StageEval>,
    /// Why it ended, when it did not succeed.
    pub reason: Option<String>,
    /// Bumped by every update; updates compare-and-set on it.
    pub rev: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub finished_ms: Option<u64>,
}

impl RolloutRecord {
    /// The rollout as the API shows it, with its soak so far and its decisions.
    pub fn into_view(self, soaked_secs: f64, decisions: Vec<RolloutDecision>) -> RolloutView {
        RolloutView {
            id: self.id,
            change_id: self.change_id,
            env: self.env,
            risk: self.risk,
            state: self.state,
            stages: self.plan.stages,
            stage_index: self.stage_index,
            stage_started_ms: self.stage_started_ms,
            paused_at_ms: self.paused_at_ms,
            paused_total_ms: self.paused_total_ms,
            baseline_version: self.baseline_version,
            candidate_version: self.candidate_version,
            baseline_hash: self.baseline_hash,
            candidate_hash: self.candidate_hash,
            last_eval: self.last_eval,
            reason: self.reason,
            rev: self.rev,
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
            finished_ms: self.finished_ms,
            soaked_secs,
            decisions,
        }
    }

    /// Milliseconds of soak in the current stage at `now`: time since the stage started,
    /// pauses excluded.
    pub fn soaked_ms(&self, now: u64) -> u64 {
        let paused_now = self.paused_at_ms.map_or(0, |p| now.saturating_sub(p));
        now.saturating_sub(self.stage_started_ms)
            .saturating_sub(self.paused_total_ms)
            .saturating_sub(paused_now)
    }
}

const ROLLOUT_COLUMNS: &str = "SELECT id, change_id, env, risk, state, plan, stage_index, \
     stage_started_ms, paused_at_ms, paused_total_ms, marks, baseline_version, candidate_version, \
     baseline_hash, candidate_hash, last_eval, reason, rev, created_at, updated_at, finished_at \
     FROM rollouts";

/// The columns a rollout's progress moves, encoded: written by insert and by update alike.
struct Progress {
    state: &'static str,
    stage_index: i64,
    stage_started_ms: i64,
    paused_at_ms: Option<i64>,
    paused_total_ms: i64,
    marks: String,
    last_eval: Option<String>,
    reason: Option<String>,
    finished_at: Option<i64>,
}

impl Progress {
    fn of(r: &RolloutRecord) -> Result<Progress> {
        Ok(Progress {
            state: r.state.as_str(),
            stage_index: arg_i64(r.stage_index as u64, "stage_index")?,
            stage_started_ms: arg_i64(r.stage_started_ms, "stage_started_ms")?,
            paused_at_ms: opt_arg_i64(r.paused_at_ms, "paused_at_ms")?,
            paused_total_ms: arg_i64(r.paused_total_ms, "paused_total_ms")?,
            marks: json(&r.marks, "the marks")?,
            last_eval: r
                .last_eval
                .as_ref()
                .map(|v| json(v, "the last evaluation"))
                .transpose()?,
            reason: r.reason.clone(),
            finished_at: opt_arg_i64(r.finished_ms, "finished_at")?,
        })
    }

    /// Bind the progress columns: state, stage_index, stage_started_ms, paused_at_ms,
    /// paused_total_ms, marks, last_eval, reason, finished_at.
    fn bind(self, q: AnyQuery<'_>) -> AnyQuery<'_> {
        q.bind(self.state)
            .bind(self.stage_index)
            .bind(self.stage_started_ms)
            .bind(self.paused_at_ms)
            .bind(self.paused_total_ms)
            .bind(self.marks)
            .bind(self.last_eval)
            .bind(self.reason)
            .bind(self.finished_at)
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Rollouts and their decisions, on any [`Handle`].
pub trait Rollouts: Handle {
    /// Record a new rollout.
    async fn insert_rollout(self, r: &RolloutRecord) -> Result<()> {
        self.run(async |c| {
            let q = sqlx::query(
                "INSERT INTO rollouts (id, change_id, env, risk, plan, baseline_version, \
                 candidate_version, baseline_hash, candidate_hash, created_at, rev, updated_at, \
                 state, stage_index, stage_started_ms, paused_at_ms, paused_total_ms, marks, \
                 last_eval, reason, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                 $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
            )
            .bind(&r.id)
            .bind(&r.change_id)
            .bind(r.env.as_str())
            .bind(r.risk.as_str())
            .bind(json(&r.plan, "the plan")?)
            .bind(arg_i64(r.baseline_version, "baseline_version")?)
            .bind(arg_i64(r.candidate_version, "candidate_version")?)
            .bind(r.baseline_hash.to_string())
            .bind(r.candidate_hash.to_string())
            .bind(arg_i64(r.created_ms, "created_at")?)
            .bind(arg_i64(r.rev, "rev")?)
            .bind(arg_i64(r.updated_ms, "updated_at")?);
            Progress::of(r)?.bind(q).execute(&mut *c).await?;
            Ok(())
        })
        .await
    }

    /// Write `r` over the stored row if its `rev` is still `r.rev`; bumps `r.rev` and
    /// `r.updated_ms`. [`StoreError::Conflict`] if another writer moved the rollout first.
    async fn update_rollout(self, r: &mut RolloutRecord) -> Result<()> {
        let now = now_ms().max(0) as u64;
        self.run(async |c| {
            let q = sqlx::query(
                "UPDATE rollouts SET state = $1, stage_index = $2, stage_started_ms = $3, \
                     paused_at_ms = $4, paused_total_ms = $5, marks = $6, last_eval = $7, \
                     reason = $8, finished_at = $9, rev = $10, updated_at = $11 \
                     WHERE id = $12 AND rev = $13",
            );
            let moved = Progress::of(r)?
                .bind(q)
                .bind(arg_i64(r.rev + 1, "rev")?)
                .bind(arg_i64(now, "updated_at")?)
                .bind(&r.id)
                .bind(arg_i64(r.rev, "rev")?)
                .execute(&mut *c)
                .await?
                .rows_affected();
            if moved != 1 {
                return Err(StoreError::Conflict {
                    expected: r.rev,
                    actual: r.rev + 1,
                });
            }
            Ok(())
        })
        .await?;
        r.rev += 1;
        r.updated_ms = now;
        Ok(())
    }

    /// Append a decision to a rollout's log.
    async fn add_decision(self, rollout_id: &str, d: &RolloutDecision) -> Result<()> {
        self.atomic(async |c| {
            let seq: Option<i64> =
                sqlx::query_scalar("SELECT MAX(seq) FROM rollout_decisions WHERE rollout_id = $1")
                    .bind(rollout_id)
                    .fetch_one(&mut *c)
                    .await?;
            sqlx::query(
                "INSERT INTO rollout_decisions (rollout_id, seq, at, stage_index, stage, action, \
                 actor, evidence) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(rollout_id)
            .bind(seq.unwrap_or(0) + 1)
            .bind(arg_i64(d.at_ms, "at")?)
            .bind(arg_i64(d.stage_index as u64, "stage_index")?)
            .bind(&d.stage)
            .bind(d.action.as_str())
            .bind(&d.actor)
            .bind(d.evidence.to_string())
            .execute(&mut *c)
            .await?;
            Ok(())
        })
        .await
    }

    /// A rollout by id.
    async fn rollout(self, id: &str) -> Result<Option<RolloutRecord>> {
        self.run(async |c| newest_where(c, "id", id).await).await
    }

    /// The rollout of a change, if it has one.
    async fn rollout_of_change(self, change_id: &str) -> Result<Option<RolloutRecord>> {
        self.run(async |c| newest_where(c, "change_id", change_id).await)
            .await
    }

    /// The newest rollouts of `env`, newest first.
    async fn rollouts(self, env: Environment, limit: u32) -> Result<Vec<RolloutRecord>> {
        self.run(async |c| {
            let rows = sqlx::query(&format!(
                "{ROLLOUT_COLUMNS} WHERE env = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
            ))
            .bind(env.as_str())
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await?;
            rows.iter().map(rollout_from).collect()
        })
        .await
    }

    /// Every rollout still running or paused, oldest first.
    async fn active_rollouts(self) -> Result<Vec<RolloutRecord>> {
        self.run(async |c| {
            let rows = sqlx::query(&format!(
                "{ROLLOUT_COLUMNS} WHERE state IN ($1, $2) ORDER BY created_at"
            ))
            .bind(RolloutState::Running.as_str())
            .bind(RolloutState::Paused.as_str())
            .fetch_all(&mut *c)
            .await?;
            rows.iter().map(rollout_from).collect()
        })
        .await
    }

    /// A rollout's decisions, in order.
    async fn decisions(self, rollout_id: &str) -> Result<Vec<RolloutDecision>> {
        self.run(async |c| {
            let rows = sqlx::query(
                "SELECT at, stage_index, stage, action, actor, evidence FROM rollout_decisions \
                 WHERE rollout_id = $1 ORDER BY seq",
            )
            .bind(rollout_id)
            .fetch_all(&mut *c)
            .await?;
            rows.iter()
                .map(|r| {
                    let what = || format!("decision of rollout {rollout_id}");
                    Ok(RolloutDecision {
                        at_ms: stored_u64(r.try_get("at")?, "rollout_decisions.at")?,
                        stage_index: stored_u64(
                            r.try_get("stage_index")?,
                            "rollout_decisions.stage_index",
                        )? as usize,
                        stage: r.try_get("stage")?,
                        action: stored_name(
                            "rollout_decisions.action",
                            "decision action",
                            &r.try_get::<String, _>("action")?,
                        )?,
                        actor: r.try_get("actor")?,
                        evidence: from_json(&r.try_get::<String, _>("evidence")?, what())?,
                    })
                })
                .collect()
        })
        .await
    }
}

impl<H: Handle> Rollouts for H {}

/// The newest rollout whose `column` is `value`.
async fn newest_where(
    c: &mut AnyConnection,
    column: &str,
    value: &str,
) -> Result<Option<RolloutRecord>> {
    let row = sqlx::query(&format!(
        "{ROLLOUT_COLUMNS} WHERE {column} = $1 ORDER BY created_at DESC LIMIT 1"
    ))
    .bind(value)
    .fetch_optional(&mut *c)
    .await?;
    row.as_ref().map(rollout_from).transpose()
}

fn rollout_from(row: &AnyRow) -> Result<RolloutRecord> {
    let id: String = row.try_get("id")?;
    let what = || format!("rollout {id}");
    let text = |col: &str| -> Result<String> { Ok(row.try_get::<String, _>(col)?) };
    let plan: RolloutPlan = from_json(&text("plan")?, what())?;
    let marks: Marks = from_json(&text("marks")?, what())?;
    // Only shown, and rewritten at the next step: an evaluation an older version wrote in
    // another shape is dropped rather than making the rollout unreadable.
    let last_eval = row
        .try_get::<Option<String>, _>("last_eval")?
        .and_then(|s| serde_json::from_str::<StageEval>(&s).ok());
    let hash = |col: &str| -> Result<ContentHash> {
        ContentHash::try_from(text(col)?).map_err(|e| corrupt(what(), e))
    };
    let stage_index = stored_u64(row.try_get("stage_index")?, "rollouts.stage_index")?;
    let stage_index = usize::try_from(stage_index).map_err(|e| corrupt(what(), e))?;
    if stage_index >= plan.stages.len() {
        return Err(corrupt(
            what(),
            format!("stage {stage_index} of a {}-stage plan", plan.stages.len()),
        ));
    }
    let number =
        |col: &str| -> Result<u64> { stored_u64(row.try_get(col)?, &format!("rollouts.{col}")) };
    let optional = |col: &str| -> Result<Option<u64>> {
        opt_u64(row.try_get(col)?, &format!("rollouts.{col}"))
    };
    Ok(RolloutRecord {
        change_id: row.try_get("change_id")?,
        env: stored_name("rollouts.env", "environment", &text("env")?)?,
        risk: stored_name("rollouts.risk", "risk", &text("risk")?)?,
        state: stored_name("rollouts.state", "rollout state", &text("state")?)?,
        plan,
        stage_index,
        stage_started_ms: number("stage_started_ms")?,
        paused_at_ms: optional("paused_at_ms")?,
        paused_total_ms: number("paused_total_ms")?,
        marks,
        baseline_version: number("baseline_version")?,
        candidate_version: number("candidate_version")?,
        baseline_hash: hash("baseline_hash")?,
        candidate_hash: hash("candidate_hash")?,
        last_eval,
        reason: row.try_get("reason")?,
        rev: number("rev")?,
        created_ms: number("created_at")?,
        updated_ms: number("updated_at")?,
        finished_ms: optional("finished_at")?,
        id,
    })
}
