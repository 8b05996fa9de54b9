//! The risk rules, as data, checked in one place.
//!
//! A change reaches an environment only when [`check`] says it is ready. [`check`] takes the
//! environment's [`EnvRules`], the change's [`Risk`](rampart_model::Risk) (derived by
//! [`change_risk`], never declared by the author) and the [`ApprovalFacts`]. **It takes no
//! role**: no role, token or flag can make a change ready sooner. The only fast path is going
//! back to the last known good snapshot ([`rollback_allowed`]), which needs no approval because
//! the LKG was verified on this fleet.
//!
//! - [`permissions`]: what each role may do ([`Permission`], [`allowed`]), and who may approve
//!   ([`may_approve`]) or withdraw ([`can_withdraw`]) a change;
//! - [`config`]: the rules of each environment ([`RulesConfig`], [`EnvRules`], [`RiskPolicy`],
//!   change [`Window`]s), their defaults and their validation;
//! - [`readiness`]: [`check`], whose [`Readiness`](rampart_api::Readiness) lists everything a
//!   change still lacks ([`Missing`](rampart_api::Missing));
//! - [`risk`]: a change's risk, derived from what it touches ([`change_risk`], [`edit_risks`]).

pub mod config;
pub mod permissions;
pub mod readiness;
pub mod risk;

pub use config::{
    CRITICAL_STAGING_SOAK_SECS, EnvRules, EnvRulesWire, HIGH_STAGING_SOAK_SECS, MAX_APPROVALS,
    MAX_CHANGE_WINDOWS, MAX_STAGING_SOAK_SECS, RiskPolicy, RiskPolicyWire, RulesConfig,
    RulesConfigWire, RulesError, Window, WindowWire,
};
pub use permissions::{
    Permission, Refusal, allowed, can_approve, can_withdraw, may_approve, rollback_allowed,
};
pub use readiness::{ApprovalFacts, check};
pub use risk::{EditRisk, change_risk, edit_risks};

#[cfg(test)]
mod tests;
