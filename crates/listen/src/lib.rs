//! # rampart-listen
//!
//! Connection hygiene, written once for every rampart listener: the gateway's proxy (plain
//! and TLS) and admin listeners, and the control plane's API. [`serve`] accepts connections
//! and serves them with hyper-util's auto builder (HTTP/1.1 and HTTP/2) under [`Limits`]:
//!
//! - **accept**: a connection over `max_connections`, or over `max_connections_per_ip` for its
//!   client address ([`table`]), is closed at once, without touching the others; an `accept`
//!   error (EMFILE: no file descriptor left) backs off from 5 ms doubling to 1 s instead of
//!   looping hot, and is logged at most once a second and counted ([`ConnStats`]);
//! - **slow clients**: a request head must arrive within `header_read_timeout` of the accept
//!   (TLS handshake included) and, on HTTP/1.1, of the previous response (hyper's header
//!   timer, which also bounds the keep-alive gap); a connection with no byte moving either way
//!   for `idle_timeout` is shut down gracefully, then closed after another `idle_timeout`
//!   ([`idle`]);
//! - **HTTP/1 heads**: at most `max_header_bytes` and `max_headers` (hyper answers 431);
//! - **HTTP/2**: `max_concurrent_streams`, `max_header_list_size`, keep-alive PINGs, and
//!   limits on streams reset by the client before being accepted (rapid reset,
//!   CVE-2023-44487) and on streams reset for the client's errors.
//!
//! On shutdown the listener stops accepting, asks every connection to finish gracefully and
//! waits up to the drain period for them.
//!
//! Request bodies are not limited here: their limits belong to the application (the gateway
//! limits them per route).

pub mod idle;
pub mod limits;
pub mod table;

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use idle::{Activity, Noting, Watched};
pub use limits::{Limits, LimitsError};
use table::{ConnTable, Refusal};

type BoxError = Box<dyn StdError + Send + Sync>;

/// What a listener did with its connections, for metrics.
#[derive(Debug, Default)]
pub struct ConnStats {
    pub accepted: AtomicU64,
    /// Closed at accept: the listener held `max_connections`.
    pub refused_total: AtomicU64,
    /// Closed at accept: the client held `max_connections_per_ip`.
    pub refused_per_ip: AtomicU64,
    /// `accept` failed (EMFILE and kin).
    pub accept_errors: AtomicU64,
    /// Closed for sending no request head in time (before any request), or for idling.
    pub timed_out: AtomicU64,
    /// TLS handshakes that failed or took longer than the header timeout.
    pub tls_failed: AtomicU64,
}

impl ConnStats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A bound listener and how to serve it.
pub struct Listener {
    pub tcp: TcpListener,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) instead of plain HTTP/1.1 and h2c.
    pub tls: Option<TlsAcceptor>,
    pub limits: Limits,
    pub stats: Arc<ConnStats>,
    /// What the listener is, for logs (`proxy`, `admin`, `control`).
    pub name: &'static str,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("tcp", &self.tcp)
            .field("tls", &self.tls.is_some())
            .field("limits", &self.limits)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The hyper builder `limits` describe.
pub fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(limits::MIN_HEADER_BYTES))
        .max_headers(limits.max_headers)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(limits.h2_max_header_list_bytes)
        .keep_alive_interval(limits.h2_keepalive_interval)
        .keep_alive_timeout(limits.h2_keepalive_timeout)
        .max_pending_accept_reset_streams(limits.h2_max_pending_accept_reset_streams)
        .max_local_error_reset_streams(limits.h2_max_local_error_reset_streams);
    b
}

/// Serve `listener` until `shutdown` completes, then drain its connections for up to
/// `drain`. `make` builds the service of each connection from its peer's address.
pub async fn serve<M, S, B>(
    listener: Listener,
    make: M,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) where
    M: Fn(SocketAddr) -> S,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let Listener {
        tcp,
        tls,
        limits,
        stats,
        name,
    } = listener;
    let table = ConnTable::new(limits.max_connections, limits.max_connections_per_ip);
    let builder = Arc::new(builder(&limits));
    let limits = Arc::new(limits);
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a sender; when the last one is gone, the drain is over.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let mut backoff = Backoff::default();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    ConnStats::bump(&stats.accept_errors);
                    backoff.failed(name, &e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        backoff.reset();
        let guard = match table.admit(peer.ip()) {
            Ok(g) => g,
            Err(refusal) => {
                refused(&stats, refusal, name, peer);
                drop(stream);
                continue;
            }
        };
        ConnStats::bump(&stats.accepted);
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            builder: builder.clone(),
            limits: limits.clone(),
            stats: stats.clone(),
            stop: stop_rx.clone(),
            peer,
        };
        let service = make(peer);
        let tls = tls.clone();
        let alive = alive_tx.clone();
        tokio::spawn(async move {
            conn.run(stream, tls, service).await;
            drop(guard);
            drop(alive);
        });
    }
    drop(tcp);
    drop(alive_tx);
    let _ = stop_tx.send(true);
    tracing::info!(listener = name, open = table.open(), "draining connections");
    tokio::select! {
        _ = alive_rx.recv() => tracing::info!(listener = name, "drained"),
        () = tokio::time::sleep(drain) => tracing::warn!(listener = name, timeout_secs = drain.as_secs(), open = table.open(), "drain timed out"),
    }
}

