//! The fleet configuration of one environment: what `fleet.yaml` holds and a snapshot carries.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::bind::Bindable;
use crate::flag::Flag;

crate::wire_enum! {
    /// A deployment environment. Changes are promoted in this order.
    #[derive(PartialOrd, Ord)]
    pub enum Environment {
        Dev,
        Staging,
        Prod,
    }
}

/// Who a gateway is: its id, its cell (failure domain) and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayIdentity {
    pub id: String,
    pub cell: String,
    #[schema(value_type = String)]
    pub version: semver::Version,
}

/// The whole configuration of one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub environment: Environment,
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub products: Vec<Product>,
    #[serde(default)]
    pub upstreams: Vec<Upstream>,
    #[serde(default)]
    pub policies: Vec<Policy>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub flags: Vec<Flag>,
}

/// Environment-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The header that carries the established tenant upstream (and, from a trusted proxy
    /// when `tenant.from_trusted_proxy` is on, into the gateway). A client's own is removed.
    #[serde(default = "default_tenant_header")]
    pub tenant_header: String,
    /// Peers whose `X-Forwarded-For` (and, if allowed, tenant header) the gateway believes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub trusted_proxies: Vec<IpNet>,
    /// The tenant's declared sources besides credentials.
    #[serde(
        default,
        skip_serializing_if = "crate::identity::TenantSettings::is_default"
    )]
    pub tenant: crate::identity::TenantSettings,
    /// Request limits: the default largest body ([`crate::body`]).
    #[serde(
        default,
        skip_serializing_if = "crate::body::RequestLimits::is_default"
    )]
    pub requests: crate::body::RequestLimits,
    /// How request paths are normalised before routing (see [`crate::paths`]).
    #[serde(
        default,
        skip_serializing_if = "crate::paths::PathSettings::is_default"
    )]
    pub paths: crate::paths::PathSettings,
}

fn default_tenant_header() -> String {
    "x-tenant-id".to_owned()
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tenant_header: default_tenant_header(),
            trusted_proxies: Vec::new(),
            tenant: crate::identity::TenantSettings::default(),
            requests: Default::default(),
            paths: Default::default(),
        }
    }
}

/// A product: a set of routes that customers see as one service (and a status-page component).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A pool of endpoints with load balancing, timeouts, retries and a health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub name: String,
    /// `host:port` of each endpoint.
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub load_balancing: LoadBalancing,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub retries: Retries,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
}

/// How an upstream picks an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LoadBalancing {
    #[default]
    RoundRobin,
    LeastLoaded,
    /// Requests with the same key go to the same endpoint while it is healthy.
    ConsistentHash {
        key: RequestKey,
    },
}

/// A per-request key: for rate limits and consistent hashing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RequestKey {
    Tenant,
    ClientIp,
    Route,
    Header(String),
}

/// Upstream timeouts, in milliseconds. A field left out takes its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    pub connect_ms: u32,
    pub read_ms: u32,
    pub total_ms: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect_ms: 1_000,
            read_ms: 15_000,
            total_ms: 30_000,
        }
    }
}

/// Retries of idempotent requests. A field left out takes its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Retries {
    /// Extra attempts after the first; 0 disables retries.
    pub attempts: u32,
    pub retry_on: Vec<RetryOn>,
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            attempts: 1,
            retry_on: vec![RetryOn::ConnectError],
        }
    }
}

/// What makes a request eligible for a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetryOn {
    ConnectError,
    Timeout,
    #[serde(rename = "5xx")]
    ServerError,
}

/// An active HTTP health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub path: String,
    #[serde(default = "HealthCheck::default_interval")]
    pub interval_ms: u32,
    #[serde(default = "HealthCheck::default_timeout")]
    pub timeout_ms: u32,
    #[serde(default = "HealthCheck::default_threshold")]
    pub healthy_threshold: u32,
    #[serde(default = "HealthCheck::default_threshold")]
    pub unhealthy_threshold: u32,
}

impl HealthCheck {
    fn default_interval() -> u32 {
        5_000
    }
    fn default_timeout() -> u32 {
        1_000
    }
    fn default_threshold() -> u32 {
        2
    }
}

