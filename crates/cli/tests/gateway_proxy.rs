//! Graceful shutdown of the real `rampart gateway` process on SIGTERM: in-flight requests
//! drain, idle connections do not hold the drain up, and the listener closes at once. The
//! rest of the proxy's behaviour is tested in process, next to the gateway crate
//! (crates/gateway/tests).

mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// The JSON echo of an upstream response.
async fn echo(resp: reqwest::Response) -> Value {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {text:?}: {e}"))
}

/// Poll `cond` every 20 ms until it holds; panic with `what` after `secs`.
async fn eventually(secs: u64, what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_drains_in_flight_requests() {
    let up = upstream("app").await;
    let fleet = format!(
        r#"
environment: dev
products: [{{ name: app }}]
upstreams: [{{ name: app, endpoints: ["{}"] }}]
routes:
  - {{ id: all, product: app, match: {{ path: {{ prefix: / }} }}, upstream: app }}
"#,
        up.addr
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    write_atomic(&file, &fleet);
    let mut gw = start_gateway_with_args(Some(&file), &dir.path().join("gw"), &[], &[]);
    gw.wait_for_snapshot(None).await;
    let inflight = {
        let url = gw.url("/slow");
        tokio::spawn(async move {
            let r = reqwest::Client::new()
                .get(url)
                .header("x-test-delay-ms", "1500")
                .send()
                .await
                .unwrap();
            (r.status(), echo(r).await)
        })
    };
    eventually(5, "the slow request reaches the upstream", async || {
        up.hits.load(Relaxed) == 1
    })
    .await;
    // Idle keep-alive connections, HTTP/1.1 and h2c, must not hold the drain up.
    let h1 = reqwest::Client::new();
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for client in [&h1, &h2c] {
        let r = client.get(gw.url("/idle")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }

    let kill = std::process::Command::new("kill")
        .args(["-TERM", &gw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // The listener closes at once: new connections are refused while the request drains.
    let proxy = gw.proxy;
    eventually(5, "new connections are refused", async || {
        matches!(
            tokio::net::TcpStream::connect(proxy).await,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
        )
    })
    .await;
    assert!(
        !inflight.is_finished(),
        "the in-flight request ended before new connections were refused"
    );

    let (status, body) = inflight.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["upstream"], "app");

    let drained = Instant::now();
    let deadline = drained + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = gw.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the gateway did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit:?}; log:\n{}", gw.log());
    assert!(
        drained.elapsed() < Duration::from_secs(3),
        "exit took {:?} after the last request: idle connections held the 5 s drain up",
        drained.elapsed()
    );
    assert!(gw.log().contains("drained"), "{}", gw.log());
    assert!(
        tokio::net::TcpStream::connect(proxy).await.is_err(),
        "nothing listens after exit"
    );
}
