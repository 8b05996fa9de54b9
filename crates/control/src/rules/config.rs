//! The rules of each environment: what a change of each risk level needs there, the change
//! windows, their defaults and their validation.
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

use rampart_model::{EnumName, Environment, Risk};
use serde::{Deserialize, Serialize};
use strum::VariantArray;

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

impl From<Window> for WindowWire {
    fn from(w: Window) -> Self {
        WindowWire {
            start_unix_ms: w.start_unix_ms,
            end_unix_ms: w.end_unix_ms,
        }
    }
}

/// `TryFrom` its wire form for a type with a `checked(wire, path)`, `path` naming the value
/// in errors when it stands alone.
macro_rules! checked_from_wire {
    ($($ty:ident from $wire:ident as $path:literal),* $(,)?) => {$(
        impl TryFrom<$wire> for $ty {
            type Error = RulesError;

            fn try_from(w: $wire) -> Result<Self, Self::Error> {
                Self::checked(w, $path)
            }
        }
    )*};
}

checked_from_wire!(RiskPolicy from RiskPolicyWire as "policy", Window from WindowWire as "window");

/// The rules of one environment: a [`RiskPolicy`] per risk level and the change windows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "EnvRulesWire", into = "EnvRulesWire")]
pub struct EnvRules {
    /// Indexed by risk, lowest first (`Risk as usize`).
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
        &self.per_risk[risk as usize]
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
        for pair in Risk::VARIANTS.windows(2) {
            let (lower, higher) = (pair[0], pair[1]);
            if !self
                .policy(higher)
                .at_least_as_strict_as(self.policy(lower))
            {
                return Err(RulesError::LaxerThanLowerRisk {
                    path: format!("{path}.{}", higher.as_str()),
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
        for &risk in Risk::VARIANTS {
            let p = self.policy(risk);
            let at = |field: &str| format!("{path}.{}.{field}", risk.as_str());
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
            RiskPolicy::checked(w, &format!("{path}.{}", risk.as_str()))
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
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfigWire {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<EnvRulesWire>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staging: Option<EnvRulesWire>,
    #[serde(skip_serializing_if = "Option::is_none")]
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
    #[error("{path}: {} changes would need less than {} ones", risk.as_str(), lower.as_str())]
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
