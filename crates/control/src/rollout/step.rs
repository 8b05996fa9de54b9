//! One look at a rollout: what each cohort did over the stage's window, the gates' verdict,
//! and what follows: advance to the next stage, succeed, go back to the LKG, or just record
//! the evaluation.

use rampart_api::{ChangeStatus, EvalWindow, RolloutState, SnapshotRecord, StageEval};
use rampart_model::change::StageDef;
use rampart_model::snapshot::StageScope;
use rampart_model::wire::{CohortCounters, ImpactCounts};
use rampart_model::{Config, Rollout, Snapshot};
use rampart_store::ops::*;
use serde_json::{Value, json};

use super::{DecisionAction, FRESH_REPORT_MS, Rollouts, moved};
use crate::gates::{self, CohortWindow, GateVerdict, ShadowWindow, StageWindow};
use crate::service::{Result, Service, deployed_record};
use rampart_store::{GatewayState, GatewayWindow, Mark, Marks, RolloutRecord, StoreError, StoreTx};

impl Rollouts {
    /// One look at a running or paused rollout: judge the gates, then advance, finish, roll
    /// back, or just record the evaluation. Returns whether the deployment changed.
    pub async fn step(&self, mut r: RolloutRecord) -> Result<bool> {
        let now = self.now_ms();
        let stage = r.plan.stages[r.stage_index].clone();
        let gateways = self
            .store
            .gateway_states(r.env, now.saturating_sub(FRESH_REPORT_MS))
            .await?;
        let hashes = self.store.rollout_hashes(&r.id).await?;
        let (declared, declares_impact) = self.change_declared(&r.change_id).await?;
        let stage_hash = match self.store.deployed_hash(r.env).await? {
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
        let eval = StageEval {
            at_ms: now,
            stage: stage.name.clone(),
            elapsed_secs: window.elapsed_secs,
            min_soak_secs: stage.min_soak_secs,
            samples,
            min_samples: stage.min_samples,
            verdict,
            gates: results,
            gateways_in_scope: in_scope,
            window: EvalWindow {
                baseline: window.baseline.clone(),
                candidate: window.candidate.clone(),
            },
        };
        r.last_eval = Some(eval.clone());
        if verdict == GateVerdict::Fail {
            let failed: Vec<&str> = eval
                .gates
                .iter()
                .filter(|g| g.verdict == GateVerdict::Fail)
                .map(|g| g.message.as_str())
                .collect();
            let reason = format!("stage `{}` failed: {}", stage.name, failed.join("; "));
            self.end(r, RolloutState::RolledBack, "engine", &reason, json!(eval))
                .await?;
            return Ok(true);
        }
        let done =
            verdict == GateVerdict::Pass && window.soak_reached && r.state == RolloutState::Running;
        if !done {
            match self.store.update_rollout(&mut r).await {
                Ok(()) | Err(StoreError::Conflict { .. }) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        if r.stage_index + 1 == r.plan.stages.len() {
            self.succeed(r, json!(eval)).await?;
        } else {
            self.advance(r, json!(eval)).await?;
        }
        Ok(true)
    }

    /// End a rollout by going back: the LKG (or, without one, the rollout's baseline) is
    /// deployed, the objects return to it, the change is marked rolled back, with `evidence`.
    pub(crate) async fn end(
        &self,
        mut r: RolloutRecord,
        state: RolloutState,
        actor: &str,
        reason: &str,
        evidence: Value,
    ) -> Result<SnapshotRecord> {
        let env = r.env;
        let (target, to) = match self.store.last_verified(env).await? {
            Some(lkg) => (lkg, "lkg"),
            None => (
                self.baseline_of(&r).await?,
                "baseline (no verified snapshot yet)",
            ),
        };
        r.state = state;
        r.reason = Some(reason.to_owned());
        let mut tx = self.store.begin().await?;
        self.close_in(&mut tx, &mut r, ChangeStatus::RolledBack)
            .await?;
        let (version, mut detail) = Service::return_to(&mut tx, &target, actor, "rollback").await?;
        detail["rollout"] = json!(r.id);
        detail["returned_to"] = json!(to);
        detail["reason"] = json!(reason);
        detail["evidence"] = evidence;
        let action = if state == RolloutState::Aborted {
            DecisionAction::Aborted
        } else {
            DecisionAction::RolledBack
        };
        self.decide(&mut tx, &r, action, actor, detail).await?;
        tx.commit().await?;
        tracing::warn!(rollout = %r.id, env = %env, reason, to, "rollout ended: back to the last known good");
        Ok(deployed_record(&target, version, self.now_ms()))
    }

    /// End a rollout whose candidate another deployment replaced: marked aborted, its change
    /// rolled back, nothing redeployed (what replaced it stays).
    async fn supersede(&self, mut r: RolloutRecord, by: &str) -> Result<()> {
        let reason =
            format!("superseded: the environment now runs {by}, deployed by another action");
        r.state = RolloutState::Aborted;
        r.reason = Some(reason.clone());
        let detail = json!({ "rollout": r.id, "reason": reason, "deployed": by });
        let mut tx = self.store.begin().await?;
        self.close_in(&mut tx, &mut r, ChangeStatus::RolledBack)
            .await?;
        self.decide(&mut tx, &r, DecisionAction::Aborted, "engine", detail)
            .await?;
        tx.commit().await?;
        tracing::warn!(rollout = %r.id, deployed = %by, "rollout superseded by another deployment");
        Ok(())
    }

    /// Inside `tx`: store the ended rollout `r` (unless it moved meanwhile) and move its change
    /// from rolling out to `status`.
    async fn close_in(
        &self,
        tx: &mut StoreTx,
        r: &mut RolloutRecord,
        status: ChangeStatus,
    ) -> Result<()> {
        r.finished_ms = Some(self.now_ms());
        let id = r.id.clone();
        tx.update_rollout(r).await.map_err(moved(&id))?;
        tx.set_change_status(&r.change_id, ChangeStatus::RollingOut, status)
            .await?;
        Ok(())
    }

    /// The share of outcomes a change declares it changes, and whether it declares any
    /// impact at all (a share, or routes it denies).
    async fn change_declared(&self, change_id: &str) -> Result<(f64, bool)> {
        Ok(self
            .store
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

    async fn advance(&self, mut r: RolloutRecord, evidence: Value) -> Result<()> {
        let from = r.plan.stages[r.stage_index].name.clone();
        r.stage_index += 1;
        r.stage_started_ms = self.now_ms();
        r.paused_total_ms = 0;
        r.paused_at_ms = None;
        r.marks = Marks::new();
        let to = r.plan.stages[r.stage_index].name.clone();
        let baseline = self.baseline_of(&r).await?;
        let candidate = self.candidate_of(&r).await?;
        let snapshot = stage_snapshot(&r, &baseline.snapshot, candidate.snapshot.config());
        let detail = json!({ "rollout": r.id, "from": from, "to": to, "evidence": evidence });
        let cause = format!("rollout stage {}", r.stage_index + 1);
        let mut tx = self.store.begin().await?;
        tx.update_rollout(&mut r).await?;
        tx.put_deployment(&snapshot, Some(&r.id), &cause).await?;
        self.decide(&mut tx, &r, DecisionAction::Advanced, "engine", detail)
            .await?;
        tx.commit().await?;
        tracing::info!(rollout = %r.id, from = %from, to = %to, "rollout advanced");
        Ok(())
    }

    async fn succeed(&self, mut r: RolloutRecord, evidence: Value) -> Result<()> {
        let candidate = self.candidate_of(&r).await?;
        r.state = RolloutState::Succeeded;
        let detail = json!({
            "rollout": r.id,
            "verified_hash": candidate.hash.to_string(),
            "version": candidate.version,
            "evidence": evidence,
        });
        let mut tx = self.store.begin().await?;
        self.close_in(&mut tx, &mut r, ChangeStatus::Applied)
            .await?;
        tx.put_deployment(&candidate.snapshot, Some(&r.id), "rollout complete")
            .await?;
        tx.mark_verified(r.env, candidate.hash).await?;
        self.decide(&mut tx, &r, DecisionAction::Succeeded, "engine", detail)
            .await?;
        tx.commit().await?;
        tracing::info!(rollout = %r.id, hash = %candidate.hash, "rollout succeeded; the candidate is the new LKG");
        Ok(())
    }
}

fn in_scope(scope: &StageScope, g: &GatewayState) -> bool {
    (scope.cells.is_empty() || scope.cells.contains(&g.seen.cell))
        && (scope.gateways.is_empty() || scope.gateways.contains(&g.seen.id))
}

fn cohort<'a>(cohorts: &'a [CohortCounters], rollout: Option<&str>) -> Option<&'a CohortCounters> {
    cohorts.iter().find(|c| c.rollout.as_deref() == rollout)
}

/// The snapshot a stage deploys: the baseline config, plus the candidate scoped by the stage.
pub(super) fn stage_snapshot(
    r: &RolloutRecord,
    baseline: &Snapshot,
    candidate: &Config,
) -> Snapshot {
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
    stage: &StageDef,
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
