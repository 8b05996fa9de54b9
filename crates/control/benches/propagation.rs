//! Propagation benchmark: the time from an applied change to the ACKs of N connected gateway
//! stream clients, for N = 10, 100 and 500, on loopback; and the control plane's memory per
//! connected gateway.
//!
//! Run with `cargo bench -p rampart-control --bench propagation`.
//!
//! Two processes, so that the control plane's memory is measured alone:
//!
//! - this process runs the real control plane (`api::router_with` over a `Service` on SQLite
//!   in a temporary directory, dev rules needing 0 approvals, the example fleet loaded into
//!   dev through submit + apply) on 127.0.0.1:0, and drives the rounds;
//! - for each N it starts a copy of itself (`--child`) running N stream clients as Tokio
//!   tasks. Each client uses the real gateway sync code (`rampart_gateway::sync::{Link,
//!   SseParser, Backoff}`: the same HTTP client, SSE parser, query, `Last-Event-ID` and ACK
//!   posting as `sync::run`). On every `snapshot` event it does what a gateway does before it
//!   ACKs: `Snapshot::from_json` (which verifies the content hash) and
//!   `rampart_eval::Evaluator::compile`, then POSTs the ACK. It does not build upstream pools
//!   or listeners (a full `Gateway` per client would be far heavier than the control plane
//!   under test). Like a gateway, it also posts a report every second (spread over the
//!   second), so the control plane carries that load too.
//!
//! A round: submit a change flipping the default of the `api-rate-per-second` flag (through the
//! service; not timed), then t0 = just before `POST /v1/changes/{id}/apply` (the operator's
//! path, which compiles, stores and publishes the rollout's first stage: the snapshot the apply
//! response names as `deployed_hash`), and each client's latency is the instant the control
//! plane finished handling its ACK of that hash (the ACK is recorded in
//! the store; a middleware in front of the router takes the time when the handler returns 204)
//! minus t0. p50/p99/max are over all clients and rounds.
//!
//! Memory: VmRSS of the control-plane process just before the clients connect, and once all N
//! have ACKed the current snapshot (and after the rounds). The clients live in the other
//! process, so the difference divided by N is the control plane's own cost per connected
//! gateway (stream task, connections, buffers, the fleet row). RSS includes allocator slack, so
//! it is an estimate; freed memory from a previous N is reused before the RSS grows again.

use rampart_api::{Role, TokenKind};
use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::StatusCode;
use rampart_control::api;
use rampart_control::rules::{EnvRules, RiskPolicy, RulesConfig};
use rampart_control::service::{Service, Submission};
use rampart_eval::Evaluator;
use rampart_gateway::sync::{self, Backoff, ControlSource, Link};
use rampart_model::change::{Edit, Object};
use rampart_model::wire::{ConfigAck, GatewayReport};
use rampart_model::{ContentHash, Environment, GatewayIdentity, Snapshot};
use rampart_store::Store;
use rampart_store::ops::*;
use serde_json::json;
use tokio::sync::mpsc;

const SIZES: [usize; 3] = [10, 100, 500];
const ROUNDS: usize = 10;
const FLAG: &str = "api-rate-per-second";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        let url = args[2].clone();
        let token = args[3].clone();
        let n: usize = args[4].parse().expect("N");
        child(url, token, n);
        return;
    }
    runtime().block_on(bench());
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

// ---- the control-plane side ----

/// One ACK as the control plane recorded it.
#[derive(Debug)]
struct AckSeen {
    id: String,
    hash: String,
    at: Instant,
}

/// Takes the time at which the ACK handler answered 204, with the gateway id and the hash.
async fn record_acks(
    State(tx): State<mpsc::UnboundedSender<AckSeen>>,
    req: Request,
    next: Next,
) -> Response {
    if req.uri().path() != "/v1/gateways/ack" {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let id = parts
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("id="))
        .unwrap_or_default()
        .to_owned();
    let ack: Option<ConfigAck> = serde_json::from_slice(&bytes).ok();
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if resp.status() == StatusCode::NO_CONTENT
        && let Some(ConfigAck::Ack { hash }) = ack
    {
        let _ = tx.send(AckSeen {
            id,
            hash: hash.to_string(),
            at: Instant::now(),
        });
    }
    resp
}

