//! Who is calling, as axum extractors: [`Caller`] for user endpoints (its role checked against
//! the endpoint's permission), [`User`] where the permission depends on the request, and
//! [`Gateway`] for the distribution endpoints.
//!
//! A missing header attempted no login and is not audited; a malformed header or an unknown
//! token is audited as `login_failed` (the token itself never is).

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use rampart_api::{Role, TokenKind, TokenRecord};
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::extract::GatewayQuery;
use super::state::AppState;
use crate::audit::AuditAction;
use crate::rules::{Permission, allowed};
use crate::service::Service;

/// What an endpoint needs: a marker type per [`Permission`].
pub trait Needs {
    const PERMISSION: Permission;
}

/// The permission markers, one per [`Permission`].
pub mod may {
    use super::{Needs, Permission};

    macro_rules! permissions {
        ($($marker:ident => $action:ident),* $(,)?) => {$(
            #[derive(Debug)]
            pub struct $marker;
            impl Needs for $marker {
                const PERMISSION: Permission = Permission::$action;
            }
        )*};
    }

    permissions!(
        Read => Read,
        ReadAudit => ReadAudit,
        Submit => SubmitChange,
        Withdraw => Withdraw,
        Approve => Approve,
        Reject => Reject,
        Apply => Apply,
        Rollback => Rollback,
        ManageTokens => ManageTokens,
    );
}

/// An authenticated user token, its permission not yet checked: see [`User::may`].
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// The control plane the user calls.
    pub app: Arc<AppState>,
}

/// A user whose role may do `P`: the endpoint's permission, checked on extraction.
#[derive(Debug, Clone)]
pub struct Caller<P> {
    pub name: String,
    pub role: Role,
    /// The control plane the user calls.
    pub app: Arc<AppState>,
    permission: PhantomData<P>,
}

impl<P> Caller<P> {
    /// The change service.
    pub fn service(&self) -> &Service {
        &self.app.service
    }
}

/// An authenticated gateway token, and the identity its query names.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// The control plane the gateway calls.
    pub app: Arc<AppState>,
    /// `?env=E&id=ID&cell=CELL&version=V`.
    pub q: GatewayQuery,
}

impl User {
    /// This user, if their role may do `action`.
    pub fn may<P>(self, action: Permission) -> ApiResult<Caller<P>> {
        if !allowed(self.role, action) {
            return Err(ApiError::forbidden(format!(
                "the {} role may not {} (needs {} or above)",
                self.role,
                action_phrase(action),
                action.min_role()
            )));
        }
        Ok(Caller {
            name: self.name,
            role: self.role,
            app: self.app,
            permission: PhantomData,
        })
    }
}

fn action_phrase(action: Permission) -> &'static str {
    match action {
        Permission::Read => "read",
        Permission::ReadAudit => "read the audit log",
        Permission::SubmitChange => "submit changes",
        Permission::Withdraw => "withdraw changes",
        Permission::Approve => "approve changes",
        Permission::Reject => "reject changes",
        Permission::Apply => "apply changes",
        Permission::Rollback => "roll back",
        Permission::ManageTokens => "manage tokens",
    }
}

impl FromRequestParts<Arc<AppState>> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> ApiResult<Self> {
        let token = authenticate(state, parts).await?;
        if token.kind == TokenKind::Gateway {
            return Err(ApiError::forbidden(
                "gateway tokens may only stream config and report status",
            ));
        }
        let Some(role) = token.role else {
            tracing::warn!(token = %token.id, "user token without a role");
            return Err(ApiError::forbidden("this token has no valid role"));
        };
        Ok(User {
            name: token.name,
            role,
            app: state.clone(),
        })
    }
}

impl<P: Needs> FromRequestParts<Arc<AppState>> for Caller<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> ApiResult<Self> {
        User::from_request_parts(parts, state)
            .await?
            .may(P::PERMISSION)
    }
}

impl FromRequestParts<Arc<AppState>> for Gateway {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> ApiResult<Self> {
        let token = authenticate(state, parts).await?;
        if token.kind != TokenKind::Gateway {
            return Err(ApiError::forbidden(
                "only gateway tokens may use the distribution endpoints",
            ));
        }
        let q = GatewayQuery::from_request_parts(parts, state).await?;
        Ok(Gateway {
            app: state.clone(),
            q,
        })
    }
}

/// The live token in the `Authorization` header; a failed login is audited.
async fn authenticate(state: &AppState, parts: &Parts) -> ApiResult<TokenRecord> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized());
    };
    let secret = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, secret)| secret.trim())
        .filter(|s| !s.is_empty());
    let token = match secret {
        Some(secret) => state.service.token_by_secret(secret).await?,
        None => None,
    };
    let Some(token) = token else {
        let reason = if secret.is_some() {
            "unknown or revoked token"
        } else {
            "malformed Authorization header"
        };
        if let Err(e) = state
            .service
            .audit(
                "anonymous",
                AuditAction::LoginFailed,
                "admin_api",
                json!({ "reason": reason }),
            )
            .await
        {
            tracing::error!(error = %e, "cannot audit a failed login");
        }
        return Err(ApiError::unauthorized());
    };
    Ok(token)
}
