//! One configuration compiled for evaluation: route index, policies with resolved bindings,
//! and flags.

use rampart_model::EnumName;
use std::borrow::Cow;
use std::collections::HashMap;
use strum::VariantArray;

use ipnet::IpNet;
use rampart_model::bind::Bindable;
use rampart_model::config::{
    Action, AuthPolicy, Config, HeaderMatch, HeaderValue, KeyFormat, Method, PathMatch, PolicyKind,
    RequestKey, ValueMatch,
};
use rampart_model::paths::{PathCase, normalize_host};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use smallvec::SmallVec;

use crate::decision::{
    Decision, DenyReason, HeaderEdit, LimitKey, Outcome, RateLimit, ResolvedFlag, RouteInfo,
};
use crate::flags::{CompiledFlag, Ctx, StrSet};
use crate::jwt::CompiledJwt;
use crate::request::{Headers, RequestMeta};

/// A configuration ready to evaluate requests.
#[derive(Debug)]
pub(crate) struct CompiledConfig {
    /// Whether a credential can name the tenant ([`CompiledConfig::identify`] has work to do).
    pub(crate) names_tenants: bool,
    /// Whether a JWT claim can name the tenant (only [`CompiledConfig::identify`] reads it).
    pub(crate) jwt_tenants: bool,
    products: Box<[Box<str>]>,
    upstreams: Box<[Box<str>]>,
    /// In the order of the configuration, so a route's index is its index in `Config::routes`.
    routes: Box<[CompiledRoute]>,
    /// For each exact host some route names: the routes that can match it, in precedence
    /// order ([`crate::precedence`]).
    by_host: HashMap<Box<str>, Box<[u32]>>,
    /// The routes that can match any other host, in precedence order.
    other_hosts: Box<[u32]>,
    policies: Box<[CompiledPolicy]>,
    pub(crate) flags: Box<[CompiledFlag]>,
    pub(crate) flag_index: HashMap<Box<str>, u32>,
}

#[derive(Debug)]
struct CompiledRoute {
    id: Box<str>,
    product: u32,
    host: HostMatch,
    path: PathMatch,
    path_case: PathCase,
    /// A bit per [`Method`]; zero admits every method.
    methods: u16,
    headers: Box<[CompiledHeaderMatch]>,
    upstream: u32,
    policies: Box<[u32]>,
}

#[derive(Debug)]
enum HostMatch {
    Any,
    Exact(Box<str>),
    /// `*.example.com`, stored as `.example.com`.
    Suffix(Box<str>),
}

impl HostMatch {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(h) => **h == *host,
            HostMatch::Suffix(s) => host.len() > s.len() && host.ends_with(&**s),
        }
    }
}

#[derive(Debug)]
struct CompiledHeaderMatch {
    name: Box<str>,
    test: HeaderTest,
}

#[derive(Debug)]
enum HeaderTest {
    Present,
    Exact(Box<str>),
    Prefix(Box<str>),
    Regex(regex::Regex),
}

impl CompiledHeaderMatch {
    fn compile(h: &HeaderMatch) -> Result<Self, String> {
        Ok(CompiledHeaderMatch {
            name: h.name.as_str().into(),
            test: match &h.value {
                ValueMatch::Present => HeaderTest::Present,
                ValueMatch::Exact(s) => HeaderTest::Exact(s.as_str().into()),
                ValueMatch::Prefix(s) => HeaderTest::Prefix(s.as_str().into()),
                ValueMatch::Regex(r) => {
                    HeaderTest::Regex(rampart_model::validate::compile_regex(r)?)
                }
            },
        })
    }

    fn matches(&self, headers: &dyn Headers) -> bool {
        let Some(v) = headers.get(&self.name) else {
            return false;
        };
        match &self.test {
            HeaderTest::Present => true,
            HeaderTest::Exact(s) => **s == *v,
            HeaderTest::Prefix(s) => v.starts_with(&**s),
            HeaderTest::Regex(r) => r.is_match(v),
        }
    }
}

/// A policy field: a literal, or one pre-converted value per value of its flag.
#[derive(Debug)]
enum Field<T> {
    Literal(T),
    Flag { flag: u32, values: Box<[T]> },
}

/// Headers to set: a name and a bindable value each.
type HeaderSets = Box<[(Box<str>, Field<Box<str>>)]>;