/// A match on host, path, methods and headers that leads to an upstream through policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub id: String,
    pub product: String,
    #[serde(rename = "match")]
    pub matcher: RouteMatch,
    pub upstream: String,
    /// Ids of policies, applied in order.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Precedence among routes that match the same request: higher first, 0 by default. Ties
    /// are broken by specificity, then by id; never by where the route is written or stored
    /// (the rule is `rampart_eval::precedence`, documented in docs/CONFIG.md).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i32,
    /// The largest request body of this route, in bytes; without it, the environment's
    /// `settings.requests.max_body_bytes` ([`crate::body`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// What a request must look like to take a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// An exact host, or `*.suffix` for any subdomain; absent matches every host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub path: PathMatch,
    /// Empty matches every method.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<Method>,
    /// All must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
    /// Whether `path` is compared with letter case (the default) or without (ASCII letters).
    #[serde(default, skip_serializing_if = "crate::paths::PathCase::is_sensitive")]
    pub path_case: crate::paths::PathCase,
}

/// A path prefix or an exact path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
}

crate::wire_enum! {
    case = "UPPERCASE";
    /// An HTTP method.
    pub enum Method {
        Get,
        Head,
        Post,
        Put,
        Delete,
        Patch,
        Options,
    }
}

/// A condition on one request header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    pub name: String,
    pub value: ValueMatch,
}

/// How a header value must look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ValueMatch {
    /// The header is present, with any value.
    Present,
    Exact(String),
    Prefix(String),
    /// A regex, compiled by the linear-time `regex` crate under [`crate::LIMITS`].
    Regex(String),
}

/// A typed policy on a route. `enabled` and many fields may be bound to a flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PolicyWire", into = "PolicyWire")]
pub struct Policy {
    pub id: String,
    pub description: String,
    pub enabled: Bindable<bool>,
    pub kind: PolicyKind,
}

/// On the wire a policy is its [`PolicyWire`]: the schema says so.
impl utoipa::PartialSchema for Policy {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <PolicyWire as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for Policy {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <PolicyWire as utoipa::ToSchema>::schemas(schemas);
    }
}

/// The kinds of policy.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyKind {
    Access(AccessPolicy),
    Auth(AuthPolicy),
    RateLimit(RateLimitPolicy),
    Headers(HeaderRules),
    StaticResponse(StaticResponse),
    TimeoutRetry(TimeoutRetry),
}

impl PolicyKind {
    /// The key the kind is written under.
    pub fn name(&self) -> &'static str {
        match self {
            PolicyKind::Access(_) => "access",
            PolicyKind::Auth(_) => "auth",
            PolicyKind::RateLimit(_) => "rate_limit",
            PolicyKind::Headers(_) => "headers",
            PolicyKind::StaticResponse(_) => "static_response",
            PolicyKind::TimeoutRetry(_) => "timeout_retry",
        }
    }
}

/// The wire form of a policy: exactly one kind key is set.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyWire {
    id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(
        default = "enabled_default",
        skip_serializing_if = "is_enabled_literal"
    )]
    enabled: Bindable<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access: Option<AccessPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<AuthPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate_limit: Option<RateLimitPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    headers: Option<HeaderRules>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    static_response: Option<StaticResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_retry: Option<TimeoutRetry>,
}

fn enabled_default() -> Bindable<bool> {
    Bindable::Literal(true)
}

fn is_enabled_literal(b: &Bindable<bool>) -> bool {
    *b == Bindable::Literal(true)
}

/// A policy whose wire form sets no kind, or several.
#[derive(Debug, thiserror::Error)]
#[error(
    "policy `{id}` must set exactly one of access, auth, rate_limit, headers, static_response, timeout_retry; it sets {found}"
)]
pub struct PolicyKindError {
    id: String,
    found: String,
}

impl TryFrom<PolicyWire> for Policy {
    type Error = PolicyKindError;

    fn try_from(w: PolicyWire) -> Result<Self, Self::Error> {
        let mut kinds: Vec<PolicyKind> = Vec::with_capacity(1);
        kinds.extend(w.access.map(PolicyKind::Access));
        kinds.extend(w.auth.map(PolicyKind::Auth));
        kinds.extend(w.rate_limit.map(PolicyKind::RateLimit));
        kinds.extend(w.headers.map(PolicyKind::Headers));
        kinds.extend(w.static_response.map(PolicyKind::StaticResponse));
        kinds.extend(w.timeout_retry.map(PolicyKind::TimeoutRetry));
        if kinds.len() != 1 {
            let found = if kinds.is_empty() {
                "none".to_owned()
            } else {
                kinds
                    .iter()
                    .map(PolicyKind::name)
                    .collect::<Vec<_>>()
                    .join(" and ")
            };
            return Err(PolicyKindError { id: w.id, found });
        }
        let kind = kinds.pop().expect("exactly one kind");
        Ok(Policy {
            id: w.id,
            description: w.description,
            enabled: w.enabled,
            kind,
        })
    }
}

