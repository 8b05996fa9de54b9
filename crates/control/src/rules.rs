//! The risk rules, as data, checked in one place.
//!
//! A change reaches an environment only when [`check`] says it is ready. [`check`] takes the
//! environment's [`EnvRules`], the change's [`Risk`] (derived by [`change_risk`], never declared
//! by the author) and the [`ApprovalFacts`]. **It takes no role**: no role, token or flag can make
//! a change ready sooner. The only fast path is going back to the last known good snapshot
//! ([`rollback_allowed`]), which needs no approval because the LKG was verified on this fleet.
//!
//! # Roles and actions
//!
//! Roles are ordered `viewer < editor < approver < admin`, and each role may do everything the
//! roles below it may. [`allowed`] is the one table:
//!
//! | action | lowest role |
//! |---|---|
//! | `read` | viewer |
//! | `submit_change`, `withdraw` (own change; [`can_withdraw`]), `apply` (when [`check`] is ready), `rollback` | editor |
//! | `approve`, `reject`, `read_audit` | approver |
//! | `manage_tokens` | admin |
//!
//! An admin's approval counts exactly like an approver's: one approval, never the author's.
//! There is no action that skips approvals, and none that edits the rules: the rules come from
//! the control plane's configuration, not from the API. Gateway tokens are not a [`Role`]: they
//! are a separate kind of credential that may only stream config and report status.
//!
//! # How strict each risk level is, by default
//!
//! From the DESIGN table, for prod; [`EnvRules::defaults`]. The author's own approval never
//! counts, in any environment, and cannot be configured to.
//!
//! | env | risk | approvals | staging soak first | change window |
//! |---|---|---|---|---|
//! | dev | low, medium | 0 | no | no |
//! | dev | high, critical | 1 | no | no |
//! | staging | low | 0 | no | no |
//! | staging | medium | 1 | no | no |
//! | staging | high, critical | 2 | no | no |
//! | prod | low | 0 | no | no |
//! | prod | medium | 1 | no | no |
//! | prod | high | 2 | 1 h ([`HIGH_STAGING_SOAK_SECS`]) | no |
//! | prod | critical | 2 | 3 h ([`CRITICAL_STAGING_SOAK_SECS`]) | yes |
//!
//! Dev is lenient so that people can iterate, but a high or critical change still needs a
//! second person. Staging is where changes soak, so it cannot require a staging soak itself, and
//! it needs no change window. The prod soak times are the length of a full progressive rollout
//! at that risk (six stages of 10 min for high, of 30 min for critical). Prod has **no change
//! windows by default**, so a critical change cannot reach prod until windows are configured:
//! the rules fail closed.
//!
//! The rules are configurable per environment ([`RulesConfig`], serde, unknown fields are
//! errors) and validated on the way in:
//!
//! - at most [`MAX_APPROVALS`] approvals, a staging soak of at most [`MAX_STAGING_SOAK_SECS`],
//!   at most [`MAX_CHANGE_WINDOWS`] windows, each non-empty;
//! - `author_may_approve` may be written, but only as `false`;
//! - a higher risk is never laxer than a lower one (approvals, soak, window);
//! - a staging soak only exists in prod;
//! - prod floors, which make the DESIGN's promises hold whatever the configuration: high and
//!   critical need at least one approval and a staging soak, and critical needs a change window.
//!
//! # Risk is derived from what a change touches
//!
//! [`change_risk`] is the maximum over the change's edits (a change with no edits is low):
//!
//! | edit | risk |
//! |---|---|
//! | upsert a flag | the higher of its new `risk` and its current `risk` (lowering a flag's risk is governed by the old level) |
//! | delete a flag | the higher of its current `risk` and medium |
//! | upsert a policy | medium, or more: see bindings below |
//! | delete a policy | medium, or more: see bindings below |
//! | upsert or delete a route | medium, or more: see bindings below |
//! | upsert or delete an upstream | medium |
//! | upsert a product | low (a name and a description: no effect on traffic) |
//! | delete a product | medium (any deletion is at least medium) |
//!
//! **Bindings.** A policy field bound to a flag is controlled by that flag, so whoever puts a
//! flag's control onto traffic, or takes it off, needs the care the flag needs. A policy edit
//! inherits the risk of every flag whose binding it adds, removes or moves (compared by field
//! path; a new policy adds all of its bindings and a deleted one removes them), and a route
//! edit inherits the risk of every flag bound in a policy it attaches or detaches. Editing a
//! policy around an unchanged binding stays medium. A flag's risk here is the highest of its
//! current value and its value in the change.

use rampart_api::Role;
use rampart_model::EnumName;
use std::collections::{BTreeSet, HashSet};
use std::fmt;

use rampart_model::change::{Edit, Object, ObjectKind};
use rampart_model::config::{Policy, Route};
use rampart_model::{Change, Config, Environment, Risk};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every risk level, lowest first.
pub const RISKS: [Risk; 4] = [Risk::Low, Risk::Medium, Risk::High, Risk::Critical];

/// The most approvals a rule may ask for.
pub const MAX_APPROVALS: u32 = 10;
/// The longest staging soak a rule may ask for: 30 days.
pub const MAX_STAGING_SOAK_SECS: u64 = 30 * 24 * 3600;
/// The most change windows an environment may list.
pub const MAX_CHANGE_WINDOWS: usize = 1000;
/// The default staging soak of a high-risk change bound for prod: 1 h.
pub const HIGH_STAGING_SOAK_SECS: u64 = 3600;
/// The default staging soak of a critical change bound for prod: 3 h.
pub const CRITICAL_STAGING_SOAK_SECS: u64 = 3 * 3600;

// ---------------------------------------------------------------------------------------------
// Roles and actions
// ---------------------------------------------------------------------------------------------

/// Something a user token asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Read objects, changes, snapshots, rollouts and the fleet.
    Read,
    /// Read and verify the audit log.
    ReadAudit,
    /// Submit a change (the only way to mutate an environment).
    SubmitChange,
    /// Withdraw a change before it is applied; see [`can_withdraw`].
    Withdraw,
    /// Approve someone else's change; see [`may_approve`].
    Approve,
    /// Reject a change.
    Reject,
    /// Apply a change that [`check`] says is ready.
    Apply,
    /// Go back to the last known good snapshot: the only fast path.
    Rollback,
    /// Create and revoke API and gateway tokens.
    ManageTokens,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 9] = [
        Action::Read,
        Action::ReadAudit,
        Action::SubmitChange,
        Action::Withdraw,
        Action::Approve,
        Action::Reject,
        Action::Apply,
        Action::Rollback,
        Action::ManageTokens,
    ];

    /// The least privileged role that may do this: the one permission table.
    pub fn min_role(self) -> Role {
        match self {
            Action::Read => Role::Viewer,
            Action::SubmitChange | Action::Withdraw | Action::Apply | Action::Rollback => {
                Role::Editor
            }
            Action::Approve | Action::Reject | Action::ReadAudit => Role::Approver,
            Action::ManageTokens => Role::Admin,
        }
    }
}

