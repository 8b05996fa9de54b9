//! The validation library: structure, schema and semantics, all errors at once.
//!
//! [`validate`] returns every problem it finds, each with the path of the field at fault (for
//! example `policies[4].rate_limit.per_second`), the [`Rule`] it breaks and a message. It is
//! what the control plane runs on submit and what every gateway runs before it compiles a
//! snapshot, so both agree on what is valid.
//!
//! This module holds the errors, the entry points and the checks every part shares (lengths,
//! names, ranges, bindable fields); `flags` checks flags and their rules, `traffic` upstreams,
//! policies and routes.

mod apikeys;
mod body;
mod flags;
mod identity;
mod paths;
mod traffic;

pub use flags::reachable_values;
use flags::rule_origin;

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
    /// A credential is guessable: an API key on the denylist, or one not minted by rampart
    /// in prod. Gateways do not refuse a snapshot for it (they warn): refusing their last
    /// known good would leave them with nothing to serve; the control plane refuses it.
    WeakCredential,
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
/// [judge traffic](Rule::judges_traffic), which the control plane has already weighed, and
/// [`Rule::WeakCredential`] (see [`weak_credentials`]).
pub fn validate_runnable(config: &Config) -> Result<(), ValidationErrors> {
    match validate(config, &DeclaredImpact::default()) {
        Ok(()) => Ok(()),
        Err(ValidationErrors(mut errors)) => {
            errors.retain(|e| !e.rule.judges_traffic() && e.rule != Rule::WeakCredential);
            if errors.is_empty() {
                Ok(())
            } else {
                Err(ValidationErrors(errors))
            }
        }
    }
}

/// The weak credentials of a configuration, for a gateway to warn about.
pub fn weak_credentials(config: &Config) -> Vec<ValidationError> {
    let mut v = Validator::new(config);
    v.api_key_strength();
    v.errors.retain(|e| e.rule == Rule::WeakCredential);
    v.errors
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
        self.identity_settings();
        self.route_paths();

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
        self.api_key_strength();
        self.body_limits();
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
        let ok = s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        self.format(
            path,
            s,
            ok,
            "name: use letters, digits, `.`, `_` and `-`, starting with a letter or digit",
        );
    }

    fn header_name(&mut self, path: &str, s: &str) {
        let ok = !s.is_empty()
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.!#$%&'*+^`|~".contains(&b)
            });
        self.format(
            path,
            s,
            ok,
            "header name: use lowercase letters, digits and `-`",
        );
    }

    /// A [`Rule::Format`] error, `` `s` is not a valid <what> ``, unless `s` is too long (an
    /// error of its own) or `ok`.
    fn format(&mut self, path: &str, s: &str, ok: bool, what: &str) {
        if self.string_len(path, s) && !ok {
            self.err(path, Rule::Format, format!("`{s}` is not a valid {what}"));
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
}

fn in_range<T: PartialOrd + fmt::Display + Copy>(v: T, lo: T, hi: T) -> Result<(), String> {
    if v < lo || v > hi {
        Err(format!("{v} is outside the range {lo}..={hi}"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
