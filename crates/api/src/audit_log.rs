//! The audit log as the API shows it, and its verification.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One entry of the hash-chained audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditLogEntry {
    /// 1 for the first entry, then one more each time.
    pub seq: u64,
    /// When, in Unix milliseconds.
    pub at_ms: u64,
    /// Who: a user, a gateway id, or `system` for the control plane itself.
    pub actor: String,
    /// What happened, such as `change_submitted` or `login_failed`.
    pub action: String,
    /// What it is about, such as `change/42` or `token/ci`.
    pub subject: String,
    /// Anything else worth keeping (never a secret).
    #[schema(value_type = Object)]
    pub detail: Value,
    /// The previous entry's `hash`.
    pub prev_hash: String,
    pub hash: String,
}

/// `GET /v1/audit`: every entry, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditLog {
    pub entries: Vec<AuditLogEntry>,
}

/// `GET /v1/audit/verify`: the outcome of verifying the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditReport {
    pub ok: bool,
    pub entries: u64,
    /// `(seq, hash)` of the last entry: keep it elsewhere to detect a truncated tail.
    pub head_seq: u64,
    pub head_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad_seq: Option<u64>,
}
