//! The admin REST API on axum. Every endpoint takes `Authorization: Bearer <token>`:
//!
//! - no header, a malformed one or an unknown token: 401 (`unauthorized`); an unknown or
//!   malformed token is audited as `login_failed` (the token itself never is; a request with no
//!   header attempted no login and is not audited);
//! - a gateway token, or a role below the endpoint's ([`crate::rules::Permission::min_role`]): 403.
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
//! | GET | `/v1/envs/{env}/rollouts` | read: the newest rollouts |
//! | GET | `/v1/rollouts/{id}` | read: plan, stage, soak, last evaluation, decisions |
//! | POST | `/v1/rollouts/{id}/{pause,resume}` | apply: `{ reason? }` |
//! | POST | `/v1/rollouts/{id}/abort` | rollback: `{ reason? }`; back to the LKG at once |
//!
//! Gateway tokens (and only they; a user token gets 403) may use the distribution endpoints,
//! each with `?env=E&id=ID&cell=CELL&version=V`:
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/v1/gateways/stream` | server-sent events: `snapshot` events, `id:` the snapshot version, `data:` its JSON; sent on connect (unless `Last-Event-ID` names the current version) and on every new snapshot of E |
//! | POST | `/v1/gateways/ack` | a `ConfigAck`; a NACK is audited as `gateway_nack` |
//! | POST | `/v1/gateways/report` | a `GatewayReport`, every second |
//! | POST | `/v1/gateways/samples` | a `SampleBatch` of recent requests, for the impact test |
//!
//! No endpoint mutates an environment except through a change, and rollback to the LKG.
//!
//! Errors are JSON, a [`rampart_api::ErrorBody`]: `{ "error": code, "message": ..., "fields": [{ "path", "message" }] }`
//! (`change_id` too when a change was recorded as rejected); the codes are
//! [`rampart_api::ErrorCode`]. Bodies are limited to
//! [`MAX_BODY_BYTES`] (413); bodies are parsed with [`rampart_model::load::from_json`], so bad
//! JSON, wrong types and unknown fields are 400 with the path of the field at fault. Internal
//! errors are logged with `tracing` when the response is made, and shown only as `internal`.
//!
//! Every request and response body is a `rampart-api` type (or a model type). The OpenAPI
//! document is generated with utoipa ([`ApiDoc`]) and served at `/openapi.json`, the one
//! endpoint without a token: it describes the API and holds no data.
//!
//! One module per resource: [`envs`] (config, flags, snapshot, rollback), [`changes`],
//! [`rollouts`], [`audit`], [`tokens`], [`fleet`], [`gateways`] (distribution), [`openapi`];
//! [`auth`] holds the caller extractors, [`extract`] the path, query and body extractors,
//! [`error`] the one error type, [`state`] the shared state and the snapshot publisher.

pub mod audit;
pub mod auth;
pub mod changes;
pub mod envs;
pub mod error;
pub mod extract;
pub mod fleet;
pub mod gateways;
pub mod openapi;
pub mod rollouts;
pub mod state;
pub mod tokens;

use axum::Router;
use axum::extract::DefaultBodyLimit;

pub use error::ApiError;
pub use openapi::ApiDoc;
pub use state::{AppState, PUBLISH_POLL};

use crate::rules::RulesConfig;
use crate::service::Service;
use rampart_store::Store;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The most changes a list returns.
pub const MAX_LIST: u32 = 500;

/// The admin API over `store`, with `rules`.
pub fn router(store: Store, rules: RulesConfig) -> Router {
    router_with(Service::new(store, rules))
}

/// The admin API over a service.
pub fn router_with(service: Service) -> Router {
    Router::new()
        .merge(envs::routes())
        .merge(changes::routes())
        .merge(rollouts::routes())
        .merge(audit::routes())
        .merge(tokens::routes())
        .merge(fleet::routes())
        .merge(gateways::routes())
        .merge(openapi::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(AppState::start(service))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}
