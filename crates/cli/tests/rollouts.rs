//! Progressive rollouts with real processes: a `rampart control` process (SQLite, or two
//! replicas on PostgreSQL), three `rampart gateway` processes in two cells following it, real
//! loopback upstreams, and bounded open-loop load through every gateway.
//!
//! The fleet is the incident pattern of `../shared/context/`: a static-response policy whose
//! `enabled` and `status` fields are bound to flags. The erroneous change turns the policy on
//! for everyone, and every request then fails with a 503 from the gateway itself.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Gateway, Upstream, rampart_bin, start_gateway_with_args, upstream};

const ENV: &str = "staging";

/// These tests each run a fleet of processes under load, and judge it by counts and timings:
/// they run one at a time, so a 2-core machine is not shared between fleets.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const HOST: &str = "shop.test";
const TENANT_HEADER: &str = "x-tenant-id";

/// The control plane's configuration: no approvals in staging, and `stages` as the plan of
/// every risk level, with short soaks so a test runs in seconds.
fn control_config(stages: &Value, impact: bool) -> String {
    let open = json!({ "approvals": 0 });
    let plans = json!({ "low": stages, "medium": stages, "high": stages, "critical": stages });
    let cfg = json!({
        "rules": { "staging": { "low": open, "medium": open, "high": open, "critical": open } },
        "rollouts": { "staging": {
            "plans": plans,
            "impact": { "enabled": impact, "max_excess_percent": 1.0, "min_samples": 50 },
        } },
    });
    serde_json::to_string_pretty(&cfg).unwrap()
}

/// The gates of a live stage, each with `deadline` seconds.
fn gates(deadline: u64) -> Value {
    json!([
        { "deadline_secs": deadline, "check": { "error_rate": { "alpha": 0.01, "min_effect": 0.05, "min_samples": 20 } } },
        { "deadline_secs": deadline, "check": { "deny_rate": { "alpha": 0.01, "min_effect": 0.05, "min_samples": 20 } } },
        // The p99 of a cohort of ~100 requests on a shared 2-core machine swings 3-4x between
        // cohorts (seen: 3.12, 3.41, 3.58 on healthy changes, failing the default 3.0). The gate
        // still runs and must pass here; its logic is tested in control's gates/tests.rs.
        { "deadline_secs": deadline, "check": { "latency_p99": { "max_ratio": 10.0 } } },
        { "deadline_secs": deadline, "check": { "traffic_floor": { "min_ratio": 0.5 } } },
        { "deadline_secs": deadline, "check": "no_nack" },
        { "deadline_secs": deadline, "check": "no_local_guard_trip" },
    ])
}

fn stage(name: &str, cells: &[&str], percent: f64, soak: u64, samples: u64) -> Value {
    json!({
        "name": name,
        "scope": { "cells": cells, "percent": percent },
        "min_soak_secs": soak,
        "min_samples": samples,
        "gates": gates(20),
    })
}

/// Two stages: `first` at `percent` of every gateway soaking `soak` seconds, then 100% soaking
/// `last_soak`; 20 samples each.
fn two_stages(first: &str, percent: f64, soak: u64, last_soak: u64) -> Value {
    then_all(stage(first, &[], percent, soak, 20), last_soak, 20)
}

/// The stage `first`, then 100% soaking `soak` seconds with `samples` samples.
fn then_all(first: Value, soak: u64, samples: u64) -> Value {
    json!([first, stage("100%", &[], 100.0, soak, samples)])
}

