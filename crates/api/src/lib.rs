//! # rampart-api
//!
//! The admin API's contract, in one crate shared by the control plane (which serves it) and
//! its clients (the CLI, tests, benches): the names of roles, token kinds, change statuses,
//! rollout states, audit actions and rollout decisions. Every type derives serde and
//! `utoipa::ToSchema`, so the OpenAPI document and the wire agree by construction. Enum names come from one strum derive; see
//! [`rampart_model::names`].
//!
//! Like `rampart-model`, this crate is pure: no async runtime, no HTTP, no database.

pub mod audit;
pub mod change;
pub mod decision;
pub mod role;
pub mod rollout;

pub use audit::AuditAction;
pub use change::ChangeStatus;
pub use decision::DecisionAction;
pub use role::{Role, TokenKind};
pub use rollout::RolloutState;
