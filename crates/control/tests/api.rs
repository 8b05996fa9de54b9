//! The admin API's integration suite, through `tower::ServiceExt::oneshot` on the real router
//! and a real store: SQLite in a temporary directory always, and PostgreSQL in a fresh schema
//! when `RAMPART_TEST_DATABASE_URL` is set (else those cases print a message and pass).

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use rampart_api::{Role, TokenKind};
use rampart_control::api;
use rampart_control::rules::RulesConfig;
use rampart_control::service::Service;
use rampart_model::Snapshot;
use rampart_model::change::Edit;
use rampart_model::config::{Config, Environment};
use rampart_store::Store;
use rampart_store::ops::*;
use serde_json::{Value, json};
use tower::ServiceExt;

mod support;

use support::example_fleet as fleet;

suite!(
    change_lifecycle,
    approval_matrix,
    staging_soak_lets_high_changes_through,
    no_role_mutates_prod_outside_a_change,
    every_endpoint_needs_a_valid_token,
    extractors_refuse_forged_and_malformed_identities,
    bad_bodies_are_4xx_with_paths,
    stale_base_version_conflicts_nothing_lost,
    rollback_returns_to_the_lkg,
    audit_chain_verifies_and_detects_tampering,
    concurrent_applies_one_wins,
    restart_loses_nothing_acknowledged,
    settings_edits_are_validated_and_high_risk,
);

// ---- fixtures ----

fn upserts(config: &Config) -> Vec<Edit> {
    config.objects().map(Edit::Upsert).collect()
}

/// Seed `env` with the example fleet at version 1 (a verified snapshot: the LKG), directly
/// through the store: the fixture, not an API path.
async fn seed(store: &Store, env: Environment) {
    let edits = upserts(&fleet());
    let v = store
        .apply_edits(env, 0, &edits, "seed", "seed")
        .await
        .unwrap();
    assert_eq!(v, 1);
    let (config, _) = store.config(env).await.unwrap();
    let snap = Snapshot::new(config, Vec::new());
    store.put_snapshot(env, 1, &snap).await.unwrap();
    store.mark_verified(env, snap.hash()).await.unwrap();
}

struct Harness {
    app: Router,
    store: Store,
    /// Secrets by user name: viewer `vic`, editors `alice` and `eve`, approvers `bob` and
    /// `carol`, admin `root`, and the gateway token `gw`.
    viewer: String,
    alice: String,
    eve: String,
    bob: String,
    carol: String,
    root: String,
    gw: String,
}

async fn harness_with(url: &str, rules: RulesConfig) -> Harness {
    let store = Store::connect(url).await.unwrap();
    seed(&store, Environment::Prod).await;
    let tok = |name: &'static str, kind: TokenKind, role: Option<Role>| {
        let store = store.clone();
        async move { store.create_token(name, kind, role).await.unwrap().1 }
    };
    Harness {
        app: api::router_with(
            Service::new(store.clone(), rules).with_rollouts(support::without_impact_test()),
        ),
        viewer: tok("vic", TokenKind::User, Some(Role::Viewer)).await,
        alice: tok("alice", TokenKind::User, Some(Role::Editor)).await,
        eve: tok("eve", TokenKind::User, Some(Role::Editor)).await,
        bob: tok("bob", TokenKind::User, Some(Role::Approver)).await,
        carol: tok("carol", TokenKind::User, Some(Role::Approver)).await,
        root: tok("root", TokenKind::User, Some(Role::Admin)).await,
        gw: tok("gw-1", TokenKind::Gateway, None).await,
        store,
    }
}

async fn harness(url: &str) -> Harness {
    harness_with(url, RulesConfig::default()).await
}

impl Harness {
    async fn raw(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Body,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let req = req
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("non-JSON body: {}", String::from_utf8_lossy(&bytes)))
        };
        assert!(
            !status.is_server_error(),
            "{method} {path} gave {status}: {value}"
        );
        (status, value)
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        self.raw(method, path, Some(&format!("Bearer {token}")), body)
            .await
    }

    async fn head(&self, env: &str) -> u64 {
        let (s, v) = self
            .call("GET", &format!("/v1/envs/{env}/config"), &self.viewer, None)
            .await;
        assert_eq!(s, StatusCode::OK);
        v["version"].as_u64().unwrap()
    }

    /// Submit `edits` to `env` as `token` against the current version.
    async fn submit(&self, env: &str, token: &str, edits: Value) -> (StatusCode, Value) {
        let base = self.head(env).await;
        self.call(
            "POST",
            &format!("/v1/envs/{env}/changes"),
            token,
            Some(json!({ "reason": "test", "edits": edits, "base_version": base })),
        )
        .await
    }

    async fn submit_ok(&self, env: &str, token: &str, edits: Value) -> Value {
        let (s, v) = self.submit(env, token, edits).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }

    async fn act(&self, id: &str, what: &str, token: &str) -> (StatusCode, Value) {
        self.call("POST", &format!("/v1/changes/{id}/{what}"), token, None)
            .await
    }
}