/// The fleet: one product behind the incident's policy, two healthy endpoints, and a black
/// hole (accepts, never answers) for the traffic-collapse test.
fn fleet(up: &[SocketAddr], void: SocketAddr) -> Value {
    let probe = |value: Value| json!([{ "name": "probe", "when": [{ "attribute": "tenant", "op": "in", "values": ["probe"] }], "value": value }]);
    json!({
        "environment": ENV,
        // The load generator stands in for the edge proxy that names each request's tenant.
        "settings": { "tenant_header": TENANT_HEADER, "trusted_proxies": ["127.0.0.0/8"],
                      "tenant": { "from_trusted_proxy": true } },
        "products": [{ "name": "shop" }],
        "upstreams": [
            { "name": "shop-app", "endpoints": up.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
              "timeouts": { "connect_ms": 500, "read_ms": 2000, "total_ms": 3000 } },
            { "name": "shop-void", "endpoints": [void.to_string()],
              "timeouts": { "connect_ms": 500, "read_ms": 60000, "total_ms": 60000 } },
        ],
        "routes": [{ "id": "shop-all", "product": "shop",
                     "match": { "host": HOST, "path": { "prefix": "/" } },
                     "upstream": "shop-app", "policies": ["shop-edge"] }],
        "policies": [{ "id": "shop-edge",
                       "enabled": { "flag": "edge-static-enabled" },
                       "static_response": { "status": { "flag": "edge-static-status" }, "body": "edge" } }],
        "flags": [
            { "name": "edge-static-enabled", "type": "bool", "default": false, "risk": "medium", "owner": "team-edge",
              "rules": probe(json!(true)) },
            { "name": "edge-static-status", "type": "int", "default": 503, "risk": "medium", "owner": "team-edge",
              "rules": probe(json!(200)) },
        ],
    })
}

/// The incident's erroneous value: the static response turned on for everyone.
fn erroneous_flag() -> Value {
    let f = &fleet(
        &["127.0.0.1:1".parse().unwrap()],
        "127.0.0.1:1".parse().unwrap(),
    )["flags"][0];
    let mut f = f.clone();
    f["default"] = json!(true);
    json!([{ "upsert": { "flag": f } }])
}

/// The incident as the original outage had it: the gateway refuses everyone (403), which is
/// no 5xx at all.
fn deny_everyone() -> Value {
    let flags = fleet(
        &["127.0.0.1:1".parse().unwrap()],
        "127.0.0.1:1".parse().unwrap(),
    )["flags"]
        .clone();
    let (mut enabled, mut status) = (flags[0].clone(), flags[1].clone());
    enabled["default"] = json!(true);
    status["default"] = json!(403);
    json!([{ "upsert": { "flag": enabled } }, { "upsert": { "flag": status } }])
}

/// A harmless change: a new response header on every answer.
fn healthy_edit() -> Value {
    json!([{ "upsert": { "policy": {
        "id": "shop-header",
        "headers": { "response": { "set": [{ "name": "x-shop", "value": "v2" }] } },
    } } }, { "upsert": { "route": {
        "id": "shop-all", "product": "shop",
        "match": { "host": HOST, "path": { "prefix": "/" } },
        "upstream": "shop-app", "policies": ["shop-edge", "shop-header"],
    } } }])
}

// ---- processes ----

/// A running `rampart control`; killed on drop.
struct Control {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Control {
    fn start(db: &str, addr: SocketAddr, config: &Path, dir: &Path) -> Control {
        let log = dir.join(format!("control-{}.log", addr.port()));
        let mut child = Command::new(rampart_bin())
            .args([
                "control",
                "--db",
                db,
                "--listen",
                &addr.to_string(),
                "--config",
            ])
            .arg(config)
            .args(["--rollout-tick-ms", "100", "--bootstrap-token-file"])
            .arg(dir.join("admin-token"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(
                std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap(),
            )
            .spawn()
            .expect("rampart control starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("rampart control listening on http://") {
                    let _ = tx.send(a.to_owned());
                }
            }
        });
        let Ok(bound) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!(
                "control plane not ready: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Control {
            child,
            addr: bound.parse().unwrap(),
            log,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free loopback port (bound, then released).
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A listener that accepts connections and never answers.
async fn black_hole() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    (addr, task)
}

/// The admin API, as a client.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (s, v) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    /// Submit a change of `edits` on the current version; its id.
    async fn submit(&self, reason: &str, edits: Value, declared: f64) -> String {
        let head = self.get(&format!("/v1/envs/{ENV}/config")).await["version"].clone();
        let (s, v) = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/envs/{ENV}/changes"),
                Some(
                    json!({ "reason": reason, "edits": edits, "base_version": head,
                             "declared_impact": { "changed_percent": declared } }),
                ),
            )
            .await;
        assert_eq!(s, 201, "submit: {v}");
        v["id"].as_str().unwrap().to_owned()
    }

