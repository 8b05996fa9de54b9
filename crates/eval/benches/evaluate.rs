//! Request decisions and flag evaluations against a realistic snapshot, and the same gradual
//! rollout flag in Unleash's yggdrasil engine for comparison.
//!
//! Run with `cargo bench -p rampart-eval --bench evaluate`; results are written up in
//! `docs/BENCHMARKS.md`.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rampart_eval::{Cohort, Decision, Evaluator, HeaderList, Outcome, RequestMeta};
use rampart_model::{Config, GatewayIdentity, Rollout, Snapshot, StageScope};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use unleash_yggdrasil::{ClientFeatures, Context, EngineState};

/// The flag both engines evaluate: four targeting rules that miss, then a 50% rollout.
const GRADUAL: &str = "gradual-new-editor";
/// The API key the API-key variant presents; the snapshot holds only its SHA-256.
const API_KEY: &str = "bbk_live_3f9a1c7e5d2b4a6f8e0c1d3b5a7f9e2c";

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn route(
    id: &str,
    product: &str,
    host: &str,
    path: Value,
    methods: &[&str],
    headers: Value,
    policies: &[&str],
) -> Value {
    let mut m = json!({ "host": host, "path": path });
    if !methods.is_empty() {
        m["methods"] = json!(methods);
    }
    if !headers.is_null() {
        m["headers"] = headers;
    }
    let upstream = format!("{product}-app");
    json!({ "id": id, "product": product, "match": m, "upstream": upstream, "policies": policies })
}

