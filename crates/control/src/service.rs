//! The one path for changes: submit, approve, reject, withdraw, apply, and the fast path back to
//! the last known good snapshot. The admin API ([`crate::api`]) calls only this.
//!
//! # Statuses
//!
//! ```text
//! submit ─┬─> rejected                      (validation or compilation failed; errors stored)
//!         ├─> awaiting_approval ─┬─> approved ─> applied
//!         │                      └────────────> applied   (when the rules are met at apply time)
//!         └─> approved ───────────────────────> applied   (the rules need no approval)
//! awaiting_approval | approved ─> rejected (by an approver) | withdrawn (author or admin)
//! ```
//!
//! `submitted` and `validated` exist in the store, but submission validates synchronously and
//! records the outcome in the same transaction, so no stored change rests in them. The rollout
//! engine slots in between `approved` and `applied`: it will move `approved → rolling_out`
//! where [`Service::apply`] now moves `approved → applied`, and `rolling_out → applied` (or
//! `rolled_back`) when the rollout ends. Nothing else needs to change.
//!
//! # Readiness is re-checked on apply
//!
//! [`rules::check`] is evaluated when an approval is recorded (moving the change to `approved`
//! when it is ready) and again when the change is applied, because what it depends on moves
//! with time: a change window closes, a staging soak completes. A change that is still
//! `awaiting_approval` but ready at apply time (its soak completed after its last approval, or
//! two approvals raced) is applied; an `approved` change that is no longer ready (its window
//! closed) is refused with [`ServiceError::NotReady`].
//!
//! # Staging soak
//!
//! "The same values have been live in staging for the soak time" is measured on staging's
//! stored snapshots: for every object the change touches, its value in the candidate must equal
//! its value in staging's newest snapshot (a deletion: absent from both), and the soak is
//! counted from the oldest snapshot in the unbroken run of newest staging snapshots that all
//! hold those values (looking back at most [`SOAK_LOOKBACK`] snapshots). A snapshot is taken
//! as live from when it was stored; the rollout engine will refine this to "at 100%".
//!
//! # Transactions
//!
//! Every state change and its audit entries are written in one [`StoreTx`]: a failure leaves
//! nothing behind. Reads that the transaction type does not offer (approvals, snapshots) are
//! made before it, and every decision that depends on them is guarded inside it by a
//! compare-and-set on the change's status or the environment's head, so a concurrent writer
//! makes the transaction fail with a conflict rather than act on a stale read.

use rampart_api::{ChangeStatus, Role, TokenKind};
use rampart_model::EnumName;
use rampart_model::clock::unix_ms;
use std::collections::BTreeMap;

use rampart_eval::Evaluator;
use rampart_model::change::{Edit, Object, ObjectKind};
use rampart_model::config::{Config, Environment, Settings};
use rampart_model::{Change, DeclaredImpact, Risk, Snapshot};
use serde::Serialize;
use serde_json::{Value, json};

use crate::audit::{self, AuditAction, ChainError};
use crate::rules::{self, ApprovalFacts, Refusal, RulesConfig, Verdict};
use crate::store::ops::*;
use crate::store::{
    self, AuditRecord, ChangeRecord, NewAuditRecord, NewChange, SnapshotRecord, Store, StoreError,
    StoreTx, TokenRecord,
};

/// How many staging snapshots the soak measurement looks back through.
pub const SOAK_LOOKBACK: u64 = 200;

/// One error at one path, as shown to API clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

/// Why a service operation failed. Each maps to one HTTP status in [`crate::api`].
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0} not found")]
    NotFound(String),
    /// The caller may not do this (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// A concurrent or stale write (HTTP 409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The request is well-formed but cannot be accepted (HTTP 422).
    #[error("{message}")]
    Invalid {
        message: String,
        fields: Vec<FieldError>,
        /// The change recorded as rejected, if one was.
        change_id: Option<String>,
    },
    /// The change does not meet the risk rules yet (HTTP 409).
    #[error("the change is not ready: {0}")]
    NotReady(Verdict),
    /// Something the caller cannot fix (HTTP 500); the details are logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => ServiceError::Conflict {
                code: "stale_version",
                message: e.to_string(),
            },
            StoreError::StatusConflict { .. } => ServiceError::Conflict {
                code: "status_conflict",
                message: e.to_string(),
            },
            StoreError::NotFound { what } => ServiceError::NotFound(what),
            StoreError::Duplicate { what } => ServiceError::Conflict {
                code: "duplicate",
                message: format!("{what} already exists"),
            },
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// What a submitter sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub env: Environment,
    pub reason: String,
    pub declared_impact: DeclaredImpact,
    pub edits: Vec<Edit>,
    /// The environment version the edits were written against.
    pub base_version: u64,
}