/// Whether `role` may do `action`. Permission is the role order: see [`Action::min_role`].
pub fn allowed(role: Role, action: Action) -> bool {
    role >= action.min_role()
}

/// Going back to the LKG: any editor or above, with no approval. The only fast path.
pub fn rollback_allowed(role: Role) -> bool {
    allowed(role, Action::Rollback)
}

/// Whether `actor` (with `role`) may withdraw a change by `author`: its author, if an editor or
/// above, or an admin. Withdrawing only ever stops a change, so it bypasses nothing.
pub fn can_withdraw(role: Role, author: &str, actor: &str) -> bool {
    allowed(role, Action::Withdraw) && (same_user(author, actor) || role == Role::Admin)
}

/// Why an approval is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The approver wrote the change. Whatever their role, it never counts.
    #[error("the author of a change can never approve it")]
    OwnChange,
    /// The approver (or the author) has no identity to compare.
    #[error("an approval needs a named approver and a named author")]
    NoIdentity,
    /// The approver's role may not approve.
    #[error("the {0} role may not approve changes (approver or admin may)")]
    Role(Role),
}

/// Whether `approver` may approve a change written by `author`, whatever their roles: never
/// their own. User names are compared trimmed and case-insensitively, so the check fails closed
/// (`Alice` cannot approve `alice`'s change).
pub fn can_approve(author: &str, approver: &str) -> Result<(), Refusal> {
    if author.trim().is_empty() || approver.trim().is_empty() {
        return Err(Refusal::NoIdentity);
    }
    if same_user(author, approver) {
        return Err(Refusal::OwnChange);
    }
    Ok(())
}

/// [`can_approve`], plus the role check: what the approve endpoint asks.
pub fn may_approve(role: Role, author: &str, approver: &str) -> Result<(), Refusal> {
    if !allowed(role, Action::Approve) {
        return Err(Refusal::Role(role));
    }
    can_approve(author, approver)
}

fn normalize_user(user: &str) -> String {
    user.trim().to_lowercase()
}

fn same_user(a: &str, b: &str) -> bool {
    normalize_user(a) == normalize_user(b)
}

// ---------------------------------------------------------------------------------------------
// Rules as data
// ---------------------------------------------------------------------------------------------

/// What a change of one risk level needs in one environment. Built only through validation
/// ([`RiskPolicy::new`] or deserialization), so every value that exists is within bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RiskPolicyWire", into = "RiskPolicyWire")]
pub struct RiskPolicy {
    approvals: u32,
    staging_soak_secs: Option<u64>,
    needs_change_window: bool,
}

/// The wire form of a [`RiskPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskPolicyWire {
    /// Approvals needed from distinct users other than the author.
    pub approvals: u32,
    /// Present so that configuration can say it; only `false` is accepted.
    #[serde(default)]
    pub author_may_approve: bool,
    /// How long the same values must have been live in staging first (prod only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging_soak_secs: Option<u64>,
    /// Whether a change window must be open.
    #[serde(default)]
    pub needs_change_window: bool,
}

impl RiskPolicy {
    /// A policy, checked against the bounds. `path` names it in errors.
    fn checked(w: RiskPolicyWire, path: &str) -> Result<Self, RulesError> {
        if w.author_may_approve {
            return Err(RulesError::AuthorMayApprove {
                path: format!("{path}.author_may_approve"),
            });
        }
        if w.approvals > MAX_APPROVALS {
            return Err(RulesError::TooManyApprovals {
                path: format!("{path}.approvals"),
                approvals: w.approvals,
                max: MAX_APPROVALS,
            });
        }
        if let Some(secs) = w.staging_soak_secs
            && secs > MAX_STAGING_SOAK_SECS
        {
            return Err(RulesError::SoakTooLong {
                path: format!("{path}.staging_soak_secs"),
                secs,
                max: MAX_STAGING_SOAK_SECS,
            });
        }
        Ok(RiskPolicy {
            approvals: w.approvals,
            staging_soak_secs: w.staging_soak_secs,
            needs_change_window: w.needs_change_window,
        })
    }

    /// A policy. There is no way to say that the author may approve.
    pub fn new(
        approvals: u32,
        staging_soak_secs: Option<u64>,
        needs_change_window: bool,
    ) -> Result<Self, RulesError> {
        Self::checked(
            RiskPolicyWire {
                approvals,
                author_may_approve: false,
                staging_soak_secs,
                needs_change_window,
            },
            "policy",
        )
    }

    /// Approvals needed from distinct users other than the author.
    pub fn approvals(&self) -> u32 {
        self.approvals
    }

    /// Always `false`: the author never approves their own change.
    pub const fn author_may_approve(&self) -> bool {
        false
    }

    /// How long the same values must have been live in staging first, if at all.
    pub fn staging_soak_secs(&self) -> Option<u64> {
        self.staging_soak_secs
    }

    /// Whether a change window must be open.
    pub fn needs_change_window(&self) -> bool {
        self.needs_change_window
    }

    /// Whether `self` asks for at least everything `other` asks for.
    fn at_least_as_strict_as(&self, other: &RiskPolicy) -> bool {
        self.approvals >= other.approvals
            && match (self.staging_soak_secs, other.staging_soak_secs) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(a), Some(b)) => a >= b,
            }
            && (self.needs_change_window || !other.needs_change_window)
    }

    const fn lit(approvals: u32, staging_soak_secs: Option<u64>, window: bool) -> Self {
        RiskPolicy {
            approvals,
            staging_soak_secs,
            needs_change_window: window,
        }
    }
}

impl TryFrom<RiskPolicyWire> for RiskPolicy {
    type Error = RulesError;

    fn try_from(w: RiskPolicyWire) -> Result<Self, Self::Error> {
        Self::checked(w, "policy")
    }
}

impl From<RiskPolicy> for RiskPolicyWire {
    fn from(p: RiskPolicy) -> Self {
        RiskPolicyWire {
            approvals: p.approvals,
            author_may_approve: false,
            staging_soak_secs: p.staging_soak_secs,
            needs_change_window: p.needs_change_window,
        }
    }
}

/// A change window: the half-open interval `[start_unix_ms, end_unix_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WindowWire", into = "WindowWire")]
pub struct Window {
    start_unix_ms: u64,
    end_unix_ms: u64,
}

/// The wire form of a [`Window`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowWire {
    pub start_unix_ms: u64,
    pub end_unix_ms: u64,
}

impl Window {
    /// A window; it must not be empty.
    pub fn new(start_unix_ms: u64, end_unix_ms: u64) -> Result<Self, RulesError> {
        Self::checked(
            WindowWire {
                start_unix_ms,
                end_unix_ms,
            },
            "window",
        )
    }