fn routes() -> Vec<Value> {
    let mut r = Vec::new();
    let prefix = |p: String| json!({ "prefix": p });
    let exact = |p: &str| json!({ "exact": p });

    // Bitbucket: one exact host, 12 routes, one with a regex header match.
    let bb = "bitbucket.example.com";
    r.push(route(
        "bitbucket-git",
        "bitbucket",
        bb,
        prefix("/scm/".into()),
        &["GET", "POST"],
        json!([{ "name": "user-agent", "value": { "regex": "^git/[0-9]+\\.[0-9]+" } }]),
        &[
            "block-abusers",
            "bitbucket-api-key",
            "git-rate-limit",
            "git-clone-timeout",
        ],
    ));
    for area in [
        "projects",
        "repos",
        "users",
        "admin-groups",
        "pull-requests",
        "dashboard",
        "inbox",
        "markup",
    ] {
        r.push(route(
            &format!("bitbucket-rest-{area}"),
            "bitbucket",
            bb,
            prefix(format!("/rest/api/1.0/{area}/")),
            &[],
            Value::Null,
            &[
                "block-abusers",
                "bitbucket-api-key",
                "api-rate-limit",
                "security-headers",
            ],
        ));
    }
    r.push(route(
        "bitbucket-admin",
        "bitbucket",
        bb,
        prefix("/admin/".into()),
        &[],
        Value::Null,
        &["office-only", "security-headers"],
    ));
    r.push(route(
        "bitbucket-robots",
        "bitbucket",
        bb,
        exact("/robots.txt"),
        &["GET", "HEAD"],
        Value::Null,
        &["robots"],
    ));
    r.push(route(
        "bitbucket-web",
        "bitbucket",
        bb,
        prefix("/".into()),
        &["GET", "HEAD"],
        Value::Null,
        &[
            "block-abusers",
            "anon-rate-limit",
            "security-headers",
            "cors-headers",
        ],
    ));

    // Confluence: a `*.suffix` host per customer site, 12 routes.
    let wiki = "*.atlassian-wiki.example.com";
    r.push(route(
        "confluence-robots",
        "confluence",
        wiki,
        exact("/robots.txt"),
        &["GET", "HEAD"],
        Value::Null,
        &["robots"],
    ));
    r.push(route(
        "confluence-beta",
        "confluence",
        wiki,
        prefix("/wiki/beta/".into()),
        &[],
        json!([{ "name": "x-beta", "value": "present" }]),
        &["beta-header-gate", "security-headers"],
    ));
    for area in [
        "content", "space", "search", "user", "group", "label", "longtask",
    ] {
        r.push(route(
            &format!("confluence-rest-{area}"),
            "confluence",
            wiki,
            prefix(format!("/wiki/rest/api/{area}")),
            &[],
            Value::Null,
            &[
                "block-abusers",
                "confluence-api-key",
                rate_limit(area),
                "security-headers",
            ],
        ));
    }
    r.push(route(
        "confluence-admin",
        "confluence",
        wiki,
        prefix("/wiki/admin/".into()),
        &[],
        Value::Null,
        &["office-only", "security-headers"],
    ));
    r.push(route(
        "confluence-web",
        "confluence",
        wiki,
        prefix("/wiki/".into()),
        &[],
        Value::Null,
        &[
            "block-abusers",
            "confluence-maintenance-page",
            "anon-rate-limit",
            "confluence-banner-header",
            "security-headers",
        ],
    ));
    r.push(route(
        "confluence-root",
        "confluence",
        wiki,
        exact("/"),
        &["GET"],
        Value::Null,
        &["block-abusers", "security-headers"],
    ));

    // Jira: one exact host, 20 routes; the benchmarked `jira-agile` is the 17th of them.
    let jira = "jira.example.com";
    r.push(route(
        "jira-robots",
        "jira",
        jira,
        exact("/robots.txt"),
        &["GET", "HEAD"],
        Value::Null,
        &["robots"],
    ));
    r.push(route(
        "jira-internal",
        "jira",
        jira,
        prefix("/rest/internal/".into()),
        &[],
        json!([{ "name": "x-requested-with", "value": { "exact": "XMLHttpRequest" } }]),
        &["office-only", "security-headers"],
    ));
    for area in [
        "issue",
        "search",
        "project",
        "user",
        "group",
        "field",
        "filter",
        "dashboard",
        "worklog",
        "attachment",
        "comment",
        "version",
    ] {
        r.push(route(
            &format!("jira-rest-{area}"),
            "jira",
            jira,
            prefix(format!("/rest/api/2/{area}")),
            &["GET", "POST", "PUT", "DELETE"],
            Value::Null,
            &[
                "block-abusers",
                "jira-api-key",
                rate_limit(area),
                "security-headers",
            ],
        ));
    }
    r.push(route(
        "jira-export",
        "jira",
        jira,
        prefix("/rest/export/".into()),
        &["GET"],
        Value::Null,
        &[
            "block-abusers",
            "jira-api-key",
            "slow-exports",
            "security-headers",
        ],
    ));
    r.push(route(
        "jira-greenhopper",
        "jira",
        jira,
        prefix("/rest/greenhopper/".into()),
        &[],
        Value::Null,
        &[
            "block-abusers",
            "partner-tenants",
            "api-rate-limit",
            "security-headers",
        ],
    ));
    r.push(route(
        "jira-agile",
        "jira",
        jira,
        prefix("/rest/agile/1.0/".into()),
        &["GET", "POST", "PUT", "DELETE"],
        Value::Null,
        &[
            "block-abusers",
            "jira-maintenance-page",
            "api-rate-limit",
            "security-headers",
        ],
    ));
    r.push(route(
        "jira-servicedesk",
        "jira",
        jira,
        prefix("/rest/servicedeskapi/".into()),
        &[],
        Value::Null,
        &[
            "block-abusers",
            "jira-api-key",
            "api-rate-limit",
            "default-retries",
        ],
    ));
    r.push(route(
        "jira-admin",
        "jira",
        jira,
        prefix("/secure/admin/".into()),
        &[],
        Value::Null,
        &["office-only", "security-headers"],
    ));
    r.push(route(
        "jira-web",
        "jira",
        jira,
        prefix("/".into()),
        &[],
        Value::Null,
        &[
            "block-abusers",
            "jira-maintenance-page",
            "anon-rate-limit",
            "security-headers",
            "default-retries",
        ],
    ));

    // The public API host and the status pages.
    let api = "api.example.com";
    let mut search = route(
        "api-search",
        "confluence",
        api,
        prefix("/search/".into()),
        &["GET", "POST"],
        Value::Null,
        &["block-abusers", "search-rate-limit", "default-retries"],
    );
    search["upstream"] = json!("search-app");
    r.push(search);
    for (p, key) in [
        ("jira", "jira-api-key"),
        ("confluence", "confluence-api-key"),
        ("bitbucket", "bitbucket-api-key"),
    ] {
        r.push(route(
            &format!("api-{p}"),
            p,
            api,
            prefix(format!("/{p}/")),
            &[],
            Value::Null,
            &[
                "block-abusers",
                key,
                "api-rate-limit",
                "security-headers",
                "cors-headers",
            ],
        ));
    }
    r.push(route(
        "api-health",
        "jira",
        api,
        exact("/healthz"),
        &["GET"],
        Value::Null,
        &["robots"],
    ));
    r.push(route(
        "status-pages",
        "jira",
        "*.status.example.com",
        prefix("/".into()),
        &["GET", "HEAD"],
        Value::Null,
        &["anon-rate-limit", "cors-headers"],
    ));
    r
}

