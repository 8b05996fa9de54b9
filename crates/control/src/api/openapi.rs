//! The OpenAPI document of the admin API, generated with utoipa and served at
//! `/openapi.json`: the one endpoint without a token, since it describes the API and holds no
//! data. Every request and response body names its schema (a `rampart-api` or model type).

use axum::Json;
use utoipa::OpenApi as _;

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

/// `GET /openapi.json`.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
