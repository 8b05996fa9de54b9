//! The rollout engine: it takes an approved change from the baseline to the candidate through
//! the stages of its plan ([`crate::plan`]), judges every stage with the gates
//! ([`crate::gates`]) on the counters gateways report, and rolls back to the last known good
//! snapshot (LKG) when a gate fails.
//!
//! # Life of a rollout
//! 1. `apply` of an approved change runs the impact test ([`crate::impact`]) on the request
//!    samples gateways uploaded; a change whose measured impact exceeds its declared impact is
//!    blocked there, with the report stored on the change. Otherwise its edits become the next
//!    version of the environment, and the rollout starts: the first stage is deployed as the
//!    baseline config plus the candidate, scoped by cells, gateway ids and a sticky share of
//!    requests (or, in a shadow stage, evaluated beside the baseline without being served).
//! 2. The driver ([`Engine`]) looks at every running rollout several times a second. It sums,
//!    over the gateways in the stage's scope, what each cohort did since the stage started
//!    (the cumulative counters minus the marks taken at the stage's start), and judges the
//!    stage's gates. Every evaluation is stored on the rollout (`last_eval`); every decision
//!    (advance, success, rollback) is stored with its evidence and audited.
//! 3. A stage ends when its minimum soak time (pauses excluded) and its minimum sample count
//!    are both reached with every gate passing; then the next stage is deployed. After the last
//!    stage, the candidate alone is deployed and its snapshot becomes verified: the new LKG.
//! 4. A failing gate (or an abort) ends the rollout at once: the LKG is deployed fleet-wide,
//!    the environment's objects go back to the LKG's, the change is marked rolled back with
//!    the evidence. With no LKG yet, the rollout's baseline is used, and the decision says so.
//!
//! # Durability and a single driver
//! Everything above lives in the store: the stage, when it started, the pauses and the marks.
//! A control plane restarted mid-stage resumes with soak computed from those timestamps (no
//! stage skipped, no soak reset). With PostgreSQL, replicas elect one driver with a session
//! advisory lock (`pg_try_advisory_lock`) held on a dedicated connection: when the driver dies,
//! its connection closes, the lock is released, and another replica's next attempt takes it.
//! With SQLite there is one control plane, and it drives.

use rampart_api::{ChangeStatus, RolloutState};
use rampart_model::EnumName;
use rampart_model::clock::unix_ms;
use std::time::Duration;

use rampart_eval::Evaluator;
use rampart_model::change::{Change, Edit, Object, ObjectKind};
use rampart_model::snapshot::StageScope;
use rampart_model::wire::{CohortCounters, ImpactCounts, SampleBatch};
use rampart_model::{Config, Environment, Rollout, Snapshot};
use serde::Serialize;
use serde_json::{Value, json};

use crate::audit::AuditAction;
use crate::gates::{self, CohortWindow, ShadowWindow, StageWindow, Verdict};
use crate::impact;
use crate::service::{Result, Service, ServiceError, audit_in, deployed_record};
use crate::store::ops::*;
use crate::store::{
    AdvisoryLock, Backend, ChangeRecord, GatewayState, GatewayWindow, Mark, Marks, RolloutDecision,
    RolloutRecord, SnapshotRecord, StoreError,
};
use rampart_api::DecisionAction;

/// Reports older than this do not count: the gateway is gone or partitioned.
pub const FRESH_REPORT_MS: u64 = 5_000;

/// Sample batches the impact test reads (the newest), and keeps per environment.
pub const SAMPLE_BATCHES: u32 = 200;

/// The advisory-lock key of the rollout driver (PostgreSQL).
const DRIVER_LOCK_KEY: i64 = 0x0072_616d_7061_7274; // "rampart"

/// How many times a manual action re-reads a rollout that the driver moved meanwhile (it
/// writes each evaluation), before giving up with a conflict.
const CONTROL_ATTEMPTS: usize = 5;

fn moved(id: &str) -> impl Fn(StoreError) -> ServiceError + '_ {
    move |e| match e {
        StoreError::Conflict { .. } => ServiceError::Conflict {
            code: "rollout_moved",
            message: format!("rollout `{id}` moved meanwhile; re-read and retry"),
        },
        e => e.into(),
    }
}

fn is_moved(e: &ServiceError) -> bool {
    matches!(
        e,
        ServiceError::Conflict {
            code: "rollout_moved",
            ..
        }
    )
}

/// A rollout as the API shows it: the record, its decisions and the current stage's soak.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutView {
    #[serde(flatten)]
    pub record: RolloutRecord,
    /// Soak of the current stage so far, pauses excluded.
    pub soaked_secs: f64,
    pub decisions: Vec<RolloutDecision>,
}

