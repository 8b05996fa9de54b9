//! Changes: their life, how they are submitted, and how they are shown.

use std::fmt;

use rampart_model::change::Edit;
use rampart_model::{Change, DeclaredImpact, Environment, Risk};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::env::SnapshotRef;

rampart_model::wire_enum! {
    /// Where a change is in its life. A rollout slots in between `approved` and `applied`.
    pub enum ChangeStatus {
        Submitted,
        Validated,
        AwaitingApproval,
        Approved,
        RollingOut,
        Applied,
        Rejected,
        Withdrawn,
        RolledBack,
    }
}

impl ChangeStatus {
    /// Whether the change can move no further.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ChangeStatus::Applied
                | ChangeStatus::Rejected
                | ChangeStatus::Withdrawn
                | ChangeStatus::RolledBack
        )
    }
}

/// A stored change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeRecord {
    pub id: String,
    pub env: Environment,
    pub author: String,
    pub reason: String,
    pub risk: Risk,
    pub status: ChangeStatus,
    pub change: Change,
    /// The environment version the change was written against.
    pub base_version: u64,
    /// The validation errors (`[{ path, message }]`) of a change recorded as rejected.
    #[schema(value_type = Option<Vec<crate::FieldError>>)]
    pub validation: Option<Value>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// Something a change still lacks before it may be applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Missing {
    /// Not enough approvals from distinct users other than the author.
    Approvals { have: u32, need: u32 },
    /// The author's own approval was recorded. It never counts, and it blocks the change until
    /// it is gone, because it means something went around the approval rules.
    AuthorApproved,
    /// The same values have not been live in staging for long enough.
    StagingSoak { need_secs: u64 },
    /// No change window is open.
    ChangeWindowClosed,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Approvals { have, need } => write!(
                f,
                "needs {need} approval{} from people other than the author, has {have}",
                if *need == 1 { "" } else { "s" }
            ),
            Missing::AuthorApproved => f.write_str(
                "the author approved their own change: that never counts, and it must be removed",
            ),
            Missing::StagingSoak { need_secs } => write!(
                f,
                "the same values must have been live in staging for {need_secs} s first"
            ),
            Missing::ChangeWindowClosed => f.write_str("no change window is open"),
        }
    }
}

/// Whether a change may be applied now, and if not, everything it lacks: shown as a change's
/// `verdict`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `true` exactly when `missing` is empty.
    pub ready: bool,
    pub missing: Vec<Missing>,
}

impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ready {
            return f.write_str("ready");
        }
        f.write_str("not ready: ")?;
        for (i, m) in self.missing.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

/// A change with its approvals and, while it can still move, what it lacks:
/// `GET /v1/changes/{id}`, and the answer of submit and approve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeView {
    #[serde(flatten)]
    pub record: ChangeRecord,
    pub approvals: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Readiness>,
    /// The impact test's report, once it ran.
    #[schema(value_type = Option<Object>)]
    pub impact: Option<Value>,
    /// The rollout of the change, once it started.
    pub rollout_id: Option<String>,
}

/// `GET /v1/envs/{env}/changes`: the newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeList {
    pub changes: Vec<ChangeRecord>,
}

/// The body of `POST /v1/envs/{env}/changes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    pub reason: String,
    /// What the author expects the change to do to traffic.
    #[serde(default)]
    pub declared_impact: DeclaredImpact,
    pub edits: Vec<Edit>,
    /// The environment version the edits were written against.
    pub base_version: u64,
}

/// The body of `POST /v1/changes/{id}/reject`: an optional reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    #[serde(default)]
    pub reason: String,
}

/// The body of approve, withdraw, apply and rollback: nothing, or `{}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyRequest {}

/// `POST /v1/changes/{id}/apply`: the change (rolling out), its candidate snapshot, its
/// rollout, and the hash gateways are now told to run (the first stage; the config itself for
/// an environment's first change).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApplyResponse {
    pub change: ChangeRecord,
    pub snapshot: SnapshotRef,
    pub rollout_id: Option<String>,
    pub deployed_hash: Option<String>,
}