    /// Submit a change (declaring no impact) and apply it: the change's id and its rollout's.
    async fn start(&self, reason: &str, edits: Value) -> (String, String) {
        let id = self.submit(reason, edits, 0.0).await;
        let (s, v) = self.apply(&id).await;
        assert_eq!(s, 200, "{v}");
        let rollout = v["rollout_id"]
            .as_str()
            .expect("a rollout started")
            .to_owned();
        (id, rollout)
    }

    async fn apply(&self, id: &str) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            &format!("/v1/changes/{id}/apply"),
            Some(json!({})),
        )
        .await
    }

    async fn rollout(&self, id: &str) -> Value {
        self.get(&format!("/v1/rollouts/{id}")).await
    }

    /// Wait (`secs` at most) until the rollout ends, succeeded or rolled back.
    /// Start a change's rollout, wait (at most 60 s) for it to end, and check it ended in
    /// `state`; returns the change id and the rollout.
    async fn run_to_end(&self, reason: &str, edits: Value, state: &str) -> (String, Value) {
        let (id, rollout_id) = self.start(reason, edits).await;
        let r = self.wait_end(&rollout_id, 60).await;
        assert_eq!(r["state"], state, "{r:#}");
        (id, r)
    }

    async fn wait_end(&self, id: &str, secs: u64) -> Value {
        let states = ["succeeded", "rolled_back"];
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let r = self.rollout(id).await;
            if states.iter().any(|s| r["state"] == *s) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "rollout never reached {states:?}: {r:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A bounded open-loop load: `rate` requests per second to each gateway, many tenants, every
/// answer counted by whether it failed (5xx, or no answer in 2 s).
struct Load {
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(targets: &[SocketAddr], rate: u64, max_secs: u64) -> Load {
        let (sent, failed, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        let tasks = targets
            .iter()
            .enumerate()
            .map(|(g, addr)| {
                let (sent, failed, stop, client) =
                    (sent.clone(), failed.clone(), stop.clone(), client.clone());
                let url = format!("http://{addr}/items");
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
                    let end = Instant::now() + Duration::from_secs(max_secs);
                    for i in 0u64.. {
                        tick.tick().await;
                        if stop.load(Relaxed) || Instant::now() > end {
                            return;
                        }
                        sent.fetch_add(1, Relaxed);
                        let req = client
                            .get(&url)
                            .header("host", HOST)
                            .header(TENANT_HEADER, format!("t{}-{}", g, i % 400));
                        let failed = failed.clone();
                        tokio::spawn(async move {
                            match req.send().await {
                                Ok(r) if r.status().is_server_error() => {
                                    failed.fetch_add(1, Relaxed);
                                }
                                Ok(r) => {
                                    let _ = r.bytes().await;
                                }
                                Err(_) => {
                                    failed.fetch_add(1, Relaxed);
                                }
                            }
                        });
                    }
                })
            })
            .collect();
        Load {
            sent,
            failed,
            stop,
            tasks,
        }
    }

    fn counts(&self) -> (u64, u64) {
        (self.sent.load(Relaxed), self.failed.load(Relaxed))
    }

    async fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Relaxed);
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
        // Let answers in flight land (the client times out at 2 s).
        tokio::time::sleep(Duration::from_millis(2_200)).await;
        self.counts()
    }
}

/// The whole fleet: a control plane, three gateways in two cells, two upstreams.
struct Fleet {
    dir: tempfile::TempDir,
    controls: Vec<Control>,
    api: Api,
    gateways: Vec<Gateway>,
    _upstreams: Vec<Upstream>,
    _void: tokio::task::JoinHandle<()>,
    config: PathBuf,
}

/// Gateway identities: two in cell `a`, one in cell `b`.
const GATEWAYS: [(&str, &str); 3] = [("gw-a1", "a"), ("gw-a2", "a"), ("gw-b1", "b")];

