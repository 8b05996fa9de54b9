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
    std::fs::create_dir_all(data_dir).unwrap();
    let log = data_dir.with_extension(format!("log-{}", std::process::id()));
    let mut cmd = Command::new(rampart_bin());
    cmd.args([
        "gateway",
        "--cell",
        "eu-1",
        "--id",
        "gw-test",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ])
    .args([
        "--poll-ms",
        "50",
        "--stability-secs",
        "1",
        "--drain-secs",
        "5",
    ])
    .arg("--data-dir")
    .arg(data_dir)
    .args(extra)
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
    let line = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(l) => l,
        Err(_) => {
            let _ = child.kill();
            panic!(
                "gateway not ready; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
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
