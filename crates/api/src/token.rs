//! Tokens: who may call the API.

use serde::{Deserialize, Serialize};

use crate::{Role, TokenKind};

/// The body of `POST /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub name: String,
    /// `user` (the default) or `gateway`.
    #[serde(default = "user_kind")]
    pub kind: TokenKind,
    /// User tokens only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

fn user_kind() -> TokenKind {
    TokenKind::User
}

/// A stored token, without its secret (which is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub kind: TokenKind,
    /// viewer, editor, approver or admin; `gateway` for a gateway token.
    pub role: String,
    pub created_at_ms: u64,
    pub revoked: bool,
}

/// `POST /v1/tokens`: the token and its secret, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenCreated {
    pub token: TokenRecord,
    pub secret: String,
}
