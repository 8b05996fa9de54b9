//! Proxy hygiene through an in-process gateway: hop-by-hop and forwarding headers, streamed
//! bodies, HTTP/2 (h2c and TLS with ALPN), and requests shaped to slip past a route's
//! policies (two Host headers, dot-segments) or to lose header lines.

mod support;

use http_body_util::BodyExt;
use serde_json::Value;
use support::*;

/// A route whose policies admit everything, next to one that requires a key; the upstream is
/// the body echo, which shows every field line of a repeated header.
async fn bug_fixture() -> (Upstream, Gateway) {
    let up = body_upstream("app").await;
    let fleet = app_fleet(
        up.addr,
        r#"
policies:
  - id: key-auth
    auth: { api_key: { keys: [{ id: good, sha256: "@good-key@" }] } }
routes:
  - { id: admin, product: app, match: { path: { prefix: /admin/ } }, upstream: app, policies: [key-auth] }
  - { id: public, product: app, match: { path: { prefix: /public/ } }, upstream: app }
"#,
    );
    (up, boot(&fleet).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_forwarded_headers_and_streaming_bodies() {
    let (echo_up, body_up) = (upstream("echo").await, body_upstream("bodies").await);
    let fleet = fleet_at(
        r#"
upstreams:
  - { name: echo, endpoints: ["@echo"] }
  - { name: bodies, endpoints: ["@bodies"] }
routes:
  - { id: bodies, product: app, match: { path: { prefix: /body/ } }, upstream: bodies }
  - { id: echo, product: app, match: { path: { prefix: / } }, upstream: echo }
"#,
        &[("@echo", echo_up.addr), ("@bodies", body_up.addr)],
    );
    let gw = boot(&fleet).await;

    // Raw HTTP/1.1, so the hop-by-hop headers reach the gateway exactly as written (with a
    // second Connection line, `close`, that raw_http1 adds).
    let raw = raw_http1(
        &gw,
        "GET /hop?a=1 HTTP/1.1\r\n\
         Host: hop.example.com\r\n\
         Connection: x-foo\r\n\
         X-Foo: secret\r\n\
         Keep-Alive: timeout=5\r\n\
         TE: trailers\r\n\
         Proxy-Connection: keep-alive\r\n\
         X-Keep: yes\r\n\
         X-Forwarded-For: 203.0.113.9\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let body = raw_echo(&raw);
    let seen = &body["headers"];
    for gone in ["x-foo", "keep-alive", "te", "proxy-connection"] {
        assert!(seen.get(gone).is_none(), "{gone} was forwarded: {seen}");
    }
    if let Some(conn) = seen.get("connection") {
        assert!(!conn.as_str().unwrap().contains("x-foo"), "{seen}");
    }
    assert_eq!(seen["x-keep"], "yes");
    assert_eq!(seen["host"], "hop.example.com");
    // No trusted proxies: the client's own X-Forwarded-For is replaced, not extended.
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], "hop.example.com");
    assert_eq!(body["uri"], "/hop?a=1");

    let c = reqwest::Client::new();
    let seen = echo(fetch(&c, &gw, "/plain", &[]).await).await["headers"].clone();
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1", "{seen}");

    // Hop-by-hop response headers of the upstream (which it does send)...
    let direct = c
        .get(format!("http://{}/hop", body_up.addr))
        .header("x-test-hop-response", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(direct.headers()["x-upstream-hop"], "secret");
    assert_eq!(direct.headers()["keep-alive"], "timeout=5");
    // ...stay between it and the gateway.
    let r = fetch(&c, &gw, "/body/hop", &[("x-test-hop-response", "1")]).await;
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["x-upstream-e2e"], "kept");
    assert!(h.get("x-upstream-hop").is_none(), "{h:?}");
    assert!(h.get("keep-alive").is_none(), "{h:?}");

    // A 5 MiB upload streamed in chunks (no content-length)...
    const UP: u64 = 5 * 1024 * 1024;
    let raw_client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<PatternBody>();
    let req = hyper::Request::post(gw.url("/body/upload"))
        .body(pattern_body(UP))
        .unwrap();
    let resp = raw_client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let got: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(got["received"], UP);
    assert_eq!(got["fnv"], pattern_hash(UP).to_string());
    assert_eq!(got["headers"]["transfer-encoding"], "chunked", "{got}");
    // ...and one with a content-length.
    let upload: Vec<u8> = (0..UP).map(pattern_byte).collect();
    let got = echo(
        c.post(gw.url("/body/upload"))
            .body(upload)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got["received"], UP);
    assert_eq!(got["fnv"], pattern_hash(UP).to_string());
    assert_eq!(got["headers"]["content-length"], UP.to_string());

    // An 8 MiB download, streamed by the upstream in chunks, arrives intact.
    const DOWN: u64 = 8 * 1024 * 1024;
    let r = fetch(
        &c,
        &gw,
        "/body/download",
        &[("x-test-response-bytes", &DOWN.to_string())],
    )
    .await;
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, DOWN);
    assert_eq!(fnv1a(FNV_OFFSET, &bytes), pattern_hash(DOWN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_cleartext_and_over_tls() {
    let up = upstream("app").await;
    let all = "routes: [{ id: all, product: app, match: { path: { prefix: / } }, upstream: app }]";
    let gw = boot_with(&app_fleet(up.addr, all), |dir, opts| {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let (cert_pem, key_pem) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
        std::fs::write(&key_pem, cert.key_pair.serialize_pem()).unwrap();
        opts.tls = Some(("127.0.0.1:0".parse().unwrap(), cert_pem, key_pem));
    })
    .await;
    let tls = gw.tls.expect("the gateway reports its TLS address");

    // h2c with prior knowledge.
    let h2c = h2c();
    let r = fetch(&h2c, &gw, "/h2c?x=1", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let body = echo(r).await;
    assert_eq!(body["uri"], "/h2c?x=1");
    assert_eq!(
        body["version"], "HTTP/1.1",
        "the gateway speaks HTTP/1.1 upstream"
    );
    assert_eq!(body["headers"]["x-forwarded-proto"], "http");
    assert_eq!(body["headers"]["host"], gw.proxy.to_string());

    // TLS: HTTP/2 by ALPN, and HTTP/1.1 for a client that offers only that.
    for (h1_only, version) in [
        (false, reqwest::Version::HTTP_2),
        (true, reqwest::Version::HTTP_11),
    ] {
        let mut builder = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .resolve("localhost", tls);
        if h1_only {
            builder = builder.http1_only();
        }
        let client = builder.build().unwrap();
        let r = client
            .get(format!("https://localhost:{}/tls", tls.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.version(), version);
        let body = echo(r).await;
        assert_eq!(body["upstream"], "app");
        assert_eq!(body["headers"]["x-forwarded-proto"], "https");
    }
    assert_eq!(up.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_host_headers_are_refused() {
    let (up, gw) = bug_fixture().await;
    let r = raw_http1(
        &gw,
        "GET /public/x HTTP/1.1\r\nHost: h\r\nHost: evil.example\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(r.contains("duplicate_host"), "{r}");
    assert_eq!(up.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_cannot_bypass_a_routes_policies() {
    let (up, gw) = bug_fixture().await;
    let r = raw_http1(&gw, "GET /admin/x HTTP/1.1\r\nHost: h\r\n").await;
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    // Any upstream that resolves dot-segments (most servers and frameworks do) serves
    // /admin/x for these, so they must meet the admin route's key check, or be refused.
    for path in [
        "/public/../admin/x",
        "/public/%2e%2e/admin/x",
        "/public/%2E%2E/admin/x",
        "/public/./../admin/x",
    ] {
        let before = up.hits();
        let r = raw_http1(&gw, &format!("GET {path} HTTP/1.1\r\nHost: h\r\n")).await;
        let status = &r[9..12];
        assert!(
            status == "400" || status == "401",
            "{path} reached the upstream through the public route: {r}"
        );
        assert_eq!(up.hits(), before, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_x_forwarded_for_line_is_read_from_a_trusted_proxy() {
    let up = body_upstream("app").await;
    // Loopback is the proxy, and 203.0.113.0/24 another trusted hop behind it.
    let fleet = app_fleet(
        up.addr,
        r#"
settings: { trusted_proxies: ["127.0.0.0/8", "203.0.113.0/24"] }
routes:
  - { id: public, product: app, match: { path: { prefix: /public/ } }, upstream: app }
"#,
    );
    let gw = boot(&fleet).await;
    let r = raw_http1(
        &gw,
        "GET /public/x HTTP/1.1\r\nHost: h\r\n\
         X-Forwarded-For: 6.6.6.6, 198.51.100.1\r\nX-Forwarded-For: 203.0.113.9\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let body = raw_echo(&r);
    // RFC 9110 section 5.3: repeated lines are one comma-separated list, in order; walked
    // from the right, the first untrusted entry (198.51.100.1) is the client, and what is
    // left of it is not passed on.
    assert_eq!(
        body["headers"]["x-forwarded-for"],
        "198.51.100.1, 203.0.113.9, 127.0.0.1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_cookie_fields_are_joined_for_http1_upstreams() {
    let (_up, gw) = bug_fixture().await;
    let h2c = h2c();
    let r = fetch(
        &h2c,
        &gw,
        "/public/x",
        &[("cookie", "a=1"), ("cookie", "b=2")],
    )
    .await;
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let seen = echo(r).await["headers"]["cookie"].clone();
    // RFC 9113 section 8.2.3: concatenated with "; " before an HTTP/1.1 hop.
    assert_eq!(
        seen, "a=1; b=2",
        "the upstream got these Cookie lines: {seen}"
    );
}
