//! The result of evaluating one request: [`Decision`].

use std::net::IpAddr;

use serde_json::Value;
use smallvec::SmallVec;

/// Everything a gateway needs to serve one request, borrowed from the evaluator and the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<'a> {
    /// The route taken, if any matched.
    pub route: Option<RouteInfo<'a>>,
    pub outcome: Outcome<'a>,
    /// The tenant: an API key's, else the one established before evaluation
    /// ([`crate::RequestMeta::tenant`]: a JWT claim, or a trusted proxy's header).
    pub tenant: Option<&'a str>,
    /// Edits to the request sent upstream, in order.
    pub request_headers: SmallVec<[HeaderEdit<'a>; 4]>,
    /// Edits to the response sent to the client, in order.
    pub response_headers: SmallVec<[HeaderEdit<'a>; 4]>,
    /// Token buckets the request must take a token from, in order.
    pub rate_limits: SmallVec<[RateLimit<'a>; 2]>,
    /// Override of the upstream's total timeout.
    pub timeout_ms: Option<u32>,
    /// Override of the upstream's retry attempts.
    pub retry_attempts: Option<u32>,
    /// The flags the decision consulted, with the values they resolved to.
    pub flags: SmallVec<[ResolvedFlag<'a>; 4]>,
}

impl<'a> Decision<'a> {
    pub(crate) fn new(tenant: Option<&'a str>) -> Self {
        Decision {
            route: None,
            outcome: Outcome::Allow,
            tenant,
            request_headers: SmallVec::new(),
            response_headers: SmallVec::new(),
            rate_limits: SmallVec::new(),
            timeout_ms: None,
            retry_attempts: None,
            flags: SmallVec::new(),
        }
    }
}

/// The route a request took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo<'a> {
    /// The route's index in `Config::routes` (not its rank in precedence).
    pub index: usize,
    pub id: &'a str,
    pub product: &'a str,
    pub upstream: &'a str,
    pub upstream_index: usize,
}

/// What happens to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// Forward it upstream.
    Allow,
    /// Refuse it.
    Deny {
        status: u16,
        reason: DenyReason,
        /// The policy that denied it; none when no route matched.
        policy: Option<&'a str>,
    },
    /// Answer it from the gateway.
    Static {
        status: u16,
        body: &'a str,
        content_type: &'a str,
        headers: SmallVec<[(&'a str, &'a str); 2]>,
        policy: &'a str,
    },
}

impl Outcome<'_> {
    /// The status the client sees, or `None` when the upstream decides.
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Allow => None,
            Outcome::Deny { status, .. } | Outcome::Static { status, .. } => Some(*status),
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum DenyReason {
    NoRoute,
    #[strum(serialize = "access_denied")]
    Access,
    MissingCredentials,
    InvalidCredentials,
    /// A JWT policy found no token (401 with `WWW-Authenticate: Bearer`).
    MissingToken,
    /// A token that is malformed, too long, badly signed, signed with an algorithm the key
    /// does not allow (`none`, `HS256` against a public key), names an unknown `kid`, lacks
    /// `exp`, or whose tenant claim is not a string.
    InvalidToken,
    /// `exp` is past, beyond the allowed clock skew.
    ExpiredToken,
    /// `nbf` is ahead, beyond the allowed clock skew.
    TokenNotYetValid,
    /// `iss` is not the policy's issuer.
    WrongIssuer,
    /// `aud` does not name the policy's audience.
    WrongAudience,
}

impl DenyReason {
    /// Whether the refusal is a JWT policy's: its response carries `WWW-Authenticate: Bearer`.
    pub fn is_bearer(self) -> bool {
        matches!(
            self,
            DenyReason::MissingToken
                | DenyReason::InvalidToken
                | DenyReason::ExpiredToken
                | DenyReason::TokenNotYetValid
                | DenyReason::WrongIssuer
                | DenyReason::WrongAudience
        )
    }
}

/// One header edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderEdit<'a> {
    Set(&'a str, &'a str),
    Remove(&'a str),
}

/// A token bucket to draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit<'a> {
    /// The policy id; buckets are per policy and key.
    pub policy: &'a str,
    pub per_second: u32,
    pub burst: u32,
    pub key: LimitKey<'a>,
}

/// The value a rate limit is keyed by. A missing tenant or header falls back to the client IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKey<'a> {
    Tenant(&'a str),
    ClientIp(IpAddr),
    Route(&'a str),
    Header(&'a str),
}

/// A flag and the value it resolved to for this request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResolvedFlag<'a> {
    pub name: &'a str,
    pub value: &'a Value,
}