fn in_scope(scope: &StageScope, g: &GatewayState) -> bool {
    (scope.cells.is_empty() || scope.cells.contains(&g.seen.cell))
        && (scope.gateways.is_empty() || scope.gateways.contains(&g.seen.id))
}

fn cohort<'a>(cohorts: &'a [CohortCounters], rollout: Option<&str>) -> Option<&'a CohortCounters> {
    cohorts.iter().find(|c| c.rollout.as_deref() == rollout)
}

/// A change written against an older version of its environment.
fn stale(record: &ChangeRecord, head: u64) -> ServiceError {
    ServiceError::Conflict {
        code: "stale_version",
        message: format!(
            "change `{}` was written against version {} of {}, which is now at version {head}; it stays {} and must be resubmitted against the current config",
            record.id, record.base_version, record.env, record.status
        ),
    }
}

/// Whether a change turns a switch on: a boolean flag whose default goes from false (or from
/// not existing) to true. Such a "kill switch" is still a change, and takes a fast canary.
fn turns_a_switch_on(change: &Change, current: &Config) -> bool {
    change.edits.iter().any(|e| match e {
        Edit::Upsert(Object::Flag(f)) => {
            f.default == serde_json::Value::Bool(true)
                && current
                    .flags
                    .iter()
                    .find(|c| c.name == f.name)
                    .is_none_or(|c| c.default != serde_json::Value::Bool(true))
        }
        _ => false,
    })
}

/// Whether a change touches a policy, directly or through a flag bound to a policy field:
/// such changes soak longer.
fn touches_policy(change: &Change, candidate: &Config) -> bool {
    change.edits.iter().any(|e| match e {
        Edit::Upsert(Object::Policy(_)) => true,
        Edit::Delete { kind, .. } if *kind == ObjectKind::Policy => true,
        Edit::Upsert(Object::Flag(f)) => {
            let needle = json!({ "flag": f.name }).to_string();
            candidate
                .policies
                .iter()
                .any(|p| serde_json::to_string(p).is_ok_and(|s| s.contains(&needle)))
        }
        _ => false,
    })
}

impl Service {
    /// The rollout of `env` still running or paused, if any.
    pub async fn active_rollout(&self, env: Environment) -> Result<Option<RolloutRecord>> {
        Ok(self
            .store()
            .active_rollouts()
            .await?
            .into_iter()
            .find(|r| r.env == env))
    }

    /// The plain configuration the gateways of `env` run when no rollout is active: the newest
    /// deployment (or, in a store written before deployments existed, the newest snapshot).
    pub async fn deployed_config(&self, env: Environment) -> Result<Option<SnapshotRecord>> {
        let Some(latest) = self.store().latest_snapshot(env).await? else {
            return Ok(None);
        };
        let Some(dep) = self.store().latest_deployment(env).await? else {
            return Ok(Some(latest));
        };
        // Every deployment's config is a stored snapshot (the first config, a rollout's
        // candidate, or the target of a rollback): find it by its hash.
        let plain = Snapshot::new(dep.snapshot.config().clone(), Vec::new());
        let stored = self.store().snapshot_by_hash(env, plain.hash()).await?;
        stored.map(Some).ok_or_else(|| {
            ServiceError::Internal(format!(
                "deployment {} of {env} runs a config that is not a stored snapshot ({})",
                dep.seq,
                plain.hash()
            ))
        })
    }

    /// The impact test of a change: samples replayed through baseline and candidate.
    pub async fn impact_report(
        &self,
        env: Environment,
        baseline: &Snapshot,
        candidate: &Snapshot,
        declared_percent: f64,
    ) -> Result<impact::ImpactReport> {
        let rules = self.rollout_rules().for_env(env).impact;
        let compile = |s: &Snapshot| {
            Evaluator::compile(s).map_err(|e| {
                ServiceError::Internal(format!("a stored config does not compile: {e}"))
            })
        };
        let (base, cand) = (compile(baseline)?, compile(candidate)?);
        let mut batches = Vec::new();
        for body in self.store().sample_batches(env, SAMPLE_BATCHES).await? {
            match serde_json::from_str::<SampleBatch>(&body) {
                Ok(b) => batches.push(b),
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable sample batch"),
            }
        }
        Ok(impact::impact(
            &base,
            &cand,
            &batches,
            declared_percent,
            rules.max_excess_percent,
            rules.min_samples,
        ))
    }

