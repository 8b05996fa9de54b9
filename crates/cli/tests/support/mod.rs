//! Shared helpers for the process-level tests: real `rampart` processes and real upstream
//! servers, all on loopback with ephemeral ports.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

/// The `rampart` binary under test.
pub fn rampart_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rampart")
}

/// A running `rampart gateway` process; killed on drop.
pub struct Gateway {
    pub child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub tls: Option<SocketAddr>,
    pub log: PathBuf,
}

/// Start a gateway. `config` is the watched file (or none, to boot from the LKG).
/// The gateway polls its file every 50 ms and calls a snapshot stable after 1 s unless
/// `extra` overrides it. Panics, with the gateway's log, if it is not ready in 30 s.
pub fn start_gateway(
    config: Option<&Path>,
    data_dir: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Gateway {
    start_gateway_with_args(config, data_dir, extra, env)
}

impl Gateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Send a signal by name (TERM, KILL) and wait for the process to exit.
    pub fn signal(&mut self, sig: &str) -> ExitStatus {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not exit after SIG{sig}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until the admin API reports snapshot `hash` (or any, if `None`) as active.
    pub async fn wait_for_snapshot(&self, hash: Option<&str>) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = client.get(self.admin_url("/readyz")).send().await {
                let text = r.text().await.unwrap_or_default();
                if text.starts_with("ready") && hash.is_none_or(|h| text.contains(h)) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "snapshot {hash:?} never became active; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real HTTP upstream on loopback. It answers `/healthz` with 200 while `healthy` is true
/// (503 otherwise), and everything else with a JSON echo naming itself. A request header
/// `x-test-status: N` makes it answer with status N; `x-test-delay-ms: N` delays the answer.
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: String,
    pub healthy: Arc<AtomicBool>,
    pub hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn upstream(name: &str) -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let healthy = Arc::new(AtomicBool::new(true));
    let hits = Arc::new(AtomicU64::new(0));
    let (h, n, me) = (healthy.clone(), hits.clone(), name.to_owned());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (h, n, me) = (h.clone(), n.clone(), me.clone());
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (h, n, me) = (h.clone(), n.clone(), me.clone());
                async move {
                    if req.uri().path() == "/healthz" {
                        let ok = h.load(Relaxed);
                        let mut r = hyper::Response::new(Full::new(Bytes::from_static(if ok {
                            b"ok"
                        } else {
                            b"down"
                        })));
                        *r.status_mut() = if ok {
                            hyper::StatusCode::OK
                        } else {
                            hyper::StatusCode::SERVICE_UNAVAILABLE
                        };
                        return Ok::<_, std::convert::Infallible>(r);
                    }
                    n.fetch_add(1, Relaxed);
                    let get = |k: &str| {
                        req.headers()
                            .get(k)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok())
                    };
                    if let Some(ms) = get("x-test-delay-ms") {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    let status = get("x-test-status").unwrap_or(200) as u16;
                    let headers: serde_json::Map<String, serde_json::Value> = req
                        .headers()
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.as_str().to_owned(),
                                String::from_utf8_lossy(v.as_bytes()).into(),
                            )
                        })
                        .collect();
                    let body = serde_json::json!({
                        "upstream": me, "method": req.method().as_str(), "uri": req.uri().to_string(),
                        "version": format!("{:?}", req.version()), "headers": headers,
                    });
                    let mut r = hyper::Response::new(Full::new(Bytes::from(body.to_string())));
                    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                    r.headers_mut()
                        .insert("content-type", "application/json".parse().unwrap());
                    r.headers_mut()
                        .insert("server", "test-upstream".parse().unwrap());
                    Ok(r)
                }
            });
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Upstream {
        addr,
        name: name.to_owned(),
        healthy,
        hits,
        task,
    }
}

/// The example fleet with its demo endpoints replaced: `ports` maps each example endpoint
/// (such as `127.0.0.1:18081`) to a test upstream.
pub fn example_fleet(ports: &[(&str, SocketAddr)]) -> String {
    let mut text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/fleet.yaml"
    ))
    .unwrap();
    for (from, to) in ports {
        text = text.replace(from, &to.to_string());
    }
    text
}

/// Write `text` to `path` atomically (so a watching gateway never sees half a file).
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Like [`start_gateway`], but `args` may set `--cell`, `--id`, `--poll-ms`,
/// `--stability-secs` and `--drain-secs` itself: clap refuses a flag given twice, so
/// `start_gateway`'s `extra` cannot override them. The defaults (eu-1, gw-test, 50 ms, 1 s,
/// 5 s) apply to those `args` leaves out.
pub fn start_gateway_with_args(
    config: Option<&Path>,
    data_dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Gateway {
    std::fs::create_dir_all(data_dir).unwrap();
    let log = data_dir.with_extension(format!("log-{}", std::process::id()));
    let mut cmd = Command::new(rampart_bin());
    cmd.args([
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ]);
    for (flag, default) in [
        ("--cell", "eu-1"),
        ("--id", "gw-test"),
        ("--poll-ms", "50"),
        ("--stability-secs", "1"),
        ("--drain-secs", "5"),
    ] {
        if !args.contains(&flag) {
            cmd.args([flag, default]);
        }
    }
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("FAILPOINTS")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("rampart starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with("rampart gateway ready") {
                let _ = tx.send(line);
            }
        }
    });
    let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
        let _ = child.kill();
        panic!(
            "gateway not ready; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    };
    let field = |name: &str| -> Option<SocketAddr> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .map(|a| a.parse().unwrap())
    };
    Gateway {
        proxy: field("proxy").unwrap(),
        admin: field("admin").unwrap(),
        tls: field("tls"),
        child,
        log,
    }
}

