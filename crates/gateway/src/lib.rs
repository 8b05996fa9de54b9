//! # rampart-gateway
//!
//! The data plane: a proxy on hyper 1.x and hyper-util that carries customer traffic, with
//! every routing and policy decision taken by `rampart-eval`. Its first duty is never to stop
//! serving:
//!
//! - snapshots are compiled before they are swapped in (with `arc-swap`); one that does not
//!   compile is refused (a NACK) and the previous one keeps serving;
//! - requests finish on the snapshot they started on;
//! - a candidate whose evaluation panics serves that request with the baseline, and a
//!   candidate that fails too often on this gateway is dropped by the local guard;
//! - the last snapshot that ran for the stability period is kept on disk as the last known
//!   good (LKG), checked by hash, and used when no config source answers;
//! - a snapshot that crashed the process twice soon after activation is quarantined
//!   (the crash-loop guard) and the gateway boots on its LKG instead.
//!
//! Config sources feed [`Gateway::offer`]: a watched file ([`source`]) and the control
//! plane's stream ([`sync`]); either or both may be used.
//!
//! ## The request path
//!
//! [`server`] accepts connections through `rampart-listen` (header-read and idle timeouts,
//! connection limits in total and per client, HTTP/1 head and HTTP/2 limits) and, shedding load
//! beyond `max_inflight`, hands each request to [`proxy::handle`], which runs it through named
//! phases with one per-request context ([`proxy::RequestCtx`]), as pingora's
//! `request_filter` / `upstream_peer` / `response_filter` / `logging` do:
//!
//! 1. **route and decide**: read the canonical target ([`proxy::path`]: one host, the path
//!    normalised by `rampart_model::paths`; it is also what is forwarded) and the client
//!    ([`proxy::client`]: its address, `X-Forwarded-For` believed only from trusted proxies; the
//!    tenant header taken out), choose the cohort on the [`live`] snapshot, evaluate with
//!    `rampart-eval`, take
//!    rate-limit tokens ([`ratelimit`]);
//! 2. **respond or forward**: a synthetic response ([`proxy::respond`]), or the call to a pool
//!    endpoint ([`upstream`]) with timeouts and retries ([`proxy::forward`]), headers edited
//!    by [`proxy::headers`];
//! 3. **record** ([`proxy::record`]): cohort counters and the local guard ([`stats`]),
//!    [`metrics`], request samples.
//!
//! Every refusal or failure of the gateway itself is a [`proxy::Reject`], whose status and
//! `x-rampart-error` are set in one place.
//!
//! Request bodies are limited per route (`max_body_bytes`, [`proxy::body`]).
//!
//! Around it: the admin API ([`admin`]: loopback unless a bearer token is set, credential
//! hashes redacted), the last known good and crash-loop guard ([`lkg`]),
//! the demo upstream ([`demo`]) and, with the `testing` feature, test upstreams (`testing`).

pub mod admin;
pub mod demo;
pub mod live;
pub mod lkg;
pub mod metrics;
pub mod proxy;
pub mod ratelimit;
pub mod server;
pub mod source;
pub mod stats;
pub mod sync;
#[cfg(feature = "testing")]
pub mod testing;
pub mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rampart_model::Snapshot;
use rampart_model::wire::ConfigAck;
use tokio::sync::watch;

use crate::live::{Options, Shared};
use crate::lkg::{CRASH_LIMIT, LkgStore};
pub use crate::stats::GuardConfig;

/// Arm the fault-injection points named in the `FAILPOINTS` variable (for example
/// `FAILPOINTS=gateway::candidate=panic`). A no-op unless built with the `failpoints` feature.
/// Keep the returned guard alive for the life of the process.
pub fn failpoints() -> impl Sized {
    #[cfg(feature = "failpoints")]
    {
        fail::FailScenario::setup()
    }
}