    /// Start the rollout of an approved change against the deployed `baseline`: the impact
    /// test, then the edits as a new version, the first stage deployed, all in one transaction.
    pub(crate) async fn start_rollout(
        &self,
        mut record: ChangeRecord,
        baseline: SnapshotRecord,
        approvers: Vec<String>,
        actor: &str,
    ) -> Result<(ChangeRecord, SnapshotRecord)> {
        let env = record.env;
        let rules = self.rollout_rules().for_env(env).clone();
        let (current, head) = self.store().config(env).await?;
        if head != record.base_version {
            return Err(stale(&record, head));
        }
        let candidate_config =
            crate::service::candidate(&current, &record.change.edits).map_err(|fields| {
                ServiceError::Invalid {
                    message: "the change no longer applies to the current config".to_owned(),
                    fields,
                    change_id: Some(record.id.clone()),
                }
            })?;
        let candidate = Snapshot::new(candidate_config.clone(), Vec::new());
        if let Err(e) = Evaluator::compile(&candidate) {
            return Err(ServiceError::Invalid {
                message: "the resulting config does not compile; nothing was applied".to_owned(),
                fields: e
                    .errors
                    .0
                    .into_iter()
                    .map(|e| crate::service::FieldError {
                        path: e.path,
                        message: e.message,
                    })
                    .collect(),
                change_id: None,
            });
        }
        if rules.impact.enabled {
            let report = self
                .impact_report(
                    env,
                    &baseline.snapshot,
                    &candidate,
                    record.change.declared_impact.changed_percent,
                )
                .await?;
            let value =
                serde_json::to_value(&report).map_err(|e| ServiceError::Internal(e.to_string()))?;
            self.store().set_change_impact(&record.id, &value).await?;
            if report.blocked {
                self.audit(
                    actor,
                    AuditAction::ImpactBlocked,
                    &format!("change/{}", record.id),
                    value,
                )
                .await?;
                return Err(ServiceError::Conflict {
                    code: "impact_blocked",
                    message: format!(
                        "the impact test blocked change `{}`:\n{}",
                        record.id,
                        impact::render(&report)
                    ),
                });
            }
        }
        let gateways = self
            .store()
            .gateway_states(env, unix_ms().saturating_sub(FRESH_REPORT_MS))
            .await?;
        let canary = rules
            .canary_cell
            .clone()
            .or_else(|| gateways.iter().map(|g| g.seen.cell.clone()).min());
        let mut plan = rules.plan(
            record.risk,
            touches_policy(&record.change, &candidate_config),
            canary.as_deref(),
        );
        // An explicit plan is taken as written; the default ones give a switch turned on its
        // fast canary.
        if !rules.plans.contains_key(&record.risk) && turns_a_switch_on(&record.change, &current) {
            plan = rules.with_switch_canary(plan);
        }
        let id = crate::store::new_id("rol")?;
        let now = unix_ms();
        let mut tx = self.store().begin().await?;
        let version = match tx
            .apply_edits(
                env,
                record.base_version,
                &record.change.edits,
                &record.author,
                &record.id,
            )
            .await
        {
            Ok(v) => v,
            Err(StoreError::Conflict { actual, .. }) => {
                tx.rollback().await?;
                return Err(stale(&record, actual));
            }
            Err(e) => return Err(e.into()),
        };
        tx.set_change_status(&record.id, record.status, ChangeStatus::RollingOut)
            .await?;
        tx.put_snapshot(env, version, &candidate).await?;
        let rollout = RolloutRecord {
            id: id.clone(),
            change_id: record.id.clone(),
            env,
            risk: record.risk,
            state: RolloutState::Running,
            plan,
            stage_index: 0,
            stage_started_ms: now,
            paused_at_ms: None,
            paused_total_ms: 0,
            marks: Marks::new(),
            baseline_version: baseline.version,
            candidate_version: version,
            baseline_hash: baseline.hash,
            candidate_hash: candidate.hash(),
            last_eval: None,
            reason: None,
            rev: 0,
            created_ms: now,
            updated_ms: now,
            finished_ms: None,
        };
        tx.insert_rollout(&rollout).await?;
        let stage_snapshot = stage_snapshot(&rollout, &baseline.snapshot, &candidate_config);
        tx.put_deployment(&stage_snapshot, Some(&id), "rollout stage 1")
            .await?;
        let detail = json!({
            "rollout": id,
            "env": env.as_str(),
            "version": version,
            "candidate_hash": candidate.hash().to_string(),
            "baseline_hash": baseline.hash.to_string(),
            "approvals": approvers,
            "stages": rollout.plan.stages.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        });
        decide(
            &mut tx,
            &id,
            (0, rollout.plan.stages[0].name.clone()),
            DecisionAction::Started,
            actor,
            AuditAction::RolloutStarted,
            &format!("change/{}", record.id),
            detail,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(rollout = %id, change = %record.id, env = %env, "rollout started");
        record.status = ChangeStatus::RollingOut;
        let stored =
            self.store().snapshot(env, version).await?.ok_or_else(|| {
                ServiceError::Internal("the candidate snapshot vanished".to_owned())
            })?;
        Ok((record, stored))
    }

    /// A rollout with its decisions.
    pub async fn rollout_view(&self, id: &str) -> Result<RolloutView> {
        let record = self
            .store()
            .rollout(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("rollout `{id}`")))?;
        self.view_of(record).await
    }

