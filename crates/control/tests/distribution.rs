//! Distribution to gateways, end to end in one process: the real control plane (axum on
//! loopback over SQLite in a temporary directory) and the real gateway (`rampart_gateway::run`
//! following it). The control plane runs on its own runtime, so killing it (shutting that
//! runtime down) drops its listener and every open stream, as a crash would.

use rampart_api::{Role, TokenKind};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rampart_control::api;
use rampart_control::rules::RulesConfig;
use rampart_control::service::Service;
use rampart_model::Snapshot;
use rampart_model::change::Edit;
use rampart_model::config::Environment;
use rampart_store::Store;
use rampart_store::ops::*;
use serde_json::{Value, json};
use tokio::runtime::Runtime;

mod support;

use support::example_fleet as fleet;

/// Seed prod with the example fleet at version 1, verified (the LKG).
async fn seed(store: &Store) {
    let config = fleet();
    let edits: Vec<Edit> = config.objects().map(Edit::Upsert).collect();
    let env = Environment::Prod;
    assert_eq!(
        store
            .apply_edits(env, 0, &edits, "seed", "seed")
            .await
            .unwrap(),
        1
    );
    let (config, _) = store.config(env).await.unwrap();
    let snap = Snapshot::new(config, Vec::new());
    store.put_snapshot(env, 1, &snap).await.unwrap();
    store.mark_verified(env, snap.hash()).await.unwrap();
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Start the control plane on `addr` (port 0 for any) over the database at `url`, on a runtime
/// of its own. Dropping the runtime kills it.
fn start_control(url: &str, addr: SocketAddr) -> (Runtime, SocketAddr) {
    let rt = runtime();
    let url = url.to_owned();
    let bound = rt.block_on(async move {
        let store = Store::connect(&url).await.unwrap();
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let bound = listener.local_addr().unwrap();
        // Each change rolls out in one stage that passes as soon as no gateway refused it:
        // this test is about distribution, the gates have their own.
        let service =
            Service::new(store, RulesConfig::default()).with_rollouts(support::instant_rollouts());
        tokio::spawn(
            rampart_control::rollout::Engine::new(service.clone(), Duration::from_millis(20)).run(),
        );
        let app = api::router_with(service);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        bound
    });
    (rt, bound)
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .timeout(Duration::from_secs(10));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, value)
    }

    /// Submit an edit of the confluence-app upstream's endpoints, approve it and apply it;
    /// returns the new snapshot's hash.
    async fn change(&self, editor: &str, approver: &str, endpoint: &str) -> String {
        let v = support::confluence_with_endpoint(endpoint);
        let (s, cfg) = self.call("GET", "/v1/envs/prod/config", editor, None).await;
        assert_eq!(s, 200, "{cfg}");
        let body = json!({
            "reason": "test",
            "edits": [{ "upsert": { "upstream": v } }],
            "base_version": cfg["version"],
        });
        let (s, ch) = self
            .call("POST", "/v1/envs/prod/changes", editor, Some(body))
            .await;
        assert_eq!(s, 201, "{ch}");
        let id = ch["id"].as_str().unwrap().to_owned();
        let (s, e) = self
            .call("POST", &format!("/v1/changes/{id}/approve"), approver, None)
            .await;
        assert_eq!(s, 200, "{e}");
        let (s, applied) = self
            .call("POST", &format!("/v1/changes/{id}/apply"), editor, None)
            .await;
        assert_eq!(s, 200, "{applied}");
        applied["snapshot"]["hash"].as_str().unwrap().to_owned()
    }

    async fn fleet(&self, viewer: &str) -> Vec<Value> {
        let (s, v) = self.call("GET", "/v1/fleet?env=prod", viewer, None).await;
        assert_eq!(s, 200, "{v}");
        v["gateways"].as_array().unwrap().clone()
    }
}

async fn readyz(admin: SocketAddr) -> Option<String> {
    let resp = reqwest::get(format!("http://{admin}/readyz")).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let text = resp.text().await.ok()?;
    text.trim().strip_prefix("ready ").map(str::to_owned)
}

