//! Upstream pools: endpoints with health state, load balancing, active health checks, and a
//! bounded HTTP client per pool.
//!
//! Pools outlive snapshots: a swap that leaves an upstream's definition unchanged keeps its
//! pool, with its connections, health state and health-check task. A pool's health task stops
//! when the last snapshot using the pool is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rampart_eval::bucket::murmur3_x86_32;
use rampart_model::config::{HealthCheck, LoadBalancing, Upstream};
use tokio::task::AbortHandle;

/// The request body type sent upstream.
pub type ReqBody = BoxBody<Bytes, crate::proxy::BoxError>;

/// Idle connections kept per endpoint.
pub const MAX_IDLE_PER_ENDPOINT: usize = 256;

/// One endpoint of a pool.
#[derive(Debug)]
pub struct Endpoint {
    pub addr: Box<str>,
    healthy: AtomicBool,
    inflight: AtomicUsize,
    ok_streak: AtomicU32,
    fail_streak: AtomicU32,
}

impl Endpoint {
    fn new(addr: &str) -> Self {
        Endpoint {
            addr: addr.into(),
            healthy: AtomicBool::new(true),
            inflight: AtomicUsize::new(0),
            ok_streak: AtomicU32::new(0),
            fail_streak: AtomicU32::new(0),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }

    /// Count a request in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.inflight.fetch_add(1, Relaxed);
        InFlight(self.clone())
    }

    fn observe(&self, ok: bool, hc: &HealthCheck) {
        if ok {
            self.fail_streak.store(0, Relaxed);
            let n = self.ok_streak.fetch_add(1, Relaxed) + 1;
            if n >= hc.healthy_threshold && !self.healthy.swap(true, Relaxed) {
                tracing::info!(endpoint = %self.addr, "endpoint healthy again");
            }
        } else {
            self.ok_streak.store(0, Relaxed);
            let n = self.fail_streak.fetch_add(1, Relaxed) + 1;
            if n >= hc.unhealthy_threshold && self.healthy.swap(false, Relaxed) {
                tracing::warn!(endpoint = %self.addr, failures = n, "endpoint ejected by health check");
            }
        }
    }
}

/// A request in flight to an endpoint; least-loaded balancing counts these.
#[derive(Debug)]
pub struct InFlight(Arc<Endpoint>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Relaxed);
    }
}

/// A pool of endpoints for one upstream.
#[derive(Debug)]
pub struct Pool {
    pub def: Upstream,
    pub endpoints: Vec<Arc<Endpoint>>,
    rr: AtomicUsize,
    pub client: Client<HttpConnector, ReqBody>,
    health_task: Option<AbortHandle>,
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(task) = &self.health_task {
            task.abort();
        }
    }
}

fn client(connect_timeout: Duration) -> Client<HttpConnector, ReqBody> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(MAX_IDLE_PER_ENDPOINT)
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector)
}

impl Pool {
    /// A new pool; starts its health checks when it has any. Needs a Tokio runtime.
    pub fn new(def: &Upstream) -> Arc<Pool> {
        let endpoints: Vec<Arc<Endpoint>> = def
            .endpoints
            .iter()
            .map(|e| Arc::new(Endpoint::new(e)))
            .collect();
        let client = client(Duration::from_millis(u64::from(def.timeouts.connect_ms)));
        let health_task = def.health_check.clone().map(|hc| {
            tokio::spawn(health_loop(endpoints.clone(), hc, client.clone())).abort_handle()
        });
        Arc::new(Pool {
            def: def.clone(),
            endpoints,
            rr: AtomicUsize::new(0),
            client,
            health_task,
        })
    }

    /// Pick a healthy endpoint, skipping `avoid` when another is healthy. `key` is the
    /// consistent-hash key, if the pool hashes.
    pub fn pick(&self, key: Option<&[u8]>, avoid: Option<&Endpoint>) -> Option<Arc<Endpoint>> {
        let healthy = |e: &&Arc<Endpoint>| e.is_healthy();
        let mut candidates: Vec<&Arc<Endpoint>> = self.endpoints.iter().filter(healthy).collect();
        if let Some(avoid) = avoid
            && candidates.len() > 1
        {
            candidates.retain(|e| !std::ptr::eq(Arc::as_ptr(e), avoid));
        }
        if candidates.is_empty() {
            return None;
        }
        let start = self.rr.fetch_add(1, Relaxed);
        let chosen = match (&self.def.load_balancing, key) {
            (LoadBalancing::ConsistentHash { .. }, Some(key)) => {
                // Rendezvous hashing: the endpoint with the highest score for this key; losing
                // an endpoint moves only the keys it held.
                candidates
                    .iter()
                    .max_by_key(|e| murmur3_x86_32(&[key, b"@", e.addr.as_bytes()], 0x5eed))
                    .copied()
            }
            (LoadBalancing::LeastLoaded, _) => {
                let n = candidates.len();
                (0..n)
                    .map(|i| candidates[(start + i) % n])
                    .min_by_key(|e| e.inflight.load(Relaxed))
            }
            _ => Some(candidates[start % candidates.len()]),
        };
        chosen.cloned()
    }
}