fn policies() -> Vec<Value> {
    let bitbucket_keys: Vec<Value> = (0..50)
        .map(|i| {
            let key = if i == 37 { API_KEY.to_owned() } else { format!("bbk_live_filler_{i:04}") };
            json!({ "id": format!("bb-key-{i}"), "sha256": sha256_hex(&key), "tenant": if i % 2 == 1 { "acme" } else { "initech" } })
        })
        .collect();
    vec![
        json!({ "id": "block-abusers", "access": { "default": "allow", "deny_status": 403, "rules": [
            { "action": "deny", "cidrs": ["203.0.113.0/24", "198.51.100.0/24", "2001:db8:bad::/48"] },
            { "action": "deny", "tenants": ["banned-corp", "fraud-inc", "spam-llc"] },
        ] } }),
        json!({ "id": "office-only", "access": { "default": { "flag": "internal-access-default" }, "deny_status": 404, "rules": [
            { "action": "allow", "cidrs": ["10.0.0.0/8", "127.0.0.0/8", "::1/128"] },
        ] } }),
        json!({ "id": "beta-header-gate", "access": { "default": "deny", "rules": [
            { "action": "allow", "headers": [{ "name": "x-beta", "value": { "exact": "1" } }] },
            { "action": "allow", "tenants": ["acme"] },
        ] } }),
        json!({ "id": "partner-tenants", "access": { "default": { "flag": "partner-access-default" }, "rules": [
            { "action": "allow", "tenants": ["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell", "cyberdyne"] },
        ] } }),
        json!({ "id": "jira-api-key", "auth": { "api_key": { "header": "x-api-key", "keys": [
            { "id": "jira-ci", "sha256": sha256_hex("jira-ci-key"), "tenant": "acme" },
            { "id": "jira-bot", "sha256": sha256_hex("jira-bot-key") },
        ] } } }),
        json!({ "id": "confluence-api-key", "auth": { "api_key": { "keys": [
            { "id": "confluence-bot", "sha256": sha256_hex("confluence-bot-key") },
        ] } } }),
        json!({ "id": "bitbucket-api-key", "auth": { "api_key": { "keys": bitbucket_keys } } }),
        json!({ "id": "api-rate-limit", "rate_limit": { "per_second": { "flag": "api-rate-per-second" }, "burst": 400, "key": "tenant" } }),
        json!({ "id": "anon-rate-limit", "rate_limit": { "per_second": 20, "burst": 40, "key": "client_ip" } }),
        json!({ "id": "git-rate-limit", "rate_limit": { "per_second": 50, "burst": 100, "key": { "header": "x-api-key" } } }),
        json!({ "id": "search-rate-limit", "rate_limit": { "per_second": { "flag": "search-rate-per-second" }, "burst": { "flag": "api-burst" }, "key": "route" } }),
        json!({ "id": "security-headers", "headers": {
            "request": { "set": [{ "name": "x-rampart-edge", "value": "1" }], "remove": ["x-debug"] },
            "response": { "set": [
                { "name": "strict-transport-security", "value": "max-age=31536000" },
                { "name": "x-content-type-options", "value": "nosniff" },
            ], "remove": ["server"] },
        } }),
        json!({ "id": "confluence-banner-header", "headers": { "response": { "set": [
            { "name": "x-banner", "value": { "flag": "confluence-banner" } },
        ] } } }),
        json!({ "id": "cors-headers", "headers": { "response": { "set": [
            { "name": "access-control-allow-origin", "value": { "flag": "cors-origin" } },
            { "name": "vary", "value": "origin" },
        ] } } }),
        json!({ "id": "jira-maintenance-page", "enabled": { "flag": "jira-maintenance" }, "static_response": {
            "status": { "flag": "maintenance-status" },
            "body": "Jira is down for maintenance; we will be back shortly.",
            "headers": [{ "name": "retry-after", "value": "300" }],
        } }),
        json!({ "id": "confluence-maintenance-page", "enabled": { "flag": "confluence-maintenance" }, "static_response": {
            "status": { "flag": "maintenance-status" },
            "body": "Confluence is down for maintenance.",
        } }),
        json!({ "id": "robots", "static_response": { "status": 200, "body": "User-agent: *\nDisallow: /rest/\n" } }),
        json!({ "id": "slow-exports", "timeout_retry": { "timeout_ms": 60000, "retry_attempts": 0 } }),
        json!({ "id": "git-clone-timeout", "timeout_retry": { "timeout_ms": { "flag": "bitbucket-clone-timeout-ms" }, "retry_attempts": 1 } }),
        json!({ "id": "default-retries", "timeout_retry": { "timeout_ms": 30000, "retry_attempts": { "flag": "default-retry-attempts" } } }),
    ]
}

