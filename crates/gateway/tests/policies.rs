//! Every policy kind through an in-process gateway: access by CIDR and tenant, API keys and
//! header edits, rate limits, static responses.

mod support;

use std::time::{Duration, Instant};

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_policies_by_cidr_and_tenant() {
    // The test client stands in for a trusted proxy that names the tenant.
    let (up, gw) = app_gateway(
        r#"
settings: { trusted_proxies: ["127.0.0.0/8", "::1/128"], tenant: { from_trusted_proxy: true } }
policies:
  - id: deny-loopback
    access: { default: allow, rules: [{ action: deny, cidrs: ["127.0.0.0/8"] }] }
  - id: allow-loopback
    access: { default: deny, rules: [{ action: allow, cidrs: ["127.0.0.0/8", "::1/128"] }] }
  - id: office-only
    access: { default: deny, deny_status: 404, rules: [{ action: allow, cidrs: ["10.0.0.0/8"] }] }
  - id: block-tenants
    access: { default: allow, rules: [{ action: deny, tenants: [banned-corp] }] }
  - id: vip-first
    access:
      default: allow
      rules:
        - { action: allow, tenants: [vip] }
        - { action: deny, cidrs: ["127.0.0.0/8"] }
routes:
  - { id: denied, product: app, match: { path: { prefix: /denied/ } }, upstream: app, policies: [deny-loopback] }
  - { id: allowed, product: app, match: { path: { prefix: /allowed/ } }, upstream: app, policies: [allow-loopback] }
  - { id: office, product: app, match: { path: { prefix: /office/ } }, upstream: app, policies: [office-only] }
  - { id: tenants, product: app, match: { path: { prefix: /tenants/ } }, upstream: app, policies: [block-tenants] }
  - { id: ordered, product: app, match: { path: { prefix: /ordered/ } }, upstream: app, policies: [vip-first] }
"#,
    )
    .await;
    let c = reqwest::Client::new();
    let get = |path: &str, tenant: Option<&str>| {
        let mut req = c.get(gw.url(path));
        if let Some(t) = tenant {
            req = req.header("x-tenant-id", t);
        }
        req.send()
    };

    let r = get("/denied/x", None).await.unwrap();
    assert_gateway_error(&r, 403, "access_denied");
    assert_eq!(echo(r).await["policy"], "deny-loopback");
    let r = get("/office/x", None).await.unwrap();
    assert_gateway_error(&r, 404, "access_denied");
    assert_eq!(echo(r).await["policy"], "office-only");
    let r = get("/tenants/x", Some("banned-corp")).await.unwrap();
    assert_gateway_error(&r, 403, "access_denied");
    assert_eq!(echo(r).await["policy"], "block-tenants");
    let r = get("/ordered/x", None).await.unwrap();
    assert_gateway_error(&r, 403, "access_denied");
    assert_eq!(up.hits(), 0, "denied requests never reach the upstream");

    for (path, tenant) in [
        ("/allowed/x", None),
        ("/tenants/x", Some("acme")),
        ("/tenants/x", None),
        // The first matching rule wins: the tenant allow precedes the CIDR deny.
        ("/ordered/x", Some("vip")),
    ] {
        let r = get(path, tenant).await.unwrap();
        assert_eq!(r.status(), 200, "{path} {tenant:?}");
        assert!(r.headers().get("x-rampart-origin").is_none());
        assert_eq!(echo(r).await["upstream"], "app");
    }
    assert_eq!(up.hits(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_auth_and_header_rules() {
    let (up, gw) = app_gateway(
        r#"
policies:
  - id: key-auth
    auth:
      api_key:
        header: x-api-key
        keys:
          - { id: good, sha256: "@good-key@", tenant: acme }
          - { id: banned, sha256: "@banned-key@", tenant: banned-corp }
  - id: no-banned
    access: { default: allow, rules: [{ action: deny, tenants: [banned-corp] }] }
  - id: edits
    headers:
      request:
        set:
          - { name: x-rampart-edge, value: "1" }
        remove: [x-debug]
      response:
        set:
          - { name: strict-transport-security, value: "max-age=31536000" }
          - { name: x-content-type-options, value: nosniff }
        remove: [server]
routes:
  - { id: api, product: app, match: { path: { prefix: /api/ } }, upstream: app, policies: [key-auth, no-banned, edits] }
"#,
    )
    .await;
    let c = reqwest::Client::new();
    let call = |key: Option<&str>, tenant: Option<&str>| {
        let mut req = c
            .get(gw.url("/api/issue"))
            .header("x-debug", "1")
            .header("x-rampart-edge", "spoofed")
            .header("x-keep", "yes");
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        if let Some(t) = tenant {
            req = req.header("x-tenant-id", t);
        }
        req.send()
    };

    let r = call(None, None).await.unwrap();
    assert_gateway_error(&r, 401, "missing_credentials");
    assert_eq!(echo(r).await["policy"], "key-auth");
    let r = call(Some("not-the-key"), None).await.unwrap();
    assert_gateway_error(&r, 401, "invalid_credentials");
    // The key's tenant replaces the header's: banned-corp's key is refused whatever it claims.
    let r = call(Some("banned-key"), Some("acme")).await.unwrap();
    assert_gateway_error(&r, 403, "access_denied");
    assert_eq!(echo(r).await["policy"], "no-banned");
    assert_eq!(up.hits(), 0);

    // ...and acme's key is admitted even when the header names a banned tenant.
    for tenant in [None, Some("banned-corp")] {
        let r = call(Some("proxy-test-key"), tenant).await.unwrap();
        assert_eq!(r.status(), 200, "{tenant:?}");
        let h = r.headers();
        assert!(h.get("x-rampart-origin").is_none());
        assert!(h.get("server").is_none(), "response remove: {h:?}");
        assert_eq!(h["strict-transport-security"], "max-age=31536000");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let seen = &echo(r).await["headers"];
        assert_eq!(seen["x-rampart-edge"], "1", "request set replaces: {seen}");
        assert!(seen.get("x-debug").is_none(), "request remove: {seen}");
        assert_eq!(seen["x-keep"], "yes", "other headers pass: {seen}");
    }
    assert_eq!(up.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_burst_then_429_then_refill() {
    // The test client stands in for a trusted proxy that names the tenant.
    let (up, gw) = app_gateway(
        r#"
settings: { trusted_proxies: ["127.0.0.0/8", "::1/128"], tenant: { from_trusted_proxy: true } }
policies:
  - id: per-client
    rate_limit: { per_second: 1, burst: 3, key: { header: x-client } }
  - id: per-tenant
    rate_limit: { per_second: 1, burst: 2, key: tenant }
routes:
  - { id: limited, product: app, match: { path: { prefix: /limited/ } }, upstream: app, policies: [per-client] }
  - { id: tenant-limited, product: app, match: { path: { prefix: /tenant/ } }, upstream: app, policies: [per-tenant] }
"#,
    )
    .await;
    let c = reqwest::Client::new();
    let call = |path: &str, k: &str, v: &str| c.get(gw.url(path)).header(k, v).send();

    for i in 0..3 {
        let r = call("/limited/x", "x-client", "a").await.unwrap();
        assert_eq!(r.status(), 200, "request {i} is within the burst");
    }
    let r = call("/limited/x", "x-client", "a").await.unwrap();
    assert_gateway_error(&r, 429, "rate_limited");
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(r.headers().get("x-ratelimit-scope").is_none());
    assert_eq!(echo(r).await["policy"], "per-client");
    // Buckets are per key.
    let r = call("/limited/x", "x-client", "b").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(up.hits(), 4, "refused requests never reach the upstream");

    // One token a second: client a gets through again after about a second, not before.
    let refused_at = Instant::now();
    let mut refusals = 0;
    eventually(5, "the bucket refills", async || {
        let r = call("/limited/x", "x-client", "a").await.unwrap();
        if r.status() == 429 {
            refusals += 1;
        }
        r.status() == 200
    })
    .await;
    assert!(
        refused_at.elapsed() > Duration::from_millis(300),
        "refilled after {:?}",
        refused_at.elapsed()
    );
    assert!(refusals > 0);

    for _ in 0..2 {
        let r = call("/tenant/x", "x-tenant-id", "acme").await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = call("/tenant/x", "x-tenant-id", "acme").await.unwrap();
    assert_gateway_error(&r, 429, "rate_limited");
    assert_eq!(r.headers()["x-ratelimit-scope"], "tenant");
    let r = call("/tenant/x", "x-tenant-id", "globex").await.unwrap();
    assert_eq!(r.status(), 200);

    let m = gw.metrics().await;
    let limited = metric_sum(&m, "rampart_gateway_rate_limited_total", &[]).unwrap();
    assert!(limited >= f64::from(2 + refusals), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_responses_never_reach_the_upstream() {
    let (up, gw) = app_gateway(
        r#"
policies:
  - id: stamp
    headers: { response: { set: [{ name: x-stamp, value: edge }] } }
  - id: robots
    static_response: { status: 200, body: "User-agent: *\nDisallow: /\n" }
  - id: maintenance
    static_response:
      status: 503
      body: '{"down": true}'
      content_type: application/json
      headers:
        - { name: retry-after, value: "300" }
        - { name: x-maintenance, value: "yes" }
routes:
  - { id: robots, product: app, match: { path: { exact: /robots.txt } }, upstream: app, policies: [robots] }
  - { id: maint, product: app, match: { path: { prefix: /maint/ } }, upstream: app, policies: [stamp, maintenance] }
"#,
    )
    .await;
    let c = reqwest::Client::new();

    let r = fetch(&c, &gw, "/robots.txt", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-rampart-origin"], "gateway");
    assert!(r.headers().get("x-rampart-error").is_none());
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.text().await.unwrap(), "User-agent: *\nDisallow: /\n");

    let r = c
        .post(gw.url("/maint/page"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let h = r.headers();
    assert_eq!(h["x-rampart-origin"], "gateway");
    assert!(h.get("x-rampart-error").is_none(), "{h:?}");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["retry-after"], "300");
    assert_eq!(h["x-maintenance"], "yes");
    assert_eq!(h["x-stamp"], "edge", "edits of earlier policies apply");
    assert_eq!(r.text().await.unwrap(), r#"{"down": true}"#);
    assert_eq!(up.hits(), 0);
}