/// The byte at offset `i` of a [`PatternBody`]: a pattern that catches lost, repeated or
/// reordered chunks.
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// The FNV-1a offset basis, to start a [`fnv1a`] hash.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Continue an FNV-1a hash over `data`.
pub fn fnv1a(mut hash: u64, data: &[u8]) -> u64 {
    for &b in data {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// A streamed body of `len` bytes of [`pattern_byte`], produced 64 KiB at a time with no
/// declared length (so HTTP/1.1 sends it chunked).
#[derive(Debug)]
pub struct PatternBody {
    sent: u64,
    len: u64,
}

impl PatternBody {
    pub fn new(len: u64) -> Self {
        PatternBody { sent: 0, len }
    }

    /// The FNV-1a hash of the whole body.
    pub fn hash(len: u64) -> u64 {
        let bytes: Vec<u8> = (0..len).map(pattern_byte).collect();
        fnv1a(FNV_OFFSET, &bytes)
    }
}

impl hyper::body::Body for PatternBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        if self.sent >= self.len {
            return std::task::Poll::Ready(None);
        }
        let n = (self.len - self.sent).min(64 * 1024);
        let chunk: Vec<u8> = (self.sent..self.sent + n).map(pattern_byte).collect();
        self.sent += n;
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.len
    }
}

/// An upstream that reads request bodies: it answers with JSON naming itself, the request
/// headers (a repeated field's values joined by newlines, so each field line shows), and the
/// body's length (`received`) and FNV-1a hash (`fnv`). A request header
/// `x-test-response-bytes: N` makes it stream back a [`PatternBody`] of N bytes instead, and
/// `x-test-hop-response: 1` adds hop-by-hop response headers (`connection: x-upstream-hop`,
/// `x-upstream-hop`, `keep-alive`) next to an end-to-end one (`x-upstream-e2e`).
pub async fn body_upstream(name: &str) -> Upstream {
    use http_body_util::BodyExt;
    type Resp =
        hyper::Response<http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>>;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let healthy = Arc::new(AtomicBool::new(true));
    let hits = Arc::new(AtomicU64::new(0));
    let (n, me) = (hits.clone(), name.to_owned());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (n, me) = (n.clone(), me.clone());
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (n, me) = (n.clone(), me.clone());
                async move {
                    n.fetch_add(1, Relaxed);
                    let (parts, mut body) = req.into_parts();
                    let (mut received, mut fnv) = (0u64, FNV_OFFSET);
                    while let Some(frame) = body.frame().await {
                        if let Some(data) = frame?.data_ref() {
                            received += data.len() as u64;
                            fnv = fnv1a(fnv, data);
                        }
                    }
                    let header = |k: &str| parts.headers.get(k).and_then(|v| v.to_str().ok());
                    let mut resp: Resp =
                        match header("x-test-response-bytes").and_then(|v| v.parse::<u64>().ok()) {
                            Some(len) => hyper::Response::new(PatternBody::new(len).boxed()),
                            None => {
                                let headers: serde_json::Map<String, serde_json::Value> = parts
                                    .headers
                                    .keys()
                                    .map(|k| {
                                        let values: Vec<String> = parts
                                            .headers
                                            .get_all(k)
                                            .iter()
                                            .map(|v| String::from_utf8_lossy(v.as_bytes()).into())
                                            .collect();
                                        (k.as_str().to_owned(), values.join("\n").into())
                                    })
                                    .collect();
                                let json = serde_json::json!({
                                    "upstream": me, "method": parts.method.as_str(),
                                    "uri": parts.uri.to_string(), "headers": headers,
                                    "received": received, "fnv": fnv.to_string(),
                                });
                                let mut r = hyper::Response::new(
                                    Full::new(Bytes::from(json.to_string())).boxed(),
                                );
                                r.headers_mut()
                                    .insert("content-type", "application/json".parse().unwrap());
                                r
                            }
                        };
                    if header("x-test-hop-response") == Some("1") {
                        let h = resp.headers_mut();
                        h.insert("connection", "x-upstream-hop".parse().unwrap());
                        h.insert("x-upstream-hop", "secret".parse().unwrap());
                        h.insert("keep-alive", "timeout=5".parse().unwrap());
                        h.insert("x-upstream-e2e", "kept".parse().unwrap());
                    }
                    Ok::<_, hyper::Error>(resp)
                }
            });
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Upstream {
        addr,
        name: name.to_owned(),
        healthy,
        hits,
        task,
    }
}

/// The sum of the samples of metric `name` (as the exposition names it, `_total` included)
/// whose labels include every pair of `labels`; `None` if no sample matches.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}
