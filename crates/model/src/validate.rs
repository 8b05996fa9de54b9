//! The validation library: structure, schema and semantics, all errors at once.
//!
//! [`validate`] returns every problem it finds, each with the path of the field at fault (for
//! example `policies[4].rate_limit.per_second`), the [`Rule`] it breaks and a message. It is
//! what the control plane runs on submit and what every gateway runs before it compiles a
//! snapshot, so both agree on what is valid.

use crate::names::EnumName;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::bind::Bindable;
use crate::change::DeclaredImpact;
use crate::config::{
    AccessPolicy, Action, AuthPolicy, Config, HeaderEdits, HeaderMatch, HeaderValue, PathMatch,
    Policy, PolicyKind, StaticResponse, Upstream, ValueMatch,
};
use crate::flag::{Attribute, Condition, Flag, Op};
use crate::limits::LIMITS;
use crate::snapshot::StageScope;

/// The rule a validation error breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// A value does not have its declared type, or breaks its JSON Schema.
    Schema,
    /// A name refers to nothing.
    Reference,
    /// A number is outside its range.
    Range,
    /// A regex does not compile, or is too large.
    Regex,
    /// A list or a string is longer than [`LIMITS`] allow.
    Limit,
    /// Two entries share a key.
    Duplicate,
    /// A string is malformed (an id, a host, a path, an endpoint, a hash).
    Format,
    /// A product has no route that admits traffic.
    ProductUnreachable,
    /// A policy denies all traffic on a route, and the change does not declare it.
    DeniesAll,
}

impl Rule {
    /// Whether the rule judges what a configuration does to traffic (a decision the change
    /// declares and approvers weigh) rather than whether it can run at all. Gateways compile
    /// configurations that break only such rules; the control plane refuses them.
    pub fn judges_traffic(self) -> bool {
        matches!(self, Rule::ProductUnreachable | Rule::DeniesAll)
    }
}

/// One validation error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// The path of the offending field, like `routes[3].policies[1]`.
    pub path: String,
    pub rule: Rule,
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every error found in one configuration, in document order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} validation error(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// Validate a configuration against every rule. `declared` is what the change declares.
pub fn validate(config: &Config, declared: &DeclaredImpact) -> Result<(), ValidationErrors> {
    let mut v = Validator::new(config);
    v.run(declared);
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(v.errors))
    }
}

/// Validate what a gateway needs to run a configuration safely: every rule except those that
/// [judge traffic](Rule::judges_traffic), which the control plane has already weighed.
pub fn validate_runnable(config: &Config) -> Result<(), ValidationErrors> {
    match validate(config, &DeclaredImpact::default()) {
        Ok(()) => Ok(()),
        Err(ValidationErrors(mut errors)) => {
            errors.retain(|e| !e.rule.judges_traffic());
            if errors.is_empty() {
                Ok(())
            } else {
                Err(ValidationErrors(errors))
            }
        }
    }
}

/// Validate a rollout stage scope.
pub fn validate_scope(path: &str, scope: &StageScope) -> Result<(), ValidationErrors> {
    let mut errors = Vec::new();
    if !percent_ok(scope.percent) {
        errors.push(ValidationError {
            path: format!("{path}.percent"),
            rule: Rule::Range,
            message: format!(
                "{} is not a percentage from 0 to 100 in steps of 0.0001",
                scope.percent
            ),
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errors))
    }
}

/// Compile a regex under the published limits. Every regex in rampart is built here.
pub fn compile_regex(src: &str) -> Result<regex::Regex, String> {
    if src.len() > LIMITS.max_regex_source {
        return Err(format!(
            "regex is {} bytes long; the limit is {}",
            src.len(),
            LIMITS.max_regex_source
        ));
    }
    regex::RegexBuilder::new(src)
        .size_limit(LIMITS.max_regex_bytes)
        .dfa_size_limit(LIMITS.max_regex_bytes)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => {
                format!("regex compiles to more than {limit} bytes")
            }
            other => format!("regex does not compile: {other}"),
        })
}