    fn checked(w: WindowWire, path: &str) -> Result<Self, RulesError> {
        if w.start_unix_ms >= w.end_unix_ms {
            return Err(RulesError::EmptyWindow {
                path: path.to_owned(),
                start_unix_ms: w.start_unix_ms,
                end_unix_ms: w.end_unix_ms,
            });
        }
        Ok(Window {
            start_unix_ms: w.start_unix_ms,
            end_unix_ms: w.end_unix_ms,
        })
    }

    /// When the window opens, in Unix milliseconds.
    pub fn start_unix_ms(&self) -> u64 {
        self.start_unix_ms
    }

    /// When the window closes (exclusive), in Unix milliseconds.
    pub fn end_unix_ms(&self) -> u64 {
        self.end_unix_ms
    }

    /// Whether the window is open at `now_ms`.
    pub fn contains(&self, now_ms: u64) -> bool {
        self.start_unix_ms <= now_ms && now_ms < self.end_unix_ms
    }
}

impl TryFrom<WindowWire> for Window {
    type Error = RulesError;

    fn try_from(w: WindowWire) -> Result<Self, Self::Error> {
        Self::checked(w, "window")
    }
}

impl From<Window> for WindowWire {
    fn from(w: Window) -> Self {
        WindowWire {
            start_unix_ms: w.start_unix_ms,
            end_unix_ms: w.end_unix_ms,
        }
    }
}

/// The rules of one environment: a [`RiskPolicy`] per risk level and the change windows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "EnvRulesWire", into = "EnvRulesWire")]
pub struct EnvRules {
    /// Indexed by [`risk_index`].
    per_risk: [RiskPolicy; 4],
    change_windows: Vec<Window>,
}

/// The wire form of [`EnvRules`]. Every risk level must be written out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvRulesWire {
    pub low: RiskPolicyWire,
    pub medium: RiskPolicyWire,
    pub high: RiskPolicyWire,
    pub critical: RiskPolicyWire,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub change_windows: Vec<WindowWire>,
}

fn risk_index(risk: Risk) -> usize {
    match risk {
        Risk::Low => 0,
        Risk::Medium => 1,
        Risk::High => 2,
        Risk::Critical => 3,
    }
}

fn risk_name(risk: Risk) -> &'static str {
    match risk {
        Risk::Low => "low",
        Risk::Medium => "medium",
        Risk::High => "high",
        Risk::Critical => "critical",
    }
}

impl EnvRules {
    /// The defaults of `env`: see the table in the module docs.
    pub fn defaults(env: Environment) -> Self {
        let per_risk = match env {
            Environment::Dev => [
                RiskPolicy::lit(0, None, false),
                RiskPolicy::lit(0, None, false),
                RiskPolicy::lit(1, None, false),
                RiskPolicy::lit(1, None, false),
            ],
            Environment::Staging => [
                RiskPolicy::lit(0, None, false),
                RiskPolicy::lit(1, None, false),
                RiskPolicy::lit(2, None, false),
                RiskPolicy::lit(2, None, false),
            ],
            Environment::Prod => [
                RiskPolicy::lit(0, None, false),
                RiskPolicy::lit(1, None, false),
                RiskPolicy::lit(2, Some(HIGH_STAGING_SOAK_SECS), false),
                RiskPolicy::lit(2, Some(CRITICAL_STAGING_SOAK_SECS), true),
            ],
        };
        EnvRules {
            per_risk,
            change_windows: Vec::new(),
        }
    }

    /// Rules from parts, validated as a whole (not yet against an environment: see
    /// [`EnvRules::check_for`]).
    pub fn new(per_risk: [RiskPolicy; 4], change_windows: Vec<Window>) -> Result<Self, RulesError> {
        let rules = EnvRules {
            per_risk,
            change_windows,
        };
        rules.check_consistent("rules")?;
        Ok(rules)
    }

    /// The same rules with these change windows instead.
    pub fn with_change_windows(self, change_windows: Vec<Window>) -> Result<Self, RulesError> {
        EnvRules::new(self.per_risk, change_windows)
    }

    /// What a change of `risk` needs.
    pub fn policy(&self, risk: Risk) -> &RiskPolicy {
        &self.per_risk[risk_index(risk)]
    }

    /// The change windows.
    pub fn change_windows(&self) -> &[Window] {
        &self.change_windows
    }

    /// Whether a change window is open at `now_ms`.
    pub fn window_open(&self, now_ms: u64) -> bool {
        self.change_windows.iter().any(|w| w.contains(now_ms))
    }

    /// How long a change of `risk` must have soaked in staging, if at all: what the caller
    /// measures to fill [`ApprovalFacts::staging_soaked`].
    pub fn staging_soak_secs(&self, risk: Risk) -> Option<u64> {
        self.policy(risk).staging_soak_secs
    }

    /// Checks that hold in every environment.
    fn check_consistent(&self, path: &str) -> Result<(), RulesError> {
        if self.change_windows.len() > MAX_CHANGE_WINDOWS {
            return Err(RulesError::TooManyWindows {
                path: format!("{path}.change_windows"),
                count: self.change_windows.len(),
                max: MAX_CHANGE_WINDOWS,
            });
        }
        for pair in RISKS.windows(2) {
            let (lower, higher) = (pair[0], pair[1]);
            if !self
                .policy(higher)
                .at_least_as_strict_as(self.policy(lower))
            {
                return Err(RulesError::LaxerThanLowerRisk {
                    path: format!("{path}.{}", risk_name(higher)),
                    risk: higher,
                    lower,
                });
            }
        }
        Ok(())
    }

    /// Checks these rules against the environment they are for: a staging soak only exists in
    /// prod, and prod keeps its floors (see the module docs).
    pub fn check_for(&self, env: Environment) -> Result<(), RulesError> {
        let path = env.as_str();
        for risk in RISKS {
            let p = self.policy(risk);
            let at = |field: &str| format!("{path}.{}.{field}", risk_name(risk));
            if env != Environment::Prod && p.staging_soak_secs.is_some() {
                return Err(RulesError::SoakOutsideProd {
                    path: at("staging_soak_secs"),
                });
            }
            if env == Environment::Prod && risk >= Risk::High {
                if p.approvals == 0 {
                    return Err(RulesError::BelowProdFloor {
                        path: at("approvals"),
                        floor: "high and critical changes need at least one approval in prod",
                    });
                }
                if p.staging_soak_secs.is_none() {
                    return Err(RulesError::BelowProdFloor {
                        path: at("staging_soak_secs"),
                        floor: "high and critical changes must soak in staging before prod",
                    });
                }
                if risk == Risk::Critical && !p.needs_change_window {
                    return Err(RulesError::BelowProdFloor {
                        path: at("needs_change_window"),
                        floor: "critical changes need a change window in prod",
                    });
                }
            }
        }
        self.check_consistent(path)
    }

