//! The audit log and its verification.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use super::AppState;
use axum::Json;
use rampart_api::{AuditLog, AuditReport};

use super::auth::{Caller, may};
use super::error::ApiResult;
use crate::service::views;

#[utoipa::path(get, path = "/v1/audit", tag = "rampart", responses((status = 200, description = "every audit entry", body = AuditLog)))]
pub async fn get_audit(c: Caller<may::ReadAudit>) -> ApiResult<Json<AuditLog>> {
    let entries = c.service().audit_entries().await?;
    Ok(Json(AuditLog {
        entries: entries.into_iter().map(views::audit_entry).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/audit/verify", tag = "rampart", responses((status = 200, description = "the verification report", body = AuditReport)))]
pub async fn verify_audit(c: Caller<may::ReadAudit>) -> ApiResult<Json<AuditReport>> {
    Ok(Json(c.service().verify_audit().await?))
}

/// This resource's routes.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/audit", get(get_audit))
        .route("/v1/audit/verify", get(verify_audit))
}
