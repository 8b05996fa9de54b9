//! Test upstreams and helpers for proxy tests (the `testing` feature): the options of a test
//! gateway; real HTTP servers on loopback that echo what reached them, can be made unhealthy,
//! slow or failing, and count their hits; a patterned streaming body; and a reader of the
//! metrics exposition.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::GatewayOptions;
use crate::demo::echo_headers;

type TestBody = BoxBody<Bytes, hyper::Error>;

/// The options of a test gateway `gw-test` in cell `eu-1` with its state in `data_dir`:
/// loopback listeners on ephemeral ports, no config source, a 50 ms poll, stable after 1 s,
/// 5 s to drain. Tests change what they need with struct update syntax.
pub fn options(data_dir: &Path) -> GatewayOptions {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    GatewayOptions {
        identity: rampart_model::GatewayIdentity {
            id: "gw-test".into(),
            cell: "eu-1".into(),
            version: "0.1.0".parse().unwrap(),
        },
        listen: any,
        tls: None,
        admin: any,
        data_dir: data_dir.to_path_buf(),
        config: None,
        control: None,
        poll: Duration::from_millis(50),
        stability: Duration::from_secs(1),
        drain: Duration::from_secs(5),
        guard: Default::default(),
        sample_every: 8,
        sample_capacity: 64,
        max_inflight: 10_000,
        limits: rampart_listen::Limits::default(),
        admin_token: None,
    }
}

/// A real HTTP upstream on loopback; stops when dropped.
#[derive(Debug)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: String,
    /// While false, `/healthz` answers 503.
    pub healthy: Arc<AtomicBool>,
    /// Requests served, health checks aside.
    pub hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub fn hits(&self) -> u64 {
        self.hits.load(Relaxed)
    }
}

/// What an upstream's handler sees of its own state.
#[derive(Debug, Clone)]
struct Me {
    name: Arc<str>,
    healthy: Arc<AtomicBool>,
    hits: Arc<AtomicU64>,
}

/// Serve `handler` on a new loopback listener.
async fn spawn<F, Fut>(name: &str, handler: F) -> Upstream
where
    F: Fn(Me, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<TestBody>, hyper::Error>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let me = Me {
        name: name.into(),
        healthy: Arc::new(AtomicBool::new(true)),
        hits: Arc::new(AtomicU64::new(0)),
    };
    let (healthy, hits) = (me.healthy.clone(), me.hits.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (me, handler) = (me.clone(), handler.clone());
            let svc = service_fn(move |req| handler(me.clone(), req));
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

fn full(body: impl Into<Bytes>) -> TestBody {
    Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

fn json_response(value: &serde_json::Value) -> Response<TestBody> {
    let mut r = Response::new(full(value.to_string()));
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

/// An upstream that answers `/healthz` with 200 while `healthy` is true (503 otherwise), and
/// everything else with a JSON echo naming itself (`upstream`, `method`, `uri`, `version`,
/// `headers`). A request header `x-test-status: N` makes it answer with status N;
/// `x-test-delay-ms: N` delays the answer.
pub async fn upstream(name: &str) -> Upstream {
    spawn(name, |me, req| async move {
        if req.uri().path() == "/healthz" {
            let ok = me.healthy.load(Relaxed);
            let mut r = Response::new(full(if ok { "ok" } else { "down" }));
            if !ok {
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            return Ok(r);
        }
        me.hits.fetch_add(1, Relaxed);
        let number = |k: &str| {
            req.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        if let Some(ms) = number("x-test-delay-ms") {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let status = number("x-test-status").unwrap_or(200) as u16;
        let mut r = json_response(&serde_json::json!({
            "upstream": &*me.name, "method": req.method().as_str(), "uri": req.uri().to_string(),
            "version": format!("{:?}", req.version()), "headers": echo_headers(req.headers()),
        }));
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        r.headers_mut()
            .insert("server", "test-upstream".parse().unwrap());
        Ok(r)
    })
    .await
}

/// An upstream that reads request bodies: it answers with JSON naming itself, the request
/// headers (a repeated field's values joined by newlines, so each field line shows), and the
/// body's length (`received`) and FNV-1a hash (`fnv`). A request header
/// `x-test-response-bytes: N` makes it stream back a [`pattern_body`] of N bytes instead, and
/// `x-test-hop-response: 1` adds hop-by-hop response headers (`connection: x-upstream-hop`,
/// `x-upstream-hop`, `keep-alive`) next to an end-to-end one (`x-upstream-e2e`).
pub async fn body_upstream(name: &str) -> Upstream {
    spawn(name, |me, req| async move {
        me.hits.fetch_add(1, Relaxed);
        let (parts, mut body) = req.into_parts();
        let (mut received, mut fnv) = (0u64, FNV_OFFSET);
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame?.data_ref() {
                received += data.len() as u64;
                fnv = fnv1a(fnv, data);
            }
        }
        let header = |k: &str| parts.headers.get(k).and_then(|v| v.to_str().ok());
        let mut resp = match header("x-test-response-bytes").and_then(|v| v.parse().ok()) {
            Some(len) => Response::new(pattern_body(len).map_err(|n| match n {}).boxed()),
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
                json_response(&serde_json::json!({
                    "upstream": &*me.name, "method": parts.method.as_str(),
                    "uri": parts.uri.to_string(), "headers": headers,
                    "received": received, "fnv": fnv.to_string(),
                }))
            }
        };
        if header("x-test-hop-response") == Some("1") {
            let h = resp.headers_mut();
            h.insert("connection", "x-upstream-hop".parse().unwrap());
            h.insert("x-upstream-hop", "secret".parse().unwrap());
            h.insert("keep-alive", "timeout=5".parse().unwrap());
            h.insert("x-upstream-e2e", "kept".parse().unwrap());
        }
        Ok(resp)
    })
    .await
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
pub type PatternBody = BoxBody<Bytes, Infallible>;

/// A new [`PatternBody`] of `len` bytes.
pub fn pattern_body(len: u64) -> PatternBody {
    const CHUNK: u64 = 64 * 1024;
    let chunks = (0..len).step_by(CHUNK as usize).map(move |start| {
        let chunk: Bytes = (start..(start + CHUNK).min(len))
            .map(pattern_byte)
            .collect();
        Ok(Frame::data(chunk))
    });
    StreamBody::new(futures_util::stream::iter(chunks)).boxed()
}

/// The FNV-1a hash of a whole [`PatternBody`] of `len` bytes.
pub fn pattern_hash(len: u64) -> u64 {
    let bytes: Vec<u8> = (0..len).map(pattern_byte).collect();
    fnv1a(FNV_OFFSET, &bytes)
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
