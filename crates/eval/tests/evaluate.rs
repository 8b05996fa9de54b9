//! Decisions on the example fleet: routing, every policy kind, flag bindings and cohorts.

use std::net::IpAddr;

use rampart_eval::{
    Cohort, Decision, DenyReason, Evaluator, HeaderEdit, HeaderList, LimitKey, Outcome, RequestMeta,
};
use rampart_model::load::from_yaml;
use rampart_model::snapshot::StageScope;
use rampart_model::{Config, GatewayIdentity, Rollout, Snapshot};
use serde_json::json;

const JIRA_KEY: &str = "rk_VomMm2KNErbM414agnhrtAIQgG3vLV2mGjP8C5i6XXX_21RjwO";

fn example() -> Config {
    from_yaml(include_str!("../../../examples/fleet.yaml")).unwrap()
}

fn gateway(cell: &str) -> GatewayIdentity {
    GatewayIdentity {
        id: format!("gw-{cell}"),
        cell: cell.into(),
        version: "0.1.0".parse().unwrap(),
    }
}

struct Req<'a> {
    method: &'a str,
    host: &'a str,
    path: &'a str,
    ip: IpAddr,
    headers: Vec<(&'a str, &'a str)>,
    tenant: Option<&'a str>,
    gw: GatewayIdentity,
}

fn req<'a>(method: &'a str, host: &'a str, path: &'a str) -> Req<'a> {
    Req {
        method,
        host,
        path,
        ip: "198.51.100.7".parse().unwrap(),
        headers: vec![],
        tenant: None,
        gw: gateway("us-1"),
    }
}

impl<'a> Req<'a> {
    fn header(mut self, n: &'a str, v: &'a str) -> Self {
        self.headers.push((n, v));
        self
    }
    /// The tenant the gateway established before evaluation (a trusted proxy's header).
    fn tenant(mut self, t: &'a str) -> Self {
        self.tenant = Some(t);
        self
    }
    fn ip(mut self, ip: &str) -> Self {
        self.ip = ip.parse().unwrap();
        self
    }
    fn with<R>(&self, f: impl FnOnce(&RequestMeta<'_>) -> R) -> R {
        let headers = HeaderList(&self.headers);
        let meta = RequestMeta {
            method: self.method,
            host: self.host,
            path: self.path,
            client_ip: self.ip,
            headers: &headers,
            tenant: self.tenant,
            now_ms: 1_800_000_000_000,
            attributes: &[],
            gateway: &self.gw,
        };
        f(&meta)
    }
    /// The baseline decision of `ev` on this request, given to `f`.
    fn decide<R>(&self, ev: &Evaluator, f: impl FnOnce(Decision<'_>) -> R) -> R {
        self.with(|m| f(ev.evaluate(m, Cohort::Baseline)))
    }
}

/// An owned rendering of a borrowed value, to carry it out of the request's scope.
fn s(v: &impl std::fmt::Debug) -> String {
    format!("{v:?}")
}

fn evaluator(cfg: Config) -> Evaluator {
    Evaluator::compile(&Snapshot::new(cfg, vec![])).unwrap()
}

#[test]
fn routes_by_host_path_method_and_header() {
    let ev = evaluator(example());
    let route = |r: Req<'_>| {
        r.with(|m| {
            ev.evaluate(m, Cohort::Baseline)
                .route
                .map(|r| r.id.to_owned())
        })
    };
    let wiki = "acme.atlassian-wiki.example.com";
    let beta = "a.atlassian-wiki.example.com";
    let git = || req("POST", "bitbucket.example.com", "/scm/p/r.git");
    // (request, the route it takes)
    let cases = [
        (
            req("GET", "jira.example.com", "/rest/api/2/issue"),
            Some("jira-rest"),
        ),
        (
            req("GET", "JIRA.example.com:443", "/browse/X-1"),
            Some("jira-web"),
        ),
        (
            req("PATCH", "jira.example.com", "/rest/export/x"),
            Some("jira-web"),
        ),
        (req("GET", wiki, "/robots.txt"), Some("confluence-robots")),
        (req("GET", wiki, "/robots.txt.bak"), None),
        // The bare suffix is not a subdomain.
        (req("GET", "atlassian-wiki.example.com", "/wiki/"), None),
        (
            req("GET", beta, "/wiki/beta/x").header("x-beta", "0"),
            Some("confluence-beta"),
        ),
        (req("GET", beta, "/wiki/beta/x"), Some("confluence-web")),
        (
            git().header("User-Agent", "git/2.43.0"),
            Some("bitbucket-git"),
        ),
        (git().header("user-agent", "curl/8"), None),
    ];
    for (r, want) in cases {
        let (method, host, path) = (r.method, r.host, r.path);
        assert_eq!(route(r).as_deref(), want, "{method} {host}{path}");
    }
    let none = req("GET", "unknown.example.com", "/")
        .with(|m| s(&ev.evaluate(m, Cohort::Baseline).outcome));
    assert_eq!(
        none,
        s(&Outcome::Deny {
            status: 404,
            reason: DenyReason::NoRoute,
            policy: None
        })
    );
}

#[test]
fn access_policy_by_cidr_tenant_and_flag_default() {
    let ev = evaluator(example());
    let outcome = |r: Req<'_>| r.with(|m| s(&ev.evaluate(m, Cohort::Baseline).outcome));
    let denied = |policy: &'static str, status| {
        s(&Outcome::Deny {
            status,
            reason: DenyReason::Access,
            policy: Some(policy),
        })
    };
    let allow = s(&Outcome::Allow);
    assert_eq!(
        outcome(req("GET", "bitbucket.example.com", "/").ip("203.0.113.9")),
        denied("block-abusers", 403)
    );
    assert_eq!(
        outcome(req("GET", "bitbucket.example.com", "/").ip("2001:db8:bad::1")),
        denied("block-abusers", 403)
    );
    assert_eq!(
        outcome(req("GET", "bitbucket.example.com", "/").tenant("banned-corp")),
        denied("block-abusers", 403)
    );
    assert_eq!(outcome(req("GET", "bitbucket.example.com", "/")), allow);
    // office-only: the office range is allowed; others get the flag's default (deny, 404).
    assert_eq!(
        outcome(req("GET", "bitbucket.example.com", "/admin/x").ip("10.1.2.3")),
        allow
    );
    assert_eq!(
        outcome(req("GET", "bitbucket.example.com", "/admin/x")),
        denied("office-only", 404)
    );
    let mut cfg = example();
    cfg.flags
        .iter_mut()
        .find(|f| f.name == "internal-access-default")
        .unwrap()
        .default = json!("allow");
    let ev = evaluator(cfg);
    let d = req("GET", "bitbucket.example.com", "/admin/x").decide(&ev, |d| {
        (
            s(&d.outcome),
            d.flags
                .iter()
                .map(|f| (f.name.to_owned(), f.value.clone()))
                .collect::<Vec<_>>(),
        )
    });
    assert_eq!(d.0, s(&Outcome::Allow));
    assert_eq!(
        d.1,
        vec![("internal-access-default".to_owned(), json!("allow"))]
    );
}

