//! Starting a rollout from an approved change: the impact test, then the change's edits as a
//! new version of the environment, and its first stage deployed, in one transaction.

use rampart_api::ErrorCode;
use rampart_api::{ChangeRecord, ChangeStatus, RolloutState, SnapshotRecord};
use rampart_eval::Evaluator;
use rampart_model::EnumName;
use rampart_model::change::{Change, Edit, Object, ObjectKind};
use rampart_model::wire::SampleBatch;
use rampart_model::{Config, Environment, Snapshot};
use rampart_store::ops::*;
use serde_json::json;

use super::{DecisionAction, FRESH_REPORT_MS, Rollouts, SAMPLE_BATCHES, step::stage_snapshot};
use crate::audit::AuditAction;
use crate::impact;
use crate::service::{FieldError, Result, ServiceError, audit_in, candidate};
use rampart_store::{Marks, RolloutRecord, StoreError};

impl Rollouts {
    /// The impact test of a change: samples replayed through baseline and candidate.
    pub async fn impact_report(
        &self,
        env: Environment,
        baseline: &Snapshot,
        candidate: &Snapshot,
        declared_percent: f64,
    ) -> Result<impact::ImpactReport> {
        let rules = self.config.for_env(env).impact;
        let compile = |s: &Snapshot| {
            Evaluator::compile(s).map_err(|e| {
                ServiceError::Internal(format!("a stored config does not compile: {e}"))
            })
        };
        let (base, cand) = (compile(baseline)?, compile(candidate)?);
        let mut batches = Vec::new();
        for body in self.store.sample_batches(env, SAMPLE_BATCHES).await? {
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
    pub(crate) async fn start(
        &self,
        mut record: ChangeRecord,
        baseline: SnapshotRecord,
        approvers: Vec<String>,
        actor: &str,
    ) -> Result<(ChangeRecord, SnapshotRecord)> {
        let env = record.env;
        let rules = self.config.for_env(env).clone();
        let (current, head) = self.store.config(env).await?;
        if head != record.base_version {
            return Err(stale(&record, head));
        }
        let candidate_config =
            candidate(&current, &record.change.edits).map_err(|fields| ServiceError::Invalid {
                message: "the change no longer applies to the current config".to_owned(),
                fields,
                change_id: Some(record.id.clone()),
            })?;
        let candidate = Snapshot::new(candidate_config.clone(), Vec::new());
        if let Err(e) = Evaluator::compile(&candidate) {
            return Err(ServiceError::Invalid {
                message: "the resulting config does not compile; nothing was applied".to_owned(),
                fields: e
                    .errors
                    .0
                    .into_iter()
                    .map(|e| FieldError {
                        path: e.path,
                        message: e.message,
                    })
                    .collect(),
                change_id: None,
            });
        }
        if rules.impact.enabled {
            self.impact_test(&record, &baseline.snapshot, &candidate, actor)
                .await?;
        }
        let now = self.now_ms();
        let gateways = self
            .store
            .gateway_states(env, now.saturating_sub(FRESH_REPORT_MS))
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
        let id = rampart_store::new_id("rol")?;
        let mut tx = self.store.begin().await?;
        let edits = &record.change.edits;
        let applied = tx
            .apply_edits(env, record.base_version, edits, &record.author, &record.id)
            .await;
        let version = match applied {
            Err(StoreError::Conflict { actual, .. }) => {
                tx.rollback().await?;
                return Err(stale(&record, actual));
            }
            other => other?,
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
        self.decide(&mut tx, &rollout, DecisionAction::Started, actor, detail)
            .await?;
        tx.commit().await?;
        tracing::info!(rollout = %id, change = %record.id, env = %env, "rollout started");
        record.status = ChangeStatus::RollingOut;
        let stored = self.candidate_of(&rollout).await?;
        Ok((record, stored))
    }

    /// The impact test of `record`, its report stored on the change; a change it blocks is
    /// audited and refused.
    async fn impact_test(
        &self,
        record: &ChangeRecord,
        baseline: &Snapshot,
        candidate: &Snapshot,
        actor: &str,
    ) -> Result<()> {
        let declared = record.change.declared_impact.changed_percent;
        let report = self
            .impact_report(record.env, baseline, candidate, declared)
            .await?;
        let value =
            serde_json::to_value(&report).map_err(|e| ServiceError::Internal(e.to_string()))?;
        self.store.set_change_impact(&record.id, &value).await?;
        if !report.blocked {
            return Ok(());
        }
        let mut tx = self.store.begin().await?;
        let subject = format!("change/{}", record.id);
        audit_in(&mut tx, actor, AuditAction::ImpactBlocked, &subject, value).await?;
        tx.commit().await?;
        Err(ServiceError::Conflict {
            code: ErrorCode::ImpactBlocked,
            message: format!(
                "the impact test blocked change `{}`:\n{}",
                record.id,
                impact::render(&report)
            ),
        })
    }
}

/// A change written against an older version of its environment.
fn stale(record: &ChangeRecord, head: u64) -> ServiceError {
    ServiceError::Conflict {
        code: ErrorCode::StaleVersion,
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

/// Whether a change touches a policy, directly or through a flag bound to a policy field, or
/// edits the settings (which decide what every policy sees: the tenant, and what other
/// settings add): such changes soak longer.
fn touches_policy(change: &Change, candidate: &Config) -> bool {
    change.edits.iter().any(|e| match e {
        Edit::Upsert(Object::Policy(_) | Object::Settings(_)) => true,
        Edit::Delete {
            kind: ObjectKind::Policy | ObjectKind::Settings,
            ..
        } => true,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet() -> Config {
        rampart_model::load::from_yaml(include_str!("../../../../examples/fleet.yaml")).unwrap()
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
