//! The life of a change: submit, view, approve, reject, withdraw and apply.

use rampart_api::{
    ChangeRecord, ChangeStatus, ChangeView, ErrorCode, FieldError, Readiness, Role, SnapshotRecord,
};
use rampart_eval::Evaluator;
use rampart_model::EnumName;
use rampart_model::change::Edit;
use rampart_model::config::Environment;
use rampart_model::{Change, Risk, Snapshot};
use rampart_store::ops::*;
use serde_json::{Value, json};

use super::objects::{candidate, edit_key, objects_of};
use super::views;
use super::{
    Result, SOAK_LOOKBACK, Service, ServiceError, Submission, audit_in, commit_audited, open,
    subject,
};
use crate::audit::AuditAction;
use crate::rules::{self, ApprovalFacts, Refusal};
use rampart_store::{NewChange, StoreError};

impl Service {
    /// Submit a change: validate it, judge its risk, record it with its audit entries.
    /// A change that fails validation is recorded as `rejected` with its errors, and returned
    /// as [`ServiceError::Invalid`] naming it.
    pub async fn submit(&self, actor: &str, sub: Submission) -> Result<ChangeView> {
        let (current, head) = self.store.config(sub.env).await?;
        if sub.base_version != head {
            return Err(ServiceError::Conflict {
                code: ErrorCode::StaleVersion,
                message: format!(
                    "the change was written against version {} of {}, which is now at version {head}; re-read and resubmit",
                    sub.base_version, sub.env
                ),
            });
        }
        let change = Change {
            environment: sub.env,
            author: actor.to_owned(),
            reason: sub.reason,
            declared_impact: sub.declared_impact,
            edits: sub.edits,
        };
        let mut fields = Vec::new();
        if change.reason.trim().is_empty() {
            fields.push(FieldError {
                path: "reason".to_owned(),
                message: "a change needs a reason".to_owned(),
            });
        }
        match candidate(&current, &change.edits) {
            Err(errors) => fields.extend(errors),
            Ok(candidate) => {
                if let Err(errors) =
                    rampart_model::validate::validate(&candidate, &change.declared_impact)
                {
                    fields.extend(errors.0.into_iter().map(|e| FieldError {
                        path: e.path,
                        message: e.message,
                    }));
                } else if let Err(e) = Evaluator::compile(&Snapshot::new(candidate, Vec::new())) {
                    fields.extend(e.errors.0.into_iter().map(|e| FieldError {
                        path: e.path,
                        message: format!("does not compile: {}", e.message),
                    }));
                }
            }
        }
        let risk = rules::change_risk(&change, &current);
        let id = rampart_store::new_id("chg")?;
        let (status, validation) = if fields.is_empty() {
            (ChangeStatus::AwaitingApproval, None)
        } else {
            (
                ChangeStatus::Rejected,
                Some(serde_json::to_value(&fields).unwrap_or(Value::Null)),
            )
        };
        // Readiness with no approvals: a change the rules let through at once is approved.
        let verdict = if fields.is_empty() {
            Some(self.verdict(&change, risk, &[]).await?)
        } else {
            None
        };
        let status = match &verdict {
            Some(v) if v.ready => ChangeStatus::Approved,
            _ => status,
        };
        let new = NewChange {
            id: id.clone(),
            change,
            risk,
            status,
            base_version: head,
            validation,
        };
        let mut tx = self.store.begin().await?;
        let record = tx.insert_change(&new).await?;
        let subj = subject(&id);
        let detail = json!({
            "env": sub.env.as_str(),
            "risk": risk,
            "base_version": head,
            "edits": record.change.edits.len(),
        });
        audit_in(&mut tx, actor, AuditAction::ChangeSubmitted, &subj, detail).await?;
        if fields.is_empty() {
            let detail = json!({ "status": status.as_str() });
            audit_in(&mut tx, actor, AuditAction::ChangeValidated, &subj, detail).await?;
        } else {
            let detail = json!({ "reason": "validation", "errors": fields.len() });
            audit_in(&mut tx, actor, AuditAction::ChangeRejected, &subj, detail).await?;
        }
        tx.commit().await?;
        if !fields.is_empty() {
            return Err(ServiceError::Invalid {
                message: format!(
                    "the change fails validation with {} error(s); it was recorded as rejected",
                    fields.len()
                ),
                fields,
                change_id: Some(id),
            });
        }
        Ok(views::change_view(record, Vec::new(), verdict, None, None))
    }

    /// Who approved change `id`, in order.
    async fn approvers(&self, id: &str) -> Result<Vec<String>> {
        Ok(self
            .store
            .approvals(id)
            .await?
            .into_iter()
            .map(|a| a.approver)
            .collect())
    }