fn flag(name: &str, kind: &str, default: Value, rules: Value) -> Value {
    json!({ "name": name, "type": kind, "default": default, "risk": "medium", "owner": "team-edge", "rules": rules })
}

fn flags() -> Vec<Value> {
    let mut f = vec![
        flag(
            "api-rate-per-second",
            "int",
            json!(200),
            json!([
                { "name": "enterprise", "when": [{ "attribute": "header.x-plan", "op": "in", "values": ["enterprise"] }], "value": 2000 },
                { "name": "canary-tenants", "when": [
                    { "attribute": "tenant", "op": "in", "values": ["acme", "globex"] },
                    { "attribute": "gateway_version", "op": "semver_gte", "values": ["0.1.0"] },
                ], "percentage": { "percent": 50, "by": "tenant" }, "value": 400 },
            ]),
        ),
        flag(
            "search-rate-per-second",
            "int",
            json!(50),
            json!([
                { "when": [{ "attribute": "product", "op": "in", "values": ["jira"] }], "value": 80 },
            ]),
        ),
        flag("api-burst", "int", json!(100), json!([])),
        flag("jira-maintenance", "bool", json!(false), json!([])),
        flag("confluence-maintenance", "bool", json!(false), json!([])),
        json!({ "name": "maintenance-status", "type": "int", "schema": { "type": "integer", "enum": [200, 503] },
                "default": 503, "risk": "medium", "owner": "team-edge" }),
        json!({ "name": "internal-access-default", "type": "string", "schema": { "enum": ["allow", "deny"] },
                "default": "deny", "risk": "critical", "owner": "team-security", "infrastructure": true }),
        json!({ "name": "partner-access-default", "type": "string", "schema": { "enum": ["allow", "deny"] },
                "default": "allow", "risk": "high", "owner": "team-security", "rules": [
                    { "when": [{ "attribute": "cell", "op": "starts_with", "values": ["gov-"] }], "value": "deny" },
                ] }),
        flag(
            "bitbucket-clone-timeout-ms",
            "int",
            json!(120000),
            json!([
                { "name": "big-repos", "when": [{ "attribute": "tenant", "op": "in", "values": ["initech"] }], "value": 300000 },
            ]),
        ),
        flag(
            "default-retry-attempts",
            "int",
            json!(1),
            json!([
                { "when": [{ "attribute": "method", "op": "in", "values": ["POST", "PATCH"] }], "value": 0 },
            ]),
        ),
        flag(
            "confluence-banner",
            "string",
            json!(""),
            json!([
                { "name": "eu-tenants", "when": [{ "attribute": "cell", "op": "starts_with", "values": ["eu-"] }],
                  "value": "Scheduled maintenance Sunday 02:00 UTC" },
            ]),
        ),
        flag(
            "cors-origin",
            "string",
            json!("https://www.example.com"),
            json!([]),
        ),
        json!({ "name": "search-rollout", "type": "json", "default": { "backend": "legacy" }, "risk": "medium", "owner": "team-search",
                "schema": { "type": "object", "required": ["backend"], "properties": { "backend": { "enum": ["legacy", "v2"] } } },
                "rules": [{ "name": "ten-percent", "percentage": { "percent": 10, "by": "tenant" }, "value": { "backend": "v2", "shards": 8 } }] }),
        flag(
            GRADUAL,
            "bool",
            json!(false),
            json!([
                { "name": "enterprise", "when": [{ "attribute": "header.x-plan", "op": "in", "values": ["enterprise"] }], "value": true },
                { "name": "internal", "when": [{ "attribute": "tenant", "op": "in", "values": ["internal", "staff", "qa-tenant"] }], "value": true },
                { "name": "big-accounts", "when": [{ "attribute": "attr.seats", "op": "gt", "values": ["1000"] }], "value": true },
                { "name": "legacy-clients", "when": [{ "attribute": "attr.client_version", "op": "semver_lt", "values": ["2.0.0"] }], "value": true },
                { "name": "eu-pro-rollout", "when": [
                    { "attribute": "cell", "op": "starts_with", "values": ["eu-"] },
                    { "attribute": "header.x-plan", "op": "in", "values": ["pro", "business"] },
                ], "percentage": { "percent": 50, "by": "tenant" }, "value": true },
            ]),
        ),
    ];
    // Filler flags of every type, a third of them with a rule, up to 100.
    let mut i = 0;
    while f.len() < 100 {
        let name = format!("feature-{i:03}");
        let rules = |value: Value, when: Value| {
            if i % 3 == 0 {
                json!([{ "when": when, "value": value }])
            } else {
                json!([])
            }
        };
        let tenants = json!([{ "attribute": "tenant", "op": "in", "values": [format!("tenant-{i}"), "acme"] }]);
        f.push(match i % 5 {
            0 => flag(&name, "bool", json!(false), rules(json!(true), tenants)),
            1 => flag(
                &name,
                "int",
                json!(100),
                if i % 2 == 1 {
                    json!([{ "percentage": { "percent": 25, "by": "tenant" }, "value": 200 }])
                } else {
                    json!([])
                },
            ),
            2 => flag(&name, "float", json!(0.5), rules(json!(0.75), tenants)),
            3 => flag(
                &name,
                "string",
                json!("control"),
                rules(
                    json!("treatment"),
                    json!([{ "attribute": "header.x-plan", "op": "in", "values": ["enterprise"] }]),
                ),
            ),
            _ => flag(
                &name,
                "json",
                json!({ "mode": "off" }),
                rules(
                    json!({ "mode": "on" }),
                    json!([{ "attribute": "cell", "op": "starts_with", "values": ["eu-"] }]),
                ),
            ),
        });
        i += 1;
    }
    f
}

