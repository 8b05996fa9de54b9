//! Traffic: upstreams, policies and routes.

use super::*;

impl Validator<'_> {
    pub(super) fn upstream(&mut self, path: &str, u: &Upstream) {
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

    pub(super) fn policy(&mut self, path: &str, p: &Policy) {
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
            PolicyKind::Auth(AuthPolicy::Jwt(j)) => self.jwt(&format!("{path}.auth.jwt"), j),
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

    pub(super) fn routes(&mut self, declared: &DeclaredImpact) {
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
            PolicyKind::Auth(AuthPolicy::Jwt(j)) => j
                .keys
                .is_empty()
                .then(|| "it accepts no token: it has no key".to_owned()),
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