/// Whether `p` is a percentage from 0 to 100 with at most four decimals.
pub fn percent_ok(p: f64) -> bool {
    (0.0..=100.0).contains(&p) && ((p * 10_000.0).round() - p * 10_000.0).abs() < 1e-6
}

/// The values of a flag that some request can receive, with where each comes from. Rules after
/// an unconditional one, and then the default, are unreachable.
pub fn reachable_values(flag: &Flag) -> Vec<(&Value, String)> {
    let mut out = Vec::new();
    for (j, rule) in flag.rules.iter().enumerate() {
        out.push((&rule.value, rule_origin(flag, j)));
        let all =
            rule.when.is_empty() && rule.percentage.as_ref().is_none_or(|p| p.percent >= 100.0);
        if all {
            return out;
        }
    }
    out.push((
        &flag.default,
        format!("the default of flag `{}`", flag.name),
    ));
    out
}

fn rule_origin(flag: &Flag, j: usize) -> String {
    let rule = &flag.rules[j];
    if rule.name.is_empty() {
        format!("rule {j} of flag `{}`", flag.name)
    } else {
        format!("rule `{}` of flag `{}`", rule.name, flag.name)
    }
}

struct Validator<'a> {
    cfg: &'a Config,
    flags: HashMap<&'a str, &'a Flag>,
    errors: Vec<ValidationError>,
}

type Check<'c, T> = &'c dyn Fn(&T) -> Result<(), String>;

impl<'a> Validator<'a> {
    fn new(cfg: &'a Config) -> Self {
        let flags = cfg.flags.iter().map(|f| (f.name.as_str(), f)).collect();
        Validator {
            cfg,
            flags,
            errors: Vec::new(),
        }
    }

    fn err(&mut self, path: impl Into<String>, rule: Rule, message: impl Into<String>) {
        self.errors.push(ValidationError {
            path: path.into(),
            rule,
            message: message.into(),
        });
    }

    fn run(&mut self, declared: &DeclaredImpact) {
        let cfg = self.cfg;
        self.limit("products", cfg.products.len(), LIMITS.max_products);
        self.limit("upstreams", cfg.upstreams.len(), LIMITS.max_upstreams);
        self.limit("policies", cfg.policies.len(), LIMITS.max_policies);
        self.limit("routes", cfg.routes.len(), LIMITS.max_routes);
        self.limit("flags", cfg.flags.len(), LIMITS.max_flags);
        self.header_name("settings.tenant_header", &cfg.settings.tenant_header);

        self.unique(
            "products",
            cfg.products.iter().map(|p| p.name.as_str()),
            "product",
        );
        self.unique(
            "upstreams",
            cfg.upstreams.iter().map(|u| u.name.as_str()),
            "upstream",
        );
        self.unique(
            "policies",
            cfg.policies.iter().map(|p| p.id.as_str()),
            "policy",
        );
        self.unique("routes", cfg.routes.iter().map(|r| r.id.as_str()), "route");
        self.unique("flags", cfg.flags.iter().map(|f| f.name.as_str()), "flag");

        for (i, p) in cfg.products.iter().enumerate() {
            self.ident(&format!("products[{i}].name"), &p.name);
        }
        for (i, f) in cfg.flags.iter().enumerate() {
            self.flag(&format!("flags[{i}]"), f);
        }
        for (i, u) in cfg.upstreams.iter().enumerate() {
            self.upstream(&format!("upstreams[{i}]"), u);
        }
        for (i, p) in cfg.policies.iter().enumerate() {
            self.policy(&format!("policies[{i}]"), p);
        }
        self.routes(declared);
        for (i, id) in declared.denies_all.iter().enumerate() {
            if !cfg.routes.iter().any(|r| &r.id == id) {
                self.err(
                    format!("declared_impact.denies_all[{i}]"),
                    Rule::Reference,
                    format!("no route has id `{id}`"),
                );
            }
        }
    }