fn config() -> Config {
    let upstreams: Vec<Value> = ["jira-app", "confluence-app", "bitbucket-app", "search-app"]
        .iter()
        .enumerate()
        .map(|(i, name)| json!({ "name": name, "endpoints": [format!("10.1.{i}.10:8080"), format!("10.1.{i}.11:8080")],
                                 "health_check": { "path": "/healthz" } }))
        .collect();
    let doc = json!({
        "environment": "prod",
        "settings": { "tenant_header": "x-tenant-id" },
        "products": [{ "name": "jira" }, { "name": "confluence" }, { "name": "bitbucket" }],
        "upstreams": upstreams,
        "policies": policies(),
        "routes": routes(),
        "flags": flags(),
    });
    let cfg: Config = rampart_model::load::from_value(doc).expect("the bench config loads");
    assert_eq!(
        (
            cfg.products.len(),
            cfg.routes.len(),
            cfg.policies.len(),
            cfg.flags.len()
        ),
        (3, 50, 20, 100)
    );
    if let Err(e) = rampart_model::validate::validate(&cfg, &Default::default()) {
        panic!("the bench config is invalid: {e}");
    }
    cfg
}

/// The same gradual rollout in Unleash terms: four strategies whose constraints miss, then a
/// 50% flexibleRollout sticky on the `tenant` property; plus 99 other features.
fn unleash_features() -> ClientFeatures {
    let constraint = |name: &str, op: &str, values: &[&str]| {
        if matches!(op, "NUM_GT" | "SEMVER_LT") {
            json!({ "contextName": name, "operator": op, "value": values[0] })
        } else {
            json!({ "contextName": name, "operator": op, "values": values })
        }
    };
    let default = |c: Value| json!({ "name": "default", "parameters": {}, "constraints": [c] });
    let mut features = vec![json!({
        "name": GRADUAL, "type": "release", "enabled": true, "project": "default",
        "strategies": [
            default(constraint("plan", "IN", &["enterprise"])),
            default(constraint("tenant", "IN", &["internal", "staff", "qa-tenant"])),
            default(constraint("seats", "NUM_GT", &["1000"])),
            default(constraint("clientVersion", "SEMVER_LT", &["2.0.0"])),
            {
                "name": "flexibleRollout",
                "parameters": { "rollout": "50", "stickiness": "tenant", "groupId": GRADUAL },
                "constraints": [
                    constraint("cell", "STR_STARTS_WITH", &["eu-"]),
                    constraint("plan", "IN", &["pro", "business"]),
                ],
            },
        ],
    })];
    features.extend((0..99).map(|i| {
        json!({ "name": format!("feature-{i:03}"), "type": "release", "enabled": true, "project": "default",
                "strategies": [{ "name": "flexibleRollout", "parameters": { "rollout": "25", "stickiness": "tenant", "groupId": format!("feature-{i:03}") } }] })
    }));
    serde_json::from_value(json!({ "version": 2, "features": features }))
        .expect("the unleash features load")
}

