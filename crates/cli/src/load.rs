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

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::sync::{Mutex, mpsc};

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

/// The fixed-interval schedule: request `i` is due at `start + i / rate`.
#[derive(Debug)]
struct Schedule {
    start: Instant,
    rate: f64,
    total: u64,
    next: u64,
}

impl Schedule {
    fn new(start: Instant, rate: f64, total: u64) -> Self {
        Self {
            start,
            rate,
            total,
            next: 0,
        }
    }

    /// When request `i` is due.
    fn at(&self, i: u64) -> Instant {
        self.start + Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// When the next request not yet handed out is due, if any is left.
    fn next_at(&self) -> Option<Instant> {
        (self.next < self.total).then(|| self.at(self.next))
    }

    /// Hand out every request due by `now`: its scheduled times, in order.
    fn due(&mut self, now: Instant) -> Vec<Instant> {
        let mut out = Vec::new();
        while self.next < self.total {
            let at = self.at(self.next);
            if at > now {
                break;
            }
            out.push(at);
            self.next += 1;
        }
        out
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

impl Stats {
    fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Answered { status, micros } => {
                self.latencies.push(micros);
                match status {
                    200..=399 => self.ok += 1,
                    400..=499 => self.http_4xx += 1,
                    500..=599 => self.http_5xx += 1,
                    _ => self.http_other += 1,
                }
            }
            Outcome::Connect => self.connect_errors += 1,
            Outcome::Io => self.io_errors += 1,
            Outcome::Timeout => self.timeouts += 1,
        }
    }

    fn merge(&mut self, other: Stats) {
        self.sent += other.sent;
        self.ok += other.ok;
        self.http_4xx += other.http_4xx;
        self.http_5xx += other.http_5xx;
        self.http_other += other.http_other;
        self.connect_errors += other.connect_errors;
        self.io_errors += other.io_errors;
        self.timeouts += other.timeouts;
        self.latencies.extend(other.latencies);
        self.send_lags.extend(other.send_lags);
    }

    fn failed(&self) -> u64 {
        self.connect_errors + self.io_errors + self.timeouts
    }

    fn ended(&self) -> u64 {
        self.ok + self.http_4xx + self.http_5xx + self.http_other + self.failed()
    }
}

/// The `p`th percentile (0–100) of sorted values, by nearest rank; 0 for no values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // The epsilon keeps 99.9% of 1000 at rank 999 despite binary floating point.
    let rank = (p / 100.0 * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50, p99, p99.9 and max of `values`, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Percentiles {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Percentiles {
    fn of(values: &mut [u64]) -> Self {
        values.sort_unstable();
        let ms = |us: u64| us as f64 / 1_000.0;
        Self {
            p50: ms(percentile(values, 50.0)),
            p99: ms(percentile(values, 99.0)),
            p999: ms(percentile(values, 99.9)),
            max: ms(values.last().copied().unwrap_or(0)),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({ "p50": self.p50, "p99": self.p99, "p999": self.p999, "max": self.max })
    }
}

/// Open one connection.
async fn connect(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Send one request on `conn` (opening it if needed) and read the whole answer.
async fn attempt(
    conn: &mut Option<SendRequest<Empty<Bytes>>>,
    target: &Target,
    scheduled: Instant,
    stats: &mut Stats,
) -> Outcome {
    if let Some(sender) = conn.as_mut()
        && sender.ready().await.is_err()
    {
        // Closed while idle (by the server, or after a `connection: close`): not a failure
        // of this request, which has not been sent yet.
        *conn = None;
    }
    let sender = match conn {
        Some(sender) => sender,
        None => match connect(target.addr).await {
            Ok(sender) => conn.insert(sender),
            Err(_) => return Outcome::Connect,
        },
    };
    let Ok(req) = target.request() else {
        return Outcome::Io;
    };
    stats.sent += 1;
    stats
        .send_lags
        .push(micros(Instant::now().saturating_duration_since(scheduled)));
    let answer = match sender.send_request(req).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            resp.into_body().collect().await.map(|_| status)
        }
        Err(e) => Err(e),
    };
    match answer {
        Ok(status) => Outcome::Answered {
            status,
            micros: micros(Instant::now().saturating_duration_since(scheduled)),
        },
        Err(_) => {
            *conn = None;
            Outcome::Io
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// One connection's worth of work: take due requests from the queue until it closes.
async fn worker(
    queue: Arc<Mutex<mpsc::UnboundedReceiver<Instant>>>,
    target: Arc<Target>,
    timeout: Duration,
) -> Stats {
    let mut stats = Stats::default();
    let mut conn = None;
    loop {
        let Some(scheduled) = queue.lock().await.recv().await else {
            break;
        };
        let deadline = scheduled + timeout;
        let outcome = if Instant::now() >= deadline {
            Outcome::Timeout
        } else {
            let run = attempt(&mut conn, &target, scheduled, &mut stats);
            match tokio::time::timeout_at(deadline.into(), run).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    // Mid-request: an HTTP/1.1 connection cannot be reused.
                    conn = None;
                    Outcome::Timeout
                }
            }
        };
        stats.record(outcome);
    }
    stats
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

impl Report {
    fn json(&self) -> serde_json::Value {
        let s = &self.stats;
        serde_json::json!({
            "url": self.url,
            "rate": self.rate,
            "connections": self.connections,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "scheduled": self.scheduled,
            "sent": s.sent,
            "ok": s.ok,
            "http_errors": { "4xx": s.http_4xx, "5xx": s.http_5xx, "other": s.http_other },
            "failed": s.failed(),
            "connect_errors": s.connect_errors,
            "io_errors": s.io_errors,
            "timeouts": s.timeouts,
            "latency_ms": self.latency.json(),
            "send_lag_ms": self.send_lag.json(),
        })
    }

    fn human(&self) -> String {
        let s = &self.stats;
        let l = &self.latency;
        let g = &self.send_lag;
        format!(
            "rampart load: {url} at {rate} req/s, {conns} connections, {secs:.1} s\n\
             scheduled {sched}  sent {sent}  ok (2xx/3xx) {ok}\n\
             http errors: 4xx {e4}  5xx {e5}  other {eo}\n\
             failed {failed}: connect {ce}  io {io}  timeout {to}\n\
             latency from scheduled time (ms): p50 {p50:.3}  p99 {p99:.3}  p99.9 {p999:.3}  max {max:.3}\n\
             send lag behind schedule (ms):    p50 {g50:.3}  p99 {g99:.3}  p99.9 {g999:.3}  max {gmax:.3}",
            url = self.url,
            rate = self.rate,
            conns = self.connections,
            secs = self.elapsed.as_secs_f64(),
            sched = self.scheduled,
            sent = s.sent,
            ok = s.ok,
            e4 = s.http_4xx,
            e5 = s.http_5xx,
            eo = s.http_other,
            failed = s.failed(),
            ce = s.connect_errors,
            io = s.io_errors,
            to = s.timeouts,
            p50 = l.p50,
            p99 = l.p99,
            p999 = l.p999,
            max = l.max,
            g50 = g.p50,
            g99 = g.p99,
            g999 = g.p999,
            gmax = g.max,
        )
    }
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

async fn drive(target: Target, total: u64, args: &LoadArgs) -> Report {
    let timeout = Duration::from_millis(args.timeout_ms);
    let target = Arc::new(target);
    let (tx, rx) = mpsc::unbounded_channel();
    let rx = Arc::new(Mutex::new(rx));
    let workers: Vec<_> = (0..args.connections)
        .map(|_| tokio::spawn(worker(rx.clone(), target.clone(), timeout)))
        .collect();
    let start = Instant::now();
    let mut schedule = Schedule::new(start, args.rate, total);
    // The schedule runs on its own thread: Tokio's timers tick in whole milliseconds, which
    // would send requests in bursts and add up to a millisecond to each latency. The workers
    // stop once this thread ends and drops the sender.
    let pacer = std::thread::spawn(move || {
        while let Some(next) = schedule.next_at() {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            for at in schedule.due(Instant::now()) {
                let _ = tx.send(at);
            }
        }
    });
    let mut stats = Stats::default();
    for w in workers {
        if let Ok(s) = w.await {
            stats.merge(s);
        }
    }
    let _ = pacer.join();
    let elapsed = start.elapsed();
    let latency = Percentiles::of(&mut stats.latencies);
    let send_lag = Percentiles::of(&mut stats.send_lags);
    Report {
        url: args.url.clone(),
        rate: args.rate,
        connections: args.connections,
        scheduled: total,
        elapsed,
        stats,
        latency,
        send_lag,
    }
}

/// Run `rampart load`.
pub(crate) fn run(args: LoadArgs) -> Result<()> {
    let (target, total) = plan(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(drive(target, total, &args));
    // Every scheduled request ends exactly once.
    debug_assert_eq!(report.stats.ended(), report.scheduled);
    let text = if args.json {
        report.json().to_string()
    } else {
        report.human()
    };
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn percentile_by_nearest_rank() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 50.0), 500);
        assert_eq!(percentile(&v, 99.0), 990);
        assert_eq!(percentile(&v, 99.9), 999);
        assert_eq!(percentile(&v, 100.0), 1000);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 99.9), 7);
        assert_eq!(percentile(&[], 50.0), 0);
        // Ten values: p99 and p99.9 are the largest.
        let v: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&v, 99.0), 10);
        assert_eq!(percentile(&v, 50.0), 5);
    }