    async fn view_of(&self, record: RolloutRecord) -> Result<RolloutView> {
        let decisions = self.store().decisions(&record.id).await?;
        let now = record.finished_ms.unwrap_or_else(unix_ms);
        Ok(RolloutView {
            soaked_secs: record.soaked_ms(now) as f64 / 1000.0,
            record,
            decisions,
        })
    }

    /// The newest rollouts of `env`.
    pub async fn rollout_views(&self, env: Environment, limit: u32) -> Result<Vec<RolloutView>> {
        let mut out = Vec::new();
        for r in self.store().rollouts(env, limit).await? {
            out.push(self.view_of(r).await?);
        }
        Ok(out)
    }

    /// Pause a running rollout: it stays at its stage, soak stops counting, gates still judge
    /// (a failing gate still rolls back).
    pub async fn pause_rollout(
        &self,
        id: &str,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<RolloutView> {
        self.control(id, actor, reason, DecisionAction::Paused, |r, now| {
            if r.state != RolloutState::Running {
                return Err(format!("rollout `{}` is {}, not running", r.id, r.state));
            }
            r.state = RolloutState::Paused;
            r.paused_at_ms = Some(now);
            Ok(())
        })
        .await
    }

    /// Resume a paused rollout.
    pub async fn resume_rollout(
        &self,
        id: &str,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<RolloutView> {
        self.control(id, actor, reason, DecisionAction::Resumed, |r, now| {
            if r.state != RolloutState::Paused {
                return Err(format!("rollout `{}` is {}, not paused", r.id, r.state));
            }
            r.state = RolloutState::Running;
            r.paused_total_ms += now.saturating_sub(r.paused_at_ms.unwrap_or(now));
            r.paused_at_ms = None;
            Ok(())
        })
        .await
    }

    async fn control(
        &self,
        id: &str,
        actor: &str,
        reason: Option<&str>,
        action: DecisionAction,
        f: impl Fn(&mut RolloutRecord, u64) -> std::result::Result<(), String>,
    ) -> Result<RolloutView> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.control_once(id, actor, reason, action, &f).await {
                Err(e) if is_moved(&e) && attempt < CONTROL_ATTEMPTS => continue,
                other => return other,
            }
        }
    }