fn unleash_context(tenant: &str, plan: &str, cell: &str) -> Context {
    let properties: HashMap<String, String> = [
        ("tenant", tenant),
        ("plan", plan),
        ("seats", "250"),
        ("clientVersion", "2.3.1"),
        ("cell", cell),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Context {
        app_name: Some("rampart-gateway".into()),
        environment: Some("production".into()),
        properties: Some(properties),
        ..Context::default()
    }
}

/// The rate-limit policy of a REST API area: searches have their own.
fn rate_limit(area: &str) -> &'static str {
    if area == "search" {
        "search-rate-limit"
    } else {
        "api-rate-limit"
    }
}

fn gateway(cell: &str) -> GatewayIdentity {
    GatewayIdentity {
        id: format!("gw-{cell}-a"),
        cell: cell.into(),
        version: semver::Version::new(0, 1, 0),
    }
}

/// The headers of a typical browser or API request, with the tenant and plan mid-list.
fn request_headers<'a>(
    host: &'a str,
    tenant: &'a str,
    plan: &'a str,
    api_key: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut h = vec![
        ("host", host),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
        ),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate, br"),
        ("x-tenant-id", tenant),
        ("x-plan", plan),
        ("x-request-id", "6f1c2a9e-8d4b-4c3a-9f7e-2b1d0c9a8e7f"),
        (
            "cookie",
            "JSESSIONID=0123456789ABCDEF; atlassian.xsrf.token=abcd",
        ),
    ];
    if let Some(k) = api_key {
        h.push(("x-api-key", k));
    }
    h
}

const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
const ATTRS: &[(&str, &str)] = &[("seats", "250"), ("client_version", "2.3.1")];
/// The path of the flag benches' request.
const ISSUE_PATH: &str = "/rest/api/2/issue/ENG-1";

/// The head of a `method host path` request from [`CLIENT_IP`] with [`ATTRS`], to `gateway`.
fn request_meta<'a>(
    method: &'a str,
    host: &'a str,
    path: &'a str,
    headers: &'a HeaderList<'a>,
    gateway: &'a GatewayIdentity,
) -> RequestMeta<'a> {
    RequestMeta {
        method,
        host,
        path,
        client_ip: CLIENT_IP,
        headers,
        tenant: None,
        now_ms: 0,
        attributes: ATTRS,
        gateway,
    }
}