/// Wait until the gateway serves `hash`; panics after `limit`.
async fn wait_ready_on(admin: SocketAddr, hash: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if readyz(admin).await.as_deref() == Some(hash) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "the gateway did not reach {hash} within {limit:?} (serves {:?})",
            readyz(admin).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn gateway_follows_the_control_plane_acks_reports_and_survives_its_loss() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/data/control.db", dir.path().display());
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();

    // The control plane, seeded, with tokens.
    let (ctl, ctl_addr) = start_control(&url, any);
    let (gw_token, viewer, alice, bob, root) = ctl.block_on(async {
        let store = Store::connect(&url).await.unwrap();
        seed(&store).await;
        let tok = |name: &'static str, kind: TokenKind, role: Option<Role>| {
            let store = store.clone();
            async move { store.create_token(name, kind, role).await.unwrap().1 }
        };
        (
            tok("gw-test", TokenKind::Gateway, None).await,
            tok("vic", TokenKind::User, Some(Role::Viewer)).await,
            tok("alice", TokenKind::User, Some(Role::Editor)).await,
            tok("bob", TokenKind::User, Some(Role::Approver)).await,
            tok("root", TokenKind::User, Some(Role::Admin)).await,
        )
    });

    let gw_rt = runtime();
    let client = Client {
        http: reqwest::Client::new(),
        base: format!("http://{ctl_addr}"),
    };
    let gw_dir = tempfile::tempdir().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let (hash1, admin, gw_task) = gw_rt.block_on(async {
        // Tokens are kept apart: a user token cannot stream, a gateway token cannot read the
        // fleet.
        let (s, _) = client
            .call("GET", "/v1/gateways/stream?env=prod&id=x", &viewer, None)
            .await;
        assert_eq!(s, 403);
        let (s, _) = client
            .call("GET", "/v1/fleet?env=prod", &gw_token, None)
            .await;
        assert_eq!(s, 403);
        let (s, _) = client
            .call(
                "POST",
                "/v1/gateways/report?env=prod&id=x",
                &root,
                Some(json!({})),
            )
            .await;
        assert_eq!(s, 403);

        let doc: Value = reqwest::get(format!("http://{ctl_addr}/openapi.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for path in [
            "/v1/fleet",
            "/v1/gateways/stream",
            "/v1/gateways/ack",
            "/v1/gateways/report",
            "/v1/gateways/samples",
            "/v1/envs/{env}/rollouts",
            "/v1/rollouts/{id}",
            "/v1/rollouts/{id}/{action}",
        ] {
            assert!(
                doc["paths"][path].is_object(),
                "{path} missing from the OpenAPI document"
            );
        }

        let hash1 = client.change(&alice, &bob, "127.0.0.1:19991").await;

        let opts = rampart_gateway::GatewayOptions {
            identity: rampart_model::GatewayIdentity {
                id: "gw-test".into(),
                cell: "eu-1".into(),
                version: semver::Version::new(0, 1, 0),
            },
            listen: any,
            tls: None,
            admin: any,
            data_dir: gw_dir.path().to_path_buf(),
            config: None,
            control: Some((
                format!("http://{ctl_addr}"),
                gw_token.clone(),
                Environment::Prod,
            )),
            poll: Duration::from_millis(500),
            stability: Duration::from_secs(60),
            drain: Duration::from_secs(1),
            guard: Default::default(),
            sample_every: 8,
            sample_capacity: 64,
            max_inflight: 100,
            limits: rampart_listen::Limits::default(),
            admin_token: None,
        };
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let gw_task = tokio::spawn(rampart_gateway::run(opts, stop_rx, move |_, admin, _| {
            let _ = ready_tx.send(admin);
        }));
        let admin = ready_rx.await.unwrap();

        // The gateway becomes ready on the applied snapshot.
        wait_ready_on(admin, &hash1, Duration::from_secs(10)).await;

        // The fleet view shows it: cell, version, hash, a recent last-seen.
        let start = Instant::now();
        loop {
            let gws = client.fleet(&viewer).await;
            if let Some(g) = gws.iter().find(|g| g["id"] == "gw-test")
                && g["hash"] == hash1.as_str()
            {
                assert_eq!(g["cell"], "eu-1");
                assert_eq!(g["version"], "0.1.0");
                let seen = g["last_seen_ms"].as_u64().unwrap();
                assert!(
                    rampart_model::clock::unix_ms().saturating_sub(seen) < 5_000,
                    "{g}"
                );
                assert!(g["last_nack"].is_null(), "{g}");
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "fleet: {gws:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (hash1, admin, gw_task)
    });

    let hash2 = gw_rt.block_on(async {
        // Another change reaches the running gateway.
        let hash2 = client.change(&alice, &bob, "127.0.0.1:19992").await;
        assert_ne!(hash1, hash2);
        let took = wait_ready_on(admin, &hash2, Duration::from_secs(5)).await;
        eprintln!("applied change reached the gateway in {took:?}");

        // Reports keep last-seen fresh.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let gws = client.fleet(&viewer).await;
        let g = gws.iter().find(|g| g["id"] == "gw-test").unwrap();
        assert_eq!(g["hash"], hash2.as_str());
        assert!(
            rampart_model::clock::unix_ms().saturating_sub(g["last_seen_ms"].as_u64().unwrap())
                < 2_500,
            "{g}"
        );

        // A NACK shows in the fleet view and the audit log; the gateway keeps serving.
        let (s, e) = client
            .call(
                "POST",
                "/v1/gateways/ack?env=prod&id=gw-other&cell=eu-2&version=0.1.0",
                &gw_token,
                Some(json!({ "kind": "nack", "hash": hash2, "reason": "test refusal" })),
            )
            .await;
        assert_eq!(s, 204, "{e}");
        let gws = client.fleet(&viewer).await;
        let other = gws.iter().find(|g| g["id"] == "gw-other").unwrap();
        assert_eq!(other["cell"], "eu-2");
        let nack = other["last_nack"].as_str().unwrap();
        assert!(
            nack.contains("test refusal") && nack.contains(&hash2),
            "{nack}"
        );
        let (s, audit) = client.call("GET", "/v1/audit", &root, None).await;
        assert_eq!(s, 200);
        assert!(
            audit["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == "gateway_nack"),
            "{audit}"
        );
        // Bad bodies are 4xx, never 5xx.
        let (s, _) = client
            .call(
                "POST",
                "/v1/gateways/ack?env=prod&id=gw-other",
                &gw_token,
                Some(json!({ "kind": "maybe" })),
            )
            .await;
        assert_eq!(s, 400);
        let (s, _) = client
            .call("POST", "/v1/gateways/ack?env=nowhere&id=x", &gw_token, None)
            .await;
        assert!((400..500).contains(&s), "{s}");
        assert_eq!(readyz(admin).await.as_deref(), Some(hash2.as_str()));
        hash2
    });

    // Kill the control plane: the gateway keeps serving what it has.
    ctl.shutdown_background();
    gw_rt.block_on(async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(readyz(admin).await.as_deref(), Some(hash2.as_str()));
    });

    // Restart it on the same address and data: the gateway reconnects and follows again.
    let (ctl, _) = start_control(&url, ctl_addr);
    gw_rt.block_on(async {
        let hash3 = client.change(&alice, &bob, "127.0.0.1:19993").await;
        let took = wait_ready_on(admin, &hash3, Duration::from_secs(40)).await;
        eprintln!("after the restart, the change reached the gateway in {took:?}");
        let start = Instant::now();
        loop {
            let gws = client.fleet(&viewer).await;
            let g = gws.iter().find(|g| g["id"] == "gw-test").unwrap();
            if g["hash"] == hash3.as_str() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "{g}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), gw_task)
            .await
            .expect("the gateway stops")
            .unwrap()
            .unwrap();
    });
    ctl.shutdown_background();
}