    #[test]
    fn percentiles_sort_and_convert_to_ms() {
        let mut v = vec![3_000, 1_000, 2_000, 10_000];
        let p = Percentiles::of(&mut v);
        assert_eq!(p.p50, 2.0);
        assert_eq!(p.p99, 10.0);
        assert_eq!(p.max, 10.0);
        assert_eq!(Percentiles::of(&mut []).max, 0.0);
    }

    #[test]
    fn schedule_is_fixed_interval_and_catches_up() {
        let start = Instant::now();
        let mut s = Schedule::new(start, 1000.0, 10);
        assert_eq!(s.next_at(), Some(start));
        // Nothing answered for 4.5 ms: the five requests due by then all come out at once,
        // each with its own scheduled time (open loop: the rate does not slow down).
        let due = s.due(start + Duration::from_micros(4_500));
        assert_eq!(due.len(), 5);
        for (i, at) in due.iter().enumerate() {
            assert_eq!(*at - start, Duration::from_millis(i as u64));
        }
        assert_eq!(s.next_at(), Some(start + Duration::from_millis(5)));
        assert!(s.due(start + Duration::from_micros(4_900)).is_empty());
        // Long after the end: only the remaining five, then nothing.
        assert_eq!(s.due(start + Duration::from_secs(60)).len(), 5);
        assert_eq!(s.next_at(), None);
        assert!(s.due(start + Duration::from_secs(120)).is_empty());
    }