impl Fleet {
    /// Start everything on SQLite, load the fleet as the environment's first config.
    async fn start(stages: Value, impact: bool) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}/control.db", dir.path().display());
        Fleet::start_on(dir, &[db], stages, impact).await
    }

    /// Start everything on SQLite, then `rate` requests per second through every gateway (for
    /// `secs` at most), and wait until the gateways have reported for a while.
    async fn under_load(stages: Value, impact: bool, rate: u64, secs: u64) -> (Fleet, Load) {
        let fleet = Fleet::start(stages, impact).await;
        let load = Load::start(&fleet.proxies(), rate, secs);
        fleet.warm_up().await;
        (fleet, load)
    }

    /// Start one control plane per database URL (replicas when they share one); gateways
    /// follow the last.
    async fn start_on(
        dir: tempfile::TempDir,
        dbs: &[String],
        stages: Value,
        impact: bool,
    ) -> Fleet {
        let config = dir.path().join("control.yaml");
        std::fs::write(&config, control_config(&stages, impact)).unwrap();
        let mut controls = Vec::new();
        for db in dbs {
            controls.push(Control::start(db, free_addr(), &config, dir.path()));
            // The first replica takes the driver's lock before the next starts.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
        let follow = controls.last().unwrap().url();
        let api = Api {
            http: reqwest::Client::new(),
            base: follow.clone(),
            token: token.trim().to_owned(),
        };
        let ups = vec![upstream("shop-1").await, upstream("shop-2").await];
        let (void, void_task) = black_hole().await;
        let addrs: Vec<SocketAddr> = ups.iter().map(|u| u.addr).collect();
        // The first config: applied at once (there is no baseline to roll out against).
        let first = api
            .call(
                reqwest::Method::POST,
                &format!("/v1/envs/{ENV}/changes"),
                Some(json!({ "reason": "first config", "base_version": 0,
                             "edits": objects_of(&fleet(&addrs, void)) })),
            )
            .await;
        assert_eq!(first.0, 201, "{}", first.1);
        let (s, v) = api.apply(first.1["id"].as_str().unwrap()).await;
        assert_eq!(s, 200, "{v}");
        let mut gateways = Vec::new();
        for (id, cell) in GATEWAYS {
            let (_, tok) = api
                .call(
                    reqwest::Method::POST,
                    "/v1/tokens",
                    Some(json!({ "name": id, "kind": "gateway" })),
                )
                .await;
            let secret = tok["secret"].as_str().unwrap().to_owned();
            gateways.push(start_gateway_with_args(
                None,
                &dir.path().join(id),
                &[
                    "--id",
                    id,
                    "--cell",
                    cell,
                    "--control",
                    &follow,
                    "--control-token",
                    &secret,
                    "--env",
                    ENV,
                    "--sample-every",
                    "1",
                ],
                &[],
            ));
        }
        for g in &gateways {
            g.wait_for_snapshot(None).await;
        }
        Fleet {
            dir,
            controls,
            api,
            gateways,
            _upstreams: ups,
            _void: void_task,
            config,
        }
    }

    fn proxies(&self) -> Vec<SocketAddr> {
        self.gateways.iter().map(|g| g.proxy).collect()
    }

    /// Wait until every gateway has reported (and uploaded samples) for a few seconds.
    async fn warm_up(&self) {
        tokio::time::sleep(Duration::from_secs(7)).await;
    }

    /// The snapshot hash each gateway runs.
    async fn running(&self) -> Vec<String> {
        let mut out = Vec::new();
        for g in &self.gateways {
            out.push(running(g).await);
        }
        out
    }

    /// Wait (10 s at most) until every gateway runs `hash`.
    async fn wait_all_on(&self, hash: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for g in &self.gateways {
            while running(g).await != hash {
                assert!(Instant::now() < deadline, "{} never ran {hash}", g.log());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for c in &self.controls {
            out.push_str(&c.log());
        }
        for g in &self.gateways {
            out.push_str(&g.log());
        }
        out
    }
}

/// Every object of a fleet file as upsert edits.
fn objects_of(fleet: &Value) -> Value {
    let mut edits = Vec::new();
    // The settings (trusted proxies, the tenant's sources) travel as an object of their own.
    if let Some(settings) = fleet.get("settings") {
        edits.push(json!({ "upsert": { "settings": settings } }));
    }
    for (key, kind) in [
        ("products", "product"),
        ("upstreams", "upstream"),
        ("policies", "policy"),
        ("routes", "route"),
        ("flags", "flag"),
    ] {
        for o in fleet[key].as_array().unwrap() {
            edits.push(json!({ "upsert": { kind: o } }));
        }
    }
    Value::Array(edits)
}

/// Run `rampart ARGS` against the fleet's control plane: (success, stdout, stderr).
fn cli(api: &Api, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(rampart_bin())
        .args(args)
        .args(["--server", &api.base, "--token", &api.token])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A gate's result in the evidence of a rollout's rollback (its second decision).
fn failed_stage_gate(rollout: &Value, gate: &str) -> Value {
    rollout["decisions"][1]["evidence"]["evidence"]["gates"]
        .as_array()
        .expect("the rollback's gates")
        .iter()
        .find(|g| g["gate"] == gate)
        .unwrap_or_else(|| panic!("no {gate} gate in {rollout:#}"))
        .clone()
}

fn actions(rollout: &Value) -> Vec<String> {
    rollout["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["action"].as_str().unwrap().to_owned())
        .collect()
}

/// The snapshot hash a gateway runs, from its admin `/cohorts`.
async fn running(g: &Gateway) -> String {
    let r: Value = reqwest::get(g.admin_url("/cohorts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["snapshot"].as_str().unwrap_or_default().to_owned()
}

// ---- the tests ----

/// The incident pattern, impact test on: the replay of sampled traffic shows every request
/// going from allowed to denied, the change declared none, so it is blocked before any
/// gateway sees it; the report is stored with the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_impact_test_blocks_the_incident_change() {
    let _serial = SERIAL.lock().await;
    let (fleet, load) = Fleet::under_load(two_stages("5%", 5.0, 2, 2), true, 50, 60).await;
    let before = fleet.running().await;
    let id = fleet
        .api
        .submit("the incident's value", erroneous_flag(), 0.0)
        .await;
    let (s, e) = fleet.api.apply(&id).await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(e["error"], "impact_blocked", "{e}");
    let change = fleet.api.get(&format!("/v1/changes/{id}")).await;
    assert_eq!(change["status"], "approved", "nothing applied: {change}");
    assert!(change["rollout_id"].is_null());
    let impact = &change["impact"];
    assert_eq!(impact["blocked"], true, "{impact}");
    assert!(
        impact["changed_percent"].as_f64().unwrap() > 90.0,
        "{impact}"
    );
    assert!(
        impact["counts"]["allowed_to_denied"].as_u64().unwrap() >= 50,
        "{impact}"
    );
    // `rampart change show` prints the report.
    let (ok, text, _) = cli(&fleet.api, &["change", "show", &id]);
    assert!(ok && text.contains("BLOCKED"), "{text}");
    assert_eq!(before, fleet.running().await, "no gateway saw the change");
    let (_, failed) = load.stop().await;
    assert_eq!(failed, 0);
}

/// The incident pattern, impact test off: the change reaches its first stage (5% of the
/// requests of every gateway), the error-rate gate (or a local guard) fails it, and it is
/// rolled back without anyone acting. Failed requests stay under the bound derived in
/// docs/ROLLOUTS.md: min_samples + r_c × (1 s report + 0.1 s tick + 0.2 s publish + 1 s first
/// report + 1.2 s slack), r_c the candidate's request rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incident_change_is_rolled_back_at_its_first_stage() {
    let _serial = SERIAL.lock().await;
    let rate = 100; // per gateway
    let (fleet, load) = Fleet::under_load(two_stages("5%", 5.0, 30, 30), false, rate, 90).await;
    let (_, failed_before) = load.counts();
    assert_eq!(failed_before, 0, "the baseline serves cleanly");
    let (id, r) = fleet
        .api
        .run_to_end("the incident's value", erroneous_flag(), "rolled_back")
        .await;
    assert_eq!(actions(&r), ["started", "rolled_back"], "{r:#}");
    assert_eq!(r["stage_index"], 0, "caught at the first stage");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.contains("error rate") || reason.contains("guard"),
        "failed by the error gate or a local guard: {reason}"
    );
    let change = fleet.api.get(&format!("/v1/changes/{id}")).await;
    assert_eq!(change["status"], "rolled_back");
    let rollout_id = r["id"].as_str().unwrap();
    // The CLI shows it: `watch` of an ended rollout says how it ended and exits 1.
    let (ok, out, err) = cli(&fleet.api, &["rollout", "watch", rollout_id]);
    assert!(!ok, "{out}");
    assert!(err.to_lowercase().contains("rolled_back"), "{out}\n{err}");
    let (ok, out, _) = cli(&fleet.api, &["rollout", "show", rollout_id]);
    assert!(
        ok && out.contains("error_rate") && out.contains("rolled_back"),
        "{out}"
    );
    // Every gateway is back on the baseline.
    let back = r["decisions"][1]["evidence"]["to_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    fleet.wait_all_on(&back).await;
    let (sent, failed) = load.stop().await;
    let candidate_rate = 0.05 * (rate * 3) as f64;
    let bound = 20.0 + candidate_rate * (1.0 + 0.1 + 0.2 + 1.0 + 1.2);
    eprintln!("incident at 5%: {failed} failed of {sent} sent (bound {bound:.0})");
    assert!(
        failed > 0,
        "the candidate did serve (and fail) some requests"
    );
    assert!(
        (failed as f64) <= bound,
        "{failed} failed requests, more than the bound {bound:.0}; logs:\n{}",
        fleet.logs()
    );
    // The rollback is audited with its evidence.
    let audit = fleet.api.get("/v1/audit").await;
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "rollback"
                && e["actor"] == "engine"
                && e["detail"].to_string().contains("error_rate")),
        "{audit}"
    );
}

/// A candidate under which requests hang (its route points at an upstream that never
/// answers): it reports no errors, but its traffic collapses, and the floor gate fails it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traffic_collapse_is_caught_by_the_floor() {
    let _serial = SERIAL.lock().await;
    let (fleet, load) = Fleet::under_load(two_stages("20%", 20.0, 30, 30), false, 60, 90).await;
    let hang = json!([{ "upsert": { "route": {
        "id": "shop-all", "product": "shop",
        "match": { "host": HOST, "path": { "prefix": "/" } },
        "upstream": "shop-void", "policies": ["shop-edge"],
    } } }]);
    let (_, r) = fleet
        .api
        .run_to_end("move the shop to new hosts", hang, "rolled_back")
        .await;
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.contains("expected"),
        "the traffic floor failed it: {reason}"
    );
    let floor = failed_stage_gate(&r, "traffic_floor");
    assert_eq!(floor["verdict"], "fail", "{floor}");
    let error = failed_stage_gate(&r, "error_rate");
    assert_ne!(
        error["verdict"], "fail",
        "hung requests report no errors: {error}"
    );
    load.stop().await;
}

