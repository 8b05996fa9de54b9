//! Slow clients against the real `rampart gateway` process: half-open connections are closed
//! by the header timeout while a well-behaved client is served without a failure, and the
//! per-client connection limit holds. Client sockets bind 127.0.0.N (all of 127/8 is loopback
//! on Linux) to act as many clients.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const HALF_OPEN: usize = 2_000;
/// Client addresses the half-open connections come from: 50 each, under the per-IP limit.
const HALF_OPEN_IPS: u8 = 40;
const PER_IP_LIMIT: usize = 60;
const HEADER_TIMEOUT_SECS: u64 = 2;

/// Raise this process's open-file soft limit to its hard limit (children inherit it), with
/// util-linux `prlimit`; the test needs a few thousand sockets on each side.
fn raise_nofile() {
    let hard = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(4).map(str::to_owned))
        });
    if let Some(hard) = hard {
        let _ = std::process::Command::new("prlimit")
            .args([
                "--pid",
                &std::process::id().to_string(),
                &format!("--nofile={hard}:{hard}"),
            ])
            .status();
    }
}

async fn connect_from(ip: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(ip), 0))?;
    socket.connect(to).await
}

/// Wait until the server closes `s` (EOF or reset), up to `within`; whether it did.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A 408 or 400 written before the close: keep reading to the end.
            Ok(Ok(_)) => continue,
        }
    }
}

fn fleet(up: SocketAddr) -> String {
    format!(
        r#"
environment: dev
products: [{{ name: app }}]
upstreams: [{{ name: app, endpoints: ["{up}"] }}]
routes:
  - {{ id: all, product: app, match: {{ path: {{ prefix: / }} }}, upstream: app }}
"#
    )
}

fn start(dir: &std::path::Path, up: SocketAddr, header_timeout_secs: u64) -> Gateway {
    let file = dir.join("fleet.yaml");
    write_atomic(&file, &fleet(up));
    let timeout = header_timeout_secs.to_string();
    let per_ip = PER_IP_LIMIT.to_string();
    start_gateway_with_args(
        Some(&file),
        &dir.join("gw"),
        &[
            "--header-timeout-secs",
            &timeout,
            "--max-conns-per-ip",
            &per_ip,
        ],
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_closed_while_a_good_client_is_served() {
    raise_nofile();
    let up = upstream("app").await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), up.addr, HEADER_TIMEOUT_SECS);
    gw.wait_for_snapshot(None).await;

    // 2,000 connections that each send half a request head, from 40 client addresses.
    let opened = Instant::now();
    let mut slow = Vec::with_capacity(HALF_OPEN);
    for i in 0..HALF_OPEN {
        let ip = Ipv4Addr::new(127, 0, 1, 1 + (i % usize::from(HALF_OPEN_IPS)) as u8);
        let mut s = connect_from(ip, gw.proxy).await.expect("connect");
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: app\r\nX-Half: ")
            .await
            .unwrap();
        slow.push(s);
    }

    // Meanwhile a well-behaved client, on a new connection per request, at 20 requests a
    // second for 1.5 s.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let (mut ok, mut failed) = (0, Vec::new());
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for _ in 0..30 {
        tick.tick().await;
        match client.get(gw.url("/good")).send().await {
            Ok(r) if r.status() == 200 => ok += 1,
            Ok(r) => failed.push(r.status().to_string()),
            Err(e) => failed.push(e.to_string()),
        }
    }
    assert!(failed.is_empty(), "{} ok, failures: {failed:?}", ok);

    // Every half-open connection is closed by the header timeout (with slack for a loaded
    // machine), none of them long before it.
    let mut closed = 0;
    let within = Duration::from_secs(HEADER_TIMEOUT_SECS + 8);
    let checks: Vec<_> = slow
        .into_iter()
        .map(|mut s| tokio::spawn(async move { closed_within(&mut s, within).await }))
        .collect();
    for c in checks {
        closed += usize::from(c.await.unwrap());
    }
    let took = opened.elapsed();
    assert_eq!(
        closed, HALF_OPEN,
        "half-open connections still open after {took:?}"
    );
    assert!(
        took >= Duration::from_millis(HEADER_TIMEOUT_SECS * 1000 - 200),
        "closed after {took:?}, before the header timeout"
    );
    // The gateway counted them, and is still serving.
    let metrics = reqwest::get(gw.admin_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"rampart_gateway_listener_connections_total{listener="proxy",event="accepted"}"#
        ),
        "{metrics}"
    );
    let r = client.get(gw.url("/after")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_ip_connection_limit_holds() {
    raise_nofile();
    let up = upstream("app").await;
    let dir = tempfile::tempdir().unwrap();
    // A long header timeout: the held connections must outlive the test's checks.
    let gw = start(dir.path(), up.addr, 30);
    gw.wait_for_snapshot(None).await;

    let greedy = Ipv4Addr::new(127, 0, 2, 7);
    let mut held = Vec::new();
    for _ in 0..PER_IP_LIMIT {
        held.push(connect_from(greedy, gw.proxy).await.unwrap());
    }
    // Give the gateway time to accept (and count) them all; a fresh request from the greedy
    // address then shows the limit: a connection over it is closed at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = Vec::new();
    for _ in 0..20 {
        extra.push(connect_from(greedy, gw.proxy).await.unwrap());
    }
    for (i, s) in extra.iter_mut().enumerate() {
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: app\r\n\r\n").await;
        assert!(
            closed_within(s, Duration::from_secs(1)).await,
            "connection {i} over the per-IP limit was served"
        );
    }
    // The held ones are still open (their header timeout has not run out), and another
    // client is served.
    for s in held.iter_mut().take(5) {
        assert!(!closed_within(s, Duration::from_millis(100)).await);
    }
    let other = Ipv4Addr::new(127, 0, 2, 8);
    let mut s = connect_from(other, gw.proxy).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    // Once the greedy client lets go, it is admitted again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut s = connect_from(greedy, gw.proxy).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut answer)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    let metrics = reqwest::get(gw.admin_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"listener="proxy",event="refused_per_ip"} 20"#),
        "{metrics}"
    );
}
