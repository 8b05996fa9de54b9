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
//! | GET | `/v1/fleet?env=E` | read: every gateway of E, with its cell, version, hash, last-seen time and last NACK |
//!
//! Gateway tokens (and only they; a user token gets 403) may use the distribution endpoints,
//! each with `?env=E&id=ID&cell=CELL&version=V`:
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/v1/gateways/stream` | server-sent events: `snapshot` events, `id:` the snapshot version, `data:` its JSON; sent on connect (unless `Last-Event-ID` names the current version) and on every new snapshot of E |
//! | POST | `/v1/gateways/ack` | a `ConfigAck`; a NACK is audited as `gateway_nack` |
//! | POST | `/v1/gateways/report` | a `GatewayReport`, every second |
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

use rampart_api::{Role, TokenKind};
use rampart_model::EnumName;
use rampart_model::clock::unix_ms;
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
use crate::rules::{Action, RulesConfig, allowed};
use crate::service::{FieldError, Service, ServiceError, Submission};
use crate::store::ops::*;
use crate::store::{GatewaySeen, Store, TokenRecord};

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
    paths(get_config, get_flags, get_flag, get_snapshot, list_changes, submit, get_change, approve, reject, withdraw, apply, rollback, get_audit, verify_audit, create_token, fleet, gateway_stream, gateway_ack, gateway_report, gateway_samples, list_rollouts, get_rollout, control_rollout),
    components(schemas(ErrorDoc, FieldError, SubmitBody, RejectBody, TokenBody, ControlBody)),
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
    /// The newest snapshot of each environment, serialized once for every stream; see
    /// [`AppState::publish`].
    snapshots: [tokio::sync::watch::Sender<Option<Arc<Published>>>; 3],
}

/// A snapshot as the streams send it.
#[derive(Debug)]
struct Published {
    version: u64,
    json: String,
}

impl AppState {
    fn env_index(env: Environment) -> usize {
        match env {
            Environment::Dev => 0,
            Environment::Staging => 1,
            Environment::Prod => 2,
        }
    }

    /// Load the newest deployment of `env` and hand it to every stream of `env`; called after
    /// each apply and rollback, by the first stream of an environment, and by
    /// [`spawn_publisher`] when another replica (or the rollout driver) deployed.
    pub async fn publish(&self, env: Environment) {
        let store = self.service.store();
        let mut dep = store.latest_deployment(env).await;
        if let Ok(None) = dep {
            // A store written before deployments existed: deploy its newest snapshot.
            match store.latest_snapshot(env).await {
                Ok(Some(rec)) => {
                    if let Err(e) = store.put_deployment(&rec.snapshot, None, "migrated").await {
                        tracing::warn!(error = %e, env = %env, "cannot record the first deployment");
                    }
                    dep = store.latest_deployment(env).await;
                }
                Ok(None) => return,
                Err(e) => dep = Err(e),
            }
        }
        let dep = match dep {
            Ok(Some(d)) => d,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, env = %env, "cannot read the newest deployment to publish");
                return;
            }
        };
        let json = match serde_json::to_string(&dep.snapshot) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize a snapshot");
                return;
            }
        };
        let new = Arc::new(Published {
            version: dep.seq,
            json,
        });
        // Two publishes may finish out of order: never go back to an older deployment.
        self.snapshots[Self::env_index(env)].send_if_modified(|cur| {
            if cur.as_ref().is_some_and(|c| c.version >= new.version) {
                return false;
            }
            *cur = Some(new);
            true
        });
    }

    /// The deployment `seq` each stream of `env` has, if any.
    fn published(&self, env: Environment) -> Option<u64> {
        self.snapshots[Self::env_index(env)]
            .borrow()
            .as_ref()
            .map(|p| p.version)
    }

    fn subscribe(&self, env: Environment) -> tokio::sync::watch::Receiver<Option<Arc<Published>>> {
        self.snapshots[Self::env_index(env)].subscribe()
    }
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

/// How often each replica checks for deployments it did not make itself, as a fallback: its
/// own rollout driver wakes it at once, and with PostgreSQL so does a NOTIFY from the others.
pub const PUBLISH_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// Check for new deployments every [`PUBLISH_POLL`] and stream them; runs until the state is
/// dropped by every router.
fn spawn_publisher(state: &Arc<AppState>) {
    let weak = Arc::downgrade(state);
    let service = state.service.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(PUBLISH_POLL) => {}
                _ = service.deployed().notified() => {}
            }
            let Some(state) = weak.upgrade() else { return };
            for env in [Environment::Dev, Environment::Staging, Environment::Prod] {
                let Some(current) = state.published(env) else {
                    continue;
                };
                match state.service.store().deployment_seq(env).await {
                    Ok(Some(seq)) if seq > current => state.publish(env).await,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot check for new deployments"),
                }
            }
        }
    });
}

/// With PostgreSQL, LISTEN for deployments other replicas make, and wake this replica's
/// publisher at once (the poll stays as the fallback). Reconnects after errors; ends when the
/// state is dropped.
fn spawn_listener(state: &Arc<AppState>) {
    if state.service.store().backend() != crate::store::Backend::Postgres {
        return;
    }
    let store = state.service.store().clone();
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            let mut listener = match store.listen_deployments().await {
                Ok(Some(l)) => l,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot LISTEN for deployments; polling meanwhile");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    if weak.strong_count() == 0 {
                        return;
                    }
                    continue;
                }
            };
            loop {
                let got =
                    tokio::time::timeout(std::time::Duration::from_secs(1), listener.recv()).await;
                let Some(state) = weak.upgrade() else { return };
                match got {
                    Ok(Ok(_)) => state.service.deployed().notify_one(),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "LISTEN for deployments failed; reconnecting");
                        break;
                    }
                    Err(_) => {} // no deployment this second
                }
            }
        }
    });
}

/// The admin API over a service.
pub fn router_with(service: Service) -> Router {
    let state = Arc::new(AppState {
        service,
        snapshots: std::array::from_fn(|_| tokio::sync::watch::Sender::new(None)),
    });
    spawn_publisher(&state);
    spawn_listener(&state);
    Router::new()
        .route("/v1/envs/{env}/rollouts", get(list_rollouts))
        .route("/v1/rollouts/{id}", get(get_rollout))
        .route("/v1/rollouts/{id}/{action}", post(control_rollout))
        .route("/v1/gateways/samples", post(gateway_samples))
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
        .route("/v1/fleet", get(fleet))
        .route("/v1/gateways/stream", get(gateway_stream))
        .route("/v1/gateways/ack", post(gateway_ack))
        .route("/v1/gateways/report", post(gateway_report))
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
    let token = authenticate(state, headers).await?;
    if token.kind == TokenKind::Gateway {
        return Err(ApiError::forbidden(
            "gateway tokens may only stream config and report status",
        ));
    }
    let Some(role) = token.role else {
        tracing::warn!(token = %token.id, "user token without a role");
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

/// Authenticate a gateway: only gateway tokens pass.
async fn gateway_auth(state: &AppState, headers: &HeaderMap) -> ApiResult<TokenRecord> {
    let token = authenticate(state, headers).await?;
    if token.kind != TokenKind::Gateway {
        return Err(ApiError::forbidden(
            "only gateway tokens may use the distribution endpoints",
        ));
    }
    Ok(token)
}

/// The live token in the `Authorization` header; a failed login is audited.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> ApiResult<TokenRecord> {
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
    Ok(token)
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
    responses((status = 200, description = "`{ change, snapshot: { version, hash }, rollout_id, deployed_hash }`: the change (rolling out), its candidate snapshot, its rollout, and the hash gateways are now told to run (the first stage; the config itself for an environment's first change)", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc), (status = 404, description = "not found", body = ErrorDoc), (status = 409, description = "conflict: status moved, stale base version, or not ready", body = ErrorDoc), (status = 400, description = "bad JSON, wrong type or unknown field, with its path", body = ErrorDoc), (status = 413, description = "body too large", body = ErrorDoc)),
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
    s.publish(snapshot.env).await;
    let store = s.service.store();
    let rollout = store
        .rollout_of_change(&id)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let deployed = store
        .deployed_hash(snapshot.env)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map(|(hash, _)| hash);
    Ok(ok(
        StatusCode::OK,
        &json!({
            "change": change,
            "snapshot": { "version": snapshot.version, "hash": snapshot.hash.to_string() },
            "rollout_id": rollout.map(|r| r.id),
            "deployed_hash": deployed,
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
    s.publish(env).await;
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
        (TokenKind::User, Some(role)) => Some(role),
        (TokenKind::User, None) => return Err(field("role", "a user token needs a role")),
        (TokenKind::Gateway, None) => None,
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

// ---- distribution to gateways ----

/// Who a gateway says it is, in the query of every distribution endpoint.
#[derive(Debug, Deserialize)]
struct GatewayQuery {
    env: String,
    id: String,
    #[serde(default)]
    cell: String,
    #[serde(default)]
    version: String,
}

fn gateway_query(raw: Option<String>) -> ApiResult<(Environment, GatewayQuery)> {
    let raw = raw.unwrap_or_default();
    let q: GatewayQuery = axum::extract::Query::try_from_uri(
        &format!("/?{raw}")
            .parse()
            .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", "bad query"))?,
    )
    .map(|axum::extract::Query(q)| q)
    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text()))?;
    let env = parse_env(&q.env)?;
    if q.id.is_empty() || q.id.len() > 200 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            "`id` must be 1 to 200 characters",
        ));
    }
    Ok((env, q))
}

fn seen(env: Environment, q: &GatewayQuery) -> GatewaySeen {
    GatewaySeen {
        env,
        id: q.id.clone(),
        cell: q.cell.clone(),
        version: q.version.clone(),
        hash: None,
        last_seen_ms: unix_ms(),
        last_nack: None,
    }
}

#[utoipa::path(
    get,
    path = "/v1/gateways/stream",
    tag = "gateways",
    params(("env" = String, Query, description = "dev, staging or prod"), ("id" = String, Query, description = "the gateway's id"), ("cell" = Option<String>, Query, description = "its cell"), ("version" = Option<String>, Query, description = "its software version")),
    responses((status = 200, description = "text/event-stream of `snapshot` events (id: version, data: snapshot JSON); honours Last-Event-ID", content_type = "text/event-stream"), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "not a gateway token", body = ErrorDoc), (status = 400, description = "bad query or body", body = ErrorDoc)),
    security(("bearer" = []))
)]
/// The snapshot stream of one gateway: a `snapshot` event on connect (unless the gateway's
/// `Last-Event-ID` names the newest version already) and on every new snapshot.
async fn gateway_stream(State(s): St, RawQuery(raw): RawQuery, headers: HeaderMap) -> ApiResult {
    use axum::response::sse::{Event, KeepAlive, Sse};
    gateway_auth(&s, &headers).await?;
    let (env, q) = gateway_query(raw)?;
    s.service
        .store()
        .upsert_gateway(&seen(env, &q))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let last: Option<u64> = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let rx = s.subscribe(env);
    if rx.borrow().is_none() {
        s.publish(env).await;
    }
    let stream = futures_util::stream::unfold((rx, last), |(mut rx, mut last)| async move {
        loop {
            let current = rx.borrow_and_update().clone();
            if let Some(p) = current
                && last != Some(p.version)
            {
                last = Some(p.version);
                let event = Event::default()
                    .event("snapshot")
                    .id(p.version.to_string())
                    .data(p.json.as_str());
                return Some((Ok::<_, std::convert::Infallible>(event), (rx, last)));
            }
            if rx.changed().await.is_err() {
                return None;
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(10)))
        .into_response())
}

#[utoipa::path(
    post,
    path = "/v1/gateways/ack",
    tag = "gateways",
    params(("env" = String, Query, description = "dev, staging or prod"), ("id" = String, Query, description = "the gateway's id"), ("cell" = Option<String>, Query, description = "its cell"), ("version" = Option<String>, Query, description = "its software version")),
    request_body(content = Object, description = "a ConfigAck: `{ kind: ack, hash }` or `{ kind: nack, hash, reason }`"),
    responses((status = 204, description = "recorded"), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "not a gateway token", body = ErrorDoc), (status = 400, description = "bad query or body", body = ErrorDoc)),
    security(("bearer" = []))
)]
/// A gateway's ACK or NACK of a snapshot.
async fn gateway_ack(
    State(s): St,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    bytes: RawBody,
) -> ApiResult {
    gateway_auth(&s, &headers).await?;
    let (env, q) = gateway_query(raw)?;
    let ack: rampart_model::wire::ConfigAck = body(bytes)?;
    let mut row = seen(env, &q);
    match &ack {
        rampart_model::wire::ConfigAck::Ack { hash } => row.hash = Some(hash.to_string()),
        rampart_model::wire::ConfigAck::Nack { hash, reason } => {
            row.last_nack = Some(format!("{hash}: {reason}"));
            s.service
                .audit(
                    &format!("gateway:{}", q.id),
                    AuditAction::GatewayNack,
                    env.as_str(),
                    json!({ "gateway": q.id, "cell": q.cell, "hash": hash.to_string(), "reason": reason }),
                )
                .await?;
        }
    }
    s.service
        .store()
        .upsert_gateway(&row)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    post,
    path = "/v1/gateways/report",
    tag = "gateways",
    params(("env" = String, Query, description = "dev, staging or prod"), ("id" = String, Query, description = "the gateway's id"), ("cell" = Option<String>, Query, description = "its cell"), ("version" = Option<String>, Query, description = "its software version")),
    request_body(content = Object, description = "a GatewayReport"),
    responses((status = 204, description = "recorded"), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "not a gateway token", body = ErrorDoc), (status = 400, description = "bad query or body", body = ErrorDoc)),
    security(("bearer" = []))
)]
/// A gateway's report: its identity, the snapshot it runs and its counters.
async fn gateway_report(
    State(s): St,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    bytes: RawBody,
) -> ApiResult {
    gateway_auth(&s, &headers).await?;
    let (env, _) = gateway_query(raw)?;
    let report: rampart_model::wire::GatewayReport = body(bytes)?;
    let row = GatewaySeen {
        env,
        id: report.gateway.id.clone(),
        cell: report.gateway.cell.clone(),
        version: report.gateway.version.to_string(),
        hash: report.snapshot.map(|h| h.to_string()),
        last_seen_ms: unix_ms(),
        last_nack: match &report.last_nack {
            Some(rampart_model::wire::ConfigAck::Nack { hash, reason }) => {
                Some(format!("{hash}: {reason}"))
            }
            _ => None,
        },
    };
    let store = s.service.store();
    store
        .upsert_gateway(&row)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    store
        .put_report(env, &report)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Sample batches kept per environment for the impact test.
const KEPT_SAMPLE_BATCHES: u32 = 200;

#[utoipa::path(
    post,
    path = "/v1/gateways/samples",
    tag = "gateways",
    params(("env" = String, Query, description = "dev, staging or prod"), ("id" = String, Query, description = "the gateway's id"), ("cell" = Option<String>, Query, description = "its cell"), ("version" = Option<String>, Query, description = "its software version")),
    request_body(content = Object, description = "a SampleBatch: `{ gateway, samples: [RequestSample] }`"),
    responses((status = 204, description = "kept"), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "not a gateway token", body = ErrorDoc), (status = 400, description = "bad query or body", body = ErrorDoc)),
    security(("bearer" = []))
)]
/// Recent request samples of a gateway (credentials already fingerprinted), for the impact test.
async fn gateway_samples(
    State(s): St,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    bytes: RawBody,
) -> ApiResult {
    gateway_auth(&s, &headers).await?;
    let (env, q) = gateway_query(raw)?;
    let batch: rampart_model::wire::SampleBatch = body(bytes)?;
    if batch.gateway.id != q.id {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!(
                "gateway: the batch is from `{}` but the query names `{}`",
                batch.gateway.id, q.id
            ),
        ));
    }
    if batch.samples.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let json = serde_json::to_string(&batch).map_err(|e| ApiError::internal(&e))?;
    s.service
        .store()
        .put_samples(env, &q.id, &json, KEPT_SAMPLE_BATCHES)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    get,
    path = "/v1/envs/{env}/rollouts",
    tag = "rollouts",
    params(("env" = String, Path, description = "dev, staging or prod")),
    responses((status = 200, description = "`{ rollouts: [RolloutView] }`, newest first", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc)),
    security(("bearer" = []))
)]
/// The newest rollouts of an environment.
async fn list_rollouts(State(s): St, Path(env): Path<String>, headers: HeaderMap) -> ApiResult {
    auth(&s, &headers, Action::Read).await?;
    let env = parse_env(&env)?;
    let rollouts = s.service.rollout_views(env, 50).await?;
    Ok(ok(StatusCode::OK, &json!({ "rollouts": rollouts })))
}

#[utoipa::path(
    get,
    path = "/v1/rollouts/{id}",
    tag = "rollouts",
    params(("id" = String, Path, description = "the rollout id")),
    responses((status = 200, description = "the rollout: plan, stage, soak, last evaluation of the gates, decisions with evidence", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc), (status = 404, description = "not found", body = ErrorDoc)),
    security(("bearer" = []))
)]
/// One rollout.
async fn get_rollout(State(s): St, Path(id): Path<String>, headers: HeaderMap) -> ApiResult {
    auth(&s, &headers, Action::Read).await?;
    Ok(ok(StatusCode::OK, &s.service.rollout_view(&id).await?))
}

/// The body of pause, resume and abort.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ControlBody {
    #[serde(default)]
    reason: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/rollouts/{id}/{action}",
    tag = "rollouts",
    params(("id" = String, Path, description = "the rollout id"), ("action" = String, Path, description = "pause, resume or abort")),
    request_body = ControlBody,
    responses((status = 200, description = "the rollout after the action", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc), (status = 404, description = "not found", body = ErrorDoc), (status = 409, description = "the rollout is not in a state that allows the action", body = ErrorDoc)),
    security(("bearer" = []))
)]
/// Pause, resume or abort a rollout. Abort returns the environment to its LKG at once.
async fn control_rollout(
    State(s): St,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: RawBody,
) -> ApiResult {
    let needed = if action == "abort" {
        Action::Rollback
    } else {
        Action::Apply
    };
    let caller = auth(&s, &headers, needed).await?;
    let b: ControlBody = match &bytes {
        Ok(b) if b.is_empty() => ControlBody::default(),
        _ => body(bytes)?,
    };
    let reason = b.reason.as_deref();
    let view = match action.as_str() {
        "pause" => s.service.pause_rollout(&id, &caller.name, reason).await?,
        "resume" => s.service.resume_rollout(&id, &caller.name, reason).await?,
        "abort" => {
            let v = s.service.abort_rollout(&id, &caller.name, reason).await?;
            s.publish(v.record.env).await;
            v
        }
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no rollout action `{other}`: use pause, resume or abort"),
            ));
        }
    };
    Ok(ok(StatusCode::OK, &view))
}

#[derive(Debug, Deserialize)]
struct FleetQuery {
    env: String,
}

#[utoipa::path(
    get,
    path = "/v1/fleet",
    tag = "rampart",
    params(("env" = String, Query, description = "dev, staging or prod")),
    responses((status = 200, description = "`{ env, gateways: [{ id, cell, version, hash, last_seen_ms, last_nack }] }`", body = Object), (status = 401, description = "missing or unknown token", body = ErrorDoc), (status = 403, description = "gateway token or role too low", body = ErrorDoc), (status = 400, description = "bad query", body = ErrorDoc)),
    security(("bearer" = []))
)]
/// The fleet view of one environment.
async fn fleet(State(s): St, RawQuery(raw): RawQuery, headers: HeaderMap) -> ApiResult {
    auth(&s, &headers, Action::Read).await?;
    let raw = raw.unwrap_or_default();
    let uri = format!("/?{raw}")
        .parse()
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", "bad query"))?;
    let axum::extract::Query(q) = axum::extract::Query::<FleetQuery>::try_from_uri(&uri)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text()))?;
    let env = parse_env(&q.env)?;
    let gateways = s
        .service
        .store()
        .gateways(env)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(ok(
        StatusCode::OK,
        &json!({ "env": env, "gateways": gateways }),
    ))
}