async fn health_loop(
    endpoints: Vec<Arc<Endpoint>>,
    hc: HealthCheck,
    client: Client<HttpConnector, ReqBody>,
) {
    let interval = Duration::from_millis(u64::from(hc.interval_ms));
    let timeout = Duration::from_millis(u64::from(hc.timeout_ms));
    loop {
        for e in &endpoints {
            let uri = format!("http://{}{}", e.addr, hc.path);
            let req = http::Request::get(uri)
                .header(http::header::USER_AGENT, "rampart-health/1")
                .body(
                    Empty::<Bytes>::new()
                        .map_err(|never| match never {})
                        .boxed(),
                );
            let ok = match req {
                Ok(req) => match tokio::time::timeout(timeout, client.request(req)).await {
                    Ok(Ok(resp)) => resp.status().is_success(),
                    _ => false,
                },
                Err(_) => false,
            };
            e.observe(ok, &hc);
        }
        tokio::time::sleep(interval).await;
    }
}

/// The pools of one snapshot, indexed like its upstreams.
#[derive(Debug, Default)]
pub struct Upstreams {
    pub pools: Vec<Arc<Pool>>,
}

impl Upstreams {
    /// Pools for `defs`, reusing any pool in `reuse` whose definition is unchanged.
    pub fn build(defs: &[Upstream], reuse: &[Arc<Pool>]) -> Upstreams {
        Upstreams {
            pools: defs
                .iter()
                .map(|d| {
                    reuse
                        .iter()
                        .find(|p| p.def == *d)
                        .cloned()
                        .unwrap_or_else(|| Pool::new(d))
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_model::config::RequestKey;

    fn upstream(lb: LoadBalancing, n: usize) -> Upstream {
        Upstream {
            name: "u".into(),
            endpoints: (0..n).map(|i| format!("127.0.0.1:{}", 9000 + i)).collect(),
            load_balancing: lb,
            timeouts: Default::default(),
            retries: Default::default(),
            health_check: None,
        }
    }

    #[tokio::test]
    async fn round_robin_skips_unhealthy_and_avoided() {
        let pool = Pool::new(&upstream(LoadBalancing::RoundRobin, 3));
        let picks: Vec<_> = (0..6)
            .map(|_| pool.pick(None, None).unwrap().addr.clone())
            .collect();
        assert_eq!(
            picks[0..3]
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len(),
            3
        );
        pool.endpoints[1].healthy.store(false, Relaxed);
        assert!((0..10).all(|_| &*pool.pick(None, None).unwrap().addr != "127.0.0.1:9001"));
        let avoid = pool.endpoints[0].clone();
        assert!((0..10).all(|_| {
            pool.pick(None, Some(&avoid))
                .unwrap()
                .addr
                .ends_with("9002")
        }));
        for e in &pool.endpoints {
            e.healthy.store(false, Relaxed);
        }
        assert!(pool.pick(None, None).is_none());
    }

    #[tokio::test]
    async fn least_loaded_prefers_idle_endpoints() {
        let pool = Pool::new(&upstream(LoadBalancing::LeastLoaded, 2));
        let _busy = pool.endpoints[0].start();
        assert!((0..5).all(|_| pool.pick(None, None).unwrap().addr.ends_with("9001")));
    }

    #[tokio::test]
    async fn consistent_hash_is_sticky_and_moves_only_lost_keys() {
        let pool = Pool::new(&upstream(
            LoadBalancing::ConsistentHash {
                key: RequestKey::Tenant,
            },
            4,
        ));
        let keys: Vec<String> = (0..200).map(|i| format!("tenant-{i}")).collect();
        let before: Vec<_> = keys
            .iter()
            .map(|k| pool.pick(Some(k.as_bytes()), None).unwrap().addr.clone())
            .collect();
        let again: Vec<_> = keys
            .iter()
            .map(|k| pool.pick(Some(k.as_bytes()), None).unwrap().addr.clone())
            .collect();
        assert_eq!(before, again);
        pool.endpoints[2].healthy.store(false, Relaxed);
        for (k, b) in keys.iter().zip(&before) {
            let now = pool.pick(Some(k.as_bytes()), None).unwrap().addr.clone();
            if !b.ends_with("9002") {
                assert_eq!(&now, b, "{k} moved although its endpoint is healthy");
            }
        }
    }

    #[tokio::test]
    async fn unchanged_pools_are_reused() {
        let a = upstream(LoadBalancing::RoundRobin, 2);
        let mut b = upstream(LoadBalancing::RoundRobin, 3);
        b.name = "v".into();
        let first = Upstreams::build(&[a.clone(), b.clone()], &[]);
        b.endpoints.pop();
        let second = Upstreams::build(&[a, b], &first.pools);
        assert!(Arc::ptr_eq(&first.pools[0], &second.pools[0]));
        assert!(!Arc::ptr_eq(&first.pools[1], &second.pools[1]));
    }
}
