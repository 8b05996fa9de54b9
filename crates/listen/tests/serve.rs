//! `serve` against raw clients: silent and idle connections are closed, the total connection
//! limit holds, and HTTP/2 settings (stream limit) and rapid-reset defences apply.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use rampart_listen::{ConnStats, Limits, Listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/slow" {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    Ok(Response::new(Full::new(Bytes::from_static(b"hello"))))
}

type Stop = tokio::sync::oneshot::Sender<()>;

/// A server under `limits`; stops when the returned sender drops.
async fn server(limits: Limits) -> (SocketAddr, Arc<ConnStats>, Stop) {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let stats = Arc::new(ConnStats::default());
    let listener = Listener {
        tcp,
        tls: None,
        limits,
        stats: stats.clone(),
        name: "test",
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(rampart_listen::serve(
        listener,
        |_| hyper::service::service_fn(hello),
        async move {
            let _ = rx.await;
        },
        Duration::from_secs(1),
    ));
    (addr, stats, tx)
}

async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

fn quick() -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_millis(800),
        ..Limits::default()
    }
}

async fn get_ok(s: &mut TcpStream) {
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
}

#[tokio::test]
async fn a_silent_connection_is_closed_by_the_header_timeout() {
    let (addr, stats, _stop) = server(quick()).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(!closed_within(&mut silent, Duration::from_millis(200)).await);
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    assert_eq!(stats.timed_out.load(Relaxed), 1);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let (addr, _stats, _stop) = server(quick()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    get_ok(&mut s).await;
    // Kept alive, then closed for sending nothing more.
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn an_h2_connection_left_idle_is_closed() {
    let (addr, _stats, _stop) = server(quick()).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(conn);
    // One request, then nothing: the server sends GOAWAY and closes.
    let (resp, _) = client
        .send_request(Request::get("http://x/").body(()).unwrap(), true)
        .unwrap();
    assert_eq!(resp.await.unwrap().status(), 200);
    let ended = tokio::time::timeout(Duration::from_secs(5), driver).await;
    assert!(ended.is_ok(), "the idle h2 connection was kept open");
}

#[tokio::test]
async fn the_total_connection_limit_closes_the_one_over_it() {
    let limits = Limits {
        max_connections: 3,
        ..Limits::default()
    };
    let (addr, stats, _stop) = server(limits).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut over, Duration::from_secs(2)).await);
    assert_eq!(stats.refused_total.load(Relaxed), 1);
    // The held ones are served.
    get_ok(&mut held[0]).await;
}

#[tokio::test]
async fn h2_advertises_its_stream_limit() {
    let limits = Limits {
        h2_max_concurrent_streams: 2,
        ..Limits::default()
    };
    let (addr, _stats, _stop) = server(limits).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, mut conn) = h2::client::handshake(tcp).await.unwrap();
    // Drive the connection until the server's SETTINGS arrive.
    let deadline = Instant::now() + Duration::from_secs(5);
    while conn.max_concurrent_send_streams() != 2 {
        assert!(
            Instant::now() < deadline,
            "no SETTINGS with the stream limit"
        );
        let _ = tokio::time::timeout(Duration::from_millis(20), &mut conn).await;
    }
    drop(client);
}

#[tokio::test]
async fn h2_rapid_reset_closes_the_connection_and_spares_others() {
    let (addr, _stats, _stop) = server(Limits::default()).await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(conn);
    // Open and at once reset far more streams than the server lets a client reset.
    let mut refused = false;
    for _ in 0..2_000 {
        let req = Request::get("http://x/slow").body(()).unwrap();
        match client.send_request(req, true) {
            Ok((_, mut stream)) => stream.send_reset(h2::Reason::CANCEL),
            Err(_) => {
                refused = true;
                break;
            }
        }
        if driver.is_finished() {
            break;
        }
        tokio::task::yield_now().await;
    }
    let ended = tokio::time::timeout(Duration::from_secs(5), driver).await;
    assert!(
        refused || ended.is_ok(),
        "the server kept a connection that reset 2,000 streams"
    );
    // Another client is served.
    let mut s = TcpStream::connect(addr).await.unwrap();
    get_ok(&mut s).await;
}
