//! The one error of the API: a status, a stable [`ErrorCode`] and a message, shown as
//! [`ErrorBody`]. Internal errors show only `internal`; their cause is logged once, when the
//! response is made ([`IntoResponse`]), never by a constructor.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rampart_api::{ErrorBody, ErrorCode, FieldError};

use crate::service::ServiceError;

/// A JSON error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    /// What went wrong inside, for the log only.
    cause: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: code,
                message: message.into(),
                fields: Vec::new(),
                change_id: None,
            },
            cause: None,
        }
    }

    /// The same error, naming the fields at fault.
    pub fn with_fields(mut self, fields: Vec<FieldError>) -> Self {
        self.body.fields = fields;
        self
    }

    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "a valid `Authorization: Bearer <token>` header is required",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    pub fn bad_query(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadQuery, message)
    }

    pub fn bad_body(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::BadBody, message)
    }

    /// A 422 about one field.
    pub fn invalid_field(path: &str, message: &str) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Invalid,
            message,
        )
        .with_fields(vec![FieldError::new(path, message)])
    }

    /// Something the caller cannot fix: shown as `internal`, `cause` is logged.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError {
            cause: Some(cause.to_string()),
            ..ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error; see the control plane's log",
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.cause {
            tracing::error!(error = %cause, "admin API internal error");
        }
        (self.status, axum::Json(self.body)).into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            ServiceError::Forbidden(m) => ApiError::forbidden(m),
            ServiceError::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            ServiceError::Invalid {
                message,
                fields,
                change_id,
            } => {
                let mut e = ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ErrorCode::Invalid,
                    message,
                )
                .with_fields(fields);
                e.body.change_id = change_id;
                e
            }
            ServiceError::NotReady(verdict) => {
                let fields = verdict
                    .missing
                    .iter()
                    .map(|m| FieldError::new("rules", m.to_string()))
                    .collect();
                ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorCode::NotReady,
                    verdict.to_string(),
                )
                .with_fields(fields)
            }
            ServiceError::Internal(what) => ApiError::internal(what),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The error responses of the OpenAPI document, declared once: every endpoint lists the sets
/// it can answer with.
pub mod doc {
    use rampart_api::ErrorBody;

    /// Every user endpoint: who may call.
    #[derive(Debug, utoipa::IntoResponses)]
    #[allow(dead_code)] // Only its schema is used.
    pub enum Denied {
        /// missing or unknown token
        #[response(status = 401)]
        Unauthorized(ErrorBody),
        /// gateway token or role too low
        #[response(status = 403)]
        Forbidden(ErrorBody),
    }

    /// 404.
    #[derive(Debug, utoipa::IntoResponses)]
    #[allow(dead_code)]
    pub enum NotFound {
        /// not found
        #[response(status = 404)]
        NotFound(ErrorBody),
    }

    /// Endpoints with a JSON body.
    #[derive(Debug, utoipa::IntoResponses)]
    #[allow(dead_code)]
    pub enum BadBody {
        /// bad JSON, wrong type or unknown field, with its path
        #[response(status = 400)]
        BadJson(ErrorBody),
        /// body too large
        #[response(status = 413)]
        TooLarge(ErrorBody),
    }

    /// Endpoints that move a change.
    #[derive(Debug, utoipa::IntoResponses)]
    #[allow(dead_code)]
    pub enum Conflict {
        /// conflict: status moved, stale base version, not ready, or a rollout in progress
        #[response(status = 409)]
        Conflict(ErrorBody),
    }

    /// Endpoints that validate what they are sent.
    #[derive(Debug, utoipa::IntoResponses)]
    #[allow(dead_code)]
    pub enum Invalid {
        /// validation failed, with field paths
        #[response(status = 422)]
        Invalid(ErrorBody),
    }

    /// Endpoints with a query.
    #[derive(Debug, utoipa::IntoResponses)]
    #[allow(dead_code)]
    pub enum BadQuery {
        /// bad query
        #[response(status = 400)]
        BadQuery(ErrorBody),
    }

    /// The distribution endpoints: gateway tokens only.
    #[derive(Debug, utoipa::IntoResponses)]
    #[allow(dead_code)]
    pub enum GatewayDenied {
        /// missing or unknown token
        #[response(status = 401)]
        Unauthorized(ErrorBody),
        /// not a gateway token
        #[response(status = 403)]
        Forbidden(ErrorBody),
        /// bad query or body
        #[response(status = 400)]
        Bad(ErrorBody),
    }
}