    fn limit(&mut self, path: &str, len: usize, max: usize) {
        if len > max {
            self.err(
                path,
                Rule::Limit,
                format!("has {len} entries; the limit is {max}"),
            );
        }
    }

    fn unique<'s>(&mut self, path: &str, keys: impl Iterator<Item = &'s str>, what: &str) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, key) in keys.enumerate() {
            if let Some(first) = seen.insert(key, i) {
                seen.insert(key, first);
                self.err(
                    format!("{path}[{i}]"),
                    Rule::Duplicate,
                    format!("duplicate {what} `{key}`: already defined at {path}[{first}]"),
                );
            }
        }
    }

    fn string_len(&mut self, path: &str, s: &str) -> bool {
        if s.len() > LIMITS.max_string {
            self.err(
                path,
                Rule::Limit,
                format!(
                    "is {} bytes long; the limit is {}",
                    s.len(),
                    LIMITS.max_string
                ),
            );
            return false;
        }
        true
    }

    /// Ids and names: ASCII letters, digits, `.`, `_` and `-`, starting with a letter or digit.
    fn ident(&mut self, path: &str, s: &str) {
        if !self.string_len(path, s) {
            return;
        }
        let ok = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            self.err(
                path,
                Rule::Format,
                format!("`{s}` is not a valid name: use letters, digits, `.`, `_` and `-`, starting with a letter or digit"),
            );
        }
    }

    fn header_name(&mut self, path: &str, s: &str) {
        if !self.string_len(path, s) {
            return;
        }
        let ok = !s.is_empty()
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.!#$%&'*+^`|~".contains(&b)
            });
        if !ok {
            self.err(
                path,
                Rule::Format,
                format!("`{s}` is not a valid header name: use lowercase letters, digits and `-`"),
            );
        }
    }

    fn header_value(&mut self, path: &str, s: &str) {
        if self.string_len(path, s) && s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            self.err(
                path,
                Rule::Format,
                "a header value may not contain control characters",
            );
        }
    }

    fn range<T: PartialOrd + fmt::Display + Copy>(&mut self, path: &str, v: T, lo: T, hi: T) {
        if let Err(m) = in_range(v, lo, hi) {
            self.err(path, Rule::Range, m);
        }
    }

    /// Check a bindable field: the literal, or every value its flag can take.
    fn bindable<T: DeserializeOwned>(&mut self, path: &str, b: &Bindable<T>, check: Check<'_, T>) {
        match b {
            Bindable::Literal(v) => {
                if let Err(m) = check(v) {
                    self.err(path, Rule::Range, m);
                }
            }
            Bindable::Flag(name) => {
                let Some(flag) = self.flags.get(name.as_str()).copied() else {
                    self.err(path, Rule::Reference, format!("no flag is named `{name}`"));
                    return;
                };
                let mut values: Vec<(&Value, String)> = flag
                    .rules
                    .iter()
                    .enumerate()
                    .map(|(j, r)| (&r.value, rule_origin(flag, j)))
                    .collect();
                values.insert(0, (&flag.default, format!("the default of flag `{name}`")));
                for (value, origin) in values {
                    match serde_json::from_value::<T>(value.clone()) {
                        Err(e) => self.err(
                            path,
                            Rule::Schema,
                            format!("{origin} is {value}, which this field cannot take: {e}"),
                        ),
                        Ok(t) => {
                            if let Err(m) = check(&t) {
                                self.err(path, Rule::Range, format!("{origin} is {value}: {m}"));
                            }
                        }
                    }
                }
            }
        }
    }

    fn flag(&mut self, path: &str, f: &Flag) {
        self.ident(&format!("{path}.name"), &f.name);
        self.string_len(&format!("{path}.owner"), &f.owner);
        if f.owner.trim().is_empty() {
            self.err(
                format!("{path}.owner"),
                Rule::Format,
                "every flag needs an owner",
            );
        }
        self.limit(
            &format!("{path}.rules"),
            f.rules.len(),
            LIMITS.max_rules_per_flag,
        );
        let named = f.rules.iter().filter(|r| !r.name.is_empty());
        self.unique(
            &format!("{path}.rules"),
            named.map(|r| r.name.as_str()),
            "rule",
        );

        let schema = match &f.schema {
            None => None,
            Some(s) => match jsonschema::validator_for(s) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.err(
                        format!("{path}.schema"),
                        Rule::Schema,
                        format!("is not a valid JSON Schema: {e}"),
                    );
                    None
                }
            },
        };
        let mut values = vec![(format!("{path}.default"), &f.default)];
        values.extend(
            f.rules
                .iter()
                .enumerate()
                .map(|(j, r)| (format!("{path}.rules[{j}].value"), &r.value)),
        );
        for (vpath, value) in values {
            if !f.kind.admits(value) {
                self.err(
                    &vpath,
                    Rule::Schema,
                    format!(
                        "flag `{}` is of type {}, but this value is {}",
                        f.name,
                        f.kind,
                        crate::flag::json_kind(value)
                    ),
                );
                continue;
            }
            let len = value.to_string().len();
            if len > LIMITS.max_flag_value_bytes {
                self.err(
                    &vpath,
                    Rule::Limit,
                    format!(
                        "is {len} bytes of JSON; the limit is {}",
                        LIMITS.max_flag_value_bytes
                    ),
                );
            }
            if let Some(schema) = &schema {
                for e in schema.iter_errors(value) {
                    let at = e.instance_path.to_string();
                    let at = if at.is_empty() {
                        String::new()
                    } else {
                        format!(" at {at}")
                    };
                    self.err(
                        &vpath,
                        Rule::Schema,
                        format!("breaks the flag's schema{at}: {e}"),
                    );
                }
            }
        }
        for (j, rule) in f.rules.iter().enumerate() {
            let rpath = format!("{path}.rules[{j}]");
            self.limit(
                &format!("{rpath}.when"),
                rule.when.len(),
                LIMITS.max_conditions_per_rule,
            );
            for (k, c) in rule.when.iter().enumerate() {
                self.condition(&format!("{rpath}.when[{k}]"), c);
            }
            if let Some(p) = &rule.percentage {
                if !percent_ok(p.percent) {
                    self.err(
                        format!("{rpath}.percentage.percent"),
                        Rule::Range,
                        format!(
                            "{} is not a percentage from 0 to 100 in steps of 0.0001",
                            p.percent
                        ),
                    );
                }
                self.attribute(&format!("{rpath}.percentage.by"), &p.by);
            }
        }
    }

    fn attribute(&mut self, path: &str, a: &Attribute) {
        match a {
            Attribute::Header(h) => self.header_name(path, h),
            Attribute::Attr(name) => self.ident(path, name),
            _ => {}
        }
    }

    fn condition(&mut self, path: &str, c: &Condition) {
        self.attribute(&format!("{path}.attribute"), &c.attribute);
        let vpath = format!("{path}.values");
        self.limit(&vpath, c.values.len(), LIMITS.max_values_per_condition);
        if c.values.is_empty() {
            self.err(&vpath, Rule::Format, "a condition needs at least one value");
            return;
        }
        if c.op.is_single_valued() && c.values.len() != 1 {
            self.err(
                &vpath,
                Rule::Format,
                format!("operator {:?} takes exactly one value", c.op),
            );
        }
        for (k, s) in c.values.iter().enumerate() {
            let p = format!("{vpath}[{k}]");
            if !self.string_len(&p, &s.0) {
                continue;
            }
            match c.op {
                Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                    if !s.0.parse::<f64>().is_ok_and(f64::is_finite) {
                        self.err(p, Rule::Format, format!("`{}` is not a number", s.0));
                    }
                }
                Op::SemverGte | Op::SemverLt => {
                    if let Err(e) = semver::Version::parse(&s.0) {
                        self.err(
                            p,
                            Rule::Format,
                            format!("`{}` is not a semantic version: {e}", s.0),
                        );
                    }
                }
                Op::Matches => {
                    if let Err(m) = compile_regex(&s.0) {
                        self.err(p, Rule::Regex, m);
                    }
                }
                Op::In | Op::NotIn | Op::StartsWith | Op::EndsWith | Op::Contains => {}
            }
        }
    }

    fn upstream(&mut self, path: &str, u: &Upstream) {
        self.ident(&format!("{path}.name"), &u.name);
        let epath = format!("{path}.endpoints");
        self.limit(&epath, u.endpoints.len(), LIMITS.max_endpoints_per_upstream);
        if u.endpoints.is_empty() {
            self.err(
                &epath,
                Rule::Range,
                "an upstream needs at least one endpoint",
            );
        }
        self.unique(&epath, u.endpoints.iter().map(String::as_str), "endpoint");
        for (k, e) in u.endpoints.iter().enumerate() {
            if let Err(m) = parse_endpoint(e) {
                self.err(format!("{epath}[{k}]"), Rule::Format, m);
            }
        }
        if let crate::config::LoadBalancing::ConsistentHash {
            key: crate::config::RequestKey::Header(h),
        } = &u.load_balancing
        {
            self.header_name(
                &format!("{path}.load_balancing.consistent_hash.key.header"),
                h,
            );
        }
        let t = &u.timeouts;
        self.range(
            &format!("{path}.timeouts.connect_ms"),
            t.connect_ms,
            1,
            60_000,
        );
        self.range(&format!("{path}.timeouts.read_ms"), t.read_ms, 1, 300_000);
        self.range(&format!("{path}.timeouts.total_ms"), t.total_ms, 1, 600_000);
        if t.connect_ms > t.total_ms || t.read_ms > t.total_ms {
            self.err(
                format!("{path}.timeouts.total_ms"),
                Rule::Range,
                format!("{} is shorter than connect_ms or read_ms", t.total_ms),
            );
        }
        self.range(
            &format!("{path}.retries.attempts"),
            u.retries.attempts,
            0,
            5,
        );
        if let Some(h) = &u.health_check {
            let hp = format!("{path}.health_check");
            self.http_path(&format!("{hp}.path"), &h.path);
            self.range(&format!("{hp}.interval_ms"), h.interval_ms, 100, 300_000);
            self.range(
                &format!("{hp}.timeout_ms"),
                h.timeout_ms,
                1,
                h.interval_ms.max(1),
            );
            self.range(
                &format!("{hp}.healthy_threshold"),
                h.healthy_threshold,
                1,
                10,
            );
            self.range(
                &format!("{hp}.unhealthy_threshold"),
                h.unhealthy_threshold,
                1,
                10,
            );
        }
    }

    fn http_path(&mut self, path: &str, p: &str) {
        if self.string_len(path, p)
            && (!p.starts_with('/') || p.bytes().any(|b| b <= b' ' || b == 0x7f))
        {
            self.err(path, Rule::Format, format!("`{p}` is not a path: it must start with `/` and contain no spaces or control characters"));
        }
    }

    fn header_matches(&mut self, path: &str, hs: &[HeaderMatch]) {
        self.limit(path, hs.len(), LIMITS.max_header_matches);
        for (k, h) in hs.iter().enumerate() {
            let hp = format!("{path}[{k}]");
            self.header_name(&format!("{hp}.name"), &h.name);
            match &h.value {
                ValueMatch::Present => {}
                ValueMatch::Exact(s) | ValueMatch::Prefix(s) => {
                    self.header_value(&format!("{hp}.value"), s);
                }
                ValueMatch::Regex(src) => {
                    if let Err(m) = compile_regex(src) {
                        self.err(format!("{hp}.value.regex"), Rule::Regex, m);
                    }
                }
            }
        }
    }

    fn header_edits(&mut self, path: &str, sets: &[HeaderValue], removes: &[String]) {
        self.limit(path, sets.len() + removes.len(), LIMITS.max_header_edits);
        self.unique(
            &format!("{path}.set"),
            sets.iter().map(|h| h.name.as_str()),
            "header",
        );
        for (k, h) in sets.iter().enumerate() {
            self.header_name(&format!("{path}.set[{k}].name"), &h.name);
            self.bindable(
                &format!("{path}.set[{k}].value"),
                &h.value,
                &|s: &String| header_value_ok(s),
            );
        }
        for (k, h) in removes.iter().enumerate() {
            self.header_name(&format!("{path}.remove[{k}]"), h);
        }
    }

    fn policy(&mut self, path: &str, p: &Policy) {
        self.ident(&format!("{path}.id"), &p.id);
        self.bindable(&format!("{path}.enabled"), &p.enabled, &|_: &bool| Ok(()));
        match &p.kind {
            PolicyKind::Access(a) => {
                let ap = format!("{path}.access");
                self.bindable(&format!("{ap}.default"), &a.default, &|_: &Action| Ok(()));
                self.bindable(&format!("{ap}.deny_status"), &a.deny_status, &|s: &u16| {
                    in_range(*s, 400, 599)
                });
                self.limit(
                    &format!("{ap}.rules"),
                    a.rules.len(),
                    LIMITS.max_access_rules,
                );
                for (k, r) in a.rules.iter().enumerate() {
                    let rp = format!("{ap}.rules[{k}]");
                    let entries = r.cidrs.len() + r.tenants.len() + r.headers.len();
                    self.limit(&rp, entries, LIMITS.max_access_entries);
                    if entries == 0 {
                        self.err(&rp, Rule::Format, "a rule needs cidrs, tenants or headers; for every request use `default`");
                    }
                    for (t, tenant) in r.tenants.iter().enumerate() {
                        self.string_len(&format!("{rp}.tenants[{t}]"), tenant);
                    }
                    self.header_matches(&format!("{rp}.headers"), &r.headers);
                }
            }
            PolicyKind::Auth(AuthPolicy::ApiKey(k)) => {
                let kp = format!("{path}.auth.api_key");
                self.header_name(&format!("{kp}.header"), &k.header);
                self.limit(&format!("{kp}.keys"), k.keys.len(), LIMITS.max_api_keys);
                self.unique(
                    &format!("{kp}.keys"),
                    k.keys.iter().map(|k| k.id.as_str()),
                    "key id",
                );
                self.unique(
                    &format!("{kp}.keys"),
                    k.keys.iter().map(|k| k.sha256.as_str()),
                    "key hash",
                );
                for (i, key) in k.keys.iter().enumerate() {
                    self.ident(&format!("{kp}.keys[{i}].id"), &key.id);
                    let h = &key.sha256;
                    if h.len() != 64
                        || !h
                            .bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                    {
                        self.err(format!("{kp}.keys[{i}].sha256"), Rule::Format, "must be the SHA-256 of the key as 64 lowercase hex digits; keys are never stored in clear");
                    }
                }
            }
            PolicyKind::RateLimit(r) => {
                let rp = format!("{path}.rate_limit");
                self.bindable(&format!("{rp}.per_second"), &r.per_second, &|n: &u32| {
                    in_range(*n, 1, 1_000_000)
                });
                self.bindable(&format!("{rp}.burst"), &r.burst, &|n: &u32| {
                    in_range(*n, 1, 10_000_000)
                });
                if let crate::config::RequestKey::Header(h) = &r.key {
                    self.header_name(&format!("{rp}.key.header"), h);
                }
            }
            PolicyKind::Headers(h) => {
                let HeaderEdits { set, remove } = &h.request;
                self.header_edits(&format!("{path}.headers.request"), set, remove);
                let HeaderEdits { set, remove } = &h.response;
                self.header_edits(&format!("{path}.headers.response"), set, remove);
            }
            PolicyKind::StaticResponse(s) => {
                let sp = format!("{path}.static_response");
                self.bindable(&format!("{sp}.status"), &s.status, &|n: &u16| {
                    in_range(*n, 200, 599)
                });
                self.bindable(&format!("{sp}.body"), &s.body, &|b: &String| {
                    if b.len() > LIMITS.max_static_body {
                        Err(format!(
                            "the body is {} bytes; the limit is {}",
                            b.len(),
                            LIMITS.max_static_body
                        ))
                    } else {
                        Ok(())
                    }
                });
                self.header_value(&format!("{sp}.content_type"), &s.content_type);
                self.header_edits(&format!("{sp}.headers"), &s.headers, &[]);
            }
            PolicyKind::TimeoutRetry(t) => {
                let tp = format!("{path}.timeout_retry");
                if let Some(ms) = &t.timeout_ms {
                    self.bindable(&format!("{tp}.timeout_ms"), ms, &|n: &u32| {
                        in_range(*n, 1, 600_000)
                    });
                }
                if let Some(n) = &t.retry_attempts {
                    self.bindable(&format!("{tp}.retry_attempts"), n, &|n: &u32| {
                        in_range(*n, 0, 5)
                    });
                }
                if t.timeout_ms.is_none() && t.retry_attempts.is_none() {
                    self.err(tp, Rule::Format, "set timeout_ms, retry_attempts or both");
                }
            }
        }
    }

    fn routes(&mut self, declared: &DeclaredImpact) {
        let cfg = self.cfg;
        let products: HashSet<&str> = cfg.products.iter().map(|p| p.name.as_str()).collect();
        let upstreams: HashSet<&str> = cfg.upstreams.iter().map(|u| u.name.as_str()).collect();
        let policies: HashMap<&str, &Policy> =
            cfg.policies.iter().map(|p| (p.id.as_str(), p)).collect();
        let mut admitting: HashSet<&str> = HashSet::new();
        for (i, r) in cfg.routes.iter().enumerate() {
            let path = format!("routes[{i}]");
            self.ident(&format!("{path}.id"), &r.id);
            if !products.contains(r.product.as_str()) {
                self.err(
                    format!("{path}.product"),
                    Rule::Reference,
                    format!("no product is named `{}`", r.product),
                );
            }
            if !upstreams.contains(r.upstream.as_str()) {
                self.err(
                    format!("{path}.upstream"),
                    Rule::Reference,
                    format!("no upstream is named `{}`", r.upstream),
                );
            }
            let m = &r.matcher;
            if let Some(host) = &m.host
                && let Err(msg) = host_ok(host)
            {
                self.err(format!("{path}.match.host"), Rule::Format, msg);
            }
            match &m.path {
                PathMatch::Prefix(p) => self.http_path(&format!("{path}.match.path.prefix"), p),
                PathMatch::Exact(p) => self.http_path(&format!("{path}.match.path.exact"), p),
            }
            let mut methods = HashSet::new();
            for (k, method) in m.methods.iter().enumerate() {
                if !methods.insert(method) {
                    self.err(
                        format!("{path}.match.methods[{k}]"),
                        Rule::Duplicate,
                        format!("duplicate method {}", method.as_str()),
                    );
                }
            }
            self.header_matches(&format!("{path}.match.headers"), &m.headers);

            self.limit(
                &format!("{path}.policies"),
                r.policies.len(),
                LIMITS.max_policies_per_route,
            );
            self.unique(
                &format!("{path}.policies"),
                r.policies.iter().map(String::as_str),
                "policy",
            );
            let mut denies = false;
            for (k, pid) in r.policies.iter().enumerate() {
                let Some(policy) = policies.get(pid.as_str()) else {
                    self.err(
                        format!("{path}.policies[{k}]"),
                        Rule::Reference,
                        format!("no policy has id `{pid}`"),
                    );
                    continue;
                };
                if let Some(why) = self.denies_all(policy) {
                    denies = true;
                    if !declared.denies_all.contains(&r.id) {
                        self.err(
                            format!("{path}.policies[{k}]"),
                            Rule::DeniesAll,
                            format!("policy `{pid}` denies all traffic on route `{}` ({why}); if that is intended, the change must declare the route in declared_impact.denies_all", r.id),
                        );
                    }
                }
            }
            if !denies {
                admitting.insert(r.product.as_str());
            }
        }
        for (i, p) in cfg.products.iter().enumerate() {
            if !admitting.contains(p.name.as_str()) {
                self.err(
                    format!("products[{i}]"),
                    Rule::ProductUnreachable,
                    format!("product `{}` has no route that admits traffic: every product needs at least one", p.name),
                );
            }
        }
    }

    /// Why `p` denies every request whatever its flags resolve to, or `None` if it does not.
    fn denies_all(&self, p: &Policy) -> Option<String> {
        if !self.always(&p.enabled, |e| *e) {
            return None;
        }
        match &p.kind {
            PolicyKind::Access(AccessPolicy { default, rules, .. }) => {
                let allows = rules.iter().any(|r| r.action == Action::Allow);
                (!allows && self.always(default, |a| *a == Action::Deny))
                    .then(|| "its default is deny and no rule allows".to_owned())
            }
            PolicyKind::Auth(AuthPolicy::ApiKey(k)) => k
                .keys
                .is_empty()
                .then(|| "it accepts no API key".to_owned()),
            PolicyKind::StaticResponse(StaticResponse { status, .. }) => self
                .always(status, |s| *s >= 400)
                .then(|| "it answers every request with an error status".to_owned()),
            PolicyKind::RateLimit(_) | PolicyKind::Headers(_) | PolicyKind::TimeoutRetry(_) => None,
        }
    }

    /// Whether `pred` holds for every value `b` can take at request time. Values that do not
    /// convert are reported elsewhere and ignored here.
    fn always<T: DeserializeOwned>(&self, b: &Bindable<T>, pred: impl Fn(&T) -> bool) -> bool {
        match b {
            Bindable::Literal(v) => pred(v),
            Bindable::Flag(name) => match self.flags.get(name.as_str()) {
                None => false,
                Some(flag) => reachable_values(flag)
                    .into_iter()
                    .filter_map(|(v, _)| serde_json::from_value::<T>(v.clone()).ok())
                    .all(|v| pred(&v)),
            },
        }
    }
}

fn in_range<T: PartialOrd + fmt::Display + Copy>(v: T, lo: T, hi: T) -> Result<(), String> {
    if v < lo || v > hi {
        Err(format!("{v} is outside the range {lo}..={hi}"))
    } else {
        Ok(())
    }
}

fn header_value_ok(s: &str) -> Result<(), String> {
    if s.len() > LIMITS.max_string {
        return Err(format!(
            "is {} bytes long; the limit is {}",
            s.len(),
            LIMITS.max_string
        ));
    }
    if s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("a header value may not contain control characters".to_owned());
    }
    Ok(())
}

/// Check a `host:port` endpoint.
fn parse_endpoint(e: &str) -> Result<(), String> {
    let bad = || format!("`{e}` is not host:port");
    let (host, port) = e.rsplit_once(':').ok_or_else(bad)?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => {}
        _ => return Err(format!("`{e}` has no valid port (1 to 65535)")),
    }
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    host_ok(host).map_err(|_| bad())
}

/// Check a host name, or `*.suffix`.
fn host_ok(h: &str) -> Result<(), String> {
    let name = h.strip_prefix("*.").unwrap_or(h);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{h}` is not a lowercase host name (or `*.` and one)"
        ))
    }
}

#[cfg(test)]
mod tests;