/// A healthy change passes every stage (cell a at 10%, all of cell a, everything at 50%,
/// 100%), becomes verified, and is the new LKG: a later rollback returns to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_change_passes_every_stage_and_becomes_the_lkg() {
    let _serial = SERIAL.lock().await;
    let stages = json!([
        stage("10% of a", &["a"], 10.0, 2, 20),
        stage("all of a", &["a"], 100.0, 2, 20),
        stage("50%", &[], 50.0, 2, 20),
        stage("100%", &[], 100.0, 2, 20),
    ]);
    let (fleet, load) = Fleet::under_load(stages, true, 60, 120).await;
    let (id, rollout_id) = fleet.api.start("a response header", healthy_edit()).await;
    // `rampart rollout watch` follows it to the end (plain lines: no terminal here), exit 0.
    let watch = {
        let (api, id) = (fleet.api.clone(), rollout_id.clone());
        std::thread::spawn(move || cli(&api, &["rollout", "watch", &id, "--interval-ms", "200"]))
    };
    let r = fleet.api.wait_end(&rollout_id, 90).await;
    assert_eq!(r["state"], "succeeded", "{r:#}");
    let (ok, out, err) = watch.join().unwrap();
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("50%") && out.contains("succeeded"), "{out}");
    let (ok, out, _) = cli(&fleet.api, &["rollout", "list", "--env", ENV]);
    assert!(ok && out.contains(&rollout_id), "{out}");
    assert_eq!(
        actions(&r),
        ["started", "advanced", "advanced", "advanced", "succeeded"],
        "{r:#}"
    );
    // Each stage soaked its minimum with enough samples before it advanced.
    for d in r["decisions"].as_array().unwrap().iter().skip(1) {
        let e = &d["evidence"]["evidence"];
        assert!(e["elapsed_secs"].as_f64().unwrap() >= 2.0, "{d}");
        assert!(e["samples"].as_u64().unwrap() >= 20, "{d}");
        assert_eq!(e["verdict"], "pass", "{d}");
    }
    assert_eq!(
        fleet.api.get(&format!("/v1/changes/{id}")).await["status"],
        "applied"
    );
    // Every gateway runs the candidate alone, and answers with the new header.
    let candidate = r["candidate_hash"].as_str().unwrap();
    fleet.wait_all_on(candidate).await;
    for g in &fleet.gateways {
        let resp = reqwest::Client::new()
            .get(g.url("/x"))
            .header("host", HOST)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["x-shop"], "v2");
    }
    // The candidate is now the LKG: a rollback returns to it, not to the first config.
    let (s, back) = fleet
        .api
        .call(
            reqwest::Method::POST,
            &format!("/v1/envs/{ENV}/rollback"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, 200, "{back}");
    assert_eq!(back["hash"], candidate);
    let (_, failed) = load.stop().await;
    assert_eq!(failed, 0);
}