#[test]
fn api_key_auth_checks_the_hash_and_sets_the_tenant() {
    let ev = evaluator(example());
    let eval = |r: Req<'_>| r.decide(&ev, |d| (s(&d.outcome), d.tenant.map(str::to_owned)));
    let missing = eval(req("GET", "jira.example.com", "/rest/api/2/issue"));
    assert_eq!(
        missing.0,
        s(&Outcome::Deny {
            status: 401,
            reason: DenyReason::MissingCredentials,
            policy: Some("jira-api-key")
        })
    );
    let wrong =
        eval(req("GET", "jira.example.com", "/rest/api/2/issue").header("x-api-key", "guess"));
    assert_eq!(
        wrong.0,
        s(&Outcome::Deny {
            status: 401,
            reason: DenyReason::InvalidCredentials,
            policy: Some("jira-api-key")
        })
    );
    let ok = eval(
        req("GET", "jira.example.com", "/rest/api/2/issue")
            .header("x-api-key", JIRA_KEY)
            .header("x-tenant-id", "spoofed")
            .tenant("from-a-trusted-proxy"),
    );
    assert_eq!(
        ok,
        (s(&Outcome::Allow), Some("acme".to_owned())),
        "the key's tenant overrides a trusted proxy's, and the client's header is never read"
    );
}