#[derive(Debug)]
struct CompiledPolicy {
    id: Box<str>,
    enabled: Field<bool>,
    kind: CompiledKind,
}

#[derive(Debug)]
enum CompiledKind {
    Access {
        default: Field<Action>,
        deny_status: Field<u16>,
        rules: Box<[AccessRule]>,
    },
    ApiKey {
        header: Box<str>,
        /// SHA-256 of the key, to its tenant and whether the entry declares a minted key
        /// (`format: rampart_v1`), which only a presented key in that format matches.
        keys: ApiKeys,
    },
    Jwt(CompiledJwt),
    RateLimit {
        per_second: Field<u32>,
        burst: Field<u32>,
        key: RequestKey,
    },
    Headers {
        request: Edits,
        response: Edits,
    },
    Static {
        status: Field<u16>,
        body: Field<Box<str>>,
        content_type: Box<str>,
        headers: HeaderSets,
    },
    TimeoutRetry {
        timeout_ms: Option<Field<u32>>,
        retry_attempts: Option<Field<u32>>,
    },
}

#[derive(Debug)]
struct AccessRule {
    action: Action,
    cidrs: Box<[IpNet]>,
    tenants: StrSet,
    headers: Box<[CompiledHeaderMatch]>,
}

impl AccessRule {
    fn matches(&self, meta: &RequestMeta<'_>, tenant: Option<&str>) -> bool {
        (self.cidrs.is_empty() || self.cidrs.iter().any(|n| n.contains(&meta.client_ip)))
            && (self.tenants.is_empty() || tenant.is_some_and(|t| self.tenants.contains(t)))
            && self.headers.iter().all(|h| h.matches(meta.headers))
    }
}

#[derive(Debug, Default)]
struct Edits {
    set: HeaderSets,
    remove: Box<[Box<str>]>,
}

fn method_bit(m: &str) -> u16 {
    Method::VARIANTS
        .iter()
        .position(|x| x.as_str() == m)
        .map_or(1 << 15, |i| 1 << i)
}

/// API keys by the SHA-256 of the key: the tenant the key acts as, and whether the entry
/// declares a minted key.
type ApiKeys = HashMap<[u8; 32], (Option<Box<str>>, Minted)>;

/// Whether an API key entry declares a minted key (`format: rampart_v1`), and whether a
/// presented key with its hash has been seen to have that form. The form is a property of the
/// key, and a hash names one key, so the check runs once per entry, not once per request (it
/// costs two SHA-256 blocks).
#[derive(Debug)]
struct Minted {
    declared: bool,
    verified: std::sync::atomic::AtomicBool,
}

impl Minted {
    fn new(declared: bool) -> Self {
        Minted {
            declared,
            verified: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether `presented`, whose hash is this entry's, may authenticate.
    fn admits(&self, presented: &str) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.declared || self.verified.load(Relaxed) {
            return true;
        }
        let ok = rampart_model::apikey::check(presented.as_bytes()).is_ok();
        if ok {
            self.verified.store(true, Relaxed);
        }
        ok
    }
}

/// The entry a presented key matches, if any: its tenant. An entry that declares a minted key
/// (`format: rampart_v1`) matches only a presented key in that format.
fn find_key<'k>(keys: &'k ApiKeys, presented: &str) -> Option<&'k Option<Box<str>>> {
    keys.get(&<[u8; 32]>::from(Sha256::digest(presented.as_bytes())))
        .filter(|(_, minted)| minted.admits(presented))
        .map(|(tenant, _)| tenant)
}

/// Whether a (canonical) request path matches a route's path, with or without letter case.
fn path_matches(m: &PathMatch, case: PathCase, path: &str) -> bool {
    let (want, exact) = match m {
        PathMatch::Prefix(p) => (p.as_str(), false),
        PathMatch::Exact(p) => (p.as_str(), true),
    };
    let Some(head) = path.as_bytes().get(..want.len()) else {
        return false;
    };
    (!exact || path.len() == want.len())
        && match case {
            PathCase::Sensitive => head == want.as_bytes(),
            PathCase::Insensitive => head.eq_ignore_ascii_case(want.as_bytes()),
        }
}