/// No data by the deadline fails a gate: a stage scoped to a cell with no gateway gets no
/// traffic, and at its deadline the rollout is rolled back, never passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_by_the_deadline_fails_the_gate() {
    let _serial = SERIAL.lock().await;
    let mut empty = stage("cell z", &["z"], 100.0, 1, 10);
    for g in empty["gates"].as_array_mut().unwrap() {
        g["deadline_secs"] = json!(3);
    }
    let (fleet, load) = Fleet::under_load(then_all(empty, 1, 10), false, 30, 60).await;
    let (_, rollout_id) = fleet.api.start("a response header", healthy_edit()).await;
    let r = fleet.api.wait_end(&rollout_id, 30).await;
    assert_eq!(r["state"], "rolled_back", "{r:#}");
    assert!(
        r["reason"].as_str().unwrap().contains("deadline"),
        "{}",
        r["reason"]
    );
    assert!(r["soaked_secs"].as_f64().unwrap() >= 3.0);
    load.stop().await;
}

/// SIGKILL the control plane in the middle of a stage; restarted on the same database, it
/// resumes the same stage with its soak timer where it was (from stored timestamps), and the
/// rollout completes: no stage skipped, none repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_killed_mid_stage_resumes() {
    let _serial = SERIAL.lock().await;
    let stages = two_stages("10%", 10.0, 8, 2);
    let (mut fleet, load) = Fleet::under_load(stages, false, 60, 120).await;
    let (_, rollout_id) = fleet.api.start("a response header", healthy_edit()).await;
    // Mid-stage: some soak done, not all.
    let deadline = Instant::now() + Duration::from_secs(30);
    let before = loop {
        let r = fleet.api.rollout(&rollout_id).await;
        if r["soaked_secs"].as_f64().unwrap() >= 3.0 {
            break r;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(before["stage_index"], 0);
    let addr = fleet.controls[0].addr;
    fleet.controls[0].kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let db = format!("sqlite://{}/control.db", fleet.dir.path().display());
    fleet.controls[0] = Control::start(&db, addr, &fleet.config, fleet.dir.path());
    let after = fleet.api.rollout(&rollout_id).await;
    assert_eq!(after["stage_index"], 0, "the same stage");
    assert_eq!(
        after["stage_started_ms"], before["stage_started_ms"],
        "the soak was not reset"
    );
    assert!(after["soaked_secs"].as_f64().unwrap() >= before["soaked_secs"].as_f64().unwrap());
    let r = fleet.api.wait_end(&rollout_id, 60).await;
    assert_eq!(r["state"], "succeeded", "{r:#}");
    assert_eq!(actions(&r), ["started", "advanced", "succeeded"]);
    // The first stage lasted at least its soak although the driver was down for 2 s of it.
    let advanced_at = r["decisions"][1]["at_ms"].as_u64().unwrap();
    let started_at = r["decisions"][0]["at_ms"].as_u64().unwrap();
    assert!(advanced_at - started_at >= 8_000, "{r:#}");
    let (_, failed) = load.stop().await;
    assert_eq!(failed, 0, "the fleet served throughout");
}

/// Two control-plane replicas on one PostgreSQL database: one drives rollouts (advisory
/// lock); SIGKILL it mid-stage and the other takes over and completes the rollout. The
/// gateways follow the surviving replica all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_postgres_replicas_the_survivor_takes_over() {
    let _serial = SERIAL.lock().await;
    let Ok(base) = std::env::var("RAMPART_TEST_DATABASE_URL") else {
        eprintln!("RAMPART_TEST_DATABASE_URL is not set: skipping the PostgreSQL replicas test");
        return;
    };
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&base)
        .await
        .unwrap_or_else(|e| {
            panic!("RAMPART_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {e}")
        });
    let schema = format!("rampart_rollout_{}", std::process::id());
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let stages = two_stages("10%", 10.0, 6, 2);
    let dir = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::start_on(dir, &[url.clone(), url], stages, false).await;
    assert!(
        fleet.controls[0].log().contains("leader=true"),
        "the first replica drives: {}",
        fleet.controls[0].log()
    );
    let load = Load::start(&fleet.proxies(), 60, 120);
    fleet.warm_up().await;
    let (_, rollout_id) = fleet.api.start("a response header", healthy_edit()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    fleet.controls[0].kill();
    let r = fleet.api.wait_end(&rollout_id, 60).await;
    assert_eq!(
        r["state"],
        "succeeded",
        "{r:#}\n{}",
        fleet.controls[1].log()
    );
    assert_eq!(actions(&r), ["started", "advanced", "succeeded"]);
    assert!(
        fleet.controls[1].log().contains("leader=true"),
        "the survivor took over"
    );
    let (_, failed) = load.stop().await;
    assert_eq!(failed, 0);
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
}