#[test]
fn rate_limit_values_come_from_targeted_flag_rules() {
    let ev = evaluator(example());
    let limits = |r: Req<'_>| {
        r.decide(&ev, |d| {
            d.rate_limits
                .iter()
                .map(|l| {
                    (
                        l.policy.to_owned(),
                        l.per_second,
                        l.burst,
                        format!("{:?}", l.key),
                    )
                })
                .collect::<Vec<_>>()
        })
    };
    let base = req("GET", "bitbucket.example.com", "/rest/api/1.0/projects")
        .header(
            "x-api-key",
            "rk_6yhDzI8QbykVTDts9TOzvOxkk8V9CIhr6l3GOp2xYjV_2odZpJ",
        )
        .tenant("hooli");
    assert_eq!(
        limits(base),
        vec![(
            "api-rate-limit".into(),
            200,
            400,
            "Tenant(\"hooli\")".into()
        )]
    );
    // The plan follows the established tenant...
    let enterprise = req("GET", "bitbucket.example.com", "/rest/api/1.0/projects")
        .header(
            "x-api-key",
            "rk_6yhDzI8QbykVTDts9TOzvOxkk8V9CIhr6l3GOp2xYjV_2odZpJ",
        )
        .tenant("initech");
    let l = limits(enterprise);
    assert_eq!((l[0].1, l[0].3.as_str()), (2000, "Tenant(\"initech\")"));
    // ...never a header the client sends.
    let claimed = req("GET", "bitbucket.example.com", "/rest/api/1.0/projects")
        .header(
            "x-api-key",
            "rk_6yhDzI8QbykVTDts9TOzvOxkk8V9CIhr6l3GOp2xYjV_2odZpJ",
        )
        .header("x-plan", "enterprise");
    let l = limits(claimed);
    assert_eq!(l[0].1, 200);
    assert!(
        l[0].3.starts_with("ClientIp"),
        "no tenant: keyed by client IP, got {}",
        l[0].3
    );
    // acme and globex: half of them by sticky bucket (the bucket of each is fixed).
    let acme = req("GET", "bitbucket.example.com", "/rest/api/1.0/x").header(
        "x-api-key",
        "rk_paHf9TIxA1sglWriqrdYMKGDhpUUYBjAzJwbTXwmrQ5_0EAsJ2",
    );
    let rate = limits(acme)[0].1;
    assert!(rate == 400 || rate == 200);
    let again = req("GET", "bitbucket.example.com", "/rest/api/1.0/x").header(
        "x-api-key",
        "rk_paHf9TIxA1sglWriqrdYMKGDhpUUYBjAzJwbTXwmrQ5_0EAsJ2",
    );
    assert_eq!(limits(again)[0].1, rate, "sticky");
    let keyed = req("GET", "bitbucket.example.com", "/scm/x")
        .header("user-agent", "git/2.1")
        .header(
            "x-api-key",
            "rk_6yhDzI8QbykVTDts9TOzvOxkk8V9CIhr6l3GOp2xYjV_2odZpJ",
        );
    keyed.decide(&ev, |d| {
        assert_eq!(
            d.rate_limits[0].key,
            LimitKey::Header("rk_6yhDzI8QbykVTDts9TOzvOxkk8V9CIhr6l3GOp2xYjV_2odZpJ")
        );
        assert_eq!((d.timeout_ms, d.retry_attempts), (Some(120_000), Some(1)));
    });
}

#[test]
fn header_rules_static_responses_and_timeouts() {
    let ev = evaluator(example());
    req("GET", "x.atlassian-wiki.example.com", "/wiki/spaces").decide(&ev, |d| {
        assert_eq!(d.outcome, Outcome::Allow);
        assert_eq!(
            d.request_headers.as_slice(),
            &[
                HeaderEdit::Set("x-rampart-edge", "1"),
                HeaderEdit::Remove("x-debug")
            ]
        );
        assert!(
            d.response_headers
                .contains(&HeaderEdit::Set("x-banner", ""))
        );
        assert!(d.response_headers.contains(&HeaderEdit::Remove("server")));
    });
    let eu = Req {
        gw: gateway("eu-1"),
        ..req("GET", "x.atlassian-wiki.example.com", "/wiki/spaces")
    };
    eu.decide(&ev, |d| {
        assert!(d.response_headers.contains(&HeaderEdit::Set(
            "x-banner",
            "Scheduled maintenance Sunday 02:00 UTC"
        )));
    });
    req("GET", "a.atlassian-wiki.example.com", "/robots.txt").decide(&ev, |d| {
        assert!(matches!(
            d.outcome,
            Outcome::Static {
                status: 200,
                policy: "robots",
                ..
            }
        ));
    });
    req("GET", "jira.example.com", "/rest/export/all").decide(&ev, |d| {
        assert_eq!(
            d.outcome,
            Outcome::Deny {
                status: 401,
                reason: DenyReason::MissingCredentials,
                policy: Some("jira-api-key")
            }
        );
    });
    req("GET", "jira.example.com", "/rest/export/all")
        .header("x-api-key", JIRA_KEY)
        .decide(&ev, |d| {
            assert_eq!((d.timeout_ms, d.retry_attempts), (Some(60_000), Some(0)));
        });
    // The maintenance page is off until its flag is on.
    req("GET", "jira.example.com", "/browse/X-1")
        .with(|m| assert_eq!(ev.evaluate(m, Cohort::Baseline).outcome, Outcome::Allow));
}

fn maintenance_on(mut cfg: Config) -> Config {
    cfg.flags
        .iter_mut()
        .find(|f| f.name == "jira-maintenance")
        .unwrap()
        .default = json!(true);
    cfg
}

