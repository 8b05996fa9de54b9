//! The admin REST API on axum. Every endpoint takes `Authorization: Bearer <token>`:
//!
//! - no header, a malformed one or an unknown token: 401 (`unauthorized`); an unknown or
//!   malformed token is audited as `login_failed` (the token itself never is; a request with no
//!   header attempted no login and is not audited);
//! - a gateway token, or a role below the endpoint's ([`rules::Action::min_role`]): 403.
//!
//! | method | path | action |
//! |---|---|---|
//! | GET | `/v1/envs/{env}/config` | read: `{ version, config }` |
//! | GET | `/v1/envs/{env}/flags`, `/v1/envs/{env}/flags/{name}` | read |
//! | GET | `/v1/envs/{env}/snapshot` | read: the newest snapshot |
//! | GET | `/v1/envs/{env}/changes?limit=N` | read |
//! | POST | `/v1/envs/{env}/changes` | submit_change: `{ reason, declared_impact?, edits, base_version }` |
//! | GET | `/v1/changes/{id}` | read: the change, its approvals and what it lacks |
//! | POST | `/v1/changes/{id}/approve` | approve (never the author) |
//! | POST | `/v1/changes/{id}/reject` | reject: `{ reason? }` |
//! | POST | `/v1/changes/{id}/withdraw` | withdraw (author or admin) |
//! | POST | `/v1/changes/{id}/apply` | apply (when the rules are met) |
//! | POST | `/v1/envs/{env}/rollback` | rollback to the LKG |
//! | GET | `/v1/audit`, `/v1/audit/verify` | read_audit |
//! | POST | `/v1/tokens` | manage_tokens: `{ name, kind?, role? }` |
//!
//! No endpoint mutates an environment except through a change, and rollback to the LKG.
//!
//! Errors are JSON: `{ "error": code, "message": ..., "fields": [{ "path", "message" }] }`
//! (`change_id` too when a change was recorded as rejected). Bodies are limited to
//! [`MAX_BODY_BYTES`] (413); bodies are parsed with [`rampart_model::load::from_json`], so bad
//! JSON, wrong types and unknown fields are 400 with the path of the field at fault. Internal
//! errors are logged with `tracing` and shown only as `internal`.
//!
//! The OpenAPI document is generated with utoipa ([`ApiDoc`]) and served at `/openapi.json`,
//! the one endpoint without a token: it describes the API and holds no data.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rampart_model::change::Edit;
use rampart_model::{DeclaredImpact, Environment};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::AuditAction;
use crate::rules::{Action, Role, RulesConfig, allowed};
use crate::service::{FieldError, Service, ServiceError, Submission};
use crate::store::{Store, TokenKind};

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The most changes a list returns.
pub const MAX_LIST: u32 = 500;

/// A JSON error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    fields: Vec<FieldError>,
    change_id: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
            change_id: None,
        }
    }

    fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid `Authorization: Bearer <token>` header is required",
        )
    }

    fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    fn internal(what: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %what, "admin API internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the control plane's log",
        )
    }
}

/// The JSON error body, as documented.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // Only its schema is used.
struct ErrorDoc {
    /// A stable code: unauthorized, forbidden, not_found, bad_json, too_large, invalid,
    /// stale_version, status_conflict, not_ready, no_lkg, internal, ...
    error: String,
    message: String,
    fields: Vec<FieldError>,
    change_id: Option<String>,
}

