//! `rampart load`: an open-loop HTTP/1.1 load generator for benchmarks.
//!
//! Requests are scheduled at fixed intervals (`--rate` per second) whatever the server does:
//! a slow or dead server does not slow the schedule down (open loop). Each request's latency
//! is measured from its *scheduled* send time, so time spent queued behind a slow response
//! counts (no coordinated omission). Every scheduled request ends as exactly one of: a
//! 2xx/3xx answer, an HTTP error by status class, or a failure (connect error, I/O error
//! such as a connection reset or closed before the answer, or timeout). A request still
//! queued when its `--timeout-ms` has passed counts as a timeout without being sent.
//!
//! Bounded: the run stops by itself after the last scheduled request has answered or timed
//! out. It only targets loopback addresses.
//!
//! Here: the arguments, the target they resolve to, and what a run counts; the schedule in
//! [`schedule`], the connections that send it in [`drive`], counting and the report's text in
//! [`stats`].

mod drive;
mod schedule;
mod stats;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::Empty;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};

use crate::output::out;
use crate::runtime::runtime;
use drive::drive;

/// The most requests one run may schedule.
const MAX_REQUESTS: u64 = 50_000_000;
/// The longest run, in seconds.
const MAX_DURATION_SECS: f64 = 3_600.0;

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// The target, `http://HOST:PORT/PATH` (plain HTTP/1.1, loopback addresses only).
    #[arg(long)]
    url: String,
    /// Requests per second, sent at fixed intervals whatever the answers (open loop).
    #[arg(long)]
    rate: f64,
    /// How long to send, in seconds (default 10 unless --requests is given).
    #[arg(long, conflicts_with = "requests")]
    duration: Option<f64>,
    /// How many requests to send, instead of --duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Connections, hence requests in flight at most; a request waits for a free one.
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// A request header `name:value` (repeatable); `host:...` replaces the URL's authority.
    #[arg(long = "header", short = 'H', value_name = "NAME:VALUE")]
    headers: Vec<String>,
    /// A header whose value cycles through N values, `NAME:N` (`t0` .. `t{N-1}`, one per
    /// request in turn): many tenants, say, so sticky buckets split the load as real traffic.
    #[arg(long, value_name = "NAME:N")]
    vary: Option<String>,
    /// The request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// A request that has no full answer this long after its scheduled time has failed.
    #[arg(long, default_value_t = 2_000)]
    timeout_ms: u64,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

/// What `rampart load` sends: resolved once, shared by the connections.
#[derive(Debug)]
struct Target {
    addr: SocketAddr,
    method: Method,
    path: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// `--vary`: the header and how many values it cycles through.
    vary: Option<(HeaderName, u64)>,
    sent: std::sync::atomic::AtomicU64,
}

impl Target {
    fn request(&self) -> Result<Request<Empty<Bytes>>> {
        let mut req = Request::builder()
            .method(self.method.clone())
            .uri(self.path.clone());
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        if let Some((name, n)) = &self.vary {
            let i = self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            req = req.header(name, format!("t{}", i % n));
        }
        Ok(req.body(Empty::new())?)
    }
}

/// How one scheduled request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// An answer, its status and its latency from the scheduled time, in microseconds.
    Answered { status: u16, micros: u64 },
    /// The connection could not be opened.
    Connect,
    /// The connection failed before the full answer (reset, closed, malformed).
    Io,
    /// No full answer by the deadline (including requests that waited it out in the queue).
    Timeout,
}

/// Counts and latencies; each worker keeps one, merged at the end.
#[derive(Debug, Default, Clone)]
struct Stats {
    /// Requests written to a connection.
    sent: u64,
    ok: u64,
    http_4xx: u64,
    http_5xx: u64,
    /// 1xx or nonsense statuses.
    http_other: u64,
    connect_errors: u64,
    io_errors: u64,
    timeouts: u64,
    /// Latency of every answered request, from its scheduled time, in microseconds.
    latencies: Vec<u64>,
    /// How late each request was written, from its scheduled time, in microseconds.
    send_lags: Vec<u64>,
}