fn index_of<'n>(
    mut names: impl Iterator<Item = &'n str>,
    name: &str,
    what: &str,
) -> Result<u32, String> {
    names
        .position(|n| n == name)
        .map(|i| i as u32)
        .ok_or_else(|| format!("no {what} is named `{name}`"))
}

struct Compiler<'c> {
    flags: &'c [CompiledFlag],
    flag_index: &'c HashMap<Box<str>, u32>,
}

impl Compiler<'_> {
    fn field<T: DeserializeOwned + Clone, U>(
        &self,
        b: &Bindable<T>,
        map: impl Fn(T) -> U,
    ) -> Result<Field<U>, String> {
        Ok(match b {
            Bindable::Literal(v) => Field::Literal(map(v.clone())),
            Bindable::Flag(name) => {
                let &flag = self
                    .flag_index
                    .get(name.as_str())
                    .ok_or_else(|| format!("no flag is named `{name}`"))?;
                let values = self.flags[flag as usize]
                    .values
                    .iter()
                    .map(|v| {
                        serde_json::from_value::<T>(v.clone())
                            .map(&map)
                            .map_err(|e| format!("flag `{name}` has value {v}: {e}"))
                    })
                    .collect::<Result<_, _>>()?;
                Field::Flag { flag, values }
            }
        })
    }

    fn string_field(&self, b: &Bindable<String>) -> Result<Field<Box<str>>, String> {
        self.field(b, String::into_boxed_str)
    }

    fn headers(&self, hs: &[HeaderValue]) -> Result<HeaderSets, String> {
        hs.iter()
            .map(|h| Ok((h.name.as_str().into(), self.string_field(&h.value)?)))
            .collect()
    }

    fn edits(&self, e: &rampart_model::config::HeaderEdits) -> Result<Edits, String> {
        Ok(Edits {
            set: self.headers(&e.set)?,
            remove: e.remove.iter().map(|s| s.as_str().into()).collect(),
        })
    }

    fn policy(&self, kind: &PolicyKind) -> Result<CompiledKind, String> {
        Ok(match kind {
            PolicyKind::Access(a) => CompiledKind::Access {
                default: self.field(&a.default, |x| x)?,
                deny_status: self.field(&a.deny_status, |x| x)?,
                rules: a
                    .rules
                    .iter()
                    .map(|r| {
                        Ok(AccessRule {
                            action: r.action,
                            cidrs: r.cidrs.clone().into(),
                            tenants: StrSet::new(r.tenants.iter().map(String::as_str)),
                            headers: r
                                .headers
                                .iter()
                                .map(CompiledHeaderMatch::compile)
                                .collect::<Result<_, String>>()?,
                        })
                    })
                    .collect::<Result<_, String>>()?,
            },
            PolicyKind::Auth(AuthPolicy::ApiKey(k)) => CompiledKind::ApiKey {
                header: k.header.as_str().into(),
                keys: k
                    .keys
                    .iter()
                    .map(|key| {
                        let mut digest = [0u8; 32];
                        hex::decode_to_slice(&key.sha256, &mut digest)
                            .map_err(|e| format!("key `{}`: {e}", key.id))?;
                        let minted = key.format == Some(KeyFormat::RampartV1);
                        Ok((
                            digest,
                            (key.tenant.as_deref().map(Box::from), Minted::new(minted)),
                        ))
                    })
                    .collect::<Result<_, String>>()?,
            },
            PolicyKind::Auth(AuthPolicy::Jwt(j)) => CompiledKind::Jwt(CompiledJwt::compile(j)?),
            PolicyKind::RateLimit(r) => CompiledKind::RateLimit {
                per_second: self.field(&r.per_second, |x| x)?,
                burst: self.field(&r.burst, |x| x)?,
                key: r.key.clone(),
            },
            PolicyKind::Headers(h) => CompiledKind::Headers {
                request: self.edits(&h.request)?,
                response: self.edits(&h.response)?,
            },
            PolicyKind::StaticResponse(s) => CompiledKind::Static {
                status: self.field(&s.status, |x| x)?,
                body: self.string_field(&s.body)?,
                content_type: s.content_type.as_str().into(),
                headers: self.headers(&s.headers)?,
            },
            PolicyKind::TimeoutRetry(t) => CompiledKind::TimeoutRetry {
                timeout_ms: t
                    .timeout_ms
                    .as_ref()
                    .map(|b| self.field(b, |x| x))
                    .transpose()?,
                retry_attempts: t
                    .retry_attempts
                    .as_ref()
                    .map(|b| self.field(b, |x| x))
                    .transpose()?,
            },
        })
    }
}