impl From<Policy> for PolicyWire {
    fn from(p: Policy) -> Self {
        let mut w = PolicyWire {
            id: p.id,
            description: p.description,
            enabled: p.enabled,
            access: None,
            auth: None,
            rate_limit: None,
            headers: None,
            static_response: None,
            timeout_retry: None,
        };
        match p.kind {
            PolicyKind::Access(k) => w.access = Some(k),
            PolicyKind::Auth(k) => w.auth = Some(k),
            PolicyKind::RateLimit(k) => w.rate_limit = Some(k),
            PolicyKind::Headers(k) => w.headers = Some(k),
            PolicyKind::StaticResponse(k) => w.static_response = Some(k),
            PolicyKind::TimeoutRetry(k) => w.timeout_retry = Some(k),
        }
        w
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Allow,
    Deny,
}

/// Allow or deny by client CIDR, tenant or header; the first matching rule wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessPolicy {
    /// What happens when no rule matches.
    pub default: Bindable<Action>,
    /// The status of a denial.
    #[serde(default = "AccessPolicy::default_deny_status")]
    pub deny_status: Bindable<u16>,
    #[serde(default)]
    pub rules: Vec<AccessRule>,
}

impl AccessPolicy {
    fn default_deny_status() -> Bindable<u16> {
        Bindable::Literal(403)
    }
}

/// One access rule. Each criterion that is set must match (a list matches if any entry does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    pub action: Action,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub cidrs: Vec<IpNet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
}

/// Authentication of the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthPolicy {
    ApiKey(ApiKeyAuth),
    Jwt(crate::identity::JwtAuth),
}

/// API keys, stored as SHA-256 hashes, presented in a header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyAuth {
    #[serde(default = "ApiKeyAuth::default_header")]
    pub header: String,
    pub keys: Vec<ApiKey>,
}

impl ApiKeyAuth {
    fn default_header() -> String {
        "x-api-key".to_owned()
    }
}

/// One API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub id: String,
    /// Lowercase hex SHA-256 of the key; the key itself is never stored.
    pub sha256: String,
    /// The tenant this key acts as; it overrides a trusted proxy's tenant header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The key's format: `rampart_v1` for a key minted by `rampart apikey new` (required in
    /// prod; such an entry matches only a presented key in that format, see [`crate::apikey`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<KeyFormat>,
    /// The key's first characters (`rk_` and 6 more), not secret, to tell keys apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// How an API key was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyFormat {
    /// `rk_<43 base62>_<6 base62 check>`, 256 random bits (see [`crate::apikey`]).
    RampartV1,
}

/// A token bucket per key, held by each gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitPolicy {
    pub per_second: Bindable<u32>,
    pub burst: Bindable<u32>,
    pub key: RequestKey,
}

/// Header edits on the request to the upstream and on the response to the client.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderRules {
    #[serde(default)]
    pub request: HeaderEdits,
    #[serde(default)]
    pub response: HeaderEdits,
}

/// Headers to set and to remove.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderEdits {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HeaderValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// A header name and a value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderValue {
    pub name: String,
    pub value: Bindable<String>,
}

/// A response served by the gateway itself, without the upstream (for example maintenance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticResponse {
    pub status: Bindable<u16>,
    #[serde(default = "StaticResponse::default_body")]
    pub body: Bindable<String>,
    #[serde(default = "StaticResponse::default_content_type")]
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderValue>,
}

impl StaticResponse {
    fn default_body() -> Bindable<String> {
        Bindable::Literal(String::new())
    }
    fn default_content_type() -> String {
        "text/plain; charset=utf-8".to_owned()
    }
}

/// Overrides of the upstream's total timeout and retry attempts for one route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutRetry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Bindable<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_attempts: Option<Bindable<u32>>,
}