fn dev_rules() -> RulesConfig {
    let open = || RiskPolicy::new(0, None, false).expect("a policy");
    let dev = EnvRules::new([open(), open(), open(), open()], vec![]).expect("dev rules");
    RulesConfig::new(
        dev,
        EnvRules::defaults(Environment::Staging),
        EnvRules::defaults(Environment::Prod),
    )
    .expect("rules")
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Submit a change flipping the flag's default to `value`; returns its id.
async fn submit_flip(service: &Service, value: u64) -> String {
    let (config, head) = service
        .store()
        .config(Environment::Dev)
        .await
        .expect("config");
    let mut flag = config
        .flags
        .iter()
        .find(|f| f.name == FLAG)
        .expect("the example fleet has the flag")
        .clone();
    flag.default = json!(value);
    let view = service
        .submit(
            "bench",
            Submission {
                env: Environment::Dev,
                reason: "propagation benchmark".into(),
                declared_impact: Default::default(),
                edits: vec![Edit::Upsert(Object::Flag(flag))],
                base_version: head,
            },
        )
        .await
        .expect("the change is accepted");
    view.record.id
}

/// Collect ACKs of `hash` until every one of `n` clients has ACKed or `limit` passes;
/// returns the first ACK instant of each client.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<AckSeen>,
    early: Vec<AckSeen>,
    hash: &str,
    n: usize,
    limit: Duration,
) -> HashMap<String, Instant> {
    let mut got: HashMap<String, Instant> = HashMap::new();
    for a in early {
        if a.hash == hash {
            got.entry(a.id).or_insert(a.at);
        }
    }
    let deadline = tokio::time::Instant::now() + limit;
    while got.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(a)) => {
                if a.hash == hash {
                    got.entry(a.id).or_insert(a.at);
                }
            }
            _ => break,
        }
    }
    got
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[derive(Debug)]
struct Row {
    n: usize,
    samples: usize,
    missing: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    apply_p50: Duration,
    connect: Duration,
    rss_before: u64,
    rss_connected: u64,
    rss_after: u64,
    fds: usize,
}

fn spawn_clients(url: &str, token: &str, n: usize) -> Child {
    Command::new(std::env::current_exe().expect("the bench binary"))
        .args(["--child", url, token, &n.to_string()])
        .stdin(Stdio::piped())
        .spawn()
        .expect("the client process starts")
}