#[test]
fn cohorts_split_by_scope_and_sticky_bucket() {
    let rollout = |scope: StageScope| Rollout {
        id: "r1".into(),
        salt: "r1-salt".into(),
        sticky_key: rampart_model::Attribute::Tenant,
        scope,
        shadow: false,
        candidate: maintenance_on(example()),
    };
    let all = |percent| StageScope {
        cells: vec![],
        gateways: vec![],
        percent,
    };
    let ev = Evaluator::compile(&Snapshot::new(example(), vec![rollout(all(100.0))])).unwrap();
    let r = req("GET", "jira.example.com", "/browse/X-1").tenant("acme");
    r.with(|m| {
        assert_eq!(ev.cohort(m), Cohort::Candidate(0));
        assert_eq!(ev.rollout_id(Cohort::Candidate(0)), Some("r1"));
        let d = ev.evaluate(m, Cohort::Candidate(0));
        assert!(
            matches!(
                d.outcome,
                Outcome::Static {
                    status: 503,
                    policy: "jira-maintenance-page",
                    ..
                }
            ),
            "{:?}",
            d.outcome
        );
        assert_eq!(ev.evaluate(m, Cohort::Baseline).outcome, Outcome::Allow);
    });
    // Out of scope by cell, by gateway id, or at 0%.
    for scope in [
        StageScope {
            cells: vec!["eu-1".into()],
            gateways: vec![],
            percent: 100.0,
        },
        StageScope {
            cells: vec![],
            gateways: vec!["gw-other".into()],
            percent: 100.0,
        },
        all(0.0),
    ] {
        let ev = Evaluator::compile(&Snapshot::new(example(), vec![rollout(scope)])).unwrap();
        r.with(|m| assert_eq!(ev.cohort(m), Cohort::Baseline));
    }
    // At 20%, about a fifth of tenants are in, and always the same ones.
    let ev = Evaluator::compile(&Snapshot::new(example(), vec![rollout(all(20.0))])).unwrap();
    let tenants: Vec<String> = (0..2000).map(|i| format!("tenant-{i}")).collect();
    let inside = |ev: &Evaluator| -> Vec<bool> {
        tenants
            .iter()
            .map(|t| {
                req("GET", "jira.example.com", "/")
                    .ip("127.0.0.1")
                    .tenant(t)
                    .with(|m| ev.cohort(m) != Cohort::Baseline)
            })
            .collect()
    };
    let first = inside(&ev);
    let n = first.iter().filter(|x| **x).count();
    assert!((300..500).contains(&n), "{n} of 2000 inside 20%");
    assert_eq!(inside(&ev), first);
}

#[test]
fn compile_refuses_invalid_candidates_and_reports_every_path() {
    let mut bad = example();
    bad.routes[0].upstream = "nowhere".into();
    bad.upstreams[0].timeouts.connect_ms = 0;
    let snapshot = Snapshot::new(
        example(),
        vec![Rollout {
            id: "r".into(),
            salt: "s".into(),
            sticky_key: rampart_model::Attribute::Tenant,
            scope: StageScope {
                cells: vec![],
                gateways: vec![],
                percent: 250.0,
            },
            shadow: false,
            candidate: bad,
        }],
    );
    let err = Evaluator::compile(&snapshot).unwrap_err();
    let paths: Vec<&str> = err.errors.0.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"rollouts[0].candidate.routes[0].upstream"),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"rollouts[0].candidate.upstreams[0].timeouts.connect_ms"),
        "{paths:?}"
    );
    assert!(paths.contains(&"rollouts[0].scope.percent"), "{paths:?}");
}

#[test]
fn gateways_run_declared_deny_all_configs() {
    // Validation in the control plane refuses an undeclared maintenance page for everyone;
    // gateways still compile it, since the change that carries it declared it.
    let cfg = maintenance_on(example());
    assert!(rampart_model::validate::validate(&cfg, &Default::default()).is_err());
    let ev = evaluator(cfg);
    req("GET", "jira.example.com", "/browse/X-1").decide(&ev, |d| {
        assert!(matches!(d.outcome, Outcome::Static { status: 503, .. }));
        let names: Vec<_> = d.flags.iter().map(|f| f.name).collect();
        assert_eq!(names, ["jira-maintenance", "maintenance-status"]);
    });
}

#[test]
fn flag_values_outside_routes() {
    let ev = evaluator(example());
    let id = ev.flag_id(Cohort::Baseline, "search-rollout").unwrap();
    let mut v2 = 0;
    for i in 0..1000 {
        let t = format!("t{i}");
        let r = req("GET", "h", "/").ip("127.0.0.1").tenant(&t);
        if r.with(|m| ev.flag_value(Cohort::Baseline, id, m)["backend"] == "v2") {
            v2 += 1;
        }
    }
    assert!((60..140).contains(&v2), "{v2} of 1000 in a 10% rollout");
    assert!(ev.flag_id(Cohort::Baseline, "nope").is_none());
}