    #[test]
    fn schedule_handles_fractional_rates() {
        let start = Instant::now();
        let s = Schedule::new(start, 3.0, 4);
        assert_eq!(s.at(3) - start, Duration::from_secs(1));
        let s = Schedule::new(start, 5000.0, 50_000);
        assert_eq!(s.at(49_999) - start, Duration::from_micros(9_999_800));
    }

    #[test]
    fn every_outcome_is_counted_once() {
        let mut s = Stats::default();
        for outcome in [
            Outcome::Answered {
                status: 200,
                micros: 5,
            },
            Outcome::Answered {
                status: 304,
                micros: 6,
            },
            Outcome::Answered {
                status: 429,
                micros: 7,
            },
            Outcome::Answered {
                status: 503,
                micros: 8,
            },
            Outcome::Answered {
                status: 101,
                micros: 9,
            },
            Outcome::Connect,
            Outcome::Io,
            Outcome::Timeout,
        ] {
            s.record(outcome);
        }
        let mut t = Stats::default();
        t.record(Outcome::Timeout);
        s.merge(t);
        assert_eq!((s.ok, s.http_4xx, s.http_5xx, s.http_other), (2, 1, 1, 1));
        assert_eq!((s.connect_errors, s.io_errors, s.timeouts), (1, 1, 2));
        assert_eq!(s.failed(), 4);
        assert_eq!(s.ended(), 9);
        assert_eq!(s.latencies.len(), 5);
    }