/// A change with its approvals and, while it can still move, what it lacks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeView {
    #[serde(flatten)]
    pub record: ChangeRecord,
    pub approvals: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// The impact test's report, once it ran (see [`crate::impact`]).
    pub impact: Option<Value>,
    /// The rollout of the change, once it started.
    pub rollout_id: Option<String>,
}

/// The outcome of an audit verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    pub ok: bool,
    pub entries: u64,
    /// `(seq, hash)` of the last entry: keep it elsewhere to detect a truncated tail.
    pub head_seq: u64,
    pub head_hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bad_seq: Option<u64>,
}

/// The change service: a store and the risk rules.
#[derive(Debug, Clone)]
pub struct Service {
    store: Store,
    rules: RulesConfig,
    rollouts: std::sync::Arc<crate::plan::RolloutConfig>,
    /// Woken when this process deploys behind the API's back (the rollout driver), so its
    /// streams publish at once instead of at their next poll.
    deployed: std::sync::Arc<tokio::sync::Notify>,
}

/// The audit hash of a stored row: [`audit::entry_hash`] over the row's fields.
fn row_hash(action: AuditAction, detail: &Value) -> impl FnOnce(&AuditRecord) -> String {
    let detail = detail.clone();
    move |e| {
        audit::entry_hash(
            e.seq,
            e.at_ms,
            &e.actor,
            action,
            &e.subject,
            &detail,
            &e.prev_hash,
        )
    }
}

/// Append one audit entry inside `tx`.
pub async fn audit_in(
    tx: &mut StoreTx,
    actor: &str,
    action: AuditAction,
    subject: &str,
    detail: Value,
) -> Result<AuditRecord> {
    let row = NewAuditRecord {
        actor: actor.to_owned(),
        action,
        subject: subject.to_owned(),
        detail: detail.to_string(),
    };
    Ok(tx.append_audit_row(&row, row_hash(action, &detail)).await?)
}

/// What a return to `target` deployed, at `version`.
pub(crate) fn deployed_record(target: &SnapshotRecord, version: u64) -> SnapshotRecord {
    let snapshot = Snapshot::new(target.snapshot.config().clone(), Vec::new());
    SnapshotRecord {
        env: target.env,
        version,
        hash: snapshot.hash(),
        snapshot,
        verified: target.verified,
        verified_at_ms: target.verified_at_ms,
        created_at_ms: unix_ms(),
    }
}

fn kind_str(kind: ObjectKind) -> &'static str {
    kind.as_str()
}

