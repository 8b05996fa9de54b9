//! # rampart-api
//!
//! The admin API's contract, in one crate shared by the control plane (which serves it) and
//! its clients (the CLI, tests, benches), after sozu's `command` crate and Unleash's
//! `unleash-types`: the request and response body of every endpoint, the one error body with
//! its stable [`ErrorCode`]s, and the names of roles, token kinds, change statuses, rollout
//! states, audit actions and rollout decisions. Every type derives serde and `utoipa::ToSchema`, so the OpenAPI document, the
//! server and its clients agree by construction. Enums are declared with
//! [`rampart_model::wire_enum!`], which gives serde and strum the same names.
//!
//! | module | endpoints |
//! |---|---|
//! | [`env`] | an environment's config, flags, snapshot; rollback |
//! | [`change`] | changes: list, submit, get, approve, reject, withdraw, apply |
//! | [`rollout`] | rollouts: list, get, pause/resume/abort |
//! | [`audit_log`] | the audit log and its verification |
//! | [`token`] | tokens |
//! | [`fleet`] | the fleet view |
//! | [`error`] | every error |
//!
//! The distribution endpoints carry the model's wire types (`rampart_model::wire`).
//!
//! Like `rampart-model`, this crate is pure: no async runtime, no HTTP, no database.

pub mod audit;
pub mod audit_log;
pub mod change;
pub mod decision;
pub mod env;
pub mod error;
pub mod fleet;
pub mod gate;
pub mod role;
pub mod rollout;
pub mod token;

#[cfg(test)]
mod tests;

pub use audit::AuditAction;
pub use audit_log::{AuditLog, AuditLogEntry, AuditReport};
pub use change::{
    ApplyResponse, ChangeList, ChangeRecord, ChangeStatus, ChangeView, EmptyRequest, Missing,
    Readiness, RejectRequest, SubmitRequest,
};
pub use decision::DecisionAction;
pub use env::{ConfigResponse, FlagsResponse, SnapshotRecord, SnapshotRef};
pub use error::{ErrorBody, ErrorCode, FieldError};
pub use fleet::{Fleet, GatewaySeen};
pub use gate::{EvalWindow, GateResult, GateVerdict, StageEval};
pub use role::{Role, TokenKind};
pub use rollout::{
    ControlRequest, RolloutAction, RolloutDecision, RolloutList, RolloutState, RolloutView,
};
pub use token::{NO_ROLE, TokenCreated, TokenRecord, TokenRequest, role_name};
