//! Request body limits: a default for the environment (`settings.requests`) and a per-route
//! override (`routes[].max_body_bytes`). A gateway refuses a larger body with 413
//! `payload_too_large`: by its `Content-Length` before anything is forwarded, or as a streamed
//! body (chunked, HTTP/2) crosses the limit.

use serde::{Deserialize, Serialize};

/// The largest limit a configuration may set: 4 GiB.
pub const MAX_BODY_LIMIT: u64 = 4 << 30;

/// Environment-wide request limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RequestLimits {
    /// The largest request body, in bytes, of a route that does not set its own.
    pub max_body_bytes: u64,
}

impl RequestLimits {
    /// 10 MiB.
    pub const DEFAULT_MAX_BODY: u64 = 10 << 20;

    pub fn is_default(&self) -> bool {
        *self == RequestLimits::default()
    }
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_body_bytes: Self::DEFAULT_MAX_BODY,
        }
    }
}