    fn from_wire(w: EnvRulesWire, path: &str) -> Result<Self, RulesError> {
        let policy = |w: RiskPolicyWire, risk: Risk| {
            RiskPolicy::checked(w, &format!("{path}.{}", risk_name(risk)))
        };
        let per_risk = [
            policy(w.low, Risk::Low)?,
            policy(w.medium, Risk::Medium)?,
            policy(w.high, Risk::High)?,
            policy(w.critical, Risk::Critical)?,
        ];
        let change_windows = w
            .change_windows
            .into_iter()
            .enumerate()
            .map(|(i, win)| Window::checked(win, &format!("{path}.change_windows[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        // Checked as a whole by the caller: `check_consistent` or `check_for`.
        Ok(EnvRules {
            per_risk,
            change_windows,
        })
    }
}

impl TryFrom<EnvRulesWire> for EnvRules {
    type Error = RulesError;

    fn try_from(w: EnvRulesWire) -> Result<Self, Self::Error> {
        let rules = EnvRules::from_wire(w, "rules")?;
        rules.check_consistent("rules")?;
        Ok(rules)
    }
}

impl From<EnvRules> for EnvRulesWire {
    fn from(r: EnvRules) -> Self {
        let [low, medium, high, critical] = r.per_risk.map(RiskPolicyWire::from);
        EnvRulesWire {
            low,
            medium,
            high,
            critical,
            change_windows: r.change_windows.into_iter().map(Into::into).collect(),
        }
    }
}

/// The rules of every environment: what the control plane's configuration holds. An
/// environment left out takes [`EnvRules::defaults`]; one written out is validated against its
/// environment ([`EnvRules::check_for`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RulesConfigWire", into = "RulesConfigWire")]
pub struct RulesConfig {
    dev: EnvRules,
    staging: EnvRules,
    prod: EnvRules,
}

/// The wire form of [`RulesConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfigWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<EnvRulesWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging: Option<EnvRulesWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prod: Option<EnvRulesWire>,
}

impl RulesConfig {
    /// Rules per environment, each checked against its environment.
    pub fn new(dev: EnvRules, staging: EnvRules, prod: EnvRules) -> Result<Self, RulesError> {
        dev.check_for(Environment::Dev)?;
        staging.check_for(Environment::Staging)?;
        prod.check_for(Environment::Prod)?;
        Ok(RulesConfig { dev, staging, prod })
    }

    /// The rules of `env`.
    pub fn for_env(&self, env: Environment) -> &EnvRules {
        match env {
            Environment::Dev => &self.dev,
            Environment::Staging => &self.staging,
            Environment::Prod => &self.prod,
        }
    }
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            dev: EnvRules::defaults(Environment::Dev),
            staging: EnvRules::defaults(Environment::Staging),
            prod: EnvRules::defaults(Environment::Prod),
        }
    }
}

impl TryFrom<RulesConfigWire> for RulesConfig {
    type Error = RulesError;

    fn try_from(w: RulesConfigWire) -> Result<Self, Self::Error> {
        let env = |w: Option<EnvRulesWire>, env: Environment| match w {
            None => Ok(EnvRules::defaults(env)),
            Some(w) => EnvRules::from_wire(w, env.as_str()),
        };
        RulesConfig::new(
            env(w.dev, Environment::Dev)?,
            env(w.staging, Environment::Staging)?,
            env(w.prod, Environment::Prod)?,
        )
    }
}

impl From<RulesConfig> for RulesConfigWire {
    fn from(r: RulesConfig) -> Self {
        RulesConfigWire {
            dev: Some(r.dev.into()),
            staging: Some(r.staging.into()),
            prod: Some(r.prod.into()),
        }
    }
}

/// Rules that cannot be accepted. `path` names the field, as in `prod.critical.approvals`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("{path}: {approvals} approvals is more than the maximum of {max}")]
    TooManyApprovals {
        path: String,
        approvals: u32,
        max: u32,
    },
    #[error("{path}: the author of a change can never approve it; only `false` is accepted")]
    AuthorMayApprove { path: String },
    #[error("{path}: a staging soak of {secs} s is more than the maximum of {max} s")]
    SoakTooLong { path: String, secs: u64, max: u64 },
    #[error("{path}: the window [{start_unix_ms}, {end_unix_ms}) is empty")]
    EmptyWindow {
        path: String,
        start_unix_ms: u64,
        end_unix_ms: u64,
    },
    #[error("{path}: {count} change windows is more than the maximum of {max}")]
    TooManyWindows {
        path: String,
        count: usize,
        max: usize,
    },
    #[error("{path}: {} changes would need less than {} ones", risk_name(*risk), risk_name(*lower))]
    LaxerThanLowerRisk {
        path: String,
        risk: Risk,
        lower: Risk,
    },
    #[error("{path}: a staging soak only applies to prod (staging is where changes soak)")]
    SoakOutsideProd { path: String },
    #[error("{path}: {floor}")]
    BelowProdFloor { path: String, floor: &'static str },
}

// ---------------------------------------------------------------------------------------------
// The check
// ---------------------------------------------------------------------------------------------

/// What is known about a change when it asks to be applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalFacts {
    /// Who submitted the change.
    pub author: String,
    /// The users who approved it. The author's own approval never counts, and names are
    /// compared trimmed and case-insensitively, so duplicates count once.
    pub approvers: Vec<String>,
    /// Now, in Unix milliseconds: the change windows are checked at this instant.
    pub now_ms: u64,
    /// Whether the same values have been live in staging for
    /// [`EnvRules::staging_soak_secs`] of the change's risk. Measured by the caller.
    pub staging_soaked: bool,
}

/// Something a change still lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Missing {
    /// Not enough approvals from distinct users other than the author.
    Approvals { have: u32, need: u32 },
    /// The author's own approval was recorded. It never counts, and it blocks the change until
    /// it is gone, because it means something went around [`can_approve`].
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

/// Whether a change may be applied, and if not, everything it lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    /// `true` exactly when `missing` is empty.
    pub ready: bool,
    pub missing: Vec<Missing>,
}

impl fmt::Display for Verdict {
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

/// The one place the rules are checked. It takes no role: nothing about who asks changes what
/// a change needs.
pub fn check(rules: &EnvRules, risk: Risk, facts: &ApprovalFacts) -> Verdict {
    let policy = rules.policy(risk);
    let mut missing = Vec::new();

    let mut counted = HashSet::new();
    let mut author_approved = false;
    for approver in &facts.approvers {
        match can_approve(&facts.author, approver) {
            Ok(()) => {
                counted.insert(normalize_user(approver));
            }
            Err(Refusal::OwnChange) => author_approved = true,
            Err(_) => {}
        }
    }
    if author_approved {
        missing.push(Missing::AuthorApproved);
    }
    let have = u32::try_from(counted.len()).unwrap_or(u32::MAX);
    if have < policy.approvals {
        missing.push(Missing::Approvals {
            have,
            need: policy.approvals,
        });
    }
    if let Some(need_secs) = policy.staging_soak_secs
        && !facts.staging_soaked
    {
        missing.push(Missing::StagingSoak { need_secs });
    }
    if policy.needs_change_window && !rules.window_open(facts.now_ms) {
        missing.push(Missing::ChangeWindowClosed);
    }
    Verdict {
        ready: missing.is_empty(),
        missing,
    }
}

// ---------------------------------------------------------------------------------------------
// Deriving a change's risk
// ---------------------------------------------------------------------------------------------

/// The risk of one edit of a change, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EditRisk {
    pub kind: ObjectKind,
    pub name: String,
    pub risk: Risk,
    /// A short human reason, such as "flag risk" or "binds flag `x`".
    pub reason: String,
}

