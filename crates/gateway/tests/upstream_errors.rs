//! Upstream failures through an in-process gateway: timeouts and retries, upstream errors
//! passed through, and the gateway's own errors marked and counted.

mod support;

use std::time::{Duration, Instant};

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_retries() {
    let (ups, gw) = upstreams_gateway(
        &["slow", "flaky"],
        r#"
upstreams:
  - { name: slow, endpoints: ["@slow@"], retries: { attempts: 0 } }
  - { name: flaky, endpoints: ["@flaky@"], retries: { attempts: 2, retry_on: [5xx] } }
policies:
  - id: short-timeout
    timeout_retry: { timeout_ms: 300 }
  - id: more-retries
    timeout_retry: { retry_attempts: 4 }
routes:
  - { id: slow, product: app, match: { path: { prefix: /slow/ } }, upstream: slow, policies: [short-timeout] }
  - { id: flaky-more, product: app, match: { path: { prefix: /flaky/more/ } }, upstream: flaky, policies: [more-retries] }
  - { id: flaky, product: app, match: { path: { prefix: /flaky/ } }, upstream: flaky }
"#,
    )
    .await;
    let (slow, flaky) = (&ups["slow"], &ups["flaky"]);
    let c = reqwest::Client::new();

    let t = Instant::now();
    let r = fetch(&c, &gw, "/slow/x", &[("x-test-delay-ms", "3000")]).await;
    let took = t.elapsed();
    assert_gateway_error(&r, 504, "upstream_timeout");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(2000),
        "the route's 300 ms timeout took {took:?}"
    );
    let r = fetch(&c, &gw, "/slow/x", &[("x-test-delay-ms", "50")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(slow.hits(), 2);

    // (method, path, body, upstream hits expected): retries only for idempotent requests
    // without a body; the route's retry_attempts overrides the upstream's.
    let cases: &[(&str, &str, Option<&str>, u64)] = &[
        ("GET", "/flaky/x", None, 3),
        ("GET", "/flaky/more/x", None, 5),
        ("PUT", "/flaky/x", None, 3),
        ("POST", "/flaky/x", Some("payload"), 1),
        ("POST", "/flaky/x", None, 1),
        ("PUT", "/flaky/x", Some("payload"), 1),
    ];
    for (method, path, body, want) in cases {
        let before = flaky.hits();
        let mut req = c
            .request(method.parse().unwrap(), gw.url(path))
            .header("x-test-status", "503");
        if let Some(b) = body {
            req = req.body(*b);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 503);
        assert!(
            r.headers().get("x-rampart-origin").is_none(),
            "the last upstream answer is passed through"
        );
        assert_eq!(
            flaky.hits() - before,
            *want,
            "{method} {path} with body {body:?}"
        );
    }
    let before = flaky.hits();
    let r = fetch(&c, &gw, "/flaky/x", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(flaky.hits() - before, 1, "a success is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_pass_through_and_gateway_errors_are_marked() {
    let live = upstream("live").await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let fleet = fleet_at(
        r#"
upstreams:
  - { name: live, endpoints: ["@live"] }
  - { name: dead, endpoints: ["@dead"], timeouts: { connect_ms: 500, read_ms: 2000, total_ms: 3000 } }
  - { name: mixed, endpoints: ["@dead", "@live"] }
routes:
  - { id: live, product: app, match: { path: { prefix: /live/ } }, upstream: live }
  - { id: dead, product: app, match: { path: { prefix: /dead/ } }, upstream: dead }
  - { id: mixed, product: app, match: { path: { prefix: /mixed/ } }, upstream: mixed }
"#,
        &[("@live", live.addr), ("@dead", dead)],
    );
    let gw = boot(&fleet).await;
    let c = reqwest::Client::new();

    let r = fetch(&c, &gw, "/live/x", &[("x-test-status", "500")]).await;
    assert_eq!(r.status(), 500);
    assert!(r.headers().get("x-rampart-origin").is_none(), "{r:?}");
    assert!(r.headers().get("x-rampart-error").is_none(), "{r:?}");
    assert_eq!(echo(r).await["upstream"], "live");
    assert_eq!(live.hits(), 1, "5xx is not retried by default");

    let r = fetch(&c, &gw, "/dead/x", &[]).await;
    assert_gateway_error(&r, 502, "upstream_connect_error");
    assert_eq!(echo(r).await["error"], "upstream_connect_error");
    // By default a connect error is retried once, on another endpoint when there is one.
    for _ in 0..4 {
        let r = fetch(&c, &gw, "/mixed/x", &[]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(echo(r).await["upstream"], "live");
    }

    let m = gw.metrics().await;
    let requests = "rampart_gateway_requests_total";
    let up5 = [("route", "live"), ("class", "5xx"), ("origin", "upstream")];
    assert_eq!(metric_sum(&m, requests, &up5), Some(1.0), "{m}");
    let gw5 = [("route", "dead"), ("class", "5xx"), ("origin", "gateway")];
    assert_eq!(metric_sum(&m, requests, &gw5), Some(1.0), "{m}");
    assert_eq!(
        metric_sum(&m, requests, &[("route", "dead"), ("origin", "upstream")]),
        None
    );
    let errors = "rampart_gateway_gateway_errors_total";
    let connect = [("reason", "upstream_connect_error")];
    assert!(
        metric_sum(&m, errors, &connect).is_some_and(|n| n >= 1.0),
        "{m}"
    );
}
