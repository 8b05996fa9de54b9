//! Who may do what: roles to permissions, and who may approve or withdraw a change.
//!
//! Roles are ordered `viewer < editor < approver < admin`, and each role may do everything the
//! roles below it may. [`Permission::min_role`] is the one table:
//!
//! | permission | lowest role |
//! |---|---|
//! | `read` | viewer |
//! | `submit_change`, `withdraw` (own change; [`can_withdraw`]), `apply` (when [`check`](super::check) is ready), `rollback` | editor |
//! | `approve`, `reject`, `read_audit` | approver |
//! | `manage_tokens` | admin |
//!
//! An admin's approval counts exactly like an approver's: one approval, never the author's.
//! There is no permission that skips approvals, and none that edits the rules: the rules come
//! from the control plane's configuration, not from the API. Gateway tokens are not a
//! [`Role`]: they are a separate kind of credential that may only stream config and report
//! status.

use rampart_api::Role;
use serde::{Deserialize, Serialize};

/// Something a user token asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::Display, strum::EnumString, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Permission {
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
    /// Apply a change that [`check`](super::check) says is ready.
    Apply,
    /// Go back to the last known good snapshot: the only fast path.
    Rollback,
    /// Create and revoke API and gateway tokens.
    ManageTokens,
}

impl Permission {
    /// The least privileged role that may do this: the one permission table.
    pub fn min_role(self) -> Role {
        match self {
            Permission::Read => Role::Viewer,
            Permission::SubmitChange
            | Permission::Withdraw
            | Permission::Apply
            | Permission::Rollback => Role::Editor,
            Permission::Approve | Permission::Reject | Permission::ReadAudit => Role::Approver,
            Permission::ManageTokens => Role::Admin,
        }
    }
}

/// Whether `role` has `permission`: the role order, see [`Permission::min_role`].
pub fn allowed(role: Role, permission: Permission) -> bool {
    role >= permission.min_role()
}

/// Going back to the LKG: any editor or above, with no approval. The only fast path.
pub fn rollback_allowed(role: Role) -> bool {
    allowed(role, Permission::Rollback)
}

/// Whether `actor` (with `role`) may withdraw a change by `author`: its author, if an editor or
/// above, or an admin. Withdrawing only ever stops a change, so it bypasses nothing.
pub fn can_withdraw(role: Role, author: &str, actor: &str) -> bool {
    allowed(role, Permission::Withdraw) && (same_user(author, actor) || role == Role::Admin)
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
    if !allowed(role, Permission::Approve) {
        return Err(Refusal::Role(role));
    }
    can_approve(author, approver)
}

pub(super) fn normalize_user(user: &str) -> String {
    user.trim().to_lowercase()
}

fn same_user(a: &str, b: &str) -> bool {
    normalize_user(a) == normalize_user(b)
}