/// p50, p99, p99.9 and max of `values`, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Percentiles {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

/// The result of a run.
#[derive(Debug)]
struct Report {
    url: String,
    rate: f64,
    connections: usize,
    scheduled: u64,
    elapsed: Duration,
    stats: Stats,
    latency: Percentiles,
    send_lag: Percentiles,
}

/// Parse `name:value` (surrounding spaces of the value trimmed).
fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue)> {
    let (name, value) = text
        .split_once(':')
        .with_context(|| format!("header {text:?} is not NAME:VALUE"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .with_context(|| format!("bad header name in {text:?}"))?;
    let value = HeaderValue::from_str(value.trim())
        .with_context(|| format!("bad header value in {text:?}"))?;
    Ok((name, value))
}

/// Check the arguments and resolve the target.
fn plan(args: &LoadArgs) -> Result<(Target, u64)> {
    if !(args.rate.is_finite() && args.rate > 0.0 && args.rate <= 1_000_000.0) {
        bail!("--rate must be in (0, 1000000]");
    }
    if args.connections == 0 || args.connections > 10_000 {
        bail!("--connections must be in 1..=10000");
    }
    if args.timeout_ms == 0 {
        bail!("--timeout-ms must be positive");
    }
    let total = match (args.requests, args.duration) {
        (Some(n), _) => n,
        (None, d) => {
            let d = d.unwrap_or(10.0);
            if !(d.is_finite() && d > 0.0 && d <= MAX_DURATION_SECS) {
                bail!("--duration must be in (0, {MAX_DURATION_SECS}]");
            }
            (d * args.rate).round() as u64
        }
    };
    if total == 0 || total > MAX_REQUESTS {
        bail!("the run must schedule between 1 and {MAX_REQUESTS} requests");
    }
    let uri: Uri = args
        .url
        .parse()
        .with_context(|| format!("bad --url {:?}", args.url))?;
    if uri.scheme_str() != Some("http") {
        bail!("--url must be plain http://");
    }
    let authority = uri.authority().context("--url has no host")?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .with_context(|| format!("cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to nothing"))?;
    if !addr.ip().is_loopback() {
        bail!(
            "rampart load only targets loopback addresses, not {}",
            addr.ip()
        );
    }
    let path: Uri = uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .context("bad path")?;
    let mut headers = Vec::new();
    for h in &args.headers {
        headers.push(parse_header(h)?);
    }
    if !headers.iter().any(|(n, _)| n == hyper::header::HOST) {
        headers.insert(
            0,
            (
                hyper::header::HOST,
                HeaderValue::from_str(authority.as_str())?,
            ),
        );
    }
    let method = Method::from_bytes(args.method.as_bytes()).context("bad --method")?;
    let vary =
        match &args.vary {
            None => None,
            Some(v) => {
                let (name, n) = v
                    .split_once(':')
                    .with_context(|| format!("--vary {v:?} is not NAME:N"))?;
                let name = HeaderName::from_bytes(name.trim().as_bytes())
                    .with_context(|| format!("bad header name in --vary {v:?}"))?;
                let n: u64 =
                    n.trim().parse().ok().filter(|n| *n > 0).with_context(|| {
                        format!("--vary {v:?}: N must be a whole number above 0")
                    })?;
                Some((name, n))
            }
        };
    Ok((
        Target {
            addr,
            method,
            path,
            headers,
            vary,
            sent: std::sync::atomic::AtomicU64::new(0),
        },
        total,
    ))
}

/// Run `rampart load`.
pub(crate) fn run(args: LoadArgs) -> Result<()> {
    let (target, total) = plan(&args)?;
    let report = runtime()?.block_on(drive(target, total, &args));
    // Every scheduled request ends exactly once.
    debug_assert_eq!(report.stats.ended(), report.scheduled);
    if args.json {
        out(&report.json().to_string())
    } else {
        out(&report.human())
    }
}