impl CompiledConfig {
    /// Compile a configuration that has passed [`rampart_model::validate::validate_runnable`].
    /// An error here is a bug in validation; it names the object and is never a panic.
    pub(crate) fn compile(cfg: &Config) -> Result<Self, String> {
        let flags: Box<[CompiledFlag]> = cfg
            .flags
            .iter()
            .enumerate()
            .map(|(i, f)| CompiledFlag::compile(f).map_err(|e| format!("flags[{i}].{e}")))
            .collect::<Result<_, _>>()?;
        let flag_index: HashMap<Box<str>, u32> = flags
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i as u32))
            .collect();
        let compiler = Compiler {
            flags: &flags,
            flag_index: &flag_index,
        };
        let policies: Box<[CompiledPolicy]> = cfg
            .policies
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Ok(CompiledPolicy {
                    id: p.id.as_str().into(),
                    enabled: compiler.field(&p.enabled, |x| x)?,
                    kind: compiler.policy(&p.kind)?,
                })
                .map_err(|e: String| format!("policies[{i}]: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let mut routes = Vec::with_capacity(cfg.routes.len());
        for (i, r) in cfg.routes.iter().enumerate() {
            let at = |e: String| format!("routes[{i}]: {e}");
            let m = &r.matcher;
            routes.push(CompiledRoute {
                id: r.id.as_str().into(),
                product: index_of(
                    cfg.products.iter().map(|p| p.name.as_str()),
                    &r.product,
                    "product",
                )
                .map_err(at)?,
                host: match m.host.as_deref() {
                    None => HostMatch::Any,
                    Some(h) => match h.strip_prefix('*') {
                        Some(suffix) => HostMatch::Suffix(suffix.into()),
                        None => HostMatch::Exact(h.into()),
                    },
                },
                path: m.path.clone(),
                path_case: m.path_case,
                methods: m
                    .methods
                    .iter()
                    .fold(0, |acc, x| acc | method_bit(x.as_str())),
                headers: m
                    .headers
                    .iter()
                    .map(CompiledHeaderMatch::compile)
                    .collect::<Result<_, _>>()
                    .map_err(at)?,
                upstream: index_of(
                    cfg.upstreams.iter().map(|u| u.name.as_str()),
                    &r.upstream,
                    "upstream",
                )
                .map_err(at)?,
                policies: r
                    .policies
                    .iter()
                    .map(|p| index_of(cfg.policies.iter().map(|x| x.id.as_str()), p, "policy"))
                    .collect::<Result<_, _>>()
                    .map_err(at)?,
            });
        }
        let order: Vec<u32> = crate::precedence::order(&cfg.routes)
            .into_iter()
            .map(|i| i as u32)
            .collect();
        let mut by_host: HashMap<Box<str>, Box<[u32]>> = HashMap::new();
        for r in &routes {
            if let HostMatch::Exact(h) = &r.host
                && !by_host.contains_key(h)
            {
                let list = order
                    .iter()
                    .copied()
                    .filter(|&j| routes[j as usize].host.matches(h))
                    .collect();
                by_host.insert(h.clone(), list);
            }
        }
        let other_hosts = order
            .iter()
            .copied()
            .filter(|&j| !matches!(routes[j as usize].host, HostMatch::Exact(_)))
            .collect();
        let names_tenants = policies.iter().any(|p| match &p.kind {
            CompiledKind::ApiKey { keys, .. } => keys.values().any(|(t, _)| t.is_some()),
            CompiledKind::Jwt(j) => j.tenant_claim.is_some(),
            _ => false,
        });
        let jwt_tenants = policies
            .iter()
            .any(|p| matches!(&p.kind, CompiledKind::Jwt(j) if j.tenant_claim.is_some()));
        Ok(CompiledConfig {
            names_tenants,
            jwt_tenants,
            products: cfg
                .products
                .iter()
                .map(|p| p.name.as_str().into())
                .collect(),
            upstreams: cfg
                .upstreams
                .iter()
                .map(|u| u.name.as_str().into())
                .collect(),
            routes: routes.into(),
            by_host,
            other_hosts,
            policies,
            flags,
            flag_index,
        })
    }

    fn route(&self, meta: &RequestMeta<'_>) -> Option<usize> {
        let host = normalize_host(meta.host);
        let path = meta.path;
        // Every route listed under an exact host matches that host; the others need a check.
        let (candidates, check_host) = match self.by_host.get(&*host) {
            Some(list) => (&**list, false),
            None => (&*self.other_hosts, true),
        };
        let method = method_bit(meta.method);
        candidates.iter().map(|&i| i as usize).find(|&i| {
            let r = &self.routes[i];
            (!check_host || r.host.matches(&host))
                && path_matches(&r.path, r.path_case, path)
                && (r.methods == 0 || r.methods & method != 0)
                && r.headers.iter().all(|h| h.matches(meta.headers))
        })
    }

    /// Resolve a field, recording the flag it consulted.
    fn get<'a, T>(
        &'a self,
        field: &'a Field<T>,
        ctx: &Ctx<'a>,
        seen: &mut SmallVec<[ResolvedFlag<'a>; 4]>,
    ) -> &'a T {
        match field {
            Field::Literal(v) => v,
            Field::Flag { flag, values } => {
                let f = &self.flags[*flag as usize];
                let i = f.evaluate(ctx);
                if !seen.iter().any(|r| std::ptr::eq(r.name, &*f.name)) {
                    seen.push(ResolvedFlag {
                        name: &f.name,
                        value: &f.values[i],
                    });
                }
                &values[i]
            }
        }
    }

    fn edits<'a>(
        &'a self,
        edits: &'a Edits,
        ctx: &Ctx<'a>,
        seen: &mut SmallVec<[ResolvedFlag<'a>; 4]>,
        out: &mut SmallVec<[HeaderEdit<'a>; 4]>,
    ) {
        for (name, value) in &edits.set {
            out.push(HeaderEdit::Set(
                name,
                self.get::<Box<str>>(value, ctx, seen),
            ));
        }
        out.extend(edits.remove.iter().map(|n| HeaderEdit::Remove(n)));
    }

    /// The flag value a request gets, outside any route.
    pub(crate) fn flag_value<'a>(
        &'a self,
        flag: u32,
        meta: &'a RequestMeta<'a>,
    ) -> &'a serde_json::Value {
        let f = &self.flags[flag as usize];
        let ctx = Ctx {
            meta,
            tenant: meta.tenant,
            route: None,
            product: None,
        };
        &f.values[f.evaluate(&ctx)]
    }

    /// The tenant the request's credentials name on its route here, resolved before the
    /// cohort is chosen: the last enabled API key or JWT policy of the route that accepts the
    /// request's credential and names a tenant. Refusals are left to [`Self::evaluate`].
    pub(crate) fn identify<'a>(&'a self, meta: &RequestMeta<'_>) -> Option<Cow<'a, str>> {
        if !self.names_tenants {
            return None;
        }
        let route = &self.routes[self.route(meta)?];
        let ctx = Ctx {
            meta,
            tenant: meta.tenant,
            route: Some(&route.id),
            product: Some(&self.products[route.product as usize]),
        };
        let mut seen = SmallVec::new();
        let mut tenant = None;
        for &pi in &route.policies {
            let p = &self.policies[pi as usize];
            match &p.kind {
                CompiledKind::ApiKey { .. } | CompiledKind::Jwt(_)
                    if !*self.get(&p.enabled, &ctx, &mut seen) => {}
                CompiledKind::ApiKey { header, keys } => {
                    if let Some(Some(Some(t))) = meta.headers.get(header).map(|k| find_key(keys, k))
                    {
                        tenant = Some(Cow::Borrowed(&**t));
                    }
                }
                CompiledKind::Jwt(j) if j.tenant_claim.is_some() => {
                    if let Ok(Some(t)) = j.verify(meta) {
                        tenant = Some(Cow::Owned(t));
                    }
                }
                _ => {}
            }
        }
        tenant
    }

    pub(crate) fn evaluate<'a>(&'a self, meta: &'a RequestMeta<'a>) -> Decision<'a> {
        let mut d = Decision::new(meta.tenant);
        let Some(ri) = self.route(meta) else {
            d.outcome = Outcome::Deny {
                status: 404,
                reason: DenyReason::NoRoute,
                policy: None,
            };
            return d;
        };
        let route = &self.routes[ri];
        let product = &self.products[route.product as usize];
        d.route = Some(RouteInfo {
            index: ri,
            id: &route.id,
            product,
            upstream: &self.upstreams[route.upstream as usize],
            upstream_index: route.upstream as usize,
        });
        let mut ctx = Ctx {
            meta,
            tenant: d.tenant,
            route: Some(&route.id),
            product: Some(product),
        };
        let mut seen = SmallVec::new();
        for &pi in &route.policies {
            let p = &self.policies[pi as usize];
            if !*self.get(&p.enabled, &ctx, &mut seen) {
                continue;
            }
            match &p.kind {
                CompiledKind::Access {
                    default,
                    deny_status,
                    rules,
                } => {
                    let action = match rules.iter().find(|r| r.matches(meta, ctx.tenant)) {
                        Some(r) => r.action,
                        None => *self.get(default, &ctx, &mut seen),
                    };
                    if action == Action::Deny {
                        d.outcome = Outcome::Deny {
                            status: *self.get(deny_status, &ctx, &mut seen),
                            reason: DenyReason::Access,
                            policy: Some(&p.id),
                        };
                        break;
                    }
                }
                CompiledKind::ApiKey { header, keys } => {
                    let found = meta.headers.get(header).map(|k| find_key(keys, k));
                    match found {
                        Some(Some(tenant)) => {
                            if let Some(t) = tenant {
                                ctx.tenant = Some(t);
                                d.tenant = Some(t);
                            }
                        }
                        other => {
                            d.outcome = Outcome::Deny {
                                status: 401,
                                reason: if other.is_none() {
                                    DenyReason::MissingCredentials
                                } else {
                                    DenyReason::InvalidCredentials
                                },
                                policy: Some(&p.id),
                            };
                            break;
                        }
                    }
                }
                CompiledKind::Jwt(j) => {
                    // A valid token's tenant claim was established before evaluation
                    // (`Evaluator::identify`) and is already `meta.tenant`.
                    if let Err(reason) = j.verify(meta) {
                        d.outcome = Outcome::Deny {
                            status: 401,
                            reason,
                            policy: Some(&p.id),
                        };
                        break;
                    }
                }
                CompiledKind::RateLimit {
                    per_second,
                    burst,
                    key,
                } => {
                    let ip = LimitKey::ClientIp(meta.client_ip);
                    let key = match key {
                        RequestKey::Tenant => ctx.tenant.map_or(ip, LimitKey::Tenant),
                        RequestKey::ClientIp => ip,
                        RequestKey::Route => LimitKey::Route(&route.id),
                        RequestKey::Header(h) => meta.headers.get(h).map_or(ip, LimitKey::Header),
                    };
                    d.rate_limits.push(RateLimit {
                        policy: &p.id,
                        per_second: *self.get(per_second, &ctx, &mut seen),
                        burst: *self.get(burst, &ctx, &mut seen),
                        key,
                    });
                }
                CompiledKind::Headers { request, response } => {
                    self.edits(request, &ctx, &mut seen, &mut d.request_headers);
                    self.edits(response, &ctx, &mut seen, &mut d.response_headers);
                }
                CompiledKind::Static {
                    status,
                    body,
                    content_type,
                    headers,
                } => {
                    d.outcome = Outcome::Static {
                        status: *self.get(status, &ctx, &mut seen),
                        body: self.get::<Box<str>>(body, &ctx, &mut seen),
                        content_type,
                        headers: headers
                            .iter()
                            .map(|(n, v)| (&**n, &**self.get::<Box<str>>(v, &ctx, &mut seen)))
                            .collect(),
                        policy: &p.id,
                    };
                    break;
                }
                CompiledKind::TimeoutRetry {
                    timeout_ms,
                    retry_attempts,
                } => {
                    if let Some(f) = timeout_ms {
                        d.timeout_ms = Some(*self.get(f, &ctx, &mut seen));
                    }
                    if let Some(f) = retry_attempts {
                        d.retry_attempts = Some(*self.get(f, &ctx, &mut seen));
                    }
                }
            }
        }
        d.flags = seen;
        d
    }
}