type ObjectMap = BTreeMap<(&'static str, String), Object>;

fn objects_of(config: &Config) -> ObjectMap {
    config
        .objects()
        .map(|o| {
            let (kind, name) = o.key();
            ((kind_str(kind), name.to_owned()), o)
        })
        .collect()
}

fn config_of(env: Environment, settings: Settings, objects: ObjectMap) -> Config {
    let mut config = Config {
        environment: env,
        settings,
        products: Vec::new(),
        upstreams: Vec::new(),
        policies: Vec::new(),
        routes: Vec::new(),
        flags: Vec::new(),
    };
    for object in objects.into_values() {
        config.push(object);
    }
    config
}

fn edit_key(edit: &Edit) -> (&'static str, String) {
    match edit {
        Edit::Upsert(o) => {
            let (kind, name) = o.key();
            (kind_str(kind), name.to_owned())
        }
        Edit::Delete { kind, name } => (kind_str(*kind), name.clone()),
    }
}

/// The current config with `edits` applied, or the edits that cannot apply (with paths).
pub fn candidate(current: &Config, edits: &[Edit]) -> Result<Config, Vec<FieldError>> {
    let mut errors = Vec::new();
    if edits.is_empty() {
        errors.push(FieldError {
            path: "edits".to_owned(),
            message: "a change needs at least one edit".to_owned(),
        });
    }
    let mut objects = objects_of(current);
    let mut seen = BTreeMap::new();
    for (i, edit) in edits.iter().enumerate() {
        let key = edit_key(edit);
        if let Some(first) = seen.insert(key.clone(), i) {
            errors.push(FieldError {
                path: format!("edits[{i}]"),
                message: format!(
                    "{} `{}` is already edited by edits[{first}]: one edit per object",
                    key.0, key.1
                ),
            });
            continue;
        }
        match edit {
            Edit::Upsert(o) => {
                objects.insert(key, o.clone());
            }
            Edit::Delete { .. } => {
                if objects.remove(&key).is_none() {
                    errors.push(FieldError {
                        path: format!("edits[{i}]"),
                        message: format!("cannot delete {} `{}`: it does not exist", key.0, key.1),
                    });
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(config_of(
            current.environment,
            current.settings.clone(),
            objects,
        ))
    } else {
        Err(errors)
    }
}

fn field_errors_json(fields: &[FieldError]) -> Value {
    serde_json::to_value(fields).unwrap_or(Value::Null)
}

/// Whether a status can still be withdrawn or rejected.
fn open(status: ChangeStatus) -> bool {
    matches!(
        status,
        ChangeStatus::Submitted
            | ChangeStatus::Validated
            | ChangeStatus::AwaitingApproval
            | ChangeStatus::Approved
    )
}

fn subject(id: &str) -> String {
    format!("change/{id}")
}

impl Service {
    pub fn new(store: Store, rules: RulesConfig) -> Service {
        Service {
            store,
            rules,
            rollouts: Default::default(),
            deployed: Default::default(),
        }
    }

    /// Woken after the rollout driver of this process deployed something.
    pub fn deployed(&self) -> &tokio::sync::Notify {
        &self.deployed
    }

    /// The same service with these rollout rules.
    pub fn with_rollouts(mut self, rollouts: crate::plan::RolloutConfig) -> Service {
        self.rollouts = std::sync::Arc::new(rollouts);
        self
    }

    /// How rollouts run, per environment.
    pub fn rollout_rules(&self) -> &crate::plan::RolloutConfig {
        &self.rollouts
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn rules(&self) -> &RulesConfig {
        &self.rules
    }

    /// Append one audit entry on its own (login failures).
    pub async fn audit(
        &self,
        actor: &str,
        action: AuditAction,
        subject: &str,
        detail: Value,
    ) -> Result<()> {
        let mut tx = self.store.begin().await?;
        audit_in(&mut tx, actor, action, subject, detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Submit a change: validate it, judge its risk, record it with its audit entries.
    /// A change that fails validation is recorded as `rejected` with its errors, and returned
    /// as [`ServiceError::Invalid`] naming it.
    pub async fn submit(&self, actor: &str, sub: Submission) -> Result<ChangeView> {
        let (current, head) = self.store.config(sub.env).await?;
        if sub.base_version != head {
            return Err(ServiceError::Conflict {
                code: "stale_version",
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
        let id = store::new_id("chg")?;
        let (status, validation) = if fields.is_empty() {
            (ChangeStatus::AwaitingApproval, None)
        } else {
            (ChangeStatus::Rejected, Some(field_errors_json(&fields)))
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
        Ok(ChangeView {
            record,
            approvals: Vec::new(),
            verdict,
            impact: None,
            rollout_id: None,
        })
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
        let approvals: Vec<String> = self
            .store
            .approvals(id)
            .await?
            .into_iter()
            .map(|a| a.approver)
            .collect();
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
        Ok(ChangeView {
            record,
            approvals,
            verdict,
            impact,
            rollout_id,
        })
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
    ) -> Result<Verdict> {
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
                now_ms: unix_ms(),
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
        Ok(unix_ms().saturating_sub(since) >= secs.saturating_mul(1000))
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
                code: "status_conflict",
                message: format!("change `{id}` is {}: it cannot be approved", record.status),
            });
        }
        let mut approvers: Vec<String> = self
            .store
            .approvals(id)
            .await?
            .into_iter()
            .map(|a| a.approver)
            .collect();
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
        audit_in(
            &mut tx,
            actor,
            AuditAction::ChangeApproved,
            &subject(id),
            detail,
        )
        .await?;
        tx.commit().await?;
        let mut record = record;
        record.status = to;
        Ok(ChangeView {
            record,
            approvals: approvers,
            verdict: Some(verdict),
            impact: None,
            rollout_id: None,
        })
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
                code: "status_conflict",
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
                code: "status_conflict",
                message: format!(
                    "change `{id}` is {}: only approved changes apply",
                    record.status
                ),
            });
        }
        let approvers: Vec<String> = self
            .store
            .approvals(id)
            .await?
            .into_iter()
            .map(|a| a.approver)
            .collect();
        let verdict = self
            .verdict(&record.change, record.risk, &approvers)
            .await?;
        if !verdict.ready {
            return Err(ServiceError::NotReady(verdict));
        }
        let env = record.env;
        if let Some(active) = self.active_rollout(env).await? {
            return Err(ServiceError::Conflict {
                code: "rollout_active",
                message: format!(
                    "{env} has a rollout in progress ({}, change {}); wait for it to end, or pause/abort it",
                    active.id, active.change_id
                ),
            });
        }
        match self.deployed_config(env).await? {
            Some(baseline) => self.start_rollout(record, baseline, approvers, actor).await,
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
                        code: "status_conflict",
                        message: format!("change `{id}` is now {}", now.status),
                    });
                }
                return Err(ServiceError::Conflict {
                    code: "stale_version",
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
        audit_in(
            &mut tx,
            actor,
            AuditAction::ChangeApplied,
            &subject(id),
            detail,
        )
        .await?;
        tx.commit().await?;
        record.status = ChangeStatus::Applied;
        let stored =
            self.store.snapshot(env, version).await?.ok_or_else(|| {
                ServiceError::Internal("the applied snapshot vanished".to_owned())
            })?;
        Ok((record, stored))
    }

    /// Go back to the last known good snapshot of `env` at once: the only fast path. A rollout
    /// in progress is aborted. The environment's objects are set back to the LKG's (as a new
    /// version, history kept) and the LKG is deployed to every gateway.
    pub async fn rollback(&self, env: Environment, actor: &str) -> Result<SnapshotRecord> {
        // A rollout in progress is aborted (which returns to the LKG). The driver writes the
        // rollout at every evaluation: re-read and retry when it moved meanwhile.
        for attempt in 1.. {
            let Some(active) = self.active_rollout(env).await? else {
                break;
            };
            let reason = format!("rolled back to the LKG by {actor}");
            match self
                .end_rollout(
                    active,
                    rampart_api::RolloutState::Aborted,
                    actor,
                    &reason,
                    json!({ "manual": true }),
                )
                .await
            {
                Err(ServiceError::Conflict {
                    code: "rollout_moved",
                    ..
                }) if attempt < 5 => continue,
                other => return other,
            }
        }
        let lkg = self
            .store
            .last_verified(env)
            .await?
            .ok_or_else(|| ServiceError::Conflict {
                code: "no_lkg",
                message: format!("{env} has no verified snapshot to roll back to"),
            })?;
        let mut tx = self.store.begin().await?;
        let (version, detail) = self.return_to(&mut tx, &lkg, actor, "rollback").await?;
        audit_in(
            &mut tx,
            actor,
            AuditAction::Rollback,
            &format!("env/{env}"),
            detail,
        )
        .await?;
        tx.commit().await?;
        Ok(deployed_record(&lkg, version))
    }

    /// Inside `tx`: set the objects of the target's environment back to the target's (a new
    /// version, unless they are equal already), store its snapshot at that version and deploy
    /// it. Returns the version and an audit detail.
    pub(crate) async fn return_to(
        &self,
        tx: &mut StoreTx,
        target: &SnapshotRecord,
        actor: &str,
        cause: &str,
    ) -> Result<(u64, Value)> {
        let env = target.env;
        let (current, head) = tx.config(env).await?;
        let goal = objects_of(target.snapshot.config());
        let now = objects_of(&current);
        let mut edits: Vec<Edit> = goal
            .iter()
            .filter(|(k, o)| now.get(*k) != Some(*o))
            .map(|(_, o)| Edit::Upsert(o.clone()))
            .collect();
        for (kind, name) in now.keys().filter(|k| !goal.contains_key(*k)) {
            let kind = kind_from_str(kind)?;
            edits.push(Edit::Delete {
                kind,
                name: name.clone(),
            });
        }
        let snapshot = Snapshot::new(target.snapshot.config().clone(), Vec::new());
        let version = if edits.is_empty() {
            head
        } else {
            let rollback_id = store::new_id("rbk")?;
            let v = tx
                .apply_edits(env, head, &edits, actor, &rollback_id)
                .await?;
            tx.put_snapshot(env, v, &snapshot).await?;
            v
        };
        tx.put_deployment(&snapshot, None, cause).await?;
        let detail = json!({
            "env": env.as_str(),
            "to_hash": target.hash.to_string(),
            "to_version": target.version,
            "lkg": target.verified,
            "version": version,
            "edits": edits.len(),
        });
        Ok((version, detail))
    }

    /// Create a token, audited in the same transaction. Returns its secret (shown once).
    pub async fn create_token(
        &self,
        actor: &str,
        name: &str,
        kind: TokenKind,
        role: Option<Role>,
    ) -> Result<(TokenRecord, String)> {
        let mut tx = self.store.begin().await?;
        let (record, secret) = tx.create_token(name, kind, role).await?;
        let detail = json!({ "id": record.id, "kind": kind.as_str(), "role": record.role_name() });
        audit_in(
            &mut tx,
            actor,
            AuditAction::TokenCreated,
            &format!("token/{name}"),
            detail,
        )
        .await?;
        tx.commit().await?;
        Ok((record, secret))
    }

    /// The audit log, as [`audit::AuditEntry`] values. A row that cannot be read as one (an
    /// unknown action, a detail that is not JSON) is kept with an empty hash so that
    /// verification names it as edited.
    pub async fn audit_entries(&self) -> Result<Vec<audit::AuditEntry>> {
        let rows = self.store.audit_rows().await?;
        Ok(rows.into_iter().map(entry_of).collect())
    }

    /// Verify the whole audit chain.
    pub async fn verify_audit(&self) -> Result<AuditReport> {
        let rows = self.store.audit_rows().await?;
        let unreadable: Option<u64> = rows
            .iter()
            .find(|r| r.action.is_none() || serde_json::from_str::<Value>(&r.detail).is_err())
            .map(|r| r.seq);
        let (head_seq, head_hash) = rows.last().map_or_else(
            || (0, audit::GENESIS_HASH.to_owned()),
            |r| (r.seq, r.hash.clone()),
        );
        let entries: Vec<audit::AuditEntry> = rows.into_iter().map(entry_of).collect();
        let n = entries.len() as u64;
        let outcome = match (audit::verify(&entries), unreadable) {
            (Err(e), _) => Err((e.to_string(), chain_seq(&e))),
            (Ok(()), Some(seq)) => Err((format!("entry {seq} was edited: it cannot be read"), seq)),
            (Ok(()), None) => Ok(()),
        };
        Ok(match outcome {
            Ok(()) => AuditReport {
                ok: true,
                entries: n,
                head_seq,
                head_hash,
                error: None,
                bad_seq: None,
            },
            Err((msg, seq)) => AuditReport {
                ok: false,
                entries: n,
                head_seq,
                head_hash,
                error: Some(msg),
                bad_seq: Some(seq),
            },
        })
    }
}

fn chain_seq(e: &ChainError) -> u64 {
    match e {
        ChainError::Edited { seq }
        | ChainError::MissingStart { seq }
        | ChainError::BadGenesis { seq }
        | ChainError::Gap { seq, .. }
        | ChainError::OutOfOrder { seq, .. }
        | ChainError::BrokenLink { seq, .. }
        | ChainError::HeadMismatch { seq } => *seq,
        ChainError::Truncated { last, .. } => *last,
    }
}

fn entry_of(e: AuditRecord) -> audit::AuditEntry {
    match (e.action, serde_json::from_str::<Value>(&e.detail)) {
        (Some(action), Ok(detail)) => audit::AuditEntry {
            seq: e.seq,
            at_ms: e.at_ms,
            actor: e.actor,
            action,
            subject: e.subject,
            detail,
            prev_hash: e.prev_hash,
            hash: e.hash,
        },
        _ => audit::AuditEntry {
            seq: e.seq,
            at_ms: e.at_ms,
            actor: e.actor,
            action: AuditAction::ChangeSubmitted,
            subject: e.subject,
            detail: Value::String(e.detail),
            prev_hash: e.prev_hash,
            hash: String::new(),
        },
    }
}

fn kind_from_str(kind: &str) -> Result<ObjectKind> {
    [
        ObjectKind::Product,
        ObjectKind::Upstream,
        ObjectKind::Policy,
        ObjectKind::Route,
        ObjectKind::Flag,
    ]
    .into_iter()
    .find(|k| kind_str(*k) == kind)
    .ok_or_else(|| ServiceError::Internal(format!("unknown object kind `{kind}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_reports_duplicate_and_missing_edits_with_paths() {
        let current = Config {
            environment: Environment::Dev,
            settings: Settings::default(),
            products: Vec::new(),
            upstreams: Vec::new(),
            policies: Vec::new(),
            routes: Vec::new(),
            flags: Vec::new(),
        };
        let del = Edit::Delete {
            kind: ObjectKind::Product,
            name: "nope".to_owned(),
        };
        let errors = candidate(&current, &[del.clone(), del]).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].path, "edits[0]");
        assert_eq!(errors[1].path, "edits[1]");
        assert_eq!(candidate(&current, &[]).unwrap_err()[0].path, "edits");
    }
}