/// The OpenAPI document of the admin API, served at `/openapi.json`.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    info(title = "rampart admin API", description = "Changes are the only way to mutate an environment; rollback to the LKG is the only fast path."),
    paths(get_config, get_flags, get_flag, get_snapshot, list_changes, submit, get_change, approve, reject, withdraw, apply, rollback, get_audit, verify_audit, create_token),
    components(schemas(ErrorDoc, FieldError, SubmitBody, RejectBody, TokenBody)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

#[derive(Debug)]
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document: public (it describes the API, it holds no data), so no token.
async fn openapi() -> Response {
    use utoipa::OpenApi as _;
    axum::Json(ApiDoc::openapi()).into_response()
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    fields: &'a [FieldError],
    #[serde(skip_serializing_if = "Option::is_none")]
    change_id: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            message: &self.message,
            fields: &self.fields,
            change_id: self.change_id.as_deref(),
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(what) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            ServiceError::Forbidden(m) => ApiError::forbidden(m),
            ServiceError::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            ServiceError::Invalid {
                message,
                fields,
                change_id,
            } => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid",
                message,
                fields,
                change_id,
            },
            ServiceError::NotReady(verdict) => ApiError {
                status: StatusCode::CONFLICT,
                code: "not_ready",
                message: verdict.to_string(),
                fields: verdict
                    .missing
                    .iter()
                    .map(|m| FieldError {
                        path: "rules".to_owned(),
                        message: m.to_string(),
                    })
                    .collect(),
                change_id: None,
            },
            ServiceError::Internal(what) => ApiError::internal(&what),
        }
    }
}

type ApiResult<T = Response> = Result<T, ApiError>;

/// Shared state of the API.
#[derive(Debug, Clone)]
pub struct AppState {
    pub service: Service,
}

/// Who is calling.
#[derive(Debug, Clone)]
struct Caller {
    name: String,
    role: Role,
}

/// The admin API over `store`, with `rules`.
pub fn router(store: Store, rules: RulesConfig) -> Router {
    router_with(Service::new(store, rules))
}

/// The admin API over a service.
pub fn router_with(service: Service) -> Router {
    let state = Arc::new(AppState { service });
    Router::new()
        .route("/v1/envs/{env}/config", get(get_config))
        .route("/v1/envs/{env}/flags", get(get_flags))
        .route("/v1/envs/{env}/flags/{name}", get(get_flag))
        .route("/v1/envs/{env}/snapshot", get(get_snapshot))
        .route("/v1/envs/{env}/changes", get(list_changes).post(submit))
        .route("/v1/envs/{env}/rollback", post(rollback))
        .route("/v1/changes/{id}", get(get_change))
        .route("/v1/changes/{id}/approve", post(approve))
        .route("/v1/changes/{id}/reject", post(reject))
        .route("/v1/changes/{id}/withdraw", post(withdraw))
        .route("/v1/changes/{id}/apply", post(apply))
        .route("/v1/audit", get(get_audit))
        .route("/v1/audit/verify", get(verify_audit))
        .route("/v1/tokens", post(create_token))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// Authenticate the caller and check that their role may do `action`.
async fn auth(state: &AppState, headers: &HeaderMap, action: Action) -> ApiResult<Caller> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
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
        Some(secret) => state
            .service
            .store()
            .token_by_secret(secret)
            .await
            .map_err(|e| ApiError::internal(&e))?,
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
    if token.kind == TokenKind::Gateway {
        return Err(ApiError::forbidden(
            "gateway tokens may only stream config and report status",
        ));
    }
    let Ok(role) = token.role.parse::<Role>() else {
        tracing::warn!(token = %token.id, role = %token.role, "token with an unknown role");
        return Err(ApiError::forbidden("this token has no valid role"));
    };
    if !allowed(role, action) {
        return Err(ApiError::forbidden(format!(
            "the {role} role may not {} (needs {} or above)",
            action_name(action),
            action.min_role()
        )));
    }
    Ok(Caller {
        name: token.name,
        role,
    })
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Read => "read",
        Action::ReadAudit => "read the audit log",
        Action::SubmitChange => "submit changes",
        Action::Withdraw => "withdraw changes",
        Action::Approve => "approve changes",
        Action::Reject => "reject changes",
        Action::Apply => "apply changes",
        Action::Rollback => "roll back",
        Action::ManageTokens => "manage tokens",
    }
}