async fn bench() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}/data/control.db", dir.path().display());
    let store = Store::connect(&url).await.expect("the store");
    // Every change rolls out in one stage of 1 s that needs no samples: each round then ends
    // with the rollout complete, before the next one starts (one rollout per environment).
    let stage = json!([{
        "name": "100%", "scope": { "percent": 100.0 }, "min_soak_secs": 1, "min_samples": 0,
        "gates": [{ "deadline_secs": 30, "check": "no_nack" }],
    }]);
    let rollouts: rampart_control::plan::RolloutRules = serde_json::from_value(json!({
        "impact": { "enabled": false },
        "plans": { "low": stage, "medium": stage, "high": stage, "critical": stage },
    }))
    .expect("rollout rules");
    let service =
        Service::new(store, dev_rules()).with_rollouts(rampart_control::plan::RolloutConfig {
            dev: rollouts,
            ..Default::default()
        });
    tokio::spawn(
        rampart_control::rollout::Engine::new(service.clone(), Duration::from_millis(50)).run(),
    );

    // The example fleet, into dev through a change.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/fleet.yaml"
    ))
    .expect("examples/fleet.yaml");
    let fleet: rampart_model::config::Config =
        rampart_model::load::from_yaml(&text).expect("the example fleet loads");
    let edits: Vec<Edit> = fleet.objects().map(Edit::Upsert).collect();
    let view = service
        .submit(
            "bench",
            Submission {
                env: Environment::Dev,
                reason: "load the example fleet".into(),
                declared_impact: Default::default(),
                edits,
                base_version: 0,
            },
        )
        .await
        .expect("the fleet is accepted");
    let (_, first) = service
        .apply(&view.record.id, "bench")
        .await
        .expect("the fleet applies");
    let (_, gw_token) = service
        .create_token("bench", "bench-gateways", TokenKind::Gateway, None)
        .await
        .expect("a gateway token");
    let (_, admin) = service
        .create_token("bench", "bench-admin", TokenKind::User, Some(Role::Admin))
        .await
        .expect("an admin token");
    let snapshot_bytes = serde_json::to_string(&first.snapshot)
        .expect("serializes")
        .len();

    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = api::router_with(service.clone())
        .layer(axum::middleware::from_fn_with_state(tx, record_acks));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();

    println!(
        "propagation benchmark: control plane on {addr}, SQLite in a temporary directory, snapshot {snapshot_bytes} bytes of JSON, {ROUNDS} rounds per N"
    );
    let mut rows = Vec::new();
    let mut value = 1000u64;
    for n in SIZES {
        tokio::time::sleep(Duration::from_millis(500)).await;
        while rx.try_recv().is_ok() {}
        let current = service
            .store()
            .latest_snapshot(Environment::Dev)
            .await
            .expect("read")
            .expect("a snapshot")
            .hash
            .to_string();
        let rss_before = rss_kib();
        let started = Instant::now();
        let mut child = spawn_clients(&base, &gw_token, n);
        let got = collect(&mut rx, Vec::new(), &current, n, Duration::from_secs(60)).await;
        let connect = started.elapsed();
        assert_eq!(
            got.len(),
            n,
            "only {} of {n} clients ACKed the current snapshot within 60 s",
            got.len()
        );
        // Let the reports start and the connections settle.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let rss_connected = rss_kib();
        let fds = open_fds();

        let mut latencies = Vec::with_capacity(n * ROUNDS);
        let mut applies = Vec::with_capacity(ROUNDS);
        let mut missing = 0;
        for _ in 0..ROUNDS {
            value += 1;
            let id = submit_flip(&service, value).await;
            while rx.try_recv().is_ok() {}
            let t0 = Instant::now();
            let resp = http
                .post(format!("{base}/v1/changes/{id}/apply"))
                .bearer_auth(&admin)
                .json(&json!({}))
                .send()
                .await
                .expect("apply");
            let applied = t0.elapsed();
            assert_eq!(resp.status(), reqwest::StatusCode::OK, "apply");
            let body: serde_json::Value = resp.json().await.expect("apply body");
            let hash = body["deployed_hash"].as_str().expect("hash").to_owned();
            applies.push(applied);
            let got = collect(&mut rx, Vec::new(), &hash, n, Duration::from_secs(20)).await;
            missing += n - got.len();
            latencies.extend(got.values().map(|at| at.saturating_duration_since(t0)));
            // The rollout completes (its stage soaks 1 s) before the next round.
            let deadline = Instant::now() + Duration::from_secs(30);
            while !service
                .store()
                .active_rollouts()
                .await
                .expect("rollouts")
                .is_empty()
            {
                assert!(Instant::now() < deadline, "the rollout did not complete");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let rss_after = rss_kib();
        // Close the clients: they exit when their stdin closes.
        drop(child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if child.try_wait().ok().flatten().is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }

        latencies.sort();
        applies.sort();
        let row = Row {
            n,
            samples: latencies.len(),
            missing,
            p50: percentile(&latencies, 0.50),
            p99: percentile(&latencies, 0.99),
            max: latencies.last().copied().unwrap_or_default(),
            apply_p50: percentile(&applies, 0.50),
            connect,
            rss_before,
            rss_connected,
            rss_after,
            fds,
        };
        println!(
            "N = {n}: {} ACKs ({} missing), p50 {}, p99 {}, max {}; apply returns in {} (p50); all connected and ACKed in {}; RSS {:.1} -> {:.1} MiB connected, {:.1} MiB after the rounds; {} open fds",
            row.samples,
            row.missing,
            ms(row.p50),
            ms(row.p99),
            ms(row.max),
            ms(row.apply_p50),
            ms(row.connect),
            mib(row.rss_before),
            mib(row.rss_connected),
            mib(row.rss_after),
            row.fds,
        );
        rows.push(row);
    }

    println!();
    println!(
        "| N | ACKs (missing) | p50 | p99 | max | apply returns (p50) | RSS before -> connected (MiB) | per gateway (KiB), connected | per gateway (KiB), after rounds |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let per = |rss: u64| rss.saturating_sub(r.rss_before) as f64 / r.n as f64;
        println!(
            "| {} | {} ({}) | {} | {} | {} | {} | {:.1} -> {:.1} | {:.0} | {:.0} |",
            r.n,
            r.samples,
            r.missing,
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
            ms(r.apply_p50),
            mib(r.rss_before),
            mib(r.rss_connected),
            per(r.rss_connected),
            per(r.rss_after),
        );
    }
    if let Some(big) = rows.iter().find(|r| r.n == 500) {
        println!();
        println!(
            "goal (p99 < 1 s at N = 500): {}",
            if big.p99 < Duration::from_secs(1) && big.missing == 0 {
                "met"
            } else {
                "NOT met"
            }
        );
    }
}

// ---- the client side (the `--child` process) ----

fn child(url: String, token: String, n: usize) {
    let rt = runtime();
    for i in 0..n {
        rt.spawn(client(url.clone(), token.clone(), i, n));
    }
    // Run until the parent closes our stdin.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    rt.shutdown_timeout(Duration::from_millis(100));
}

/// What a client runs: the snapshot and its compiled evaluator, as a gateway keeps them.
type Running = Arc<Mutex<Option<(Snapshot, Evaluator)>>>;

async fn client(url: String, token: String, i: usize, n: usize) {
    let identity = GatewayIdentity {
        id: format!("bench-{i}"),
        cell: "bench".to_owned(),
        version: semver::Version::new(0, 1, 0),
    };
    let link = Link::new(
        ControlSource {
            url,
            token,
            env: Environment::Dev,
        },
        &identity,
    );
    let running: Running = Arc::default();
    // The reporter, as `sync::run` has, spread over the second.
    {
        let (link, running) = (link.clone(), running.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis((i * 1000 / n.max(1)) as u64)).await;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let snapshot: Option<ContentHash> = running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .map(|(s, _)| s.hash());
                let report = GatewayReport {
                    started_ms: None,
                    gateway: identity.clone(),
                    snapshot,
                    at_ms: rampart_model::clock::unix_ms(),
                    cohorts: Vec::new(),
                    last_nack: None,
                };
                if let Err(e) = link.post_json("/v1/gateways/report", &report).await {
                    eprintln!("bench-{i}: report: {e}");
                }
            }
        });
    }
    let mut backoff = Backoff::new();
    let mut last_id: Option<String> = None;
    loop {
        // The gateway's own stream client; parse, verify and compile stand in for
        // `Gateway::offer`, which would also build pools and listeners per client.
        let offer = |parsed: Result<Snapshot, String>| {
            let snapshot = parsed
                .map_err(|e| eprintln!("a snapshot does not parse: {e}"))
                .ok()?;
            let hash = snapshot.hash();
            Some(match Evaluator::compile(&snapshot) {
                Ok(evaluator) => {
                    *running.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some((snapshot, evaluator));
                    ConfigAck::Ack { hash }
                }
                Err(e) => ConfigAck::Nack {
                    hash,
                    reason: e.to_string(),
                },
            })
        };
        if let Err(e) = sync::follow(&link, &mut last_id, &mut backoff, offer).await {
            eprintln!("bench-{i}: {e}");
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}
