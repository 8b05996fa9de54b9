//! The rollout engine: it takes an approved change from the baseline to the candidate through
//! the stages of its plan ([`crate::plan`]), judges every stage with the gates
//! ([`crate::gates`]) on the counters gateways report, and rolls back to the last known good
//! snapshot (LKG) when a gate fails.
//!
//! [`Rollouts`] holds what rollouts need (the store, the rollout rules, a [`Clock`], and the
//! wake-up of this process's config streams); the [`Service`](crate::service::Service) keeps
//! one. Its jobs, one module each:
//!
//! - `start`: the impact test, then the change's edits as a new version and its first stage
//!   deployed ([`Rollouts::start`]);
//! - `step`: one look at a rollout: judge the gates, then advance, succeed, or go back to the
//!   LKG ([`Rollouts::step`], [`Rollouts::end`]);
//! - `control`: what people do to a running rollout: pause, resume, abort;
//! - `engine`: the driver loop ([`Engine`]) and its leader lock.
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
//!    ([`DecisionAction`]) is stored with its evidence and audited.
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

mod control;
mod engine;
mod start;
mod step;

use rampart_api::{DecisionAction, ErrorCode, RolloutDecision, RolloutView, SnapshotRecord};
use rampart_store::ops::*;
use std::sync::Arc;

use rampart_model::clock::Clock;
use rampart_model::{Environment, Snapshot};
use serde_json::Value;
use tokio::sync::Notify;

use crate::plan::RolloutConfig;
use crate::service::{Result, ServiceError, audit_in};
use rampart_store::{RolloutRecord, Store, StoreError, StoreTx};

pub use engine::Engine;

/// Reports older than this do not count: the gateway is gone or partitioned.
pub const FRESH_REPORT_MS: u64 = 5_000;

/// Sample batches the impact test reads (the newest), and keeps per environment.
pub const SAMPLE_BATCHES: u32 = 200;

/// How many times a manual action re-reads a rollout that the driver moved meanwhile (it
/// writes each evaluation), before giving up with a conflict.
pub(crate) const CONTROL_ATTEMPTS: usize = 5;

/// What the audit entry of a decision is about: the rollout while it runs, its change when it
/// starts or ends.
fn decision_subject(action: DecisionAction, r: &RolloutRecord) -> String {
    match action {
        DecisionAction::Advanced | DecisionAction::Paused | DecisionAction::Resumed => {
            format!("rollout/{}", r.id)
        }
        _ => format!("change/{}", r.change_id),
    }
}

/// The rollouts of every environment: started, stepped, controlled and shown from here.
#[derive(Debug, Clone)]
pub struct Rollouts {
    store: Store,
    config: Arc<RolloutConfig>,
    clock: Arc<dyn Clock>,
    /// Woken when this process deploys behind the API's back (the rollout driver), so its
    /// streams publish at once instead of at their next poll.
    deployed: Arc<Notify>,
}

impl Rollouts {
    pub fn new(store: Store, config: RolloutConfig, clock: Arc<dyn Clock>) -> Rollouts {
        Rollouts {
            store,
            config: Arc::new(config),
            clock,
            deployed: Arc::default(),
        }
    }

    /// The same rollouts with these rules.
    pub fn with_config(mut self, config: RolloutConfig) -> Rollouts {
        self.config = Arc::new(config);
        self
    }