fn parse_env(env: &str) -> ApiResult<Environment> {
    match env {
        "dev" => Ok(Environment::Dev),
        "staging" => Ok(Environment::Staging),
        "prod" => Ok(Environment::Prod),
        other => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("unknown environment `{other}` (expected dev, staging or prod)"),
        )),
    }
}

/// Parse a JSON body, naming the path of the field at fault.
fn body<T: DeserializeOwned>(bytes: RawBody) -> ApiResult<T> {
    let bytes = bytes.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "too_large",
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                "the request body could not be read",
            )
        }
    })?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_json", "the body is not UTF-8"))?;
    // An empty body reads as an empty object, for endpoints whose fields are all optional.
    let text = if text.trim().is_empty() { "{}" } else { text };
    rampart_model::load::from_json(text).map_err(|e| {
        let path = if e.path.is_empty() || e.path == "." {
            String::new()
        } else {
            e.path.clone()
        };
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_json",
            message: e.to_string(),
            fields: vec![FieldError {
                path,
                message: e.message,
            }],
            change_id: None,
        }
    })
}

fn ok<T: Serialize>(status: StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}

type St = State<Arc<AppState>>;

/// A body read as bytes (up to [`MAX_BODY_BYTES`]), parsed by [`body`].
type RawBody = Result<Bytes, BytesRejection>;

#[utoipa::path(
    get,
    path = "/v1/envs/{env}/config",
    tag = "rampart",
    params(("env" = String, Path, description = "dev, staging or prod")),
    responses((status = 200, description = "the config and its version", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc), (status = 404, description = "not found", body = ErrorDoc)),
    security(("bearer" = []))
)]
async fn get_config(State(s): St, Path(env): Path<String>, headers: HeaderMap) -> ApiResult {
    auth(&s, &headers, Action::Read).await?;
    let env = parse_env(&env)?;
    let (config, version) = s
        .service
        .store()
        .config(env)
        .await
        .map_err(ServiceError::from)?;
    Ok(ok(
        StatusCode::OK,
        &json!({ "version": version, "config": config }),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/envs/{env}/flags",
    tag = "rampart",
    params(("env" = String, Path, description = "dev, staging or prod")),
    responses((status = 200, description = "the flags and the version", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc), (status = 404, description = "not found", body = ErrorDoc)),
    security(("bearer" = []))
)]
async fn get_flags(State(s): St, Path(env): Path<String>, headers: HeaderMap) -> ApiResult {
    auth(&s, &headers, Action::Read).await?;
    let env = parse_env(&env)?;
    let (config, version) = s
        .service
        .store()
        .config(env)
        .await
        .map_err(ServiceError::from)?;
    Ok(ok(
        StatusCode::OK,
        &json!({ "version": version, "flags": config.flags }),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/envs/{env}/flags/{name}",
    tag = "rampart",
    params(("env" = String, Path, description = "dev, staging or prod"), ("name" = String, Path, description = "the flag's name")),
    responses((status = 200, description = "the flag", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc), (status = 404, description = "not found", body = ErrorDoc)),
    security(("bearer" = []))
)]
async fn get_flag(
    State(s): St,
    Path((env, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    auth(&s, &headers, Action::Read).await?;
    let env = parse_env(&env)?;
    let (config, _) = s
        .service
        .store()
        .config(env)
        .await
        .map_err(ServiceError::from)?;
    let flag = config
        .flags
        .into_iter()
        .find(|f| f.name == name)
        .ok_or_else(|| ServiceError::NotFound(format!("flag `{name}` in {env}")))?;
    Ok(ok(StatusCode::OK, &flag))
}

#[utoipa::path(
    get,
    path = "/v1/envs/{env}/snapshot",
    tag = "rampart",
    params(("env" = String, Path, description = "dev, staging or prod")),
    responses((status = 200, description = "the newest snapshot", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc), (status = 404, description = "not found", body = ErrorDoc)),
    security(("bearer" = []))
)]
async fn get_snapshot(State(s): St, Path(env): Path<String>, headers: HeaderMap) -> ApiResult {
    auth(&s, &headers, Action::Read).await?;
    let env = parse_env(&env)?;
    let snap = s
        .service
        .store()
        .latest_snapshot(env)
        .await
        .map_err(ServiceError::from)?
        .ok_or_else(|| ServiceError::NotFound(format!("a snapshot of {env}")))?;
    Ok(ok(StatusCode::OK, &snap))
}

#[utoipa::path(
    get,
    path = "/v1/envs/{env}/changes",
    tag = "rampart",
    params(("env" = String, Path, description = "dev, staging or prod")),
    responses((status = 200, description = "the newest changes", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc), (status = 404, description = "not found", body = ErrorDoc), (status = 400, description = "bad query", body = ErrorDoc)),
    security(("bearer" = []))
)]
async fn list_changes(
    State(s): St,
    Path(env): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    auth(&s, &headers, Action::Read).await?;
    let env = parse_env(&env)?;
    let mut limit = 100;
    for pair in query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("limit", v)) => {
                limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LIST).contains(n))
                    .ok_or_else(|| ApiError {
                        fields: vec![FieldError {
                            path: "limit".to_owned(),
                            message: format!("expected a number from 1 to {MAX_LIST}"),
                        }],
                        ..ApiError::new(StatusCode::BAD_REQUEST, "bad_query", "invalid `limit`")
                    })?;
            }
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_query",
                    format!("unknown query parameter in `{pair}` (only `limit`)"),
                ));
            }
        }
    }
    let changes = s.service.list(Some(env), limit).await?;
    Ok(ok(StatusCode::OK, &json!({ "changes": changes })))
}

