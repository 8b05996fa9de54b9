//! Tokens.

use std::sync::Arc;

use axum::Router;
use axum::routing::post;

use super::AppState;
use axum::Json;
use axum::http::StatusCode;
use rampart_api::{TokenCreated, TokenKind, TokenRequest};

use super::auth::{Caller, may};
use super::error::doc::Invalid;
use super::error::{ApiError, ApiResult};
use super::extract::Body;

#[utoipa::path(post, path = "/v1/tokens", tag = "rampart", request_body = TokenRequest, responses((status = 201, description = "the token and its secret, shown once", body = TokenCreated), Invalid))]
pub async fn create_token(
    caller: Caller<may::ManageTokens>,
    Body(b): Body<TokenRequest>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    if b.name.trim().is_empty() || b.name.len() > 200 {
        return Err(ApiError::invalid_field(
            "name",
            "a token needs a name of 1 to 200 characters",
        ));
    }
    let role = match (b.kind, b.role) {
        (TokenKind::User, Some(role)) => Some(role),
        (TokenKind::User, None) => {
            return Err(ApiError::invalid_field("role", "a user token needs a role"));
        }
        (TokenKind::Gateway, None) => None,
        (TokenKind::Gateway, Some(_)) => {
            return Err(ApiError::invalid_field(
                "role",
                "a gateway token has no role",
            ));
        }
    };
    let (token, secret) = caller
        .service()
        .create_token(&caller.name, &b.name, b.kind, role)
        .await?;
    Ok((StatusCode::CREATED, Json(TokenCreated { token, secret })))
}

/// This resource's routes.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/tokens", post(create_token))
}
