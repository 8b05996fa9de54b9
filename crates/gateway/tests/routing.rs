//! Routing and load balancing through an in-process gateway: host, path, method and header
//! matching, round robin, consistent hashing, least loaded, and health checks that eject and
//! restore endpoints.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_path_method_and_header() {
    let names = ["canary", "write", "read", "exact", "wild"];
    let (ups, gw) = upstreams_gateway(
        &names,
        r#"
upstreams:
  - { name: canary, endpoints: ["@canary@"] }
  - { name: write, endpoints: ["@write@"] }
  - { name: read, endpoints: ["@read@"] }
  - { name: exact, endpoints: ["@exact@"] }
  - { name: wild, endpoints: ["@wild@"] }
routes:
  - id: api-canary
    product: app
    # Method constraints outrank header matches in precedence; the canary is meant to win.
    priority: 1
    match:
      host: api.example.com
      path: { prefix: /v1/ }
      headers:
        - { name: x-canary, value: { exact: "1" } }
    upstream: canary
  - id: api-write
    product: app
    match: { host: api.example.com, path: { prefix: /v1/ }, methods: [POST, PUT] }
    upstream: write
  - id: api-read
    product: app
    match: { host: api.example.com, path: { prefix: /v1/ }, methods: [GET] }
    upstream: read
  - id: api-exact
    product: app
    match: { host: api.example.com, path: { exact: /status } }
    upstream: exact
  - id: wildcard
    product: app
    match: { host: "*.example.com", path: { prefix: / } }
    upstream: wild
"#,
    )
    .await;
    let c = reqwest::Client::new();
    let api = "api.example.com";
    // (method, host, path, extra headers, the upstream that must serve it)
    type Case<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        ("GET", api, "/v1/items?page=2", &[], "read"),
        // Hosts are matched without the port, case-insensitively.
        ("GET", "API.Example.COM:8080", "/v1/items", &[], "read"),
        ("POST", api, "/v1/items", &[], "write"),
        ("PUT", api, "/v1/items/7", &[], "write"),
        // The header route wins by its priority, though api-read constrains the method.
        ("GET", api, "/v1/items", &[("x-canary", "1")], "canary"),
        ("POST", api, "/v1/items", &[("x-canary", "1")], "canary"),
        ("GET", api, "/v1/items", &[("x-canary", "2")], "read"),
        // No /v1/ route takes DELETE, so the wildcard does.
        ("DELETE", api, "/v1/items/7", &[], "wild"),
        ("GET", api, "/status", &[], "exact"),
        ("GET", api, "/status/more", &[], "wild"),
        ("GET", api, "/v1", &[], "wild"),
        ("GET", "www.example.com", "/v1/items", &[], "wild"),
        ("GET", "deep.sub.example.com", "/", &[], "wild"),
    ];
    for (method, host, path, headers, want) in cases {
        let got = served_by(&c, &gw, method, host, path, headers).await;
        assert_eq!(&got, want, "{method} {host}{path} {headers:?}");
    }
    // The upstream sees the path and query as sent.
    let r = fetch(&c, &gw, "/v1/items?page=2&q=a%20b", &[("host", api)]).await;
    assert_eq!(echo(r).await["uri"], "/v1/items?page=2&q=a%20b");

    let before: u64 = ups.values().map(Upstream::hits).sum();
    // `*.example.com` is for subdomains only; other hosts match nothing.
    for host in ["example.com", "other.org", "api.example.com.evil.org"] {
        let r = fetch(&c, &gw, "/v1/items", &[("host", host)]).await;
        assert_gateway_error(&r, 404, "no_route");
        let body = echo(r).await;
        assert_eq!(body["error"], "no_route", "{host}: {body}");
    }
    assert_eq!(ups.values().map(Upstream::hits).sum::<u64>(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancing_round_robin_consistent_hash_least_loaded() {
    let names = ["rr1", "rr2", "rr3", "h1", "h2", "h3", "ll1", "ll2"];
    let (ups, gw) = upstreams_gateway(
        &names,
        r#"
upstreams:
  - { name: rr, endpoints: ["@rr1@", "@rr2@", "@rr3@"], load_balancing: round_robin }
  - name: hash
    endpoints: ["@h1@", "@h2@", "@h3@"]
    load_balancing: { consistent_hash: { key: { header: x-user } } }
  - { name: ll, endpoints: ["@ll1@", "@ll2@"], load_balancing: least_loaded }
routes:
  - { id: rr, product: app, match: { path: { prefix: /rr/ } }, upstream: rr }
  - { id: hash, product: app, match: { path: { prefix: /hash/ } }, upstream: hash }
  - { id: ll, product: app, match: { path: { prefix: /ll/ } }, upstream: ll }
"#,
    )
    .await;
    let c = reqwest::Client::new();

    let mut spread: HashMap<String, u32> = HashMap::new();
    for _ in 0..30 {
        *spread
            .entry(served_by(&c, &gw, "GET", "x", "/rr/", &[]).await)
            .or_default() += 1;
    }
    assert_eq!(spread.len(), 3, "{spread:?}");
    assert!(spread.values().all(|&n| n >= 5), "{spread:?}");

    let mut owners = HashSet::new();
    for user in 0..20 {
        let user = format!("user-{user}");
        let first = served_by(&c, &gw, "GET", "x", "/hash/", &[("x-user", &user)]).await;
        for _ in 0..3 {
            let again = served_by(&c, &gw, "GET", "x", "/hash/", &[("x-user", &user)]).await;
            assert_eq!(again, first, "{user} moved");
        }
        owners.insert(first);
    }
    assert!(owners.len() >= 2, "20 users all on {owners:?}");

    // A slow request keeps one endpoint busy; quick ones go to the other meanwhile.
    let slow = {
        let (c, url) = (c.clone(), gw.url("/ll/slow"));
        tokio::spawn(async move {
            c.get(url)
                .header("x-test-delay-ms", "2000")
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let (ll1, ll2) = (&ups["ll1"], &ups["ll2"]);
    eventually(5, "the slow request reaches an endpoint", async || {
        ll1.hits() + ll2.hits() == 1
    })
    .await;
    let (busy, idle) = if ll1.hits() == 1 {
        (ll1, ll2)
    } else {
        (ll2, ll1)
    };
    for _ in 0..10 {
        served_by(&c, &gw, "GET", "x", "/ll/quick", &[]).await;
    }
    assert!(!slow.is_finished(), "the slow request ended too early");
    assert!(
        busy.hits() <= 3 && idle.hits() >= 8,
        "busy {} got {}, idle {} got {}",
        busy.name,
        busy.hits(),
        idle.name,
        idle.hits()
    );
    assert_eq!(slow.await.unwrap(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_eject_and_restore_endpoints() {
    let (ups, gw) = upstreams_gateway(
        &["a", "b"],
        r#"
upstreams:
  - name: pool
    endpoints: ["@a@", "@b@"]
    health_check: { path: /healthz, interval_ms: 100, timeout_ms: 50, unhealthy_threshold: 2, healthy_threshold: 2 }
routes:
  - { id: all, product: app, match: { path: { prefix: / } }, upstream: pool }
"#,
    )
    .await;
    let (a, b) = (&ups["a"], &ups["b"]);
    let c = reqwest::Client::new();
    let b_addr = b.addr.to_string();
    let healthy = async |addr: &str| {
        metric_sum(
            &gw.metrics().await,
            "rampart_gateway_upstream_endpoint_healthy",
            &[("upstream", "pool"), ("endpoint", addr)],
        )
    };
    let burst = async |n: usize| {
        for _ in 0..n {
            served_by(&c, &gw, "GET", "x", "/x", &[]).await;
        }
    };

    burst(10).await;
    assert!(a.hits() > 0 && b.hits() > 0);
    assert_eq!(healthy(&b_addr).await, Some(1.0));

    b.healthy.store(false, Relaxed);
    eventually(5, "b is ejected", async || {
        healthy(&b_addr).await == Some(0.0)
    })
    .await;
    let (a0, b0) = (a.hits(), b.hits());
    burst(20).await;
    assert_eq!(b.hits(), b0, "an ejected endpoint gets no traffic");
    assert_eq!(a.hits(), a0 + 20);
    assert_eq!(healthy(&a.addr.to_string()).await, Some(1.0));

    // With every endpoint ejected, the gateway answers itself.
    a.healthy.store(false, Relaxed);
    eventually(5, "a is ejected", async || {
        healthy(&a.addr.to_string()).await == Some(0.0)
    })
    .await;
    let r = fetch(&c, &gw, "/x", &[]).await;
    assert_gateway_error(&r, 503, "no_healthy_upstream");
    assert_eq!(a.hits(), a0 + 20);

    a.healthy.store(true, Relaxed);
    b.healthy.store(true, Relaxed);
    eventually(5, "b is healthy again", async || {
        healthy(&b_addr).await == Some(1.0)
    })
    .await;
    let b1 = b.hits();
    burst(10).await;
    assert!(b.hits() > b1, "a restored endpoint gets traffic again");
}