/// The risk of a change: the highest of [`edit_risks`], or low for a change with no edits.
pub fn change_risk(change: &Change, current: &Config) -> Risk {
    edit_risks(change, current)
        .into_iter()
        .map(|e| e.risk)
        .max()
        .unwrap_or(Risk::Low)
}

/// The risk of each edit of `change` against the `current` config, with its reason: the
/// mapping in the module docs.
pub fn edit_risks(change: &Change, current: &Config) -> Vec<EditRisk> {
    let ctx = Ctx { change, current };
    change.edits.iter().map(|e| ctx.edit_risk(e)).collect()
}

struct Ctx<'a> {
    change: &'a Change,
    current: &'a Config,
}

impl Ctx<'_> {
    fn edit_risk(&self, edit: &Edit) -> EditRisk {
        let (kind, name) = match edit {
            Edit::Upsert(o) => object_key(o),
            Edit::Delete { kind, name } => (*kind, name.as_str()),
        };
        let (risk, reason) = match edit {
            Edit::Upsert(Object::Flag(f)) => {
                let old = self.current.flags.iter().find(|c| c.name == f.name);
                match old {
                    Some(old) if old.risk > f.risk => (old.risk, "flag risk (current)".to_owned()),
                    _ => (f.risk, "flag risk".to_owned()),
                }
            }
            Edit::Upsert(Object::Product(_)) => (Risk::Low, "product metadata".to_owned()),
            Edit::Upsert(Object::Upstream(_)) => (Risk::Medium, "upstream".to_owned()),
            Edit::Upsert(Object::Policy(p)) => {
                let old = self.current.policies.iter().find(|c| c.id == p.id);
                let moved = symmetric_difference(old.map(bindings), Some(bindings(p)));
                self.with_flags(Risk::Medium, "policy", flag_names(&moved))
            }
            Edit::Upsert(Object::Route(r)) => {
                let old = self.current.routes.iter().find(|c| c.id == r.id);
                let moved = attached_difference(old, Some(r));
                self.with_flags(Risk::Medium, "route", self.flags_of_policies(&moved))
            }
            Edit::Delete { kind, name } => match kind {
                ObjectKind::Flag => match self.current.flags.iter().find(|c| &c.name == name) {
                    Some(old) if old.risk > Risk::Medium => {
                        (old.risk, "deleting a flag (flag risk)".to_owned())
                    }
                    _ => (Risk::Medium, "deletion".to_owned()),
                },
                ObjectKind::Policy => {
                    let old = self.current.policies.iter().find(|c| &c.id == name);
                    let moved = symmetric_difference(old.map(bindings), None);
                    self.with_flags(Risk::Medium, "deletion", flag_names(&moved))
                }
                ObjectKind::Route => {
                    let old = self.current.routes.iter().find(|c| &c.id == name);
                    let moved = attached_difference(old, None);
                    self.with_flags(Risk::Medium, "deletion", self.flags_of_policies(&moved))
                }
                ObjectKind::Product | ObjectKind::Upstream => (Risk::Medium, "deletion".to_owned()),
            },
        };
        EditRisk {
            kind,
            name: name.to_owned(),
            risk,
            reason,
        }
    }

    /// `base`, raised to the risk of any of `flags`.
    fn with_flags(&self, base: Risk, why: &str, flags: BTreeSet<String>) -> (Risk, String) {
        let mut risk = base;
        let mut reason = why.to_owned();
        for flag in flags {
            if let Some(r) = self.flag_risk(&flag)
                && r > risk
            {
                risk = r;
                reason = format!("{why}: binds or unbinds flag `{flag}`");
            }
        }
        (risk, reason)
    }

    /// The highest risk of the flag `name`, in the current config and in the change.
    fn flag_risk(&self, name: &str) -> Option<Risk> {
        let current = self.current.flags.iter().filter(|f| f.name == name);
        let changed = self.change.edits.iter().filter_map(|e| match e {
            Edit::Upsert(Object::Flag(f)) if f.name == name => Some(f),
            _ => None,
        });
        current.chain(changed).map(|f| f.risk).max()
    }

    /// Every flag bound by any version (current or in the change) of the policies `ids`.
    fn flags_of_policies(&self, ids: &BTreeSet<String>) -> BTreeSet<String> {
        let current = self.current.policies.iter();
        let changed = self.change.edits.iter().filter_map(|e| match e {
            Edit::Upsert(Object::Policy(p)) => Some(p),
            _ => None,
        });
        current
            .chain(changed)
            .filter(|p| ids.contains(&p.id))
            .flat_map(|p| bindings(p).into_iter().map(|(_, flag)| flag))
            .collect()
    }
}

fn object_key(o: &Object) -> (ObjectKind, &str) {
    o.key()
}