fn refused(stats: &ConnStats, refusal: Refusal, name: &'static str, peer: SocketAddr) {
    let (counter, limit) = match refusal {
        Refusal::Total => (&stats.refused_total, "max_connections"),
        Refusal::PerIp => (&stats.refused_per_ip, "max_connections_per_ip"),
    };
    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
    // The first and then every thousandth, so a flood cannot flood the log too.
    if n == 1 || n.is_multiple_of(1000) {
        tracing::warn!(listener = name, client = %peer.ip(), limit, refused = n, "connection refused: over the limit");
    }
}

/// The accept loop's back-off after errors: 5 ms doubling to 1 s, reset by a success.
#[derive(Debug, Default)]
struct Backoff {
    delay: Option<Duration>,
    last_log: Option<Instant>,
    since_log: u64,
}

impl Backoff {
    async fn failed(&mut self, name: &'static str, e: &io::Error) {
        let delay = self.delay.map_or(Duration::from_millis(5), |d| {
            (d * 2).min(Duration::from_secs(1))
        });
        self.delay = Some(delay);
        self.since_log += 1;
        if self
            .last_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            tracing::error!(listener = name, error = %e, errors = self.since_log, backoff_ms = delay.as_millis() as u64, "accept failed; backing off");
            self.last_log = Some(Instant::now());
            self.since_log = 0;
        }
        tokio::time::sleep(delay).await;
    }

    fn reset(&mut self) {
        self.delay = None;
    }
}

/// One accepted connection and what serving it needs.
struct Conn {
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Arc<Limits>,
    stats: Arc<ConnStats>,
    stop: watch::Receiver<bool>,
    peer: SocketAddr,
}

impl Conn {
    async fn run<S, B>(self, stream: TcpStream, tls: Option<TlsAcceptor>, service: S)
    where
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let activity = Activity::new();
        let service = Noting {
            inner: service,
            activity: activity.clone(),
        };
        match tls {
            None => {
                let io = Watched::new(TokioIo::new(stream), activity.clone());
                self.drive(io, service, activity).await;
            }
            Some(acceptor) => {
                let handshake =
                    tokio::time::timeout(self.limits.header_read_timeout, acceptor.accept(stream))
                        .await;
                let stream = match handshake {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        ConnStats::bump(&self.stats.tls_failed);
                        tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        ConnStats::bump(&self.stats.tls_failed);
                        tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                        return;
                    }
                };
                let io = Watched::new(TokioIo::new(stream), activity.clone());
                self.drive(io, service, activity).await;
            }
        }
    }

    /// Serve the connection, watching it: before its first request, the header timeout
    /// runs from the accept; then the idle timeout from the last byte moved. The first
    /// deadline shuts it down gracefully, the next one drops it.
    async fn drive<I, S, B>(mut self, io: I, service: S, activity: Arc<Activity>)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let conn = self.builder.serve_connection(io, service);
        let mut conn = pin!(conn);
        let mut closing: Option<Instant> = None;
        loop {
            let deadline = match closing {
                Some(hard) => hard,
                None => self.deadline(&activity),
            };
            tokio::select! {
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(peer = %self.peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = tokio::time::sleep_until(deadline.into()) => {
                    if closing.is_some() {
                        ConnStats::bump(&self.stats.timed_out);
                        tracing::debug!(peer = %self.peer, "connection closed: it did not finish after a graceful shutdown");
                        return;
                    }
                    if Instant::now() < self.deadline(&activity) {
                        continue; // bytes moved meanwhile
                    }
                    ConnStats::bump(&self.stats.timed_out);
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now() + self.limits.idle_timeout);
                }
                changed = self.stop.changed(), if closing.is_none() => {
                    if changed.is_ok() {
                        conn.as_mut().graceful_shutdown();
                    }
                    // The drain period bounds it from here.
                    closing = Some(Instant::now() + Duration::from_secs(3600));
                }
            }
        }
    }

    /// When the connection is due to be shut down unless bytes move.
    fn deadline(&self, activity: &Activity) -> Instant {
        let idle = activity.last() + self.limits.idle_timeout;
        if activity.has_requested() {
            idle
        } else {
            idle.min(activity.started() + self.limits.header_read_timeout)
        }
    }
}
