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

mod admin;
mod changes;
mod fleet;
mod objects;
mod rollback;
pub mod views;

use rampart_api::{ChangeStatus, ErrorCode, Readiness, SnapshotRecord};
use rampart_model::clock::{Clock, SystemClock};
use rampart_store::ops::*;
use std::sync::Arc;

use crate::rollout::Rollouts;

use rampart_model::change::Edit;
use rampart_model::config::Environment;
use rampart_model::{DeclaredImpact, Snapshot};
use serde_json::Value;

pub use objects::candidate;
pub use rampart_api::FieldError;

use crate::audit::{self, AuditAction};
use crate::rules::RulesConfig;
use rampart_store::{AuditRecord, NewAuditRecord, Store, StoreError, StoreTx};

/// How many staging snapshots the soak measurement looks back through.
pub const SOAK_LOOKBACK: u64 = 200;

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
    Conflict { code: ErrorCode, message: String },
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
    NotReady(Readiness),
    /// Something the caller cannot fix (HTTP 500); the details are logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => ServiceError::Conflict {
                code: ErrorCode::StaleVersion,
                message: e.to_string(),
            },
            StoreError::StatusConflict { .. } => ServiceError::Conflict {
                code: ErrorCode::StatusConflict,
                message: e.to_string(),
            },
            StoreError::NotFound { what } => ServiceError::NotFound(what),
            StoreError::Duplicate { what } => ServiceError::Conflict {
                code: ErrorCode::Duplicate,
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

/// The change service: a store and the risk rules.
#[derive(Debug, Clone)]
pub struct Service {
    store: Store,
    rules: RulesConfig,
    rollouts: Rollouts,
    /// The one source of the time for the service and its rollouts.
    clock: Arc<dyn Clock>,
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

/// Append the audit entry of what `tx` did (last, as the store's lock order wants) and commit.
pub async fn commit_audited(
    mut tx: StoreTx,
    actor: &str,
    action: AuditAction,
    subject: &str,
    detail: Value,
) -> Result<()> {
    audit_in(&mut tx, actor, action, subject, detail).await?;
    tx.commit().await?;
    Ok(())
}

/// What a return to `target` deployed, at `version`.
pub(crate) fn deployed_record(
    target: &SnapshotRecord,
    version: u64,
    now_ms: u64,
) -> SnapshotRecord {
    let snapshot = Snapshot::new(target.snapshot.config().clone(), Vec::new());
    SnapshotRecord {
        env: target.env,
        version,
        hash: snapshot.hash(),
        snapshot,
        verified: target.verified,
        verified_at_ms: target.verified_at_ms,
        created_at_ms: now_ms,
    }
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
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Service {
            rollouts: Rollouts::new(store.clone(), Default::default(), clock.clone()),
            store,
            rules,
            clock,
        }
    }

    /// Woken after the rollout driver of this process deployed something.
    pub fn deployed(&self) -> &tokio::sync::Notify {
        self.rollouts.deployed()
    }

    /// The same service with these rollout rules.
    pub fn with_rollouts(mut self, rollouts: crate::plan::RolloutConfig) -> Service {
        self.rollouts = self.rollouts.with_config(rollouts);
        self
    }

    /// The same service, and its rollouts, reading the time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Service {
        self.rollouts = self.rollouts.with_clock(clock.clone());
        self.clock = clock;
        self
    }

    /// The rollouts of every environment.
    pub fn rollouts(&self) -> &Rollouts {
        &self.rollouts
    }

    /// The time now, from the service's clock.
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
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
}