    async fn get(&self, id: &str) -> Result<ChangeRecord> {
        self.store
            .change(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("change `{id}`")))
    }

    /// A change with its approvals and verdict.
    pub async fn view(&self, id: &str) -> Result<ChangeView> {
        let record = self.get(id).await?;
        let approvals = self.approvers(id).await?;
        let verdict = if open(record.status) {
            Some(
                self.verdict(&record.change, record.risk, &approvals)
                    .await?,
            )
        } else {
            None
        };
        let impact = self.store.change_impact(id).await?;
        let rollout_id = self.store.rollout_of_change(id).await?.map(|r| r.id);
        Ok(views::change_view(
            record, approvals, verdict, impact, rollout_id,
        ))
    }

    /// The newest changes of `env` (or of all environments).
    pub async fn list(&self, env: Option<Environment>, limit: u32) -> Result<Vec<ChangeRecord>> {
        Ok(self.store.list_changes(env, limit).await?)
    }

    /// What the rules say about `change` with these approvals, now.
    pub async fn verdict(
        &self,
        change: &Change,
        risk: Risk,
        approvers: &[String],
    ) -> Result<Readiness> {
        let rules = self.rules.for_env(change.environment);
        let staging_soaked = match rules.staging_soak_secs(risk) {
            None => false,
            Some(secs) => self.staging_soaked(change, secs).await?,
        };
        Ok(rules::check(
            rules,
            risk,
            &ApprovalFacts {
                author: change.author.clone(),
                approvers: approvers.to_vec(),
                now_ms: self.now_ms(),
                staging_soaked,
            },
        ))
    }

    /// Whether every object `change` touches has had its changed value live in staging for
    /// `secs`: see the module docs.
    pub async fn staging_soaked(&self, change: &Change, secs: u64) -> Result<bool> {
        let staging = Environment::Staging;
        let Some(latest) = self.store.latest_snapshot(staging).await? else {
            return Ok(false);
        };
        let holds = |snap: &SnapshotRecord| {
            let objects = objects_of(snap.snapshot.config());
            change.edits.iter().all(|edit| {
                let key = edit_key(edit);
                match edit {
                    Edit::Upsert(o) => objects.get(&key) == Some(o),
                    Edit::Delete { .. } => !objects.contains_key(&key),
                }
            })
        };
        // Soaked means rolled out in staging to the end: verified, not merely started.
        if !holds(&latest) || !latest.verified {
            return Ok(false);
        }
        let mut since = latest.created_at_ms;
        let mut version = latest.version;
        let floor = latest.version.saturating_sub(SOAK_LOOKBACK);
        while version > floor.max(1) {
            version -= 1;
            let Some(older) = self.store.snapshot(staging, version).await? else {
                continue;
            };
            if !holds(&older) {
                break;
            }
            since = older.created_at_ms;
        }
        Ok(self.now_ms().saturating_sub(since) >= secs.saturating_mul(1000))
    }

    /// Approve a change as `actor` with `role`. Never the author's own; a change that the
    /// rules now let through moves to `approved`.
    pub async fn approve(&self, id: &str, actor: &str, role: Role) -> Result<ChangeView> {
        let record = self.get(id).await?;
        rules::may_approve(role, &record.author, actor).map_err(|r| match r {
            Refusal::OwnChange => ServiceError::Forbidden(r.to_string()),
            other => ServiceError::Forbidden(other.to_string()),
        })?;
        if !matches!(
            record.status,
            ChangeStatus::AwaitingApproval | ChangeStatus::Approved
        ) {
            return Err(ServiceError::Conflict {
                code: ErrorCode::StatusConflict,
                message: format!("change `{id}` is {}: it cannot be approved", record.status),
            });
        }
        let mut approvers = self.approvers(id).await?;
        approvers.push(actor.to_owned());
        let verdict = self
            .verdict(&record.change, record.risk, &approvers)
            .await?;
        let to = if verdict.ready {
            ChangeStatus::Approved
        } else {
            record.status
        };
        let mut tx = self.store.begin().await?;
        // Also a guard: the status is still the one read above.
        tx.set_change_status(id, record.status, to).await?;
        tx.add_approval(id, actor).await?;
        let detail = json!({
            "role": role.as_str(),
            "approvals": approvers.len(),
            "status": to.as_str(),
        });
        commit_audited(tx, actor, AuditAction::ChangeApproved, &subject(id), detail).await?;
        let mut record = record;
        record.status = to;
        Ok(views::change_view(
            record,
            approvers,
            Some(verdict),
            None,
            None,
        ))
    }

    /// Reject a change that has not been applied (approver or admin; the API checks the role).
    pub async fn reject(&self, id: &str, actor: &str, reason: &str) -> Result<ChangeRecord> {
        self.close(
            id,
            actor,
            ChangeStatus::Rejected,
            AuditAction::ChangeRejected,
            reason,
        )
        .await
    }

    /// Withdraw a change: its author (editor or above) or an admin.
    pub async fn withdraw(&self, id: &str, actor: &str, role: Role) -> Result<ChangeRecord> {
        let record = self.get(id).await?;
        if !rules::can_withdraw(role, &record.author, actor) {
            return Err(ServiceError::Forbidden(
                "only the author of a change (or an admin) may withdraw it".to_owned(),
            ));
        }
        self.close(
            id,
            actor,
            ChangeStatus::Withdrawn,
            AuditAction::ChangeWithdrawn,
            "",
        )
        .await
    }

    async fn close(
        &self,
        id: &str,
        actor: &str,
        to: ChangeStatus,
        action: AuditAction,
        reason: &str,
    ) -> Result<ChangeRecord> {
        let mut record = self.get(id).await?;
        if !open(record.status) {
            return Err(ServiceError::Conflict {
                code: ErrorCode::StatusConflict,
                message: format!("change `{id}` is {}: it can no longer move", record.status),
            });
        }
        let mut tx = self.store.begin().await?;
        tx.set_change_status(id, record.status, to).await?;
        let detail = json!({ "from": record.status.as_str(), "reason": reason });
        audit_in(&mut tx, actor, action, &subject(id), detail).await?;
        tx.commit().await?;
        record.status = to;
        Ok(record)
    }

    /// Apply a change the rules let through: its edits become the environment's next version
    /// (if its base version is still the head: else a conflict, and the change must be
    /// resubmitted), compiled into a new snapshot.
    pub async fn apply(&self, id: &str, actor: &str) -> Result<(ChangeRecord, SnapshotRecord)> {
        let record = self.get(id).await?;
        if !matches!(
            record.status,
            ChangeStatus::AwaitingApproval | ChangeStatus::Approved
        ) {
            return Err(ServiceError::Conflict {
                code: ErrorCode::StatusConflict,
                message: format!(
                    "change `{id}` is {}: only approved changes apply",
                    record.status
                ),
            });
        }
        let approvers = self.approvers(id).await?;
        let verdict = self
            .verdict(&record.change, record.risk, &approvers)
            .await?;
        if !verdict.ready {
            return Err(ServiceError::NotReady(verdict));
        }
        let env = record.env;
        if let Some(active) = self.rollouts.active(env).await? {
            return Err(ServiceError::Conflict {
                code: ErrorCode::RolloutActive,
                message: format!(
                    "{env} has a rollout in progress ({}, change {}); wait for it to end, or pause/abort it",
                    active.id, active.change_id
                ),
            });
        }
        match self.rollouts.deployed_config(env).await? {
            Some(baseline) => {
                self.rollouts
                    .start(record, baseline, approvers, actor)
                    .await
            }
            None => self.apply_directly(record, approvers, actor).await,
        }
    }

    /// The first config of an environment has no baseline to compare a candidate with: it
    /// is applied at once (and is not verified: it becomes the LKG only after a rollout of a
    /// later change, or never).
    async fn apply_directly(
        &self,
        mut record: ChangeRecord,
        approvers: Vec<String>,
        actor: &str,
    ) -> Result<(ChangeRecord, SnapshotRecord)> {
        let id = record.id.clone();
        let id = id.as_str();
        let env = record.env;
        let mut tx = self.store.begin().await?;
        let version = match tx
            .apply_edits(
                env,
                record.base_version,
                &record.change.edits,
                &record.author,
                id,
            )
            .await
        {
            Ok(v) => v,
            Err(StoreError::Conflict { expected, actual }) => {
                tx.rollback().await?;
                // Lost to a concurrent apply of this very change: say so, not "stale".
                if let Some(now) = self.store.change(id).await?
                    && now.status != record.status
                {
                    return Err(ServiceError::Conflict {
                        code: ErrorCode::StatusConflict,
                        message: format!("change `{id}` is now {}", now.status),
                    });
                }
                return Err(ServiceError::Conflict {
                    code: ErrorCode::StaleVersion,
                    message: format!(
                        "change `{id}` was written against version {expected} of {env}, which is now at version {actual}; it stays {} and must be resubmitted against the current config",
                        record.status
                    ),
                });
            }
            Err(e) => return Err(e.into()),
        };
        tx.set_change_status(id, record.status, ChangeStatus::Applied)
            .await?;
        let (config, _) = tx.config(env).await?;
        let snapshot = Snapshot::new(config, Vec::new());
        if let Err(e) = Evaluator::compile(&snapshot) {
            let fields = e
                .errors
                .0
                .into_iter()
                .map(|e| FieldError {
                    path: e.path,
                    message: e.message,
                })
                .collect();
            return Err(ServiceError::Invalid {
                message: "the resulting config does not compile; nothing was applied".to_owned(),
                fields,
                change_id: None,
            });
        }
        tx.put_snapshot(env, version, &snapshot).await?;
        tx.put_deployment(&snapshot, None, "first config").await?;
        let detail = json!({
            "env": env.as_str(),
            "version": version,
            "hash": snapshot.hash().to_string(),
            "approvals": approvers,
        });
        commit_audited(tx, actor, AuditAction::ChangeApplied, &subject(id), detail).await?;
        record.status = ChangeStatus::Applied;
        let stored =
            self.store.snapshot(env, version).await?.ok_or_else(|| {
                ServiceError::Internal("the applied snapshot vanished".to_owned())
            })?;
        Ok((record, stored))
    }
}
