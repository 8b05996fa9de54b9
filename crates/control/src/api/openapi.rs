//! The OpenAPI document of the admin API, generated with utoipa and served at
//! `/openapi.json`: the one endpoint without a token, since it describes the API and holds no
//! data. Every request and response body names its schema (a `rampart-api` or model type).
//!
//! Each handler's `#[utoipa::path]` says only what is its own (method, path, tag, parameters,
//! body, success and specific errors); [`Shared`] adds to every operation what they all have.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use super::AppState;
use axum::Json;
use utoipa::IntoResponses;
use utoipa::OpenApi as _;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};

use super::error::doc::{BadBody, Denied, GatewayDenied};
use super::{audit, changes, envs, fleet, gateways, rollouts, tokens};

/// The OpenAPI document of the admin API.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    info(title = "rampart admin API", description = "Changes are the only way to mutate an environment; rollback to the LKG is the only fast path."),
    paths(
        envs::get_config, envs::get_flags, envs::get_flag, envs::get_snapshot, envs::rollback,
        changes::list_changes, changes::submit, changes::get_change, changes::approve,
        changes::reject, changes::withdraw, changes::apply,
        audit::get_audit, audit::verify_audit, tokens::create_token, fleet::fleet,
        gateways::gateway_stream, gateways::gateway_ack, gateways::gateway_report,
        gateways::gateway_samples,
        rollouts::list_rollouts, rollouts::get_rollout, rollouts::control_rollout,
    ),
    components(schemas(rampart_api::ErrorBody, rampart_api::ErrorCode, rampart_api::FieldError)),
    modifiers(&Shared),
)]
pub struct ApiDoc;

/// The tag of the distribution endpoints, whose callers are gateways.
pub const GATEWAYS_TAG: &str = "gateways";

/// What every operation shares: the bearer token (its scheme `bearer`), the 401 and 403 of its
/// caller ([`Denied`], or [`GatewayDenied`] on the distribution endpoints, tagged
/// [`GATEWAYS_TAG`]), and on a user endpoint with a body, the 400 and 413 of [`BadBody`].
#[derive(Debug)]
struct Shared;

impl utoipa::Modify for Shared {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for item in openapi.paths.paths.values_mut() {
            let methods = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
            ];
            for op in methods.into_iter().flatten() {
                op.security = Some(vec![SecurityRequirement::new(
                    "bearer",
                    Vec::<String>::new(),
                )]);
                let gateway = op.tags.iter().flatten().any(|t| t == GATEWAYS_TAG);
                let mut shared = if gateway {
                    GatewayDenied::responses()
                } else {
                    Denied::responses()
                };
                if !gateway && op.request_body.is_some() {
                    shared.extend(BadBody::responses());
                }
                for (status, response) in shared {
                    op.responses.responses.entry(status).or_insert(response);
                }
            }
        }
    }
}

/// `GET /openapi.json`.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// This resource's routes.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/openapi.json", get(openapi))
}