/// Everything a gateway process is started with.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    pub identity: rampart_model::GatewayIdentity,
    /// Plain HTTP/1.1 and h2c.
    pub listen: SocketAddr,
    /// HTTPS with HTTP/2 and HTTP/1.1 by ALPN: address, certificate and key (PEM).
    pub tls: Option<(SocketAddr, PathBuf, PathBuf)>,
    pub admin: SocketAddr,
    /// Where the LKG and the crash-loop guard's state live.
    pub data_dir: PathBuf,
    /// A fleet or snapshot file to watch.
    pub config: Option<PathBuf>,
    /// The control plane to follow: its URL (`http://host:port`), a gateway token and the
    /// environment.
    pub control: Option<(String, String, rampart_model::Environment)>,
    pub poll: Duration,
    /// How long a snapshot must run before it is the LKG.
    pub stability: Duration,
    /// How long shutdown waits for in-flight requests.
    pub drain: Duration,
    pub guard: GuardConfig,
    pub sample_every: u64,
    pub sample_capacity: usize,
    /// Requests in flight at once, over all listeners; more are shed with 503 `overloaded`.
    pub max_inflight: usize,
    /// Connection hygiene of every listener (proxy, TLS, admin).
    pub limits: rampart_listen::Limits,
    /// The bearer token the admin listener requires (all but `/healthz` and `/readyz`).
    /// Without it, the admin listener must bind a loopback address.
    pub admin_token: Option<admin::AdminToken>,
}

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Lkg(#[from] lkg::LkgError),
    #[error("{0}")]
    Listen(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Admin(String),
    #[error(transparent)]
    Limits(#[from] rampart_listen::LimitsError),
}

/// A running gateway's state and its config entry point.
#[derive(Debug)]
pub struct Gateway {
    pub shared: Arc<Shared>,
    lkg: Arc<LkgStore>,
    stability: Duration,
}

impl Gateway {
    /// Offer a snapshot from any source. Returns the ACK or the NACK the source should relay.
    pub fn offer(&self, snapshot: Snapshot) -> ConfigAck {
        let hash = snapshot.hash();
        // Fault injection for drills and tests: `FAILPOINTS=gateway::refuse=1*off->return`
        // accepts the first snapshot and refuses the rest, as a gateway with a bug would.
        #[cfg(feature = "failpoints")]
        fail::fail_point!("gateway::refuse", |_| {
            let reason = "refused by the gateway::refuse failpoint".to_owned();
            self.shared.refuse_external(&snapshot, reason.clone());
            ConfigAck::Nack { hash, reason }
        });
        match self.lkg.is_quarantined(hash) {
            Ok(true) => {
                let reason = format!(
                    "crash-loop guard: snapshot {hash} crashed this gateway {CRASH_LIMIT} times before it ran {}s; refusing it",
                    self.stability.as_secs()
                );
                self.shared.refuse_external(&snapshot, reason.clone());
                return ConfigAck::Nack { hash, reason };
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the crash-loop guard state"),
        }
        if self
            .shared
            .current()
            .is_some_and(|a| a.snapshot.hash() == hash)
        {
            return ConfigAck::Ack { hash };
        }
        let active = match self.shared.prepare(snapshot) {
            Ok(a) => a,
            Err(refused) => {
                return ConfigAck::Nack {
                    hash,
                    reason: refused.0,
                };
            }
        };
        // The marker is on disk before the first request meets the snapshot, so a crash on
        // its very first requests is counted.
        if let Err(e) = self.lkg.begin_activation(hash) {
            tracing::warn!(error = %e, "cannot record the activation");
        }
        self.shared.activate(active.clone());
        self.watch_stability(active);
        ConfigAck::Ack { hash }
    }

    /// Offer what a file poll produced; a file that does not parse counts as refused.
    fn offer_polled(&self, polled: Result<Option<Snapshot>, String>) {
        match polled {
            Ok(Some(snapshot)) => {
                self.offer(snapshot);
            }
            Ok(None) => {}
            Err(_) => {
                self.shared.metrics.configs_refused.inc();
            }
        }
    }

    /// Make the snapshot the LKG once it has run for the stability period without the
    /// process dying.
    fn watch_stability(&self, active: Arc<live::Active>) {
        let hash = active.snapshot.hash();
        let (lkg, shared, stability) = (self.lkg.clone(), self.shared.clone(), self.stability);
        tokio::spawn(async move {
            tokio::time::sleep(stability).await;
            if shared.current().map(|a| a.snapshot.hash()) != Some(hash) {
                return;
            }
            match lkg.save(&active.snapshot).and_then(|()| lkg.confirm(hash)) {
                Ok(()) => {
                    tracing::info!(hash = %hash, "snapshot is stable; saved as last known good")
                }
                Err(e) => tracing::error!(error = %e, "cannot save the last known good"),
            }
        });
    }

    /// Boot from the LKG on disk: the current file, else the previous one. A corrupted file
    /// is refused with its reason.
    fn boot_from_lkg(&self) {
        for (what, loaded) in [
            ("current", self.lkg.load_current()),
            ("previous", self.lkg.load_previous()),
        ] {
            match loaded {
                Ok(Some(snapshot)) => {
                    let hash = snapshot.hash();
                    if let ConfigAck::Ack { .. } = self.offer(snapshot) {
                        tracing::warn!(hash = %hash, file = what, "booted from the last known good on disk");
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "refusing the last known good file"),
            }
        }
        tracing::error!("no usable snapshot: serving 503 until a config source provides one");
    }
}

/// Run a gateway until `shutdown` turns true. `on_ready` receives the bound addresses
/// (proxy, admin, TLS) once every listener is up.
pub async fn run(
    opts: GatewayOptions,
    shutdown: watch::Receiver<bool>,
    on_ready: impl FnOnce(SocketAddr, SocketAddr, Option<SocketAddr>),
) -> Result<(), GatewayError> {
    opts.limits.check()?;
    if opts.admin_token.is_none() && !opts.admin.ip().is_loopback() {
        return Err(GatewayError::Admin(format!(
            "the admin listener {} is not a loopback address: set an admin token (--admin-token-file) to expose /metrics, /cohorts, /samples and /config beyond this host",
            opts.admin
        )));
    }
    let lkg = Arc::new(LkgStore::open(&opts.data_dir)?);
    let boot = lkg.on_boot()?;
    if let Some((hash, crashes)) = boot.crashed {
        if crashes >= CRASH_LIMIT {
            tracing::error!(hash = %hash, crashes, "crash-loop guard: the process died {crashes} times soon after activating this snapshot; it is quarantined and the gateway boots on its last known good");
        } else {
            tracing::warn!(hash = %hash, crashes, "the previous process died before this snapshot was confirmed stable");
        }
    }
    let shared = Arc::new(Shared::new(&Options {
        identity: opts.identity.clone(),
        guard: opts.guard,
        sample_every: opts.sample_every,
        sample_capacity: opts.sample_capacity,
    }));
    let gateway = Arc::new(Gateway {
        shared: shared.clone(),
        lkg: lkg.clone(),
        stability: opts.stability,
    });
    // Listeners first, so a bad address fails before anything else happens.
    let listener = server::bind(opts.listen, "the proxy")
        .await
        .map_err(GatewayError::Listen)?;
    let admin = server::bind(opts.admin, "the admin API")
        .await
        .map_err(GatewayError::Listen)?;
    let tls = match &opts.tls {
        None => None,
        Some((addr, cert, key)) => {
            let acceptor = server::tls_acceptor(cert, key).map_err(GatewayError::Tls)?;
            let l = server::bind(*addr, "TLS")
                .await
                .map_err(GatewayError::Listen)?;
            Some((l, acceptor))
        }
    };
    let mut watcher = opts.config.clone().map(source::FileSource::new);
    if let Some(w) = watcher.as_mut() {
        gateway.offer_polled(w.poll());
    }
    if shared.current().is_none() {
        gateway.boot_from_lkg();
    }
    let proxy_addr = listener
        .local_addr()
        .map_err(|e| GatewayError::Listen(e.to_string()))?;
    let admin_addr = admin
        .local_addr()
        .map_err(|e| GatewayError::Listen(e.to_string()))?;
    let tls_addr = tls.as_ref().and_then(|(l, _)| l.local_addr().ok());

    if let Some(mut w) = watcher {
        let (gateway, mut stop, poll) = (gateway.clone(), shutdown.clone(), opts.poll);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = stop.changed() => return,
                }
                gateway.offer_polled(w.poll());
            }
        });
    }
    if let Some((url, token, env)) = opts.control.clone() {
        let source = sync::ControlSource { url, token, env };
        tokio::spawn(sync::run(gateway.clone(), source, shutdown.clone()));
    }
    let listener_of =
        |tcp, tls, stats: &Arc<rampart_listen::ConnStats>, name| rampart_listen::Listener {
            tcp,
            tls,
            limits: opts.limits.clone(),
            stats: stats.clone(),
            name,
        };
    let admin_listener = listener_of(admin, None, &shared.listeners.admin, "admin");
    let router = admin::router(shared.clone(), opts.admin_token.clone());
    let mut admin_stop = shutdown.clone();
    let admin_task = tokio::spawn(rampart_listen::serve(
        admin_listener,
        move |_peer| hyper_util::service::TowerToHyperService::new(router.clone()),
        async move {
            let _ = admin_stop.changed().await;
        },
        opts.drain,
    ));
    let limit = server::GlobalConcurrencyLimitLayer::new(opts.max_inflight.max(1));
    let tls_task = tls.map(|(l, acceptor)| {
        tokio::spawn(server::serve(
            listener_of(l, Some(acceptor), &shared.listeners.tls, "tls"),
            gateway.shared.clone(),
            shutdown.clone(),
            opts.drain,
            limit.clone(),
        ))
    });
    on_ready(proxy_addr, admin_addr, tls_addr);
    server::serve(
        listener_of(listener, None, &shared.listeners.proxy, "proxy"),
        gateway.shared.clone(),
        shutdown,
        opts.drain,
        limit,
    )
    .await;
    if let Some(t) = tls_task {
        let _ = t.await;
    }
    let _ = admin_task.await;
    if let Err(e) = lkg.clear_marker() {
        tracing::warn!(error = %e, "cannot clear the activation marker");
    }
    Ok(())
}
