//! Why the gateway itself refused or failed a request ([`Reject`]), mapped to its status and
//! `x-rampart-error` value here and nowhere else; and what became of a request, as its sample
//! records it ([`Disposition`]).

use http::StatusCode;
use rampart_eval::DenyReason;
use rampart_model::EnumName;
use rampart_model::paths::PathError;

use super::Plan;
use super::forward::UpstreamError;
use crate::stats::Ending;

/// A refusal or failure of the gateway itself. Its name (`x-rampart-error`, and `error` in
/// the JSON body) comes from the derive; its status from [`Reject::status`].
#[derive(Debug, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Reject<'a> {
    /// No snapshot is active yet.
    NoConfig,
    /// Two Host headers.
    DuplicateHost,
    /// A trusted proxy's tenant header that is repeated, empty, or not a tenant name.
    BadTenantHeader,
    /// A request target that cannot be sent upstream.
    BadRequestTarget,
    /// A path with no canonical form ([`PathError`] names why: `invalid_percent_encoding`,
    /// `escaped_slash`, ...; `bad_request_target` when it is not absolute).
    #[strum(transparent)]
    BadPath(PathError),
    /// A `Host` or `:authority` that is not a host with an optional port.
    BadHost,
    /// An HTTP/2 request whose `Host` names another host than its `:authority`.
    HostMismatch,
    /// No route matched, or a policy refused the request.
    #[strum(transparent)]
    Denied(Denial<'a>),
    /// A rate limit's bucket is empty.
    RateLimited {
        policy: &'a str,
        /// Seconds until a token is back (`Retry-After`).
        retry_after: u64,
        /// Whether the bucket is the tenant's (`x-ratelimit-scope: tenant`).
        tenant: bool,
    },
    /// An allowed request whose pool is missing; cannot happen with a compiled snapshot.
    NoUpstream,
    /// Every endpoint of the pool is ejected.
    NoHealthyUpstream,
    /// The last attempt upstream failed.
    #[strum(transparent)]
    Upstream(UpstreamError),
    /// More requests in flight than the gateway admits.
    Overloaded,
    /// A request body over its route's limit (`max_body_bytes`), by its `Content-Length` or
    /// as it streamed.
    PayloadTooLarge,
}

/// A denial by the evaluator: no route, or a policy.
#[derive(Debug, Clone, Copy)]
pub struct Denial<'a> {
    pub reason: DenyReason,
    /// The status the policy chose.
    pub status: u16,
    /// The policy that denied it; none when no route matched.
    pub policy: Option<&'a str>,
}

impl From<Denial<'_>> for &'static str {
    fn from(d: Denial<'_>) -> Self {
        d.reason.as_str()
    }
}

impl From<&Denial<'_>> for &'static str {
    fn from(d: &Denial<'_>) -> Self {
        d.reason.as_str()
    }
}

impl Reject<'_> {
    /// The status the client sees.
    pub fn status(&self) -> StatusCode {
        match self {
            Reject::DuplicateHost
            | Reject::BadTenantHeader
            | Reject::BadRequestTarget
            | Reject::BadPath(_)
            | Reject::BadHost
            | Reject::HostMismatch => StatusCode::BAD_REQUEST,
            Reject::Denied(d) => {
                StatusCode::from_u16(d.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Reject::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Reject::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Reject::NoUpstream => StatusCode::BAD_GATEWAY,
            Reject::NoConfig | Reject::NoHealthyUpstream | Reject::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Reject::Upstream(e) => e.status(),
        }
    }

    /// The `x-rampart-error` value.
    pub fn code(&self) -> &'static str {
        self.into()
    }

    /// The policy that refused the request, if one did.
    pub fn policy(&self) -> Option<&str> {
        match self {
            Reject::Denied(d) => d.policy,
            Reject::RateLimited { policy, .. } => Some(policy),
            _ => None,
        }
    }

    /// Whether the gateway failed (rather than refused): it counts against the cohort.
    pub fn is_failure(&self) -> bool {
        matches!(self, Reject::NoHealthyUpstream | Reject::Upstream(_))
    }

    /// How the request ended, for the cohort's counters.
    pub fn ending(&self) -> Ending {
        Ending::Gateway {
            status: self.status().as_u16(),
            failure: self.is_failure(),
        }
    }
}