/// The body of `POST /v1/envs/{env}/changes`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    reason: String,
    /// What the author expects the change to do to traffic (the model's `DeclaredImpact`).
    #[serde(default)]
    #[schema(value_type = Object)]
    declared_impact: DeclaredImpact,
    /// `{"upsert": {"<kind>": {...}}}` or `{"delete": {"kind": ..., "name": ...}}`.
    #[schema(value_type = Vec<Object>)]
    edits: Vec<Edit>,
    /// The environment version the edits were written against.
    base_version: u64,
}

#[utoipa::path(
    post,
    path = "/v1/envs/{env}/changes",
    tag = "rampart",
    params(("env" = String, Path, description = "dev, staging or prod")),
    request_body = SubmitBody,
    responses((status = 201, description = "the change, approved or awaiting approval", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc), (status = 400, description = "bad JSON, wrong type or unknown field, with its path", body = ErrorDoc), (status = 413, description = "body too large", body = ErrorDoc), (status = 409, description = "conflict: status moved, stale base version, or not ready", body = ErrorDoc), (status = 422, description = "validation failed: recorded as rejected, with field paths", body = ErrorDoc)),
    security(("bearer" = []))
)]
async fn submit(
    State(s): St,
    Path(env): Path<String>,
    headers: HeaderMap,
    bytes: RawBody,
) -> ApiResult {
    let caller = auth(&s, &headers, Action::SubmitChange).await?;
    let env = parse_env(&env)?;
    let b: SubmitBody = body(bytes)?;
    let view = s
        .service
        .submit(
            &caller.name,
            Submission {
                env,
                reason: b.reason,
                declared_impact: b.declared_impact,
                edits: b.edits,
                base_version: b.base_version,
            },
        )
        .await?;
    Ok(ok(StatusCode::CREATED, &view))
}

