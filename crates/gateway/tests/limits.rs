//! Limits of the gateway's listeners and routes, in process: request bodies per route (by
//! Content-Length and streamed), request heads, and the admin listener (bearer token,
//! redacted `/config`, allow-listed `/samples`).

mod support;

use std::time::Duration;

use bytes::Bytes;
use support::*;

const KEY: &str = "proxy-test-key";

fn limits_fleet(up: std::net::SocketAddr) -> String {
    app_fleet(
        up,
        r#"
settings:
  requests: { max_body_bytes: 1000 }
policies:
  - id: key-auth
    auth: { api_key: { keys: [{ id: good, sha256: "@good-key@" }] } }
routes:
  - { id: small, product: app, match: { path: { prefix: /small } }, upstream: app, max_body_bytes: 100 }
  - { id: keyed, product: app, match: { path: { prefix: /keyed } }, upstream: app, policies: [key-auth] }
  - { id: big, product: app, match: { path: { prefix: / } }, upstream: app }
"#,
    )
}

fn streamed(chunks: usize, size: usize) -> reqwest::Body {
    let parts = (0..chunks).map(move |_| {
        Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from(vec![b'x'; size])))
    });
    reqwest::Body::wrap(http_body_util::StreamBody::new(futures_util::stream::iter(
        parts,
    )))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limits_per_route_by_content_length_and_as_streamed() {
    let up = body_upstream("app").await;
    let gw = boot(&limits_fleet(up.addr)).await;
    let c = reqwest::Client::new();
    let post = |path: &str, body: reqwest::Body| c.post(gw.url(path)).body(body).send();

    // Content-Length, checked before anything is forwarded.
    let r = post("/small", vec![b'x'; 100].into()).await.unwrap();
    assert_eq!(r.status(), 200);
    let before = up.hits();
    let r = post("/small", vec![b'x'; 101].into()).await.unwrap();
    assert_gateway_error(&r, 413, "payload_too_large");
    assert_eq!(
        up.hits(),
        before,
        "a declared body over the limit reached the upstream"
    );
    // The environment's default for routes without their own.
    assert_eq!(
        post("/big", vec![b'x'; 1000].into())
            .await
            .unwrap()
            .status(),
        200
    );
    let r = post("/big", vec![b'x'; 1001].into()).await.unwrap();
    assert_gateway_error(&r, 413, "payload_too_large");

    // Chunked: counted as it streams.
    let r = post("/small", streamed(4, 25)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(echo(r).await["received"], 100);
    let r = post("/small", streamed(10, 25)).await.unwrap();
    assert_gateway_error(&r, 413, "payload_too_large");
    let r = post("/big", streamed(20, 100)).await.unwrap();
    assert_gateway_error(&r, 413, "payload_too_large");

    // HTTP/2 without a length, the same.
    let r = h2c()
        .post(gw.url("/small"))
        .body(streamed(10, 25))
        .send()
        .await
        .unwrap();
    assert_gateway_error(&r, 413, "payload_too_large");
    // The gateway still serves.
    assert_eq!(post("/small", "ok".into()).await.unwrap().status(), 200);
    // A body cut for its size is the client's doing: no upstream failure is counted (the
    // metric names failures to reach an upstream; a client could otherwise inflate it).
    let metrics = gw.metrics().await;
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("rampart_gateway_gateway_errors_total{") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_heads_over_the_limits_get_431() {
    let up = body_upstream("app").await;
    let gw = boot_with(&limits_fleet(up.addr), |_, o| {
        o.limits.max_header_bytes = 8192;
        o.limits.max_headers = 20;
    })
    .await;
    let ok = raw_http1(&gw, "GET /x HTTP/1.1\r\nHost: app\r\n").await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let many: String = (0..30).map(|i| format!("x-h{i}: v\r\n")).collect();
    let r = raw_http1(&gw, &format!("GET /x HTTP/1.1\r\nHost: app\r\n{many}")).await;
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    let huge = "v".repeat(10_000);
    let r = raw_http1(
        &gw,
        &format!("GET /x HTTP/1.1\r\nHost: app\r\nx-big: {huge}\r\n"),
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    // HTTP/2: a header list over the limit is refused too.
    let up2 = body_upstream("app").await;
    let gw2 = boot_with(&limits_fleet(up2.addr), |_, o| {
        o.limits.h2_max_header_list_bytes = 4096;
    })
    .await;
    let r = h2c()
        .get(gw2.url("/x"))
        .header("x-big", "v".repeat(8000))
        .send()
        .await;
    assert!(
        r.as_ref().map_or(true, |r| r.status() == 431),
        "an h2 header list over the limit was served: {r:?}"
    );
    assert_eq!(h2c().get(gw2.url("/x")).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_wants_its_token_and_shows_no_credential() {
    let up = body_upstream("app").await;
    let token = "an-admin-token-long-enough";
    let gw = boot_with(&limits_fleet(up.addr), |_, o| {
        o.admin_token = Some(rampart_gateway::admin::AdminToken::new(token).unwrap());
        o.sample_every = 1;
    })
    .await;
    let c = reqwest::Client::new();
    let admin = |path: &str, auth: Option<&str>| {
        let mut r = c.get(gw.admin_url(path));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    // Probes stay open; everything else wants the token.
    assert_eq!(admin("/healthz", None).await.unwrap().status(), 200);
    assert_eq!(admin("/readyz", None).await.unwrap().status(), 200);
    let bearer = format!("Bearer {token}");
    for path in ["/metrics", "/cohorts", "/samples", "/config"] {
        for wrong in [
            None,
            Some("Bearer "),
            Some("Bearer an-admin-token-long-enoug"),
            Some("bearer an-admin-token-long-enough"),
            Some("Basic YWRtaW46YWRtaW4="),
            Some("an-admin-token-long-enough"),
        ] {
            let r = admin(path, wrong).await.unwrap();
            assert_eq!(r.status(), 401, "{path} with {wrong:?}");
        }
        assert_eq!(
            admin(path, Some(&bearer)).await.unwrap().status(),
            200,
            "{path}"
        );
    }

    // A request with credentials and an unlisted header, kept as a sample.
    let r = c
        .get(gw.url("/keyed/x"))
        .header("x-api-key", KEY)
        .header("authorization", "Bearer user-secret-token")
        .header("cookie", "session=cookie-secret")
        .header("x-internal-note", "not-on-the-list")
        .header("user-agent", "limits-test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let samples = admin("/samples", Some(&bearer))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let config = admin("/config", Some(&bearer))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (what, text) in [("/samples", &samples), ("/config", &config)] {
        for secret in [
            KEY,
            GOOD_KEY_SHA,
            &GOOD_KEY_SHA[..16],
            "user-secret-token",
            "cookie-secret",
            "not-on-the-list",
        ] {
            assert!(!text.contains(secret), "{what} shows {secret}: {text}");
        }
    }
    assert!(samples.contains("limits-test"), "{samples}");
    assert!(
        samples.contains(r#"["x-api-key","[redacted]"]"#),
        "{samples}"
    );
    assert!(config.contains(r#""sha256":"[redacted]""#), "{config}");
    let metrics = admin("/metrics", Some(&bearer))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains(GOOD_KEY_SHA) && !metrics.contains(KEY));
}

#[tokio::test]
async fn a_non_loopback_admin_listener_needs_a_token() {
    // 192.0.2.1 (TEST-NET-1) is not an address of this host: were the check ever to let it
    // through, binding would fail rather than expose anything, and the error would not name
    // the token.
    let dir = tempfile::tempdir().unwrap();
    let mut opts = rampart_gateway::testing::options(&dir.path().join("gw"));
    opts.admin = "192.0.2.1:9".parse().unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        rampart_gateway::run(opts, rx, |_, _, _| {}),
    )
    .await
    .expect("refused at once")
    .unwrap_err();
    assert!(err.to_string().contains("admin token"), "{err}");
}