/// The baseline decision on `meta`, which must take `route` and be allowed.
fn allowed<'a>(evaluator: &'a Evaluator, meta: &'a RequestMeta<'a>, route: &str) -> Decision<'a> {
    let d = evaluator.evaluate(meta, Cohort::Baseline);
    assert_eq!(d.route.map(|r| r.id), Some(route));
    assert_eq!(d.outcome, Outcome::Allow);
    d
}

fn decision(c: &mut Criterion) {
    let cfg = config();
    let evaluator = Evaluator::compile(&Snapshot::new(cfg.clone(), vec![]))
        .expect("the bench snapshot compiles");
    // A second evaluator with one active rollout, so cohort assignment does its real work.
    let mut candidate = cfg.clone();
    candidate.flags[0].default = json!(300);
    let rollout = Rollout {
        id: "raise-api-rate".into(),
        salt: "raise-api-rate-1".into(),
        sticky_key: rampart_model::Attribute::Tenant,
        scope: StageScope {
            cells: vec!["eu-west-1".into()],
            gateways: vec![],
            percent: 10.0,
        },
        shadow: false,
        candidate,
    };
    let with_rollout = Evaluator::compile(&Snapshot::new(cfg, vec![rollout]))
        .expect("the rollout snapshot compiles");

    let gw = gateway("eu-west-1");
    let host = "jira.example.com";
    let headers = request_headers(host, "globex", "pro", None);
    let headers = HeaderList(&headers);
    let meta = request_meta(
        "GET",
        host,
        "/rest/agile/1.0/board/42/sprint",
        &headers,
        &gw,
    );
    let d = allowed(&evaluator, &meta, "jira-agile");
    assert_eq!(d.route.map(|r| r.index), Some(40));
    assert_eq!(d.rate_limits.len(), 1);
    assert!(
        matches!(d.rate_limits[0].per_second, 200 | 400),
        "{:?}",
        d.rate_limits
    );
    assert_eq!(
        d.flags.len(),
        2,
        "jira-maintenance and api-rate-per-second: {:?}",
        d.flags
    );
    assert_eq!(d.request_headers.len(), 2);

    let bb_host = "bitbucket.example.com";
    let bb_headers = request_headers(bb_host, "initech", "pro", Some(API_KEY));
    let bb_headers = HeaderList(&bb_headers);
    let bb_path = "/rest/api/1.0/pull-requests/1234/merge";
    let bb_meta = request_meta("POST", bb_host, bb_path, &bb_headers, &gw);
    let d = allowed(&evaluator, &bb_meta, "bitbucket-rest-pull-requests");
    assert_eq!(
        d.tenant,
        Some("acme"),
        "the API key's tenant overrides the header"
    );

    let wiki_host = "acme.atlassian-wiki.example.com";
    let wiki_headers = request_headers(wiki_host, "acme", "pro", None);
    let wiki_headers = HeaderList(&wiki_headers);
    let wiki_path = "/wiki/spaces/ENG/pages/123456";
    let wiki_meta = request_meta("GET", wiki_host, wiki_path, &wiki_headers, &gw);
    allowed(&evaluator, &wiki_meta, "confluence-web");

    let mut g = c.benchmark_group("decision");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("evaluate", |b| {
        b.iter(|| evaluator.evaluate(black_box(&meta), Cohort::Baseline))
    });
    g.bench_function("cohort+evaluate/no_rollout", |b| {
        b.iter(|| {
            let meta = black_box(&meta);
            evaluator.evaluate(meta, evaluator.cohort(meta))
        })
    });
    g.bench_function("cohort+evaluate/one_rollout", |b| {
        b.iter(|| {
            let meta = black_box(&meta);
            with_rollout.evaluate(meta, with_rollout.cohort(meta))
        })
    });
    g.bench_function("evaluate/api_key", |b| {
        b.iter(|| evaluator.evaluate(black_box(&bb_meta), Cohort::Baseline))
    });
    g.bench_function("evaluate/wildcard_host", |b| {
        b.iter(|| evaluator.evaluate(black_box(&wiki_meta), Cohort::Baseline))
    });
    g.finish();
}