    async fn control_once(
        &self,
        id: &str,
        actor: &str,
        reason: Option<&str>,
        action: DecisionAction,
        f: &impl Fn(&mut RolloutRecord, u64) -> std::result::Result<(), String>,
    ) -> Result<RolloutView> {
        let mut r = self
            .store()
            .rollout(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("rollout `{id}`")))?;
        let now = unix_ms();
        f(&mut r, now).map_err(|message| ServiceError::Conflict {
            code: "rollout_state",
            message,
        })?;
        let detail = json!({ "rollout": id, "reason": reason });
        let mut tx = self.store().begin().await?;
        tx.update_rollout(&mut r).await.map_err(moved(id))?;
        let audit_action = if action == DecisionAction::Paused {
            AuditAction::RolloutPaused
        } else {
            AuditAction::RolloutResumed
        };
        let stage = (r.stage_index, r.plan.stages[r.stage_index].name.clone());
        decide(
            &mut tx,
            id,
            stage,
            action,
            actor,
            audit_action,
            &format!("rollout/{id}"),
            detail,
        )
        .await?;
        tx.commit().await?;
        self.view_of(r).await
    }

    /// Abort a rollout: back to the LKG at once, like a failed gate.
    pub async fn abort_rollout(
        &self,
        id: &str,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<RolloutView> {
        let why = format!(
            "aborted by {actor}{}",
            reason.map(|r| format!(": {r}")).unwrap_or_default()
        );
        for attempt in 1.. {
            let r = self
                .store()
                .rollout(id)
                .await?
                .ok_or_else(|| ServiceError::NotFound(format!("rollout `{id}`")))?;
            if !r.state.is_active() {
                return Err(ServiceError::Conflict {
                    code: "rollout_state",
                    message: format!("rollout `{id}` is {}: it has already ended", r.state),
                });
            }
            let ended = self
                .end_rollout(
                    r,
                    RolloutState::Aborted,
                    actor,
                    &why,
                    json!({ "reason": reason }),
                )
                .await;
            match ended {
                Err(e) if is_moved(&e) && attempt < CONTROL_ATTEMPTS => continue,
                Err(e) => return Err(e),
                Ok(_) => break,
            }
        }
        self.rollout_view(id).await
    }

    /// End a rollout by going back: the LKG (or, without one, the rollout's baseline) is
    /// deployed, the objects return to it, the change is marked rolled back, with `evidence`.
    pub(crate) async fn end_rollout(
        &self,
        mut r: RolloutRecord,
        state: RolloutState,
        actor: &str,
        reason: &str,
        evidence: Value,
    ) -> Result<SnapshotRecord> {
        let env = r.env;
        let (target, to) = match self.store().last_verified(env).await? {
            Some(lkg) => (lkg, "lkg"),
            None => (
                self.store()
                    .snapshot_by_hash(env, r.baseline_hash)
                    .await?
                    .ok_or_else(|| {
                        ServiceError::Internal("the baseline snapshot vanished".to_owned())
                    })?,
                "baseline (no verified snapshot yet)",
            ),
        };
        let now = unix_ms();
        r.state = state;
        r.reason = Some(reason.to_owned());
        r.finished_ms = Some(now);
        let mut tx = self.store().begin().await?;
        tx.update_rollout(&mut r)
            .await
            .map_err(moved(&r.id.clone()))?;
        tx.set_change_status(
            &r.change_id,
            ChangeStatus::RollingOut,
            ChangeStatus::RolledBack,
        )
        .await?;
        let (version, mut detail) = self.return_to(&mut tx, &target, actor, "rollback").await?;
        detail["rollout"] = json!(r.id);
        detail["returned_to"] = json!(to);
        detail["reason"] = json!(reason);
        detail["evidence"] = evidence.clone();
        let action = if state == RolloutState::Aborted {
            DecisionAction::Aborted
        } else {
            DecisionAction::RolledBack
        };
        let audit_action = if state == RolloutState::Aborted {
            AuditAction::RolloutAborted
        } else {
            AuditAction::Rollback
        };
        let stage = (r.stage_index, r.plan.stages[r.stage_index].name.clone());
        decide(
            &mut tx,
            &r.id,
            stage,
            action,
            actor,
            audit_action,
            &format!("change/{}", r.change_id),
            detail,
        )
        .await?;
        tx.commit().await?;
        tracing::warn!(rollout = %r.id, env = %env, reason, to, "rollout ended: back to the last known good");
        Ok(deployed_record(&target, version))
    }

    /// One look at a running or paused rollout: judge the gates, then advance, finish, roll
    /// back, or just record the evaluation. Returns whether the deployment changed.
    pub async fn step_rollout(&self, mut r: RolloutRecord) -> Result<bool> {
        let now = unix_ms();
        let stage = r.plan.stages[r.stage_index].clone();
        let gateways = self
            .store()
            .gateway_states(r.env, now.saturating_sub(FRESH_REPORT_MS))
            .await?;
        let hashes = self.store().rollout_hashes(&r.id).await?;
        let (declared, declares_impact) = self.change_declared(&r.change_id).await?;
        let stage_hash = match self.store().deployed_hash(r.env).await? {
            Some((hash, Some(id))) if id == r.id => hash,
            // Someone else deployed over this rollout (a rollback that raced its start): it
            // no longer runs anywhere; end it so the environment is not blocked.
            other => {
                let by = other.map_or_else(|| "nothing".to_owned(), |(h, _)| h);
                self.supersede(r, &by).await?;
                return Ok(true);
            }
        };
        let (mut window, in_scope, samples) = stage_window(
            &mut r,
            &stage,
            &gateways,
            &hashes,
            &stage_hash,
            declared,
            now,
        );
        window.declares_impact = declares_impact;
        let (verdict, results) = gates::judge_all(&stage.gates, &window);
        let eval = json!({
            "at_ms": now,
            "stage": stage.name,
            "elapsed_secs": window.elapsed_secs,
            "min_soak_secs": stage.min_soak_secs,
            "samples": samples,
            "min_samples": stage.min_samples,
            "verdict": verdict,
            "gates": results,
            "gateways_in_scope": in_scope,
            "window": { "baseline": window.baseline, "candidate": window.candidate },
        });
        if verdict == Verdict::Fail {
            let failed: Vec<&str> = results
                .iter()
                .filter(|g| g.verdict == Verdict::Fail)
                .map(|g| g.message.as_str())
                .collect();
            let reason = format!("stage `{}` failed: {}", stage.name, failed.join("; "));
            r.last_eval = Some(eval.clone());
            self.end_rollout(r, RolloutState::RolledBack, "engine", &reason, eval)
                .await?;
            return Ok(true);
        }
        r.last_eval = Some(eval.clone());
        let done =
            verdict == Verdict::Pass && window.soak_reached && r.state == RolloutState::Running;
        if !done {
            match self.store().update_rollout(&mut r).await {
                Ok(()) | Err(StoreError::Conflict { .. }) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        if r.stage_index + 1 == r.plan.stages.len() {
            self.finish_rollout(r, eval).await?;
        } else {
            self.advance_rollout(r, eval).await?;
        }
        Ok(true)
    }

    /// End a rollout whose candidate another deployment replaced: marked aborted, its change
    /// rolled back, nothing redeployed (what replaced it stays).
    async fn supersede(&self, mut r: RolloutRecord, by: &str) -> Result<()> {
        let now = unix_ms();
        let reason =
            format!("superseded: the environment now runs {by}, deployed by another action");
        r.state = RolloutState::Aborted;
        r.reason = Some(reason.clone());
        r.finished_ms = Some(now);
        let detail = json!({ "rollout": r.id, "reason": reason, "deployed": by });
        let mut tx = self.store().begin().await?;
        tx.update_rollout(&mut r)
            .await
            .map_err(moved(&r.id.clone()))?;
        tx.set_change_status(
            &r.change_id,
            ChangeStatus::RollingOut,
            ChangeStatus::RolledBack,
        )
        .await?;
        decide(
            &mut tx,
            &r.id,
            (r.stage_index, r.plan.stages[r.stage_index].name.clone()),
            DecisionAction::Aborted,
            "engine",
            AuditAction::RolloutAborted,
            &format!("change/{}", r.change_id),
            detail,
        )
        .await?;
        tx.commit().await?;
        tracing::warn!(rollout = %r.id, deployed = %by, "rollout superseded by another deployment");
        Ok(())
    }

    /// The share of outcomes a change declares it changes, and whether it declares any
    /// impact at all (a share, or routes it denies).
    async fn change_declared(&self, change_id: &str) -> Result<(f64, bool)> {
        Ok(self
            .store()
            .change(change_id)
            .await?
            .map_or((0.0, false), |c| {
                let d = &c.change.declared_impact;
                (
                    d.changed_percent,
                    d.changed_percent > 0.0 || !d.denies_all.is_empty(),
                )
            }))
    }

    async fn advance_rollout(&self, mut r: RolloutRecord, evidence: Value) -> Result<()> {
        let now = unix_ms();
        let from = r.plan.stages[r.stage_index].name.clone();
        r.stage_index += 1;
        r.stage_started_ms = now;
        r.paused_total_ms = 0;
        r.paused_at_ms = None;
        r.marks = Marks::new();
        let to = r.plan.stages[r.stage_index].name.clone();
        let baseline = self
            .store()
            .snapshot_by_hash(r.env, r.baseline_hash)
            .await?
            .ok_or_else(|| ServiceError::Internal("the baseline snapshot vanished".to_owned()))?;
        let candidate = self
            .store()
            .snapshot(r.env, r.candidate_version)
            .await?
            .ok_or_else(|| ServiceError::Internal("the candidate snapshot vanished".to_owned()))?;
        let snapshot = stage_snapshot(&r, &baseline.snapshot, candidate.snapshot.config());
        let detail = json!({ "rollout": r.id, "from": from, "to": to, "evidence": evidence });
        let mut tx = self.store().begin().await?;
        tx.update_rollout(&mut r).await?;
        tx.put_deployment(
            &snapshot,
            Some(&r.id),
            &format!("rollout stage {}", r.stage_index + 1),
        )
        .await?;
        decide(
            &mut tx,
            &r.id,
            (r.stage_index, to.clone()),
            DecisionAction::Advanced,
            "engine",
            AuditAction::RolloutAdvanced,
            &format!("rollout/{}", r.id),
            detail,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(rollout = %r.id, from = %from, to = %to, "rollout advanced");
        Ok(())
    }

    async fn finish_rollout(&self, mut r: RolloutRecord, evidence: Value) -> Result<()> {
        let now = unix_ms();
        let candidate = self
            .store()
            .snapshot(r.env, r.candidate_version)
            .await?
            .ok_or_else(|| ServiceError::Internal("the candidate snapshot vanished".to_owned()))?;
        r.state = RolloutState::Succeeded;
        r.finished_ms = Some(now);
        let detail = json!({
            "rollout": r.id,
            "verified_hash": candidate.hash.to_string(),
            "version": candidate.version,
            "evidence": evidence,
        });
        let mut tx = self.store().begin().await?;
        tx.update_rollout(&mut r)
            .await
            .map_err(moved(&r.id.clone()))?;
        tx.set_change_status(
            &r.change_id,
            ChangeStatus::RollingOut,
            ChangeStatus::Applied,
        )
        .await?;
        tx.put_deployment(&candidate.snapshot, Some(&r.id), "rollout complete")
            .await?;
        tx.mark_verified(r.env, candidate.hash).await?;
        decide(
            &mut tx,
            &r.id,
            (r.stage_index, r.plan.stages[r.stage_index].name.clone()),
            DecisionAction::Succeeded,
            "engine",
            AuditAction::RolloutCompleted,
            &format!("change/{}", r.change_id),
            detail,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(rollout = %r.id, hash = %candidate.hash, "rollout succeeded; the candidate is the new LKG");
        Ok(())
    }
}

/// Inside `tx`: append a decision of rollout `id` at `stage` (index, name), by `actor`, with
/// `detail` as its evidence, and the audit entry that goes with it.
#[allow(clippy::too_many_arguments)]
async fn decide(
    tx: &mut crate::store::StoreTx,
    id: &str,
    stage: (usize, String),
    action: DecisionAction,
    actor: &str,
    audit: AuditAction,
    subject: &str,
    detail: Value,
) -> Result<()> {
    let decision = RolloutDecision {
        at_ms: unix_ms(),
        stage_index: stage.0,
        stage: stage.1,
        action,
        actor: actor.to_owned(),
        evidence: detail.clone(),
    };
    tx.add_decision(id, &decision).await?;
    audit_in(tx, actor, audit, subject, detail).await?;
    Ok(())
}

/// The snapshot a stage deploys: the baseline config, plus the candidate scoped by the stage.
fn stage_snapshot(r: &RolloutRecord, baseline: &Snapshot, candidate: &Config) -> Snapshot {
    let stage = &r.plan.stages[r.stage_index];
    Snapshot::new(
        baseline.config().clone(),
        vec![Rollout {
            id: r.id.clone(),
            salt: r.id.clone(),
            sticky_key: rampart_model::Attribute::Tenant,
            scope: stage.scope.clone(),
            shadow: stage.shadow,
            candidate: candidate.clone(),
        }],
    )
}

/// What the gates of the current stage judge: each cohort's counters since the stage started,
/// summed over the fresh gateways in scope, plus NACKs and guard trips. Also returns the ids
/// of the gateways counted.
///
/// A gateway counts once it runs the stage's snapshot: its first report under that snapshot
/// becomes its mark (stored with the rollout), so both cohorts are measured over the same
/// window on the same gateway, from the moment the stage's scope took effect there. A gateway
/// that restarts (its report's `started_ms` changes) keeps what it counted before.
fn stage_window(
    r: &mut RolloutRecord,
    stage: &rampart_model::change::StageDef,
    gateways: &[GatewayState],
    hashes: &[String],
    stage_hash: &str,
    declared_percent: f64,
    now: u64,
) -> (StageWindow, Vec<String>, u64) {
    let mut w = StageWindow {
        expected_share: stage.scope.percent / 100.0,
        elapsed_secs: r.soaked_ms(now) as f64 / 1000.0,
        ..StageWindow::default()
    };
    let mut reference = CohortWindow::default();
    let mut shadow = ImpactCounts::default();
    let mut counted = Vec::new();
    for g in gateways {
        if let Some(nack) = &g.seen.last_nack
            && hashes.iter().any(|h| nack.starts_with(h.as_str()))
        {
            w.nacks.push(format!("{}: {nack}", g.seen.id));
        }
        let Some(report) = &g.report else { continue };
        if now.saturating_sub(g.seen.last_seen_ms) > FRESH_REPORT_MS || !in_scope(&stage.scope, g) {
            continue;
        }
        if report.snapshot.is_none_or(|h| h.to_string() != stage_hash) {
            continue;
        }
        let Some(mark) = r.marks.get_mut(&g.seen.id) else {
            r.marks.insert(
                g.seen.id.clone(),
                Mark {
                    started_ms: report.started_ms,
                    cohorts: report.cohorts.clone(),
                    ..Mark::default()
                },
            );
            continue;
        };
        if mark.started_ms != report.started_ms {
            // The gateway restarted since its mark: keep what its last process counted, and
            // count the new one from zero.
            let last = std::mem::take(&mut mark.last);
            mark.carried.add(&last);
            mark.started_ms = report.started_ms;
            mark.cohorts = Vec::new();
        }
        counted.push(g.seen.id.clone());
        let mut now_window = GatewayWindow::default();
        if let Some(base) = cohort(&report.cohorts, None) {
            let start = cohort(&mark.cohorts, None);
            now_window.baseline = CohortWindow::delta(start, base);
            if let Some(start) = start {
                reference.add(&CohortWindow::delta(None, start));
            }
        }
        if let Some(cand) = cohort(&report.cohorts, Some(&r.id)) {
            let start = cohort(&mark.cohorts, Some(&r.id));
            now_window.candidate = CohortWindow::delta(start, cand);
            now_window.guard_tripped = cand.guard_tripped;
            if let Some(now) = &cand.shadow {
                let prev = start.and_then(|s| s.shadow.as_ref());
                now_window.shadow = shadow_delta(prev, now);
            }
        }
        mark.last = now_window.clone();
        let mut total = mark.carried.clone();
        total.add(&now_window);
        w.baseline.add(&total.baseline);
        w.candidate.add(&total.candidate);
        shadow.add(&total.shadow);
        if total.guard_tripped {
            w.guard_trips.push(g.seen.id.clone());
        }
    }
    w.reference = Some(reference);
    let samples = if stage.shadow {
        shadow.compared
    } else {
        w.candidate.requests
    };
    if stage.shadow {
        w.shadow = Some(ShadowWindow {
            counts: shadow,
            declared_percent,
        });
    }
    w.soak_reached = w.elapsed_secs >= stage.min_soak_secs as f64 && samples >= stage.min_samples;
    (w, counted, samples)
}

/// Shadow counts since `start` (all of `now` if the counters went backwards: a restart).
fn shadow_delta(start: Option<&ImpactCounts>, now: &ImpactCounts) -> ImpactCounts {
    let Some(s) = start.filter(|s| s.compared <= now.compared) else {
        return now.clone();
    };
    ImpactCounts {
        compared: now.compared - s.compared,
        allowed_to_denied: now.allowed_to_denied.saturating_sub(s.allowed_to_denied),
        denied_to_allowed: now.denied_to_allowed.saturating_sub(s.denied_to_allowed),
        route_changed: now.route_changed.saturating_sub(s.route_changed),
        status_changed: now.status_changed.saturating_sub(s.status_changed),
    }
}

/// The rollout driver: one per control plane, of which one (per database) drives.
#[derive(Debug)]
pub struct Engine {
    service: Service,
    tick: Duration,
}

impl Engine {
    pub fn new(service: Service, tick: Duration) -> Engine {
        Engine { service, tick }
    }

    /// Run until the task is dropped.
    pub async fn run(self) {
        let mut lock = AdvisoryLock::new(DRIVER_LOCK_KEY);
        let mut was_leader = false;
        loop {
            let leader = match self.service.store().backend() {
                Backend::Sqlite => true,
                Backend::Postgres => lock.hold(self.service.store()).await,
            };
            if leader != was_leader {
                tracing::info!(leader, "rollout driver");
                was_leader = leader;
            }
            if leader {
                self.drive().await;
            }
            tokio::time::sleep(self.tick).await;
        }
    }

    async fn drive(&self) {
        let active = match self.service.store().active_rollouts().await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot list active rollouts");
                return;
            }
        };
        for r in active {
            let id = r.id.clone();
            match self.service.step_rollout(r).await {
                Ok(true) => self.service.deployed().notify_one(),
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(rollout = %id, error = %e, "rollout step failed; retrying next tick")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> Config {
        rampart_model::load::from_yaml(include_str!("../../../examples/fleet.yaml")).unwrap()
    }

    fn change(edits: Vec<Edit>) -> Change {
        Change {
            environment: Environment::Prod,
            author: "alice".into(),
            reason: "test".into(),
            declared_impact: Default::default(),
            edits,
        }
    }

    fn flag(name: &str, default: serde_json::Value) -> Edit {
        let mut f = fleet().flags.into_iter().find(|f| f.name == name).unwrap();
        f.default = default;
        Edit::Upsert(Object::Flag(f))
    }

    #[test]
    fn turning_a_boolean_flag_on_is_a_switch() {
        let current = fleet();
        assert!(turns_a_switch_on(
            &change(vec![flag("jira-maintenance", json!(true))]),
            &current
        ));
        // Off, unchanged, or not a boolean: not a switch turned on.
        assert!(!turns_a_switch_on(
            &change(vec![flag("jira-maintenance", json!(false))]),
            &current
        ));
        assert!(!turns_a_switch_on(
            &change(vec![flag("confluence-banner", json!("hello"))]),
            &current
        ));
        let mut on = current.clone();
        on.flags
            .iter_mut()
            .find(|f| f.name == "jira-maintenance")
            .unwrap()
            .default = json!(true);
        assert!(!turns_a_switch_on(
            &change(vec![flag("jira-maintenance", json!(true))]),
            &on
        ));
    }

    #[test]
    fn a_flag_bound_to_a_policy_field_touches_the_policy() {
        let current = fleet();
        let c = change(vec![flag("maintenance-status", json!(500))]);
        assert!(
            touches_policy(&c, &current),
            "bound to jira-maintenance-page"
        );
        let c = change(vec![flag("search-rollout", json!({ "backend": "new" }))]);
        assert!(!touches_policy(&c, &current), "no policy field reads it");
    }
}