/// What the gateway did with a request, as its sample's `outcome` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum Disposition {
    /// Sent upstream.
    Allow,
    /// Answered by a static response policy.
    Static,
    NoRoute,
    AccessDenied,
    MissingCredentials,
    InvalidCredentials,
    MissingToken,
    InvalidToken,
    ExpiredToken,
    TokenNotYetValid,
    WrongIssuer,
    WrongAudience,
    RateLimited,
    NoUpstream,
}

impl Disposition {
    /// What the decision phase made of a request.
    pub(super) fn of(planned: &Result<Plan, Reject<'_>>) -> Self {
        match planned {
            Ok(Plan::Forward(_)) => Disposition::Allow,
            Ok(Plan::Respond(..)) => Disposition::Static,
            Err(Reject::Denied(d)) => d.reason.into(),
            Err(Reject::RateLimited { .. }) => Disposition::RateLimited,
            // The one other refusal a decision ends in: an allowed request without a pool.
            Err(_) => Disposition::NoUpstream,
        }
    }
}

impl From<DenyReason> for Disposition {
    fn from(reason: DenyReason) -> Self {
        match reason {
            DenyReason::NoRoute => Disposition::NoRoute,
            DenyReason::Access => Disposition::AccessDenied,
            DenyReason::MissingCredentials => Disposition::MissingCredentials,
            DenyReason::InvalidCredentials => Disposition::InvalidCredentials,
            DenyReason::MissingToken => Disposition::MissingToken,
            DenyReason::InvalidToken => Disposition::InvalidToken,
            DenyReason::ExpiredToken => Disposition::ExpiredToken,
            DenyReason::TokenNotYetValid => Disposition::TokenNotYetValid,
            DenyReason::WrongIssuer => Disposition::WrongIssuer,
            DenyReason::WrongAudience => Disposition::WrongAudience,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantArray;

    #[test]
    fn names_are_the_wire_names() {
        let names: Vec<&str> = Disposition::VARIANTS.iter().map(|d| d.as_str()).collect();
        assert_eq!(
            names,
            [
                "allow",
                "static",
                "no_route",
                "access_denied",
                "missing_credentials",
                "invalid_credentials",
                "missing_token",
                "invalid_token",
                "expired_token",
                "token_not_yet_valid",
                "wrong_issuer",
                "wrong_audience",
                "rate_limited",
                "no_upstream"
            ]
        );
        for reason in DenyReason::VARIANTS {
            assert_eq!(Disposition::from(*reason).as_str(), reason.as_str());
            let denial = Denial {
                reason: *reason,
                status: 403,
                policy: None,
            };
            assert_eq!(Reject::Denied(denial).code(), reason.as_str());
        }
        let codes: Vec<&str> = [
            Reject::NoConfig,
            Reject::DuplicateHost,
            Reject::BadTenantHeader,
            Reject::BadRequestTarget,
            Reject::BadPath(PathError::EscapedSlash { at: 1 }),
            Reject::BadPath(PathError::NotAbsolute),
            Reject::BadHost,
            Reject::HostMismatch,
            Reject::NoUpstream,
            Reject::NoHealthyUpstream,
            Reject::Overloaded,
            Reject::Upstream(UpstreamError::Timeout { retry: false }),
        ]
        .iter()
        .map(|r| r.code())
        .collect();
        assert_eq!(
            codes,
            [
                "no_config",
                "duplicate_host",
                "bad_tenant_header",
                "bad_request_target",
                "escaped_slash",
                "bad_request_target",
                "bad_host",
                "host_mismatch",
                "no_upstream",
                "no_healthy_upstream",
                "overloaded",
                "upstream_timeout"
            ]
        );
    }
}