/// A shadow stage evaluates the candidate beside the baseline on live traffic without
/// serving it: the incident change shows nearly every request going from allowed to denied,
/// is rolled back, and not one request failed; a harmless change shows no difference and goes
/// on to serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_stage_judges_the_candidate_without_serving_it() {
    let _serial = SERIAL.lock().await;
    let shadow = json!({
        "name": "shadow",
        "scope": { "percent": 100.0 },
        "shadow": true,
        "min_soak_secs": 2,
        "min_samples": 100,
        "gates": [
            { "deadline_secs": 20, "check": { "shadow_diff": { "max_excess_percent": 1.0 } } },
            { "deadline_secs": 20, "check": "no_nack" },
        ],
    });
    let (fleet, load) = Fleet::under_load(then_all(shadow, 2, 20), false, 60, 120).await;
    let (_, r) = fleet
        .api
        .run_to_end("the incident's value", erroneous_flag(), "rolled_back")
        .await;
    assert_eq!(r["stage_index"], 0, "caught in the shadow stage");
    let diff = failed_stage_gate(&r, "shadow_diff");
    assert_eq!(diff["verdict"], "fail", "{diff}");
    assert!(diff["value"].as_f64().unwrap() > 90.0, "{diff}");
    let (_, failed) = load.counts();
    assert_eq!(failed, 0, "the shadowed candidate served nothing");
    // A harmless change passes its shadow stage and then serves.
    fleet
        .api
        .run_to_end("a response header", healthy_edit(), "succeeded")
        .await;
    let (_, failed) = load.stop().await;
    assert_eq!(failed, 0);
}

/// A change that makes the gateway refuse everyone answers 403s, not 5xx: the error gate sees
/// nothing, the deny-rate gate catches it at the first stage (impact test off, no shadow).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_denies_everyone_is_caught_by_the_deny_gate() {
    let _serial = SERIAL.lock().await;
    let (fleet, load) = Fleet::under_load(two_stages("5%", 5.0, 30, 30), false, 100, 90).await;
    let (_, r) = fleet
        .api
        .run_to_end("a maintenance page", deny_everyone(), "rolled_back")
        .await;
    assert_eq!(r["stage_index"], 0);
    let deny = failed_stage_gate(&r, "deny_rate");
    assert_eq!(deny["verdict"], "fail", "{deny}");
    let error = failed_stage_gate(&r, "error_rate");
    assert_ne!(error["verdict"], "fail", "403s are no errors: {error}");
    let (_, failed) = load.stop().await;
    assert_eq!(failed, 0, "no 5xx: the clients saw 403s");
}