#[utoipa::path(
    get,
    path = "/v1/changes/{id}",
    tag = "rampart",
    params(("id" = String, Path, description = "the change id")),
    responses((status = 200, description = "the change, its approvals and what it lacks", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc), (status = 404, description = "not found", body = ErrorDoc)),
    security(("bearer" = []))
)]
async fn get_change(State(s): St, Path(id): Path<String>, headers: HeaderMap) -> ApiResult {
    auth(&s, &headers, Action::Read).await?;
    Ok(ok(StatusCode::OK, &s.service.view(&id).await?))
}

/// An empty body, or `{}`: nothing is expected.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

/// The body of reject: an optional reason.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    #[serde(default)]
    reason: String,
}

#[utoipa::path(
    post,
    path = "/v1/changes/{id}/approve",
    tag = "rampart",
    params(("id" = String, Path, description = "the change id")),
    responses((status = 200, description = "the change after the approval", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc), (status = 404, description = "not found", body = ErrorDoc), (status = 409, description = "conflict: status moved, stale base version, or not ready", body = ErrorDoc), (status = 400, description = "bad JSON, wrong type or unknown field, with its path", body = ErrorDoc), (status = 413, description = "body too large", body = ErrorDoc)),
    security(("bearer" = []))
)]
async fn approve(
    State(s): St,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: RawBody,
) -> ApiResult {
    let caller = auth(&s, &headers, Action::Approve).await?;
    let Empty {} = body(bytes)?;
    Ok(ok(
        StatusCode::OK,
        &s.service.approve(&id, &caller.name, caller.role).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/changes/{id}/reject",
    tag = "rampart",
    params(("id" = String, Path, description = "the change id")),
    request_body = RejectBody,
    responses((status = 200, description = "the rejected change", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc), (status = 404, description = "not found", body = ErrorDoc), (status = 409, description = "conflict: status moved, stale base version, or not ready", body = ErrorDoc), (status = 400, description = "bad JSON, wrong type or unknown field, with its path", body = ErrorDoc), (status = 413, description = "body too large", body = ErrorDoc)),
    security(("bearer" = []))
)]
async fn reject(
    State(s): St,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: RawBody,
) -> ApiResult {
    let caller = auth(&s, &headers, Action::Reject).await?;
    let b: RejectBody = body(bytes)?;
    Ok(ok(
        StatusCode::OK,
        &s.service.reject(&id, &caller.name, &b.reason).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/changes/{id}/withdraw",
    tag = "rampart",
    params(("id" = String, Path, description = "the change id")),
    responses((status = 200, description = "the withdrawn change", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc), (status = 404, description = "not found", body = ErrorDoc), (status = 409, description = "conflict: status moved, stale base version, or not ready", body = ErrorDoc), (status = 400, description = "bad JSON, wrong type or unknown field, with its path", body = ErrorDoc), (status = 413, description = "body too large", body = ErrorDoc)),
    security(("bearer" = []))
)]
async fn withdraw(
    State(s): St,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: RawBody,
) -> ApiResult {
    let caller = auth(&s, &headers, Action::Withdraw).await?;
    let Empty {} = body(bytes)?;
    Ok(ok(
        StatusCode::OK,
        &s.service.withdraw(&id, &caller.name, caller.role).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/changes/{id}/apply",
    tag = "rampart",
    params(("id" = String, Path, description = "the change id")),
    responses((status = 200, description = "the applied change and its snapshot", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc), (status = 404, description = "not found", body = ErrorDoc), (status = 409, description = "conflict: status moved, stale base version, or not ready", body = ErrorDoc), (status = 400, description = "bad JSON, wrong type or unknown field, with its path", body = ErrorDoc), (status = 413, description = "body too large", body = ErrorDoc)),
    security(("bearer" = []))
)]
async fn apply(
    State(s): St,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: RawBody,
) -> ApiResult {
    let caller = auth(&s, &headers, Action::Apply).await?;
    let Empty {} = body(bytes)?;
    let (change, snapshot) = s.service.apply(&id, &caller.name).await?;
    Ok(ok(
        StatusCode::OK,
        &json!({
            "change": change,
            "snapshot": { "version": snapshot.version, "hash": snapshot.hash.to_string() },
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/v1/envs/{env}/rollback",
    tag = "rampart",
    params(("env" = String, Path, description = "dev, staging or prod")),
    responses((status = 200, description = "the snapshot now current: the LKG", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc), (status = 404, description = "not found", body = ErrorDoc), (status = 409, description = "conflict: status moved, stale base version, or not ready", body = ErrorDoc), (status = 400, description = "bad JSON, wrong type or unknown field, with its path", body = ErrorDoc), (status = 413, description = "body too large", body = ErrorDoc)),
    security(("bearer" = []))
)]
async fn rollback(
    State(s): St,
    Path(env): Path<String>,
    headers: HeaderMap,
    bytes: RawBody,
) -> ApiResult {
    let caller = auth(&s, &headers, Action::Rollback).await?;
    let env = parse_env(&env)?;
    let Empty {} = body(bytes)?;
    let snap = s.service.rollback(env, &caller.name).await?;
    Ok(ok(
        StatusCode::OK,
        &json!({ "version": snap.version, "hash": snap.hash.to_string() }),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "rampart",
    responses((status = 200, description = "every audit entry", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc)),
    security(("bearer" = []))
)]
async fn get_audit(State(s): St, headers: HeaderMap) -> ApiResult {
    auth(&s, &headers, Action::ReadAudit).await?;
    let entries = s.service.audit_entries().await?;
    Ok(ok(StatusCode::OK, &json!({ "entries": entries })))
}

#[utoipa::path(
    get,
    path = "/v1/audit/verify",
    tag = "rampart",
    responses((status = 200, description = "the verification report", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc)),
    security(("bearer" = []))
)]
async fn verify_audit(State(s): St, headers: HeaderMap) -> ApiResult {
    auth(&s, &headers, Action::ReadAudit).await?;
    Ok(ok(StatusCode::OK, &s.service.verify_audit().await?))
}

/// The body of `POST /v1/tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
    /// `user` (the default) or `gateway`.
    #[serde(default = "user_kind")]
    #[schema(value_type = String)]
    kind: TokenKind,
    /// viewer, editor, approver or admin; user tokens only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    role: Option<Role>,
}

fn user_kind() -> TokenKind {
    TokenKind::User
}

#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "rampart",
    request_body = TokenBody,
    responses((status = 201, description = "the token and its secret, shown once", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc), (status = 400, description = "bad JSON, wrong type or unknown field, with its path", body = ErrorDoc), (status = 413, description = "body too large", body = ErrorDoc), (status = 422, description = "invalid token request", body = ErrorDoc)),
    security(("bearer" = []))
)]
async fn create_token(State(s): St, headers: HeaderMap, bytes: RawBody) -> ApiResult {
    let caller = auth(&s, &headers, Action::ManageTokens).await?;
    let b: TokenBody = body(bytes)?;
    let field = |path: &str, message: &str| ApiError {
        fields: vec![FieldError {
            path: path.to_owned(),
            message: message.to_owned(),
        }],
        ..ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            message.to_owned(),
        )
    };
    if b.name.trim().is_empty() || b.name.len() > 200 {
        return Err(field("name", "a token needs a name of 1 to 200 characters"));
    }
    let role = match (b.kind, b.role) {
        (TokenKind::User, Some(role)) => role.as_str(),
        (TokenKind::User, None) => return Err(field("role", "a user token needs a role")),
        (TokenKind::Gateway, None) => "gateway",
        (TokenKind::Gateway, Some(_)) => {
            return Err(field("role", "a gateway token has no role"));
        }
    };
    let (record, secret) = s
        .service
        .create_token(&caller.name, &b.name, b.kind, role)
        .await?;
    Ok(ok(
        StatusCode::CREATED,
        &json!({ "token": record, "secret": secret }),
    ))
}