    #[test]
    fn headers_parse() {
        let (n, v) = parse_header("X-Tenant-Id: acme").unwrap();
        assert_eq!((n.as_str(), v.to_str().unwrap()), ("x-tenant-id", "acme"));
        let (n, v) = parse_header("host:jira.example.com:8080").unwrap();
        assert_eq!(
            (n.as_str(), v.to_str().unwrap()),
            ("host", "jira.example.com:8080")
        );
        assert!(parse_header("no-colon").is_err());
        assert!(parse_header("bad name: x").is_err());
    }

    fn args(url: &str, rate: f64, requests: u64) -> LoadArgs {
        LoadArgs {
            url: url.into(),
            rate,
            duration: None,
            requests: Some(requests),
            connections: 4,
            headers: vec!["x-tenant-id: acme".into()],
            vary: None,
            method: "GET".into(),
            timeout_ms: 500,
            json: false,
        }
    }

    #[test]
    fn plan_checks_arguments() {
        let (t, n) = plan(&args("http://127.0.0.1:9/a?b=1", 100.0, 7)).unwrap();
        assert_eq!(n, 7);
        assert_eq!(t.path, "/a?b=1");
        assert_eq!(t.headers[0].1, "127.0.0.1:9");
        let mut a = args("http://127.0.0.1:9/", 100.0, 1);
        a.requests = None;
        a.duration = Some(2.5);
        assert_eq!(plan(&a).unwrap().1, 250);
        assert!(plan(&args("http://127.0.0.1:9/", 0.0, 1)).is_err());
        assert!(plan(&args("http://127.0.0.1:9/", 10.0, 0)).is_err());
        assert!(plan(&args("https://127.0.0.1:9/", 10.0, 1)).is_err());
        assert!(plan(&args("http://192.0.2.1:80/", 10.0, 1)).is_err());
    }

    /// A keep-alive server on loopback that answers every request with `status`.
    async fn tiny_server(status: u16) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    loop {
                        let Ok(n) = s.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let resp =
                                format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok");
                            if s.write_all(resp.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn counts_answers_by_class() {
        let addr = tiny_server(200).await;
        let a = args(&format!("http://{addr}/"), 2_000.0, 200);
        let (t, n) = plan(&a).unwrap();
        let r = drive(t, n, &a).await;
        assert_eq!((r.scheduled, r.stats.sent, r.stats.ok), (200, 200, 200));
        assert_eq!(r.stats.failed(), 0);
        assert_eq!(r.stats.latencies.len(), 200);
        assert!(r.latency.max >= r.latency.p50);

        let addr = tiny_server(503).await;
        let a = args(&format!("http://{addr}/"), 2_000.0, 50);
        let (t, n) = plan(&a).unwrap();
        let r = drive(t, n, &a).await;
        assert_eq!((r.stats.http_5xx, r.stats.ok), (50, 0));
    }

    #[tokio::test]
    async fn counts_connect_io_and_timeout_failures() {
        // Nobody listens: every request fails to connect.
        let closed = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let a = args(&format!("http://{closed}/"), 1_000.0, 20);
        let (t, n) = plan(&a).unwrap();
        let r = drive(t, n, &a).await;
        assert_eq!((r.stats.connect_errors, r.stats.sent), (20, 0));
        assert_eq!(r.stats.ended(), 20);

        // A server that accepts and closes: every sent request is an I/O error.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rude = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                drop(s);
            }
        });
        let a = args(&format!("http://{rude}/"), 1_000.0, 20);
        let (t, n) = plan(&a).unwrap();
        let r = drive(t, n, &a).await;
        assert_eq!(r.stats.io_errors + r.stats.connect_errors, 20);
        assert_eq!(r.stats.ok, 0);

        // A server that never answers: timeouts, and the run still ends by itself.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mute = l.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let mut a = args(&format!("http://{mute}/"), 1_000.0, 20);
        a.timeout_ms = 100;
        let (t, n) = plan(&a).unwrap();
        let started = Instant::now();
        let r = drive(t, n, &a).await;
        assert_eq!(r.stats.timeouts, 20);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