/// The flag bindings of a policy, as (field path, flag name). Found in the policy's JSON form,
/// where a binding is written `{"flag": "<name>"}`, so a field added to the model later is
/// covered without touching this code.
fn bindings(policy: &Policy) -> BTreeSet<(String, String)> {
    fn walk(v: &Value, path: &mut String, out: &mut BTreeSet<(String, String)>) {
        match v {
            Value::Object(map) => {
                if map.len() == 1
                    && let Some(Value::String(flag)) = map.get("flag")
                {
                    out.insert((path.clone(), flag.clone()));
                    return;
                }
                for (k, v) in map {
                    let len = path.len();
                    path.push('/');
                    path.push_str(k);
                    walk(v, path, out);
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    let len = path.len();
                    path.push('/');
                    path.push_str(&i.to_string());
                    walk(v, path, out);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    // A policy that does not serialize has no bindings to find; it cannot happen with the
    // model's types, and validation rejects the change anyway.
    if let Ok(v) = serde_json::to_value(policy) {
        walk(&v, &mut String::new(), &mut out);
    }
    out
}

fn symmetric_difference(
    old: Option<BTreeSet<(String, String)>>,
    new: Option<BTreeSet<(String, String)>>,
) -> BTreeSet<(String, String)> {
    let old = old.unwrap_or_default();
    let new = new.unwrap_or_default();
    old.symmetric_difference(&new).cloned().collect()
}

fn flag_names(bindings: &BTreeSet<(String, String)>) -> BTreeSet<String> {
    bindings.iter().map(|(_, flag)| flag.clone()).collect()
}

/// The policies attached to or detached from a route.
fn attached_difference(old: Option<&Route>, new: Option<&Route>) -> BTreeSet<String> {
    let ids = |r: Option<&Route>| -> BTreeSet<String> {
        r.map(|r| r.policies.iter().cloned().collect())
            .unwrap_or_default()
    };
    ids(old).symmetric_difference(&ids(new)).cloned().collect()
}

#[cfg(test)]
mod tests {

    use strum::VariantArray;

    use super::*;
    use serde_json::json;

    const ENVS: [Environment; 3] = [Environment::Dev, Environment::Staging, Environment::Prod];

    /// The expected defaults, written out independently of [`EnvRules::defaults`]:
    /// (approvals, staging soak, change window).
    fn expected(env: Environment, risk: Risk) -> (u32, Option<u64>, bool) {
        use Environment::*;
        use Risk::*;
        match (env, risk) {
            (Dev, Low | Medium) => (0, None, false),
            (Dev, High | Critical) => (1, None, false),
            (Staging, Low) => (0, None, false),
            (Staging, Medium) => (1, None, false),
            (Staging, High | Critical) => (2, None, false),
            (Prod, Low) => (0, None, false),
            (Prod, Medium) => (1, None, false),
            (Prod, High) => (2, Some(3600), false),
            (Prod, Critical) => (2, Some(3 * 3600), true),
        }
    }

    const OPEN: u64 = 1_000_000;
    const CLOSED: u64 = 5_000_000;

    fn rules_with_window(env: Environment) -> EnvRules {
        EnvRules::defaults(env)
            .with_change_windows(vec![Window::new(OPEN, OPEN + 3_600_000).unwrap()])
            .unwrap()
    }

    fn facts(approvers: &[&str], now_ms: u64, staging_soaked: bool) -> ApprovalFacts {
        ApprovalFacts {
            author: "alice".into(),
            approvers: approvers.iter().map(|s| s.to_string()).collect(),
            now_ms,
            staging_soaked,
        }
    }

    /// The approvals that the approve endpoint would have recorded: each attempt goes through
    /// [`may_approve`] with the attempter's role.
    fn recorded(role: Role, author: &str, attempts: &[String]) -> Vec<String> {
        attempts
            .iter()
            .filter(|a| may_approve(role, author, a).is_ok())
            .cloned()
            .collect()
    }

    #[test]
    fn matrix_risk_role_environment() {
        let mut combinations = 0;
        for env in ENVS {
            let rules = rules_with_window(env);
            rules.check_for(env).unwrap();
            for risk in RISKS {
                let (need, soak, window) = expected(env, risk);
                let policy = rules.policy(risk);
                assert_eq!(policy.approvals(), need, "{env} {risk:?}");
                assert_eq!(policy.staging_soak_secs(), soak, "{env} {risk:?}");
                assert_eq!(policy.needs_change_window(), window, "{env} {risk:?}");
                assert!(!policy.author_may_approve());
                for author_role in Role::VARIANTS.iter().copied() {
                    assert_eq!(
                        allowed(author_role, Action::SubmitChange),
                        author_role >= Role::Editor
                    );
                    // Whatever the author's role, their own approval is refused...
                    assert!(may_approve(author_role, "alice", "alice").is_err());
                    assert_eq!(can_approve("alice", "alice"), Err(Refusal::OwnChange));
                    for approver_role in Role::VARIANTS.iter().copied() {
                        combinations += 1;
                        let ctx =
                            format!("{env} {risk:?} author={author_role} approver={approver_role}");
                        let can = approver_role >= Role::Approver;
                        let others: Vec<String> = (0..need).map(|i| format!("user{i}")).collect();
                        let got = recorded(approver_role, "alice", &others);
                        assert_eq!(got.len(), if can { need as usize } else { 0 }, "{ctx}");

                        // Everything else satisfied: ready iff enough approvals were recorded.
                        let names: Vec<&str> = got.iter().map(String::as_str).collect();
                        let v = check(&rules, risk, &facts(&names, OPEN, true));
                        assert_eq!(v.ready, can || need == 0, "{ctx}: {v}");
                        assert_eq!(v.ready, v.missing.is_empty(), "{ctx}");
                        if !v.ready {
                            assert_eq!(
                                v.missing,
                                vec![Missing::Approvals { have: 0, need }],
                                "{ctx}"
                            );
                        }
                        if !can || need == 0 {
                            continue;
                        }

                        // One short: not ready, whoever the approvers are.
                        let short = &names[..names.len() - 1];
                        let v = check(&rules, risk, &facts(short, OPEN, true));
                        assert!(!v.ready, "{ctx}");
                        assert_eq!(
                            v.missing,
                            vec![Missing::Approvals {
                                have: need - 1,
                                need
                            }],
                            "{ctx}"
                        );

                        // ...and if the author's approval was recorded anyway, it does not count
                        // and blocks the change.
                        let mut with_author = short.to_vec();
                        with_author.push("alice");
                        let v = check(&rules, risk, &facts(&with_author, OPEN, true));
                        assert!(!v.ready, "{ctx}");
                        assert!(v.missing.contains(&Missing::AuthorApproved), "{ctx}");
                        assert!(
                            v.missing.contains(&Missing::Approvals {
                                have: need - 1,
                                need
                            }),
                            "{ctx}"
                        );

                        // The same person twice counts once.
                        let mut dup = short.to_vec();
                        dup.push(short.first().copied().unwrap_or("user0"));
                        let v = check(&rules, risk, &facts(&dup, OPEN, true));
                        assert_eq!(v.ready, need == 1 && short.is_empty(), "{ctx}");
                    }
                }

                // Staging soak: required exactly for prod high and critical.
                let all: Vec<String> = (0..need).map(|i| format!("user{i}")).collect();
                let names: Vec<&str> = all.iter().map(String::as_str).collect();
                let v = check(&rules, risk, &facts(&names, OPEN, false));
                assert_eq!(
                    v.missing.contains(&Missing::StagingSoak {
                        need_secs: soak.unwrap_or(0)
                    }),
                    soak.is_some(),
                    "{env} {risk:?}"
                );
                assert_eq!(
                    soak.is_some(),
                    env == Environment::Prod && risk >= Risk::High,
                    "{env} {risk:?}"
                );
                // Change window: required exactly for prod critical.
                let v = check(&rules, risk, &facts(&names, CLOSED, true));
                assert_eq!(
                    v.missing.contains(&Missing::ChangeWindowClosed),
                    window,
                    "{env} {risk:?}"
                );
                assert_eq!(window, env == Environment::Prod && risk == Risk::Critical);
                assert_eq!(v.ready, !window, "{env} {risk:?}");
            }
        }
        assert_eq!(combinations, 3 * 4 * 4 * 4);
    }

    #[test]
    fn no_role_skips_approvals() {
        let rules = rules_with_window(Environment::Prod);
        // `check` takes no role. An admin who wrote a critical change cannot approve it, and
        // one admin approval is one approval.
        for role in Role::VARIANTS.iter().copied() {
            assert!(may_approve(role, "root", "root").is_err(), "{role}");
            assert!(may_approve(role, "root", " ROOT ").is_err(), "{role}");
        }
        assert_eq!(may_approve(Role::Admin, "alice", "root"), Ok(()));
        let v = check(&rules, Risk::Critical, &facts(&["root"], OPEN, true));
        assert_eq!(v.missing, vec![Missing::Approvals { have: 1, need: 2 }]);
        let v = check(&rules, Risk::Critical, &facts(&["root", "bob"], OPEN, true));
        assert!(v.ready, "{v}");
        // Not even with every approval can a critical change skip its soak or its window.
        let v = check(
            &rules,
            Risk::Critical,
            &facts(&["root", "bob", "carol"], CLOSED, false),
        );
        assert_eq!(
            v.missing,
            vec![
                Missing::StagingSoak {
                    need_secs: CRITICAL_STAGING_SOAK_SECS
                },
                Missing::ChangeWindowClosed
            ]
        );
        // Editors and viewers cannot approve at all; nobody but editors and up can roll back.
        assert_eq!(
            may_approve(Role::Editor, "alice", "bob"),
            Err(Refusal::Role(Role::Editor))
        );
        assert_eq!(
            may_approve(Role::Viewer, "alice", "bob"),
            Err(Refusal::Role(Role::Viewer))
        );
        assert_eq!(can_approve("", "bob"), Err(Refusal::NoIdentity));
        assert_eq!(can_approve("alice", "  "), Err(Refusal::NoIdentity));
        // Empty or blank approvers never count.
        let v = check(&rules, Risk::Medium, &facts(&["", "  "], OPEN, true));
        assert_eq!(v.missing, vec![Missing::Approvals { have: 0, need: 1 }]);
        // Prod defaults have no change window: critical changes wait until one is configured.
        let closed = EnvRules::defaults(Environment::Prod);
        let v = check(
            &closed,
            Risk::Critical,
            &facts(&["root", "bob"], OPEN, true),
        );
        assert_eq!(v.missing, vec![Missing::ChangeWindowClosed]);
    }

    #[test]
    fn no_configuration_lets_the_author_approve_or_drops_prod_floors() {
        let p = |extra: Value| {
            let mut base = json!({"approvals": 2, "staging_soak_secs": 3600});
            base.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            base
        };
        let env = |high: Value, critical: Value| {
            json!({
                "low": {"approvals": 0},
                "medium": {"approvals": 1},
                "high": high,
                "critical": critical,
            })
        };
        let ok_critical = p(json!({"needs_change_window": true}));
        let good = json!({ "prod": env(p(json!({})), ok_critical.clone()) });
        let cfg: RulesConfig = serde_json::from_value(good).unwrap();
        assert_eq!(
            cfg.for_env(Environment::Prod)
                .policy(Risk::High)
                .approvals(),
            2
        );
        assert_eq!(
            cfg.for_env(Environment::Dev),
            &EnvRules::defaults(Environment::Dev)
        );

        let err = |v: Value| {
            serde_json::from_value::<RulesConfig>(v)
                .unwrap_err()
                .to_string()
        };
        let e =
            err(json!({"prod": env(p(json!({"author_may_approve": true})), ok_critical.clone())}));
        assert!(e.contains("prod.high.author_may_approve"), "{e}");
        // Explicitly `false` is accepted.
        serde_json::from_value::<RulesConfig>(
            json!({"prod": env(p(json!({"author_may_approve": false})), ok_critical.clone())}),
        )
        .unwrap();
        let e = err(json!({"prod": env(p(json!({"approvals": 0})), ok_critical.clone())}));
        assert!(e.contains("prod.high.approvals"), "{e}");
        let e = err(json!({"prod": env(p(json!({"approvals": 11})), ok_critical.clone())}));
        assert!(e.contains("more than the maximum"), "{e}");
        let e = err(json!({"prod": env(json!({"approvals": 2}), ok_critical.clone())}));
        assert!(e.contains("prod.high.staging_soak_secs"), "{e}");
        let e = err(json!({"prod": env(p(json!({})), p(json!({})))}));
        assert!(e.contains("prod.critical.needs_change_window"), "{e}");
        let e = err(json!({"prod": env(p(json!({"approvals": 3})), ok_critical.clone())}));
        assert!(
            e.contains("prod.critical") && e.contains("less than"),
            "{e}"
        );
        let e = err(json!({"staging": env(p(json!({})), ok_critical.clone())}));
        assert!(e.contains("staging.high.staging_soak_secs"), "{e}");
        let e = err(json!({"prod": env(p(json!({"bypass": true})), ok_critical.clone())}));
        assert!(e.contains("unknown field"), "{e}");
        let e = err(json!({"qa": {}}));
        assert!(e.contains("unknown field"), "{e}");
        let mut with_window = env(p(json!({})), ok_critical.clone());
        with_window["change_windows"] = json!([{"start_unix_ms": 10, "end_unix_ms": 10}]);
        let e = err(json!({ "prod": with_window }));
        assert!(e.contains("prod.change_windows[0]"), "{e}");

        assert!(RiskPolicy::new(MAX_APPROVALS + 1, None, false).is_err());
        assert!(RiskPolicy::new(1, Some(MAX_STAGING_SOAK_SECS + 1), false).is_err());
        assert!(Window::new(5, 5).is_err());
    }

    #[test]
    fn defaults_validate_and_round_trip() {
        let cfg = RulesConfig::default();
        for env in ENVS {
            cfg.for_env(env).check_for(env).unwrap();
        }
        let text = serde_json::to_string(&cfg).unwrap();
        assert!(text.contains(r#""author_may_approve":false"#), "{text}");
        let back: RulesConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        let rules = rules_with_window(Environment::Prod);
        let back: EnvRules = serde_json::from_value(serde_json::to_value(&rules).unwrap()).unwrap();
        assert_eq!(back, rules);
        assert!(rules.window_open(OPEN));
        assert!(!rules.window_open(OPEN + 3_600_000));
        assert!(!rules.window_open(OPEN - 1));
    }

    #[test]
    fn permissions_are_one_ordered_table() {
        for action in Action::ALL {
            for role in Role::VARIANTS.iter().copied() {
                for higher in Role::VARIANTS.iter().copied().filter(|h| *h >= role) {
                    assert!(
                        !allowed(role, action) || allowed(higher, action),
                        "{action:?}"
                    );
                }
            }
            assert!(allowed(Role::Admin, action), "{action:?}");
        }
        assert!(allowed(Role::Viewer, Action::Read));
        assert!(!allowed(Role::Viewer, Action::SubmitChange));
        assert!(!allowed(Role::Editor, Action::Approve));
        assert!(!allowed(Role::Approver, Action::ManageTokens));
        assert!(!rollback_allowed(Role::Viewer));
        for role in [Role::Editor, Role::Approver, Role::Admin] {
            assert!(rollback_allowed(role));
        }
        assert!(can_withdraw(Role::Editor, "alice", "Alice"));
        assert!(!can_withdraw(Role::Approver, "alice", "bob"));
        assert!(can_withdraw(Role::Admin, "alice", "root"));
        assert!(!can_withdraw(Role::Viewer, "alice", "alice"));
        for role in Role::VARIANTS.iter().copied() {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(serde_json::to_value(role).unwrap(), json!(role.as_str()));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn missing_reads_well() {
        assert_eq!(
            Missing::Approvals { have: 1, need: 2 }.to_string(),
            "needs 2 approvals from people other than the author, has 1"
        );
        assert_eq!(
            Missing::StagingSoak { need_secs: 3600 }.to_string(),
            "the same values must have been live in staging for 3600 s first"
        );
        let v = Verdict {
            ready: false,
            missing: vec![Missing::AuthorApproved, Missing::ChangeWindowClosed],
        };
        assert!(
            v.to_string().starts_with("not ready: the author approved"),
            "{v}"
        );
    }

    fn config() -> Config {
        rampart_model::load::from_value(json!({
            "environment": "prod",
            "products": [{"name": "app"}],
            "upstreams": [{"name": "app-up", "endpoints": ["127.0.0.1:8080"]}],
            "flags": [
                {"name": "low-f", "type": "bool", "default": false, "risk": "low", "owner": "o"},
                {"name": "high-f", "type": "int", "default": 10, "risk": "high", "owner": "o"},
                {"name": "crit-f", "type": "int", "default": 10, "risk": "critical", "owner": "o"}
            ],
            "policies": [
                {"id": "rl", "rate_limit": {"per_second": {"flag": "high-f"}, "burst": 5, "key": "tenant"}},
                {"id": "plain", "rate_limit": {"per_second": 10, "burst": 5, "key": "tenant"}}
            ],
            "routes": [
                {"id": "r", "product": "app", "match": {"path": {"prefix": "/"}}, "upstream": "app-up", "policies": ["plain"]}
            ]
        }))
        .unwrap()
    }

    fn risk_of(edits: Value) -> Risk {
        let change: Change = rampart_model::load::from_value(json!({
            "environment": "prod",
            "author": "alice",
            "reason": "test",
            "edits": edits,
        }))
        .unwrap();
        change_risk(&change, &config())
    }

    #[test]
    fn risk_is_derived_from_what_a_change_touches() {
        let flag = |name: &str, risk: &str| json!({"upsert": {"flag": {"name": name, "type": "int", "default": 1, "risk": risk, "owner": "o"}}});
        assert_eq!(risk_of(json!([])), Risk::Low);
        // A flag's own risk, old or new, whichever is higher.
        assert_eq!(risk_of(json!([flag("low-f", "low")])), Risk::Low);
        assert_eq!(risk_of(json!([flag("new-f", "medium")])), Risk::Medium);
        assert_eq!(risk_of(json!([flag("high-f", "low")])), Risk::High);
        assert_eq!(risk_of(json!([flag("low-f", "critical")])), Risk::Critical);
        // Deletions are at least medium; a flag's deletion keeps its risk.
        assert_eq!(
            risk_of(json!([{"delete": {"kind": "flag", "name": "low-f"}}])),
            Risk::Medium
        );
        assert_eq!(
            risk_of(json!([{"delete": {"kind": "flag", "name": "crit-f"}}])),
            Risk::Critical
        );
        assert_eq!(
            risk_of(json!([{"delete": {"kind": "product", "name": "app"}}])),
            Risk::Medium
        );
        assert_eq!(
            risk_of(json!([{"delete": {"kind": "upstream", "name": "app-up"}}])),
            Risk::Medium
        );
        // Products are metadata; upstreams and routes are medium.
        assert_eq!(
            risk_of(json!([{"upsert": {"product": {"name": "app", "description": "x"}}}])),
            Risk::Low
        );
        assert_eq!(
            risk_of(
                json!([{"upsert": {"upstream": {"name": "app-up", "endpoints": ["127.0.0.1:9"]}}}])
            ),
            Risk::Medium
        );
        // Max over edits.
        assert_eq!(
            risk_of(json!([flag("low-f", "low"), flag("x", "high")])),
            Risk::High
        );
    }

    #[test]
    fn policies_and_routes_inherit_the_risk_of_flags_they_wire_in_or_out() {
        let policy = |id: &str, per_second: Value, burst: Value| json!({"upsert": {"policy": {"id": id, "rate_limit": {"per_second": per_second, "burst": burst, "key": "tenant"}}}});
        // Editing around an unchanged binding: medium.
        assert_eq!(
            risk_of(json!([policy("rl", json!({"flag": "high-f"}), json!(9))])),
            Risk::Medium
        );
        // Unbinding, rebinding to another flag, or moving the binding: the flags' risk.
        assert_eq!(
            risk_of(json!([policy("rl", json!(10), json!(5))])),
            Risk::High
        );
        assert_eq!(
            risk_of(json!([policy("rl", json!({"flag": "crit-f"}), json!(5))])),
            Risk::Critical
        );
        assert_eq!(
            risk_of(json!([policy("rl", json!(10), json!({"flag": "high-f"}))])),
            Risk::High
        );
        // A new policy binding a flag, and a plain one.
        assert_eq!(
            risk_of(json!([policy("new", json!({"flag": "crit-f"}), json!(1))])),
            Risk::Critical
        );
        assert_eq!(
            risk_of(json!([policy("new", json!({"flag": "low-f"}), json!(1))])),
            Risk::Medium
        );
        assert_eq!(
            risk_of(json!([policy("plain", json!(1), json!(1))])),
            Risk::Medium
        );
        // Binding a flag the same change makes critical.
        assert_eq!(
            risk_of(json!([
                policy("plain", json!({"flag": "low-f"}), json!(1)),
                {"upsert": {"flag": {"name": "low-f", "type": "int", "default": 1, "risk": "critical", "owner": "o"}}}
            ])),
            Risk::Critical
        );
        // Deleting a policy takes its bindings off traffic.
        assert_eq!(
            risk_of(json!([{"delete": {"kind": "policy", "name": "rl"}}])),
            Risk::High
        );
        assert_eq!(
            risk_of(json!([{"delete": {"kind": "policy", "name": "plain"}}])),
            Risk::Medium
        );
        // Routes: attaching or detaching a policy bound to a flag.
        let route = |policies: Value| json!({"upsert": {"route": {"id": "r", "product": "app", "match": {"path": {"prefix": "/"}}, "upstream": "app-up", "policies": policies}}});
        assert_eq!(risk_of(json!([route(json!(["plain"]))])), Risk::Medium);
        assert_eq!(risk_of(json!([route(json!(["plain", "rl"]))])), Risk::High);
        assert_eq!(risk_of(json!([route(json!([]))])), Risk::Medium);
        assert_eq!(
            risk_of(json!([
                route(json!(["new"])),
                policy("new", json!({"flag": "crit-f"}), json!(1))
            ])),
            Risk::Critical
        );
        assert_eq!(
            risk_of(json!([{"delete": {"kind": "route", "name": "r"}}])),
            Risk::Medium
        );
    }
}
