//! The control plane's records as the API shows them, where that is more than the record.

use rampart_api as api;
use serde_json::Value;

/// A change with its approvals, verdict, impact report and rollout.
pub fn change_view(
    record: api::ChangeRecord,
    approvals: Vec<String>,
    verdict: Option<api::Readiness>,
    impact: Option<Value>,
    rollout_id: Option<String>,
) -> api::ChangeView {
    api::ChangeView {
        record,
        approvals,
        verdict,
        impact,
        rollout_id,
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