fn flag_edit(name: &str, default: Value) -> Value {
    let flag = fleet().flags.into_iter().find(|f| f.name == name).unwrap();
    let mut v = serde_json::to_value(flag).unwrap();
    v["default"] = default;
    json!([{ "upsert": { "flag": v } }])
}

/// A medium-risk edit: an upstream with a different endpoint list.
fn upstream_edit(endpoint: &str) -> Value {
    json!([{ "upsert": { "upstream": support::confluence_with_endpoint(endpoint) } }])
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

// ---- cases ----

async fn change_lifecycle(url: String) {
    let h = harness(&url).await;
    // An approver submits a medium change.
    let v = h
        .submit_ok("prod", &h.bob, upstream_edit("127.0.0.1:19999"))
        .await;
    assert_eq!(v["status"], "awaiting_approval");
    assert_eq!(v["risk"], "medium");
    assert_eq!(v["author"], "bob");
    let id = id_of(&v);
    // Its author cannot approve it, whatever the role; an editor cannot approve at all.
    let (s, e) = h.act(&id, "approve", &h.bob).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
    assert!(e["message"].as_str().unwrap().contains("author"));
    let (s, _) = h.act(&id, "approve", &h.alice).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Not approved: apply is refused, nothing changes.
    let (s, e) = h.act(&id, "apply", &h.alice).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(e["error"], "not_ready");
    assert_eq!(h.head("prod").await, 1);
    // Another user approves; then it applies.
    let (s, v) = h.act(&id, "approve", &h.carol).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "approved");
    let (s, v) = h.act(&id, "apply", &h.alice).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Applied means rolling out: the edits are version 2, the candidate of a rollout.
    assert_eq!(v["change"]["status"], "rolling_out");
    assert_eq!(v["snapshot"]["version"], 2);
    let (s, snap) = h
        .call("GET", "/v1/envs/prod/snapshot", &h.viewer, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(snap["version"], 2);
    assert_eq!(snap["hash"], v["snapshot"]["hash"]);
    let (_, cfg) = h.call("GET", "/v1/envs/prod/config", &h.viewer, None).await;
    let ups = cfg["config"]["upstreams"].as_array().unwrap();
    let conf = ups.iter().find(|u| u["name"] == "confluence-app").unwrap();
    assert_eq!(conf["endpoints"], json!(["127.0.0.1:19999"]));
    // Applied is final.
    let (s, _) = h.act(&id, "apply", &h.alice).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = h.act(&id, "withdraw", &h.bob).await;
    assert_eq!(s, StatusCode::CONFLICT);

    // A change that fails validation is recorded as rejected, with field paths.
    let (s, e) = h
        .submit(
            "prod",
            &h.alice,
            json!([{ "delete": { "kind": "upstream", "name": "jira-app" } }]),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let fields = e["fields"].as_array().unwrap();
    assert!(!fields.is_empty());
    assert!(
        fields
            .iter()
            .any(|f| f["path"].as_str().unwrap().starts_with("routes[")),
        "{e}"
    );
    let rejected = e["change_id"].as_str().unwrap();
    let (s, v) = h
        .call("GET", &format!("/v1/changes/{rejected}"), &h.viewer, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "rejected");
    assert!(!v["validation"].as_array().unwrap().is_empty());

    // Withdraw: only the author (or an admin).
    let v = h
        .submit_ok("prod", &h.alice, upstream_edit("127.0.0.1:19998"))
        .await;
    let id = id_of(&v);
    let (s, _) = h.act(&id, "withdraw", &h.eve).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = h.act(&id, "withdraw", &h.viewer).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = h.act(&id, "withdraw", &h.alice).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "withdrawn");
    let (s, _) = h.act(&id, "approve", &h.carol).await;
    assert_eq!(s, StatusCode::CONFLICT);

    // Reject by an approver.
    let v = h
        .submit_ok("prod", &h.alice, upstream_edit("127.0.0.1:19997"))
        .await;
    let id = id_of(&v);
    let (s, v) = h.act(&id, "reject", &h.bob).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "rejected");

    let (s, list) = h
        .call("GET", "/v1/envs/prod/changes?limit=10", &h.viewer, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["changes"].as_array().unwrap().len(), 4);
    let (s, _) = h
        .call(
            "GET",
            "/v1/envs/prod/flags/api-rate-per-second",
            &h.viewer,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = h
        .call("GET", "/v1/envs/prod/flags/nope", &h.viewer, None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, flags) = h.call("GET", "/v1/envs/prod/flags", &h.viewer, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        flags["flags"].as_array().unwrap().len(),
        fleet().flags.len()
    );
}

async fn settings_edits_are_validated_and_high_risk(url: String) {
    let h = harness(&url).await;
    let settings = |v: Value| json!([{ "upsert": { "settings": v } }]);
    // A bad value is refused at its path in the configuration it would make.
    let (s, e) = h
        .submit(
            "prod",
            &h.alice,
            settings(json!({ "tenant_header": "bad header" })),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(
        e["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "settings.tenant_header"),
        "{e}"
    );
    // Unknown fields, and a settings object under another name, are refused.
    let (s, e) = h
        .submit(
            "prod",
            &h.alice,
            settings(json!({ "tenant_headr": "x-org" })),
        )
        .await;
    assert!(s.is_client_error(), "{s} {e}");
    let (s, e) = h
        .submit(
            "prod",
            &h.alice,
            json!([{ "delete": { "kind": "settings", "name": "other" } }]),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    // A valid one reaches every request: high risk, whoever submits it.
    let v = h
        .submit_ok(
            "prod",
            &h.alice,
            settings(json!({ "tenant_header": "x-org" })),
        )
        .await;
    assert_eq!(v["risk"], "high", "{v}");
    assert_eq!(v["status"], "awaiting_approval", "{v}");
}

async fn approval_matrix(url: String) {
    let h = harness(&url).await;
    // Low (a low-risk flag): no approval, approved at once, applies.
    let v = h
        .submit_ok(
            "prod",
            &h.alice,
            flag_edit("confluence-banner", json!("hi")),
        )
        .await;
    // The banner flag may be a string or json: skip the value check if validation refused it.
    assert_eq!(v["risk"], "low", "{v}");
    assert_eq!(v["status"], "approved", "{v}");
    let (s, v) = h.act(&id_of(&v), "apply", &h.alice).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Medium: one approval from someone else.
    let v = h
        .submit_ok("prod", &h.alice, upstream_edit("127.0.0.1:19999"))
        .await;
    assert_eq!(v["risk"], "medium");
    assert_eq!(v["status"], "awaiting_approval");
    let id = id_of(&v);
    let (_, v) = h.act(&id, "approve", &h.root).await;
    assert_eq!(
        v["status"], "approved",
        "an admin's approval counts like an approver's"
    );

    // High: two approvals and a staging soak; never ready without the soak.
    let v = h
        .submit_ok(
            "prod",
            &h.alice,
            flag_edit("api-rate-per-second", json!(300)),
        )
        .await;
    assert_eq!(v["risk"], "high");
    let id = id_of(&v);
    let (_, v) = h.act(&id, "approve", &h.bob).await;
    assert_eq!(v["status"], "awaiting_approval");
    let (_, v) = h.act(&id, "approve", &h.carol).await;
    assert_eq!(v["status"], "awaiting_approval", "{v}");
    let missing = v["verdict"]["missing"].to_string();
    assert!(missing.contains("staging_soak"), "{missing}");
    let (s, e) = h.act(&id, "apply", &h.root).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(e["error"], "not_ready");
    // The same approver twice counts once (and is refused).
    let (s, _) = h.act(&id, "approve", &h.carol).await;
    assert_eq!(s, StatusCode::CONFLICT);

    // Critical: also a change window, which prod does not have by default.
    let v = h
        .submit_ok(
            "prod",
            &h.alice,
            flag_edit("jira-maintenance", json!(false)),
        )
        .await;
    assert_eq!(v["risk"], "critical");
    let id = id_of(&v);
    h.act(&id, "approve", &h.bob).await;
    let (_, v) = h.act(&id, "approve", &h.root).await;
    let missing = v["verdict"]["missing"].to_string();
    assert!(missing.contains("change_window_closed"), "{missing}");
    let (s, _) = h.act(&id, "apply", &h.root).await;
    assert_eq!(s, StatusCode::CONFLICT);

    // Dev: a medium change needs no approval.
    seed(&h.store, Environment::Dev).await;
    let v = h
        .submit_ok("dev", &h.alice, upstream_edit("127.0.0.1:19999"))
        .await;
    assert_eq!(v["status"], "approved");
}

async fn staging_soak_lets_high_changes_through(url: String) {
    let rules: RulesConfig = serde_json::from_value(json!({
        "prod": {
            "low": { "approvals": 0 },
            "medium": { "approvals": 1 },
            "high": { "approvals": 2, "staging_soak_secs": 0 },
            "critical": { "approvals": 2, "staging_soak_secs": 0, "needs_change_window": true },
            "change_windows": [{ "start_unix_ms": 0, "end_unix_ms": 4_000_000_000_000u64 }]
        }
    }))
    .unwrap();
    let h = harness_with(&url, rules).await;
    seed(&h.store, Environment::Staging).await;
    let edit = flag_edit("api-rate-per-second", json!(300));
    let prod = h.submit_ok("prod", &h.alice, edit.clone()).await;
    let prod_id = id_of(&prod);
    h.act(&prod_id, "approve", &h.bob).await;
    let (_, v) = h.act(&prod_id, "approve", &h.carol).await;
    assert_eq!(v["status"], "awaiting_approval", "not in staging yet: {v}");
    // The same value goes through staging.
    let st = h.submit_ok("staging", &h.alice, edit).await;
    let st_id = id_of(&st);
    h.act(&st_id, "approve", &h.bob).await;
    h.act(&st_id, "approve", &h.carol).await;
    let (s, v) = h.act(&st_id, "apply", &h.alice).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Rolling out in staging is not soaked yet: the prod change still waits.
    let (s, e) = h.act(&prod_id, "apply", &h.alice).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["error"], "not_ready");
    // The staging rollout completes (as the engine would mark it: see tests/rollout.rs).
    let staged: rampart_model::ContentHash = v["snapshot"]["hash"]
        .as_str()
        .unwrap()
        .to_owned()
        .try_into()
        .unwrap();
    h.store
        .mark_verified(Environment::Staging, staged)
        .await
        .unwrap();
    // Now the prod change is ready at apply time.
    let (s, v) = h.act(&prod_id, "apply", &h.alice).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["change"]["status"], "rolling_out");
}

async fn no_role_mutates_prod_outside_a_change(url: String) {
    let h = harness(&url).await;
    let (_, before) = h.call("GET", "/v1/envs/prod/config", &h.viewer, None).await;
    // A high-risk change that no approval can make ready (no staging soak).
    let high = h
        .submit_ok("prod", &h.eve, flag_edit("api-rate-per-second", json!(1)))
        .await;
    let high = id_of(&high);
    let tokens = [
        ("viewer", h.viewer.clone()),
        ("editor", h.alice.clone()),
        ("approver", h.bob.clone()),
        ("admin", h.root.clone()),
        ("gateway", h.gw.clone()),
    ];
    for (role, token) in &tokens {
        let denied = *role == "viewer" || *role == "gateway";
        let mut statuses = Vec::new();
        // Submitting records a change; it does not touch the environment.
        let (s, _) = h
            .submit("prod", token, flag_edit("api-rate-per-second", json!(2)))
            .await;
        statuses.push(("submit", s));
        for what in ["approve", "apply"] {
            let (s, _) = h.act(&high, what, token).await;
            statuses.push((what, s));
        }
        // Reject and withdraw on a change of their own.
        let target = id_of(
            &h.submit_ok("prod", &h.eve, upstream_edit("127.0.0.1:19999"))
                .await,
        );
        let (s, _) = h.act(&target, "withdraw", token).await;
        statuses.push(("withdraw", s));
        let (s, _) = h.act(&target, "reject", token).await;
        statuses.push(("reject", s));
        let (s, _) = h.call("POST", "/v1/envs/prod/rollback", token, None).await;
        statuses.push(("rollback", s));
        let (s, _) = h
            .call(
                "POST",
                "/v1/tokens",
                token,
                Some(json!({ "name": format!("t-{role}"), "role": "admin" })),
            )
            .await;
        statuses.push(("tokens", s));
        for (what, s) in &statuses {
            if denied {
                assert_eq!(*s, StatusCode::FORBIDDEN, "{role} {what}");
            }
        }
        let get = |w: &str| statuses.iter().find(|(n, _)| *n == w).unwrap().1;
        if !denied {
            assert_eq!(get("submit"), StatusCode::CREATED, "{role}");
            assert_eq!(get("apply"), StatusCode::CONFLICT, "{role}: not ready");
            assert_eq!(
                get("rollback"),
                StatusCode::OK,
                "{role}: rollback to the LKG"
            );
            let want_tokens = if *role == "admin" {
                StatusCode::CREATED
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(get("tokens"), want_tokens, "{role}");
            let want_approve = if *role == "editor" {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::OK
            };
            assert_eq!(get("approve"), want_approve, "{role}");
            // eve wrote the target: only an admin may withdraw it besides her.
            let want_withdraw = if *role == "admin" {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(get("withdraw"), want_withdraw, "{role}");
        }
        // Whatever happened, prod is exactly as seeded.
        let (_, now) = h.call("GET", "/v1/envs/prod/config", &h.viewer, None).await;
        assert_eq!(now, before, "{role} changed prod");
        let (_, snap) = h
            .call("GET", "/v1/envs/prod/snapshot", &h.viewer, None)
            .await;
        assert_eq!(snap["version"], 1, "{role}");
    }
}

fn endpoints() -> Vec<(&'static str, &'static str)> {
    vec![
        ("GET", "/v1/envs/prod/config"),
        ("GET", "/v1/envs/prod/flags"),
        ("GET", "/v1/envs/prod/flags/api-rate-per-second"),
        ("GET", "/v1/envs/prod/snapshot"),
        ("GET", "/v1/envs/prod/changes"),
        ("POST", "/v1/envs/prod/changes"),
        ("POST", "/v1/envs/prod/rollback"),
        ("GET", "/v1/changes/chg_x"),
        ("POST", "/v1/changes/chg_x/approve"),
        ("POST", "/v1/changes/chg_x/reject"),
        ("POST", "/v1/changes/chg_x/withdraw"),
        ("POST", "/v1/changes/chg_x/apply"),
        ("GET", "/v1/audit"),
        ("GET", "/v1/audit/verify"),
        ("POST", "/v1/tokens"),
    ]
}

async fn every_endpoint_needs_a_valid_token(url: String) {
    let h = harness(&url).await;
    for (method, path) in endpoints() {
        for auth in [
            None,
            Some("Bearer rpt_00000000000000000000000000000000".to_owned()),
            Some("Bearer ".to_owned()),
            Some(format!("Basic {}", h.root)),
            Some(h.root.clone()),
        ] {
            let (s, e) = h.raw(method, path, auth.as_deref(), Body::from("{}")).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {path} {auth:?}");
            assert_eq!(e["error"], "unauthorized");
        }
        let (s, e) = h
            .raw(
                method,
                path,
                Some(&format!("Bearer {}", h.gw)),
                Body::from("{}"),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "{method} {path} with a gateway token"
        );
        assert_eq!(e["error"], "forbidden");
    }
    // The viewer may read, and nothing else.
    for (method, path) in endpoints() {
        let (s, _) = h.call(method, path, &h.viewer, Some(json!({}))).await;
        let audit = path.starts_with("/v1/audit");
        if method == "POST" || audit {
            assert_eq!(s, StatusCode::FORBIDDEN, "viewer {method} {path}");
        } else {
            assert_ne!(s, StatusCode::FORBIDDEN, "viewer {method} {path}");
            assert_ne!(s, StatusCode::UNAUTHORIZED, "viewer {method} {path}");
        }
    }
    // Failed logins are audited; the token text never is.
    let (_, log) = h.call("GET", "/v1/audit", &h.bob, None).await;
    let entries = log["entries"].as_array().unwrap();
    let failed = entries
        .iter()
        .filter(|e| e["action"] == "login_failed")
        .count();
    assert!(failed >= endpoints().len() * 3, "{failed}");
    assert!(!log.to_string().contains("rpt_0000"));
}

/// The `Caller`, `Gateway` and `Env` extractors against what a careless or hostile client
/// sends: user tokens on distribution endpoints, environment names that are encoded, cased,
/// empty or huge, and gateway identities that are missing, repeated or oversized. Each is a 4xx
/// with a stable code, and none of them lands in the fleet.
async fn extractors_refuse_forged_and_malformed_identities(url: String) {
    let h = harness(&url).await;
    let bearer = |t: &str| format!("Bearer {t}");
    let ack = || Body::from(json!({ "kind": "ack", "hash": "0".repeat(64) }).to_string());
    // A user token, even an admin's, is no gateway.
    for token in [&h.root, &h.alice] {
        let q = "/v1/gateways/ack?env=prod&id=forged&cell=a&version=0.1.0";
        let (s, e) = h.raw("POST", q, Some(&bearer(token)), ack()).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
        assert_eq!(e["error"], "forbidden");
    }
    // Environment names: only the exact ones.
    let huge = "p".repeat(10_000);
    // A percent-encoded unreserved byte is the same name (RFC 3986): the same config.
    let (s, e) = h
        .raw(
            "GET",
            "/v1/envs/pr%6fd/config",
            Some(&bearer(&h.viewer)),
            Body::empty(),
        )
        .await;
    assert_eq!(
        (s, &e["config"]["environment"]),
        (StatusCode::OK, &json!("prod"))
    );
    for env in ["PROD", "prod%00", "%20prod", "production", huge.as_str()] {
        let path = format!("/v1/envs/{env}/config");
        let (s, e) = h
            .raw("GET", &path, Some(&bearer(&h.viewer)), Body::empty())
            .await;
        assert!(s.is_client_error(), "{env:.20}: {s} {e}");
        assert!(
            ["not_found", "bad_query"].contains(&e["error"].as_str().unwrap_or("")),
            "{env:.20}: {e}"
        );
    }
    let (s, _) = h
        .raw(
            "GET",
            "/v1/envs//config",
            Some(&bearer(&h.viewer)),
            Body::empty(),
        )
        .await;
    assert!(s.is_client_error(), "{s}");
    // Gateway identities: missing, repeated, empty, oversized, or a bad environment (which
    // answers like an unknown environment anywhere else: 404).
    let long_id = "g".repeat(201);
    let bad_query = (StatusCode::BAD_REQUEST, "bad_query");
    for (q, want) in [
        ("env=prod&cell=a&version=0.1.0".to_owned(), bad_query),
        ("env=prod&id=&cell=a&version=0.1.0".to_owned(), bad_query),
        (
            format!("env=prod&id={long_id}&cell=a&version=0.1.0"),
            bad_query,
        ),
        (
            "env=prod&env=dev&id=g&cell=a&version=0.1.0".to_owned(),
            bad_query,
        ),
        (
            "env=prod&id=g&id=h&cell=a&version=0.1.0".to_owned(),
            bad_query,
        ),
        (
            "env=PROD&id=g&cell=a&version=0.1.0".to_owned(),
            (StatusCode::NOT_FOUND, "not_found"),
        ),
    ] {
        let path = format!("/v1/gateways/ack?{q}");
        let (s, e) = h.raw("POST", &path, Some(&bearer(&h.gw)), ack()).await;
        assert_eq!((s, e["error"].as_str().unwrap_or("")), want, "{q:.60}: {e}");
    }
    // None of those reached the fleet.
    let (_, fleet) = h.call("GET", "/v1/fleet?env=prod", &h.viewer, None).await;
    let ids: Vec<&str> = fleet["gateways"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert!(ids.is_empty(), "{fleet}");
}

async fn bad_bodies_are_4xx_with_paths(url: String) {
    let h = harness(&url).await;
    let auth = format!("Bearer {}", h.alice);
    let post = |body: Body| h.raw("POST", "/v1/envs/prod/changes", Some(&auth), body);
    // Not JSON.
    let (s, e) = post(Body::from("{ nope")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(e["error"], "bad_json");
    // A wrong type.
    let (s, e) = post(Body::from(
        json!({ "reason": "r", "edits": [], "base_version": "one" }).to_string(),
    ))
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["fields"][0]["path"], "base_version", "{e}");
    // An unknown field, deep inside an edit.
    let (s, e) = post(Body::from(
        json!({ "reason": "r", "base_version": 1, "edits": [
            { "upsert": { "product": { "name": "x", "description": "y", "colour": "red" } } }
        ] })
        .to_string(),
    ))
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let path = e["fields"][0]["path"].as_str().unwrap();
    assert!(path.starts_with("edits[0]"), "{e}");
    assert!(e["message"].as_str().unwrap().contains("colour"), "{e}");
    // An unknown top-level field.
    let (s, e) = post(Body::from(
        json!({ "reason": "r", "base_version": 1, "edits": [], "force": true }).to_string(),
    ))
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(e["message"].as_str().unwrap().contains("force"), "{e}");
    // A wrong type inside an object.
    let (s, e) = post(Body::from(
        json!({ "reason": "r", "base_version": 1, "edits": [
            { "upsert": { "upstream": { "name": "x", "endpoints": "nope" } } }
        ] })
        .to_string(),
    ))
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        e["fields"][0]["path"]
            .as_str()
            .unwrap()
            .contains("endpoints"),
        "{e}"
    );
    // No edits: a validation error with its path.
    let (s, e) = post(Body::from(
        json!({ "reason": "r", "base_version": 1, "edits": [] }).to_string(),
    ))
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["fields"][0]["path"], "edits", "{e}");
    // Oversize.
    let big = format!(
        "{{\"reason\": \"{}\", \"edits\": [], \"base_version\": 1}}",
        "x".repeat(api::MAX_BODY_BYTES + 10)
    );
    let (s, e) = post(Body::from(big)).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{e}");
    assert_eq!(e["error"], "too_large");
    // Bodies of the other endpoints are checked too.
    let (s, e) = h
        .call(
            "POST",
            "/v1/tokens",
            &h.root,
            Some(json!({ "name": "x", "role": "superuser" })),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["fields"][0]["path"], "role", "{e}");
    let (s, _) = h
        .call(
            "POST",
            "/v1/envs/prod/rollback",
            &h.alice,
            Some(json!({ "to": 3 })),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = h
        .call("GET", "/v1/envs/prod/changes?limit=lots", &h.viewer, None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = h.call("GET", "/v1/envs/qa/config", &h.viewer, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Nothing reached prod.
    assert_eq!(h.head("prod").await, 1);
}

async fn stale_base_version_conflicts_nothing_lost(url: String) {
    let h = harness(&url).await;
    let a = id_of(
        &h.submit_ok("prod", &h.alice, upstream_edit("127.0.0.1:19001"))
            .await,
    );
    let b_edit = flag_edit("maintenance-status", json!(503));
    let b = h.submit_ok("prod", &h.eve, b_edit.clone()).await;
    assert_eq!(b["risk"], "medium", "{b}");
    let b = id_of(&b);
    h.act(&a, "approve", &h.bob).await;
    h.act(&b, "approve", &h.bob).await;
    let (s, v) = h.act(&a, "apply", &h.alice).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["change"]["status"], "rolling_out");
    let rollout = v["rollout_id"].as_str().unwrap().to_owned();
    // One rollout per environment at a time: B waits, nothing of it written.
    let (_, log_before) = h.call("GET", "/v1/audit", &h.bob, None).await;
    let (s, e) = h.act(&b, "apply", &h.eve).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["error"], "rollout_active");
    let (_, log_after) = h.call("GET", "/v1/audit", &h.bob, None).await;
    assert_eq!(log_after, log_before);
    // A is aborted: back to the LKG, as a new version; B's base is now stale.
    let (s, v) = h
        .call(
            "POST",
            &format!("/v1/rollouts/{rollout}/abort"),
            &h.alice,
            Some(json!({ "reason": "test" })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "aborted");
    assert_eq!(h.head("prod").await, 3);
    let (_, log_before) = h.call("GET", "/v1/audit", &h.bob, None).await;
    let (s, e) = h.act(&b, "apply", &h.eve).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["error"], "stale_version");
    // Nothing half-written: no audit entry, no new version, no status move.
    let (_, log_after) = h.call("GET", "/v1/audit", &h.bob, None).await;
    assert_eq!(log_after, log_before);
    assert_eq!(h.head("prod").await, 3);
    let (_, v) = h
        .call("GET", &format!("/v1/changes/{b}"), &h.viewer, None)
        .await;
    assert_eq!(v["status"], "approved");
    let (_, v) = h
        .call("GET", &format!("/v1/changes/{a}"), &h.viewer, None)
        .await;
    assert_eq!(v["status"], "rolled_back");
    assert_eq!(v["rollout_id"], rollout.as_str());
    // Submitting against a stale base is refused at once.
    let (s, e) = h
        .call(
            "POST",
            "/v1/envs/prod/changes",
            &h.eve,
            Some(json!({ "reason": "again", "edits": b_edit, "base_version": 1 })),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(e["error"], "stale_version");
    // Resubmitted on the new base, it goes through.
    let b2 = id_of(&h.submit_ok("prod", &h.eve, b_edit).await);
    h.act(&b2, "approve", &h.carol).await;
    let (s, v) = h.act(&b2, "apply", &h.eve).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, flag) = h
        .call(
            "GET",
            "/v1/envs/prod/flags/maintenance-status",
            &h.viewer,
            None,
        )
        .await;
    assert_eq!(flag["default"], 503);
    let (_, cfg) = h.call("GET", "/v1/envs/prod/config", &h.viewer, None).await;
    assert_eq!(cfg["version"], 4);
    assert!(!cfg.to_string().contains("127.0.0.1:19001"));
}

async fn rollback_returns_to_the_lkg(url: String) {
    let h = harness(&url).await;
    let (_, lkg) = h
        .call("GET", "/v1/envs/prod/snapshot", &h.viewer, None)
        .await;
    let (_, before) = h.call("GET", "/v1/envs/prod/config", &h.viewer, None).await;
    let id = id_of(
        &h.submit_ok("prod", &h.alice, upstream_edit("127.0.0.1:19001"))
            .await,
    );
    h.act(&id, "approve", &h.bob).await;
    let (s, _) = h.act(&id, "apply", &h.alice).await;
    assert_eq!(s, StatusCode::OK);
    // Any editor, no approval.
    let (s, v) = h.call("POST", "/v1/envs/prod/rollback", &h.eve, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["hash"], lkg["hash"]);
    assert_eq!(v["version"], 3);
    let (_, snap) = h
        .call("GET", "/v1/envs/prod/snapshot", &h.viewer, None)
        .await;
    assert_eq!(snap["hash"], lkg["hash"]);
    let (_, after) = h.call("GET", "/v1/envs/prod/config", &h.viewer, None).await;
    assert_eq!(after["config"], before["config"]);
    // No LKG: a clear error.
    let (s, e) = h.call("POST", "/v1/envs/dev/rollback", &h.eve, None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(e["error"], "no_lkg");
    let (_, log) = h.call("GET", "/v1/audit", &h.bob, None).await;
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "rollout_aborted" && e["actor"] == "eve"),
        "a rollback during a rollout aborts it: {log}"
    );
}

async fn audit_chain_verifies_and_detects_tampering(url: String) {
    let h = harness(&url).await;
    let id = id_of(
        &h.submit_ok("prod", &h.alice, upstream_edit("127.0.0.1:19001"))
            .await,
    );
    h.act(&id, "approve", &h.bob).await;
    h.act(&id, "apply", &h.alice).await;
    h.call(
        "POST",
        "/v1/tokens",
        &h.root,
        Some(json!({ "name": "ci", "role": "editor" })),
    )
    .await;
    let (s, v) = h.call("GET", "/v1/audit/verify", &h.bob, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["ok"], true, "{v}");
    let (_, log) = h.call("GET", "/v1/audit", &h.bob, None).await;
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "change_submitted",
            "change_validated",
            "change_approved",
            "rollout_started",
            "token_created"
        ]
    );
    assert_eq!(v["entries"], 5);
    // Someone edits a row directly in the database.
    set_audit_actor(&h, 3, "mallory").await;
    let (s, v) = h.call("GET", "/v1/audit/verify", &h.bob, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["bad_seq"], 3);
    // And a removed row.
    set_audit_actor(&h, 3, "bob").await;
    let (_, v) = h.call("GET", "/v1/audit/verify", &h.bob, None).await;
    assert_eq!(v["ok"], true, "{v}");
    sqlx::query("DELETE FROM audit WHERE seq = $1")
        .bind(2_i64)
        .execute(h.store.pool())
        .await
        .unwrap();
    let (_, v) = h.call("GET", "/v1/audit/verify", &h.bob, None).await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["bad_seq"], 3);
    // Viewers and editors cannot read the audit log.
    let (s, _) = h.call("GET", "/v1/audit/verify", &h.alice, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// Edit the actor of audit row `seq` behind the control plane's back, as an intruder with
/// database access would.
async fn set_audit_actor(h: &Harness, seq: i64, actor: &str) {
    sqlx::query("UPDATE audit SET actor = $1 WHERE seq = $2")
        .bind(actor)
        .bind(seq)
        .execute(h.store.pool())
        .await
        .unwrap();
}

async fn concurrent_applies_one_wins(url: String) {
    let h = harness(&url).await;
    let a = id_of(
        &h.submit_ok("prod", &h.alice, upstream_edit("127.0.0.1:19001"))
            .await,
    );
    let b = id_of(
        &h.submit_ok("prod", &h.eve, flag_edit("maintenance-status", json!(503)))
            .await,
    );
    h.act(&a, "approve", &h.bob).await;
    h.act(&b, "approve", &h.bob).await;
    // The same change twice, and another change on the same base, all at once.
    let (r1, r2, r3) = tokio::join!(
        h.act(&a, "apply", &h.alice),
        h.act(&a, "apply", &h.eve),
        h.act(&b, "apply", &h.eve),
    );
    let ok = [r1.0, r2.0, r3.0]
        .iter()
        .filter(|s| **s == StatusCode::OK)
        .count();
    assert_eq!(ok, 1, "{r1:?} {r2:?} {r3:?}");
    for r in [&r1, &r2, &r3] {
        assert!(
            r.0 == StatusCode::OK || r.0 == StatusCode::CONFLICT,
            "{r:?}"
        );
    }
    assert_eq!(h.head("prod").await, 2);
    let (_, snap) = h
        .call("GET", "/v1/envs/prod/snapshot", &h.viewer, None)
        .await;
    assert_eq!(snap["version"], 2);
}

async fn restart_loses_nothing_acknowledged(url: String) {
    let h = harness(&url).await;
    let id = id_of(
        &h.submit_ok("prod", &h.alice, upstream_edit("127.0.0.1:19001"))
            .await,
    );
    let (s, _) = h.act(&id, "approve", &h.bob).await;
    assert_eq!(s, StatusCode::OK);
    let pending = id_of(
        &h.submit_ok("prod", &h.eve, flag_edit("maintenance-status", json!(503)))
            .await,
    );
    let (s, applied) = h.act(&id, "apply", &h.alice).await;
    assert_eq!(s, StatusCode::OK);
    let (_, log_before) = h.call("GET", "/v1/audit", &h.bob, None).await;
    let (_, cfg_before) = h.call("GET", "/v1/envs/prod/config", &h.viewer, None).await;
    h.store.close().await;
    // A new process on the same database.
    let store = Store::connect(&url).await.unwrap();
    let h2 = Harness {
        app: api::router_with(
            Service::new(store.clone(), RulesConfig::default())
                .with_rollouts(support::without_impact_test()),
        ),
        store,
        ..h
    };
    let (_, cfg_after) = h2
        .call("GET", "/v1/envs/prod/config", &h2.viewer, None)
        .await;
    assert_eq!(cfg_after, cfg_before);
    let (_, snap) = h2
        .call("GET", "/v1/envs/prod/snapshot", &h2.viewer, None)
        .await;
    assert_eq!(snap["hash"], applied["snapshot"]["hash"]);
    let (_, c) = h2
        .call("GET", &format!("/v1/changes/{pending}"), &h2.viewer, None)
        .await;
    assert_eq!(c["status"], "awaiting_approval");
    let (_, log_after) = h2.call("GET", "/v1/audit", &h2.bob, None).await;
    assert_eq!(log_after, log_before);
    let (_, v) = h2.call("GET", "/v1/audit/verify", &h2.bob, None).await;
    assert_eq!(v["ok"], true);
}

#[tokio::test]
async fn openapi_document_lists_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/control.db", dir.path().display());
    let h = harness(&url).await;
    let (s, doc) = h.raw("GET", "/openapi.json", None, Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in endpoints() {
        let templ = path
            .replace("/prod/", "/{env}/")
            .replace("chg_x", "{id}")
            .replace("api-rate-per-second", "{name}");
        let op = &paths
            .get(&templ)
            .unwrap_or_else(|| panic!("{templ} missing"))[method.to_lowercase()];
        assert!(op.is_object(), "{method} {templ}");
        assert!(op["responses"]["401"].is_object(), "{method} {templ}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

/// Why a body's schema says nothing: missing, or an object with no `$ref` and no properties
/// (an array's items too); `None` when it names a type.
fn untyped(schema: Option<&Value>) -> Option<&'static str> {
    let Some(schema) = schema else {
        return Some("no schema");
    };
    if schema.get("$ref").is_some()
        || ["oneOf", "allOf", "anyOf"]
            .iter()
            .any(|k| schema.get(*k).is_some())
    {
        return None;
    }
    match schema["type"].as_str() {
        Some("array") => untyped(schema.get("items")).map(|_| "an array of untyped objects"),
        Some("object") if schema.get("properties").is_none() => Some("an untyped object"),
        None => Some("a schema with no type"),
        Some(_) => None,
    }
}

#[tokio::test]
async fn openapi_names_a_schema_for_every_body() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/control.db", dir.path().display());
    let h = harness(&url).await;
    let (s, doc) = h.raw("GET", "/openapi.json", None, Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    let mut faults = Vec::new();
    let mut bodies = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let mut contents = vec![("request".to_owned(), &op["requestBody"]["content"])];
            for (status, resp) in op["responses"].as_object().unwrap() {
                contents.push((format!("response {status}"), &resp["content"]));
            }
            for (what, content) in contents {
                for (media, body) in content.as_object().into_iter().flatten() {
                    bodies += 1;
                    if let Some(why) = untyped(body.get("schema")) {
                        faults.push(format!("{method} {path}: {what} ({media}) is {why}"));
                    }
                }
            }
        }
    }
    assert!(faults.is_empty(), "untyped bodies:\n{}", faults.join("\n"));
    assert!(bodies > 60, "only {bodies} bodies: the walk is broken");
    // Every body's named schema is in the document, the model's types included.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "ConfigResponse",
        "Config",
        "Flag",
        "Snapshot",
        "Change",
        "Edit",
        "DeclaredImpact",
        "ChangeView",
        "ApplyResponse",
        "RolloutView",
        "GatewayReport",
        "ConfigAck",
        "SampleBatch",
        "ErrorBody",
        "ErrorCode",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
}
