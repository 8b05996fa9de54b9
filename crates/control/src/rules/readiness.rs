//! Readiness: whether a change may be applied now, and if not, everything it still lacks.
//!
//! [`check`] is the one place the rules are checked. It takes the environment's
//! [`EnvRules`], the change's risk and the [`ApprovalFacts`], and **no role**: nothing about
//! who asks changes what a change needs. The author's own approval never counts. Its answer is
//! the API's [`Readiness`], listing each [`Missing`] thing.

use std::collections::HashSet;

use rampart_api::{Missing, Readiness};
use rampart_model::Risk;
use serde::{Deserialize, Serialize};

use super::config::EnvRules;
use super::permissions::{Refusal, can_approve, normalize_user};

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

/// The one place the rules are checked. It takes no role: nothing about who asks changes what
/// a change needs.
pub fn check(rules: &EnvRules, risk: Risk, facts: &ApprovalFacts) -> Readiness {
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
    if have < policy.approvals() {
        missing.push(Missing::Approvals {
            have,
            need: policy.approvals(),
        });
    }
    if let Some(need_secs) = policy.staging_soak_secs()
        && !facts.staging_soaked
    {
        missing.push(Missing::StagingSoak { need_secs });
    }
    if policy.needs_change_window() && !rules.window_open(facts.now_ms) {
        missing.push(Missing::ChangeWindowClosed);
    }
    Readiness {
        ready: missing.is_empty(),
        missing,
    }
}