    /// The same rollouts reading the time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Rollouts {
        self.clock = clock;
        self
    }

    /// How rollouts run, per environment.
    pub fn config(&self) -> &RolloutConfig {
        &self.config
    }

    /// Woken after the rollout driver of this process deployed something.
    pub fn deployed(&self) -> &Notify {
        &self.deployed
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The rollout of `env` still running or paused, if any.
    pub async fn active(&self, env: Environment) -> Result<Option<RolloutRecord>> {
        Ok(self
            .store
            .active_rollouts()
            .await?
            .into_iter()
            .find(|r| r.env == env))
    }

    /// The plain configuration the gateways of `env` run when no rollout is active: the newest
    /// deployment (or, in a store written before deployments existed, the newest snapshot).
    pub async fn deployed_config(&self, env: Environment) -> Result<Option<SnapshotRecord>> {
        let Some(latest) = self.store.latest_snapshot(env).await? else {
            return Ok(None);
        };
        let Some(dep) = self.store.latest_deployment(env).await? else {
            return Ok(Some(latest));
        };
        // Every deployment's config is a stored snapshot (the first config, a rollout's
        // candidate, or the target of a rollback): find it by its hash.
        let plain = Snapshot::new(dep.snapshot.config().clone(), Vec::new());
        let stored = self.store.snapshot_by_hash(env, plain.hash()).await?;
        stored.map(Some).ok_or_else(|| {
            ServiceError::Internal(format!(
                "deployment {} of {env} runs a config that is not a stored snapshot ({})",
                dep.seq,
                plain.hash()
            ))
        })
    }

    /// A rollout with its decisions.
    pub async fn view(&self, id: &str) -> Result<RolloutView> {
        let record = self.record(id).await?;
        self.view_of(record).await
    }

    /// The newest rollouts of `env`.
    pub async fn views(&self, env: Environment, limit: u32) -> Result<Vec<RolloutView>> {
        let mut out = Vec::new();
        for r in self.store.rollouts(env, limit).await? {
            out.push(self.view_of(r).await?);
        }
        Ok(out)
    }

    async fn view_of(&self, record: RolloutRecord) -> Result<RolloutView> {
        let decisions = self.store.decisions(&record.id).await?;
        let now = record.finished_ms.unwrap_or_else(|| self.now_ms());
        let soaked_secs = record.soaked_ms(now) as f64 / 1000.0;
        Ok(record.into_view(soaked_secs, decisions))
    }

    async fn record(&self, id: &str) -> Result<RolloutRecord> {
        self.store
            .rollout(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("rollout `{id}`")))
    }

    /// The rollout's baseline snapshot.
    async fn baseline_of(&self, r: &RolloutRecord) -> Result<SnapshotRecord> {
        let found = self.store.snapshot_by_hash(r.env, r.baseline_hash).await?;
        found.ok_or_else(|| vanished("baseline"))
    }

    /// The rollout's candidate snapshot.
    async fn candidate_of(&self, r: &RolloutRecord) -> Result<SnapshotRecord> {
        let found = self.store.snapshot(r.env, r.candidate_version).await?;
        found.ok_or_else(|| vanished("candidate"))
    }

    /// Inside `tx`: append a decision of rollout `r` at its current stage, by `actor`, with
    /// `detail` as its evidence, and the audit entry that goes with it.
    async fn decide(
        &self,
        tx: &mut StoreTx,
        r: &RolloutRecord,
        action: DecisionAction,
        actor: &str,
        detail: Value,
    ) -> Result<()> {
        let decision = RolloutDecision {
            at_ms: self.now_ms(),
            stage_index: r.stage_index,
            stage: r.plan.stages[r.stage_index].name.clone(),
            action,
            actor: actor.to_owned(),
            evidence: detail.clone(),
        };
        tx.add_decision(&r.id, &decision).await?;
        let subject = decision_subject(action, r);
        audit_in(tx, actor, action.audit_action(), &subject, detail).await?;
        Ok(())
    }
}

fn vanished(which: &str) -> ServiceError {
    ServiceError::Internal(format!("the {which} snapshot vanished"))
}

/// A store conflict on rollout `id`: the driver (or someone) wrote it meanwhile.
fn moved(id: &str) -> impl Fn(StoreError) -> ServiceError + '_ {
    move |e| match e {
        StoreError::Conflict { .. } => ServiceError::Conflict {
            code: ErrorCode::RolloutMoved,
            message: format!("rollout `{id}` moved meanwhile; re-read and retry"),
        },
        e => e.into(),
    }
}

/// Whether `e` is [`moved`]'s conflict: re-read and retry.
pub(crate) fn is_moved(e: &ServiceError) -> bool {
    matches!(
        e,
        ServiceError::Conflict {
            code: ErrorCode::RolloutMoved,
            ..
        }
    )
}
