//! The control plane's records as the API shows them: the `rampart-api` types.

use rampart_api as api;
use serde_json::Value;

use crate::rules::{Missing, Readiness};
use crate::store::{ChangeRecord, GatewaySeen, SnapshotRecord, TokenRecord};

/// A change with its approvals, verdict, impact report and rollout.
pub fn change_view(
    record: ChangeRecord,
    approvals: Vec<String>,
    verdict: Option<Readiness>,
    impact: Option<Value>,
    rollout_id: Option<String>,
) -> api::ChangeView {
    api::ChangeView {
        record: change_record(record),
        approvals,
        verdict: verdict.map(verdict_view),
        impact,
        rollout_id,
    }
}

pub fn change_record(r: ChangeRecord) -> api::ChangeRecord {
    api::ChangeRecord {
        id: r.id,
        env: r.env,
        author: r.author,
        reason: r.reason,
        risk: r.risk,
        status: r.status,
        change: r.change,
        base_version: r.base_version,
        validation: r.validation,
        created_at_ms: r.created_at_ms,
        updated_at_ms: r.updated_at_ms,
    }
}

pub fn verdict_view(v: Readiness) -> api::Verdict {
    api::Verdict {
        ready: v.ready,
        missing: v
            .missing
            .into_iter()
            .map(|m| match m {
                Missing::Approvals { have, need } => api::Missing::Approvals { have, need },
                Missing::AuthorApproved => api::Missing::AuthorApproved,
                Missing::StagingSoak { need_secs } => api::Missing::StagingSoak { need_secs },
                Missing::ChangeWindowClosed => api::Missing::ChangeWindowClosed,
            })
            .collect(),
    }
}

pub fn snapshot_record(r: SnapshotRecord) -> api::SnapshotRecord {
    api::SnapshotRecord {
        env: r.env,
        version: r.version,
        hash: r.hash,
        snapshot: r.snapshot,
        verified: r.verified,
        verified_at_ms: r.verified_at_ms,
        created_at_ms: r.created_at_ms,
    }
}

/// A snapshot by version and hash.
pub fn snapshot_ref(r: &SnapshotRecord) -> api::SnapshotRef {
    api::SnapshotRef {
        version: r.version,
        hash: r.hash,
    }
}

pub fn token_record(r: TokenRecord) -> api::TokenRecord {
    api::TokenRecord {
        role: r.role_name().to_owned(),
        id: r.id,
        name: r.name,
        kind: r.kind,
        created_at_ms: r.created_at_ms,
        revoked: r.revoked,
    }
}

pub fn gateway_seen(g: GatewaySeen) -> api::GatewaySeen {
    api::GatewaySeen {
        env: g.env,
        id: g.id,
        cell: g.cell,
        version: g.version,
        hash: g.hash,
        last_seen_ms: g.last_seen_ms,
        last_nack: g.last_nack,
    }
}

/// A rollout with its soak so far and its decisions.
pub fn rollout_view(v: crate::rollout::RolloutView) -> api::RolloutView {
    let r = v.record;
    api::RolloutView {
        id: r.id,
        change_id: r.change_id,
        env: r.env,
        risk: r.risk,
        state: r.state,
        stages: r.plan.stages,
        stage_index: r.stage_index,
        stage_started_ms: r.stage_started_ms,
        paused_at_ms: r.paused_at_ms,
        paused_total_ms: r.paused_total_ms,
        baseline_version: r.baseline_version,
        candidate_version: r.candidate_version,
        baseline_hash: r.baseline_hash,
        candidate_hash: r.candidate_hash,
        last_eval: r.last_eval,
        reason: r.reason,
        rev: r.rev,
        created_ms: r.created_ms,
        updated_ms: r.updated_ms,
        finished_ms: r.finished_ms,
        soaked_secs: v.soaked_secs,
        decisions: v
            .decisions
            .into_iter()
            .map(|d| api::RolloutDecision {
                at_ms: d.at_ms,
                stage_index: d.stage_index,
                stage: d.stage,
                action: d.action,
                actor: d.actor,
                evidence: d.evidence,
            })
            .collect(),
    }
}

/// An audit entry as the API shows it.
pub fn audit_entry(e: crate::audit::AuditEntry) -> api::AuditLogEntry {
    api::AuditLogEntry {
        seq: e.seq,
        at_ms: e.at_ms,
        actor: e.actor,
        action: e.action.to_string(),
        subject: e.subject,
        detail: e.detail,
        prev_hash: e.prev_hash,
        hash: e.hash,
    }
}