fn flag_eval(c: &mut Criterion) {
    let evaluator =
        Evaluator::compile(&Snapshot::new(config(), vec![])).expect("the bench snapshot compiles");
    let engine = EngineState::default();
    if let Some(warnings) = engine.apply_client_features(unleash_features()) {
        panic!("yggdrasil refused the features: {warnings:?}");
    }

    // Both engines: ~50% of tenants enabled, the same 4 rules missing, rule 1 matching.
    let gw = gateway("eu-west-1");
    let us = gateway("us-east-1");
    let id = evaluator
        .flag_id(Cohort::Baseline, GRADUAL)
        .expect("the flag exists");
    let rampart = |tenant: &str, plan: &str, gw: &GatewayIdentity| {
        let headers = request_headers("jira.example.com", tenant, plan, None);
        let headers = HeaderList(&headers);
        let meta = request_meta("GET", "jira.example.com", ISSUE_PATH, &headers, gw);
        evaluator
            .flag_value(Cohort::Baseline, id, &meta)
            .as_bool()
            .expect("a bool flag")
    };
    let unleash = |tenant: &str, plan: &str, cell: &str| {
        engine.is_enabled(GRADUAL, &unleash_context(tenant, plan, cell), &None)
    };
    const SAMPLE: usize = 4000;
    let (mut ours, mut theirs, mut both) = (0, 0, 0);
    for i in 0..SAMPLE {
        let tenant = format!("tenant-{i}");
        let (a, b) = (
            rampart(&tenant, "pro", &gw),
            unleash(&tenant, "pro", "eu-west-1"),
        );
        ours += usize::from(a);
        theirs += usize::from(b);
        both += usize::from(a && b);
    }
    println!(
        "flag {GRADUAL} over {SAMPLE} tenants: rampart {:.1}% enabled, yggdrasil {:.1}%, both {:.1}%",
        ours as f64 * 100.0 / SAMPLE as f64,
        theirs as f64 * 100.0 / SAMPLE as f64,
        both as f64 * 100.0 / SAMPLE as f64,
    );
    for n in [ours, theirs] {
        assert!(
            (SAMPLE * 45 / 100..=SAMPLE * 55 / 100).contains(&n),
            "{n} of {SAMPLE} enabled"
        );
    }
    assert!(
        rampart("tenant-1", "enterprise", &us) && unleash("tenant-1", "enterprise", "us-east-1")
    );
    assert!(!rampart("tenant-1", "pro", &us) && !unleash("tenant-1", "pro", "us-east-1"));
    assert!(!rampart("tenant-1", "free", &gw) && !unleash("tenant-1", "free", "eu-west-1"));

    let headers = request_headers("jira.example.com", "globex", "pro", None);
    let headers = HeaderList(&headers);
    let meta = request_meta("GET", "jira.example.com", ISSUE_PATH, &headers, &gw);
    let ctx = unleash_context("globex", "pro", "eu-west-1");
    // The engines hash differently, so one tenant may be inside one rollout and not the other;
    // both paths do the same work either way (the bucket is computed last).
    println!(
        "benchmarked request (tenant globex): rampart {}, yggdrasil {}",
        evaluator.flag_value(Cohort::Baseline, id, &meta),
        engine.is_enabled(GRADUAL, &ctx, &None)
    );

    let mut g = c.benchmark_group("flag");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("rampart/by_id", |b| {
        b.iter(|| evaluator.flag_value(Cohort::Baseline, black_box(id), black_box(&meta)))
    });
    g.bench_function("rampart/by_name", |b| {
        b.iter(|| {
            let id = evaluator
                .flag_id(Cohort::Baseline, black_box(GRADUAL))
                .expect("the flag exists");
            evaluator.flag_value(Cohort::Baseline, id, black_box(&meta))
        })
    });
    g.bench_function("yggdrasil/is_enabled", |b| {
        b.iter(|| engine.is_enabled(black_box(GRADUAL), black_box(&ctx), &None))
    });
    g.finish();
}

criterion_group!(benches, decision, flag_eval);
criterion_main!(benches);
