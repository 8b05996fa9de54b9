//! What handlers read from a request besides the caller: the environment in the path, the
//! query of the fleet and distribution endpoints, and JSON bodies. The path and query
//! extractors document their parameters for the OpenAPI document (`params(Env)`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use rampart_api::{ErrorCode, FieldError};
use rampart_model::{Environment, parse_name};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterIn};

use super::MAX_BODY_BYTES;
use super::error::{ApiError, ApiResult};
use super::state::AppState;

/// An environment named by the request, or 404 naming the ones that exist.
pub fn parse_env(name: &str) -> ApiResult<Environment> {
    parse_name::<Environment>("environment", name).map_err(|e| {
        ApiError::not_found(format!(
            "unknown environment `{}` (expected dev, staging or prod)",
            e.value
        ))
    })
}

/// The `{env}` of the path.
#[derive(Debug, Clone, Copy)]
pub struct Env(pub Environment);

impl FromRequestParts<Arc<AppState>> for Env {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> ApiResult<Self> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::not_found(e.body_text()))?;
        let name = params
            .iter()
            .find(|(k, _)| *k == "env")
            .map(|(_, v)| v)
            .unwrap_or_default();
        parse_env(name).map(Env)
    }
}

impl IntoParams for Env {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        EnvParams::into_params(|| Some(ParameterIn::Path))
    }
}

/// A query string as `T`; 400 `bad_query` when it is not one.
pub fn query<T: DeserializeOwned>(raw: Option<&str>) -> ApiResult<T> {
    let uri = format!("/?{}", raw.unwrap_or_default())
        .parse()
        .map_err(|_| ApiError::bad_query("bad query"))?;
    axum::extract::Query::try_from_uri(&uri)
        .map(|axum::extract::Query(q)| q)
        .map_err(|e| ApiError::bad_query(e.body_text()))
}

/// The environment parameter, as named in a path or query.
#[derive(Deserialize, IntoParams)]
struct EnvParams {
    /// dev, staging or prod
    env: String,
}

/// `?env=E` of the fleet view.
#[derive(Debug, Clone, Copy)]
pub struct EnvQuery(pub Environment);

impl<S: Send + Sync> FromRequestParts<S> for EnvQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Self> {
        let q: EnvParams = query(parts.uri.query())?;
        parse_env(&q.env).map(EnvQuery)
    }
}

impl IntoParams for EnvQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        EnvParams::into_params(|| Some(ParameterIn::Query))
    }
}

/// Who a gateway says it is, in the query of every distribution endpoint:
/// `?env=E&id=ID&cell=CELL&version=V`.
#[derive(Debug, Clone)]
pub struct GatewayQuery {
    pub env: Environment,
    pub id: String,
    pub cell: String,
    pub version: String,
}

/// The query of [`GatewayQuery`] as sent.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct GatewayParams {
    /// dev, staging or prod
    env: String,
    /// the gateway's id
    id: String,
    /// its cell
    #[serde(default)]
    cell: String,
    /// its software version
    #[serde(default)]
    version: String,
}

impl<S: Send + Sync> FromRequestParts<S> for GatewayQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> ApiResult<Self> {
        let q: GatewayParams = query(parts.uri.query())?;
        let env = parse_env(&q.env)?;
        if q.id.is_empty() || q.id.len() > 200 {
            return Err(ApiError::bad_query("`id` must be 1 to 200 characters"));
        }
        Ok(GatewayQuery {
            env,
            id: q.id,
            cell: q.cell,
            version: q.version,
        })
    }
}

impl IntoParams for GatewayQuery {
    fn into_params(in_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        GatewayParams::into_params(in_)
    }
}

/// A JSON body (up to [`MAX_BODY_BYTES`]) parsed with [`rampart_model::load::from_json`]:
/// bad JSON, wrong types and unknown fields are 400 with the path of the field at fault. An
/// empty body reads as an empty object, for bodies whose fields are all optional.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        Body::parse(Bytes::from_request(req, state).await)
    }
}

impl<T: DeserializeOwned> Body<T> {
    /// Parse a body read as bytes, for a handler that must check something first.
    pub fn parse(bytes: Result<Bytes, BytesRejection>) -> ApiResult<Self> {
        parse_body(bytes).map(Body)
    }
}

fn parse_body<T: DeserializeOwned>(bytes: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let bytes = bytes.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                ErrorCode::TooLarge,
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            )
        } else {
            ApiError::bad_body("the request body could not be read")
        }
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadJson,
            "the body is not UTF-8",
        )
    })?;
    let text = if text.trim().is_empty() { "{}" } else { text };
    rampart_model::load::from_json(text).map_err(|e| {
        let path = if e.path.is_empty() || e.path == "." {
            String::new()
        } else {
            e.path.clone()
        };
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadJson, e.to_string())
            .with_fields(vec![FieldError::new(path, e.message)])
    })
}
