//! The rollout engine on a real store (SQLite always, PostgreSQL when
//! `RAMPART_TEST_DATABASE_URL` is set), driven one step at a time with gateway reports written
//! as gateways write them: every transition, the evidence stored with it, pause and resume,
//! abort, NACKs and local-guard trips. The real-process tests are in
//! `crates/cli/tests/rollouts.rs`.

mod support;

use rampart_api::{ChangeStatus, GateVerdict, GatewaySeen, RolloutState};
use rampart_model::clock::unix_ms;
use support::example_fleet as fleet;

use rampart_control::plan::RolloutConfig;
use rampart_control::rules::RulesConfig;
use rampart_control::service::{Service, Submission};
use rampart_model::EnumName;
use rampart_model::change::{Edit, Object};
use rampart_model::config::{Config, Environment, GatewayIdentity};
use rampart_model::wire::{CohortCounters, GatewayReport, LATENCY_BOUNDS_MS};
use rampart_model::{ContentHash, Snapshot};
use rampart_store::Store;
use rampart_store::ops::*;
use serde_json::json;

suite!(
    a_healthy_rollout_advances_then_succeeds_and_becomes_the_lkg,
    errors_roll_back_to_the_lkg_with_evidence,
    a_paused_rollout_does_not_advance_until_resumed,
    a_local_guard_trip_or_a_nack_rolls_back,
    abort_returns_to_the_lkg_and_ends_the_rollout,
    a_store_written_before_rollouts_opens_and_rolls_out,
    a_rollout_superseded_by_another_deployment_ends,
    a_gateway_restart_keeps_the_evidence_counted_so_far,
    a_deployment_is_announced_to_other_replicas,
    a_stored_evaluation_that_does_not_decode_leaves_the_rollout_readable,
);

const ENV: Environment = Environment::Prod;

/// Two stages (10%, then 100%), no soak, 10 samples each, for every risk level.
fn rollouts() -> RolloutConfig {
    let gates = json!([
        { "deadline_secs": 60, "check": { "error_rate": { "alpha": 0.01, "min_effect": 0.05, "min_samples": 20 } } },
        { "deadline_secs": 60, "check": { "latency_p99": { "max_ratio": 1.5 } } },
        { "deadline_secs": 60, "check": { "traffic_floor": { "min_ratio": 0.5 } } },
        { "deadline_secs": 60, "check": "no_nack" },
        { "deadline_secs": 60, "check": "no_local_guard_trip" },
    ]);
    let stage = |name: &str, percent: f64| {
        json!({ "name": name, "scope": { "percent": percent }, "min_soak_secs": 0,
                "min_samples": 10, "gates": gates })
    };
    let plan = json!([stage("10%", 10.0), stage("100%", 100.0)]);
    let mut cfg = support::without_impact_test();
    cfg.prod = serde_json::from_value(json!({
        "impact": { "enabled": false },
        "plans": { "low": plan, "medium": plan, "high": plan, "critical": plan },
    }))
    .unwrap();
    cfg
}

/// A store seeded with the example fleet (verified: the LKG), and a low-risk change of it
/// applied: its rollout id.
async fn started(url: &str) -> (Service, String, String) {
    let store = Store::connect(url).await.unwrap();
    let edits: Vec<Edit> = fleet().objects().map(Edit::Upsert).collect();
    store
        .apply_edits(ENV, 0, &edits, "seed", "seed")
        .await
        .unwrap();
    let (config, _) = store.config(ENV).await.unwrap();
    let snap = Snapshot::new(config, Vec::new());
    store.put_snapshot(ENV, 1, &snap).await.unwrap();
    store.mark_verified(ENV, snap.hash()).await.unwrap();
    store.put_deployment(&snap, None, "seed").await.unwrap();
    let service = Service::new(store, RulesConfig::default()).with_rollouts(rollouts());
    let (change, rollout) = apply_banner(&service, "scheduled maintenance on Sunday").await;
    (service, change, rollout)
}

/// Submit and apply a low-risk change of the `confluence-banner` flag's default, on the
/// environment's current version: the change's id and its rollout's id.
async fn apply_banner(service: &Service, text: &str) -> (String, String) {
    let store = service.store();
    let (config, head) = store.config(ENV).await.unwrap();
    let mut banner = config
        .flags
        .into_iter()
        .find(|f| f.name == "confluence-banner")
        .unwrap();
    banner.default = json!(text);
    let view = service
        .submit(
            "alice",
            Submission {
                env: ENV,
                reason: format!("banner: {text}"),
                declared_impact: Default::default(),
                edits: vec![Edit::Upsert(Object::Flag(banner))],
                base_version: head,
            },
        )
        .await
        .unwrap();
    assert_eq!(view.record.risk, rampart_model::Risk::Low);
    let (change, _) = service.apply(&view.record.id, "alice").await.unwrap();
    assert_eq!(change.status, ChangeStatus::RollingOut);
    let rollout = store.rollout_of_change(&change.id).await.unwrap().unwrap();
    (change.id, rollout.id)
}

/// Cumulative counters: `requests` in the first latency bucket, `errors` of them failed.
fn cohort(rollout: Option<&str>, requests: u64, errors: u64, tripped: bool) -> CohortCounters {
    let mut latency = vec![0; LATENCY_BOUNDS_MS.len() + 1];
    latency[0] = requests;
    CohortCounters {
        rollout: rollout.map(str::to_owned),
        requests,
        upstream_errors: 0,
        gateway_errors: errors,
        fallbacks: 0,
        denied: 0,
        latency_ms: latency,
        guard_tripped: tripped,
        shadow: None,
    }
}

/// What gateway `gw-1` (cell `a`) reports: the snapshot it runs and its counters.
async fn report(service: &Service, hash: &str, cohorts: Vec<CohortCounters>, nack: Option<String>) {
    report_as(service, hash, None, cohorts, nack).await;
}

/// The same, from the gateway process that started at `started_ms`.
async fn report_as(
    service: &Service,
    hash: &str,
    started_ms: Option<u64>,
    cohorts: Vec<CohortCounters>,
    nack: Option<String>,
) {
    let store = service.store();
    store
        .upsert_gateway(&GatewaySeen {
            env: ENV,
            id: "gw-1".into(),
            cell: "a".into(),
            version: "0.1.0".into(),
            hash: Some(hash.to_owned()),
            last_seen_ms: unix_ms(),
            last_nack: nack,
        })
        .await
        .unwrap();
    store
        .put_report(
            ENV,
            &GatewayReport {
                started_ms,
                gateway: GatewayIdentity {
                    id: "gw-1".into(),
                    cell: "a".into(),
                    version: semver::Version::new(0, 1, 0),
                },
                snapshot: Some(ContentHash::try_from(hash.to_owned()).unwrap()),
                at_ms: unix_ms(),
                cohorts,
                last_nack: None,
            },
        )
        .await
        .unwrap();
}

/// The hash gateways are told to run now.
async fn deployed(service: &Service) -> String {
    service.store().deployed_hash(ENV).await.unwrap().unwrap().0
}

/// `change` was rolled back, and the environment runs `hash` fleet-wide.
async fn assert_rolled_back_to(service: &Service, change: &str, hash: &str, why: &str) {
    let status = service
        .store()
        .change(change)
        .await
        .unwrap()
        .unwrap()
        .status;
    assert_eq!(status, ChangeStatus::RolledBack, "{why}");
    assert_eq!(deployed(service).await, hash, "{why}");
}

async fn step(service: &Service, id: &str) -> RolloutState {
    let r = service.store().rollout(id).await.unwrap().unwrap();
    if r.state.is_active() {
        service.rollouts().step(r).await.unwrap();
    }
    service.store().rollout(id).await.unwrap().unwrap().state
}

/// One stage's worth of healthy traffic on the stage's snapshot: a first report (the mark),
/// then one with `base` more baseline and `cand` more candidate requests, none failed.
async fn healthy_stage(service: &Service, id: &str, base: u64, cand: u64, from: (u64, u64)) {
    let hash = deployed(service).await;
    report(
        service,
        &hash,
        vec![
            cohort(None, from.0, 0, false),
            cohort(Some(id), from.1, 0, false),
        ],
        None,
    )
    .await;
    assert!(step(service, id).await.is_active());
    report(
        service,
        &hash,
        vec![
            cohort(None, from.0 + base, 0, false),
            cohort(Some(id), from.1 + cand, 0, false),
        ],
        None,
    )
    .await;
}

async fn a_healthy_rollout_advances_then_succeeds_and_becomes_the_lkg(url: String) {
    let (service, change, id) = started(&url).await;
    let first = deployed(&service).await;
    // No report under the stage's snapshot yet: nothing to judge, nothing moves.
    assert_eq!(step(&service, &id).await, RolloutState::Running);
    healthy_stage(&service, &id, 900, 100, (5_000, 0)).await;
    assert_eq!(step(&service, &id).await, RolloutState::Running);
    let r = service.rollouts().view(&id).await.unwrap();
    assert_eq!(r.stage_index, 1, "advanced: {:?}", r.last_eval);
    assert_ne!(
        deployed(&service).await,
        first,
        "the 100% stage is deployed"
    );
    let advanced = &r.decisions[1];
    assert_eq!(advanced.action.as_str(), "advanced");
    let gates = advanced.evidence["evidence"]["gates"].as_array().unwrap();
    assert!(gates.iter().all(|g| g["verdict"] == "pass"), "{gates:?}");
    // At 100% the window has no baseline: the gates compare with the baseline as it was.
    healthy_stage(&service, &id, 0, 200, (5_900, 100)).await;
    assert_eq!(step(&service, &id).await, RolloutState::Succeeded);
    let r = service.rollouts().view(&id).await.unwrap();
    let actions: Vec<&str> = r.decisions.iter().map(|d| d.action.as_str()).collect();
    assert_eq!(actions, ["started", "advanced", "succeeded"]);
    let store = service.store();
    assert_eq!(
        store.change(&change).await.unwrap().unwrap().status,
        ChangeStatus::Applied
    );
    let lkg = store.last_verified(ENV).await.unwrap().unwrap();
    assert_eq!(lkg.hash, r.candidate_hash, "the candidate is the new LKG");
    assert_eq!(
        deployed(&service).await,
        lkg.hash.to_string(),
        "and runs alone"
    );
}

/// The first stage's deployed hash, after the gateway reported `requests` clean baseline
/// requests under it and the driver stepped once (marking where the stage's window starts).
async fn baseline_reported(service: &Service, id: &str, requests: u64) -> String {
    let hash = deployed(service).await;
    report(service, &hash, vec![cohort(None, requests, 0, false)], None).await;
    step(service, id).await;
    hash
}

async fn errors_roll_back_to_the_lkg_with_evidence(url: String) {
    let (service, change, id) = started(&url).await;
    let lkg = service.store().last_verified(ENV).await.unwrap().unwrap();
    let hash = baseline_reported(&service, &id, 1_000).await;
    // 20 candidate requests, all failed, against a clean baseline.
    report(
        &service,
        &hash,
        vec![
            cohort(None, 1_180, 0, false),
            cohort(Some(&id), 20, 20, false),
        ],
        None,
    )
    .await;
    assert_eq!(step(&service, &id).await, RolloutState::RolledBack);
    let r = service.rollouts().view(&id).await.unwrap();
    let last = r.decisions.last().unwrap();
    assert_eq!(last.action.as_str(), "rolled_back");
    assert_eq!(last.actor, "engine");
    assert_eq!(last.evidence["returned_to"], "lkg");
    assert_eq!(last.evidence["to_hash"], lkg.hash.to_string());
    let gate = last.evidence["evidence"]["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == "error_rate")
        .unwrap()
        .clone();
    assert_eq!(gate["verdict"], "fail");
    assert_eq!(gate["evidence"]["candidate_errors"], 20);
    assert!(gate["value"].as_f64().unwrap() >= gate["threshold"].as_f64().unwrap());
    assert!(r.reason.unwrap().contains("error rate"));
    let lkg_hash = lkg.hash.to_string();
    assert_rolled_back_to(&service, &change, &lkg_hash, "the LKG runs fleet-wide").await;
    let (config, _) = service.store().config(ENV).await.unwrap();
    assert_eq!(
        &config,
        lkg.snapshot.config(),
        "the objects are back to the LKG's"
    );
    let audit = service.audit_entries().await.unwrap();
    let last = audit.last().unwrap();
    assert_eq!(last.action.as_str(), "rollback");
    assert_eq!(last.actor, "engine");
    assert!(service.verify_audit().await.unwrap().ok);
}

async fn a_paused_rollout_does_not_advance_until_resumed(url: String) {
    let (service, _, id) = started(&url).await;
    let paused = service
        .rollouts()
        .pause(&id, "alice", Some("a look first"))
        .await
        .unwrap();
    assert_eq!(paused.state, RolloutState::Paused);
    healthy_stage(&service, &id, 900, 100, (5_000, 0)).await;
    assert_eq!(step(&service, &id).await, RolloutState::Paused);
    let r = service.rollouts().view(&id).await.unwrap();
    assert_eq!(r.stage_index, 0, "no advance while paused");
    assert_eq!(
        r.last_eval.as_ref().unwrap().verdict,
        GateVerdict::Pass,
        "gates still judge"
    );
    // Pausing twice is a conflict, not a silent success.
    assert!(service.rollouts().pause(&id, "alice", None).await.is_err());
    service.rollouts().resume(&id, "alice", None).await.unwrap();
    assert_eq!(step(&service, &id).await, RolloutState::Running);
    let r = service.rollouts().view(&id).await.unwrap();
    assert_eq!(r.stage_index, 1);
    let actions: Vec<&str> = r.decisions.iter().map(|d| d.action.as_str()).collect();
    assert_eq!(actions, ["started", "paused", "resumed", "advanced"]);
}

async fn a_local_guard_trip_or_a_nack_rolls_back(url: String) {
    let (service, _, id) = started(&url).await;
    let hash = baseline_reported(&service, &id, 100).await;
    report(
        &service,
        &hash,
        vec![cohort(None, 110, 0, false), cohort(Some(&id), 3, 0, true)],
        None,
    )
    .await;
    assert_eq!(step(&service, &id).await, RolloutState::RolledBack);
    let r = service.rollouts().view(&id).await.unwrap();
    assert!(r.reason.unwrap().contains("gw-1"), "names the gateway");
    // A NACK of the stage's snapshot fails it too.
    let (_, second) = apply_banner(&service, "again").await;
    let hash = deployed(&service).await;
    report(
        &service,
        "0".repeat(64).as_str(),
        vec![cohort(None, 100, 0, false)],
        Some(format!("{hash}: the candidate does not compile here")),
    )
    .await;
    assert_eq!(step(&service, &second).await, RolloutState::RolledBack);
    let r = service.rollouts().view(&second).await.unwrap();
    assert!(r.reason.unwrap().contains("does not compile here"));
}

async fn abort_returns_to_the_lkg_and_ends_the_rollout(url: String) {
    let (service, change, id) = started(&url).await;
    let lkg = service.store().last_verified(ENV).await.unwrap().unwrap();
    let v = service
        .rollouts()
        .abort(&id, "bob", Some("not today"))
        .await
        .unwrap();
    assert_eq!(v.state, RolloutState::Aborted);
    assert_eq!(v.reason.as_deref(), Some("aborted by bob: not today"));
    assert_rolled_back_to(&service, &change, &lkg.hash.to_string(), "aborted").await;
    // An ended rollout takes no more actions.
    assert!(service.rollouts().resume(&id, "bob", None).await.is_err());
    assert!(service.rollouts().abort(&id, "bob", None).await.is_err());
    assert_eq!(v.stages.len(), 2);
}

/// State compatibility: a database as the previous version left it (schema migrations 1 and
/// 2, an applied and verified snapshot, no deployments, no rollouts) opens with this version:
/// migration 3 runs, nothing is lost, gateways are served its newest snapshot, and the next
/// change rolls out against it.
async fn a_store_written_before_rollouts_opens_and_rolls_out(url: String) {
    use sqlx::Executor as _;
    sqlx::any::install_default_drivers();
    let raw_url = match url.strip_prefix("sqlite://") {
        Some(path) => {
            std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
            format!("{url}?mode=rwc")
        }
        None => url.clone(),
    };
    let old = tempfile::tempdir().unwrap();
    for m in ["0001_store.sql", "0002_gateways.sql"] {
        let from = format!("{}/../store/migrations/{m}", env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(from, old.path().join(m)).unwrap();
    }
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&raw_url)
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(old.path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    // What the previous version wrote for a seeded, verified prod.
    let cfg = fleet();
    let snap = Snapshot::new(cfg.clone(), Vec::new());
    let now = unix_ms() as i64;
    pool.execute("INSERT INTO env_heads (env, version) VALUES ('prod', 1)")
        .await
        .unwrap();
    for o in cfg.objects() {
        let (kind, name) = o.key();
        let body = serde_json::to_value(&o).unwrap();
        let body = body
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .to_string();
        sqlx::query(
            "INSERT INTO objects (env, kind, name, version, body, author, change_id, created_at) \
             VALUES ('prod', $1, $2, 1, $3, 'seed', 'seed', $4)",
        )
        .bind(rampart_model::EnumName::as_str(kind))
        .bind(name.to_owned())
        .bind(body)
        .bind(now)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO snapshots (env, version, hash, body, verified, verified_at, created_at) \
         VALUES ('prod', 1, $1, $2, 1, $3, $3)",
    )
    .bind(snap.hash().to_string())
    .bind(serde_json::to_string(&snap).unwrap())
    .bind(now)
    .execute(&pool)
    .await
    .unwrap();
    // A hex hash and a number: safe to write inline.
    let gateway = format!(
        "INSERT INTO gateways (env, id, cell, version, hash, last_seen_ms, last_nack) \
         VALUES ('prod', 'gw-old', 'a', '0.1.0', '{}', {now}, NULL)",
        snap.hash()
    );
    pool.execute(gateway.as_str()).await.unwrap();
    pool.close().await;

    let store = Store::connect(&url).await.unwrap();
    let (config, head) = store.config(ENV).await.unwrap();
    assert_eq!(head, 1);
    let sorted = |c: &Config| {
        let mut v: Vec<String> = c
            .objects()
            .map(|o| serde_json::to_string(&o).unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(sorted(&config), sorted(&cfg), "every object kept");
    assert_eq!(
        store.last_verified(ENV).await.unwrap().unwrap().hash,
        snap.hash()
    );
    assert_eq!(store.gateways(ENV).await.unwrap()[0].id, "gw-old");
    assert!(store.latest_deployment(ENV).await.unwrap().is_none());
    let service = Service::new(store, RulesConfig::default()).with_rollouts(rollouts());
    let deployed = service
        .rollouts()
        .deployed_config(ENV)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deployed.hash, snap.hash(), "gateways keep what they ran");
    let (_, rollout) = apply_banner(&service, "after the upgrade").await;
    let r = service.store().rollout(&rollout).await.unwrap().unwrap();
    assert_eq!(r.baseline_hash, snap.hash());
    let (_, rollout) = service.store().deployed_hash(ENV).await.unwrap().unwrap();
    assert_eq!(rollout.as_deref(), Some(r.id.as_str()));
}

/// A deployment made over a running rollout (a rollback that raced the rollout's start): the
/// driver ends the rollout instead of leaving the environment blocked behind it.
async fn a_rollout_superseded_by_another_deployment_ends(url: String) {
    let (service, change, id) = started(&url).await;
    let lkg = service.store().last_verified(ENV).await.unwrap().unwrap();
    service
        .store()
        .put_deployment(&lkg.snapshot, None, "a racing rollback")
        .await
        .unwrap();
    assert_eq!(step(&service, &id).await, RolloutState::Aborted);
    let r = service.rollouts().view(&id).await.unwrap();
    assert!(r.reason.unwrap().starts_with("superseded"));
    assert_rolled_back_to(
        &service,
        &change,
        &lkg.hash.to_string(),
        "nothing redeployed",
    )
    .await;
    assert!(service.rollouts().active(ENV).await.unwrap().is_none());
}

/// A gateway that restarts mid-stage starts its counters from zero; what its earlier process
/// counted in the stage still counts: 10 failed requests before the restart and 10 after fail
/// the error gate (20 is its minimum), where either half alone would not.
async fn a_gateway_restart_keeps_the_evidence_counted_so_far(url: String) {
    let (service, _, id) = started(&url).await;
    let hash = deployed(&service).await;
    let (first, second) = (Some(1_000), Some(2_000));
    report_as(
        &service,
        &hash,
        first,
        vec![cohort(None, 500, 0, false)],
        None,
    )
    .await;
    step(&service, &id).await;
    report_as(
        &service,
        &hash,
        first,
        vec![
            cohort(None, 590, 0, false),
            cohort(Some(&id), 10, 10, false),
        ],
        None,
    )
    .await;
    assert_eq!(
        step(&service, &id).await,
        RolloutState::Running,
        "10 is not enough"
    );
    // Restarted: counters from zero.
    report_as(
        &service,
        &hash,
        second,
        vec![cohort(None, 90, 0, false), cohort(Some(&id), 10, 10, false)],
        None,
    )
    .await;
    assert_eq!(step(&service, &id).await, RolloutState::RolledBack);
    let r = service.rollouts().view(&id).await.unwrap();
    let reason = r.reason.unwrap();
    assert!(
        reason.contains("(20/20)"),
        "both processes' failures count: {reason}"
    );
}

/// With PostgreSQL every deployment is announced (NOTIFY, at commit) on
/// `rampart_deployments`, so other replicas stream it at once; SQLite has one process.
async fn a_deployment_is_announced_to_other_replicas(url: String) {
    let store = Store::connect(&url).await.unwrap();
    let Some(mut listener) = store.listen_deployments().await.unwrap() else {
        return;
    };
    let snap = Snapshot::new(fleet(), Vec::new());
    store.put_deployment(&snap, None, "test").await.unwrap();
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .expect("announced within 5 s")
        .unwrap();
    assert_eq!(n, "prod");
}

/// A rollout's last evaluation, as an older version or a hand edit left it: not JSON, another
/// shape, a huge string, nesting past serde's recursion limit. The rollout still reads, without
/// that evaluation (the next step writes a new one), and the driver still steps it.
async fn a_stored_evaluation_that_does_not_decode_leaves_the_rollout_readable(url: String) {
    let (service, _, id) = started(&url).await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let huge = serde_json::to_string(&"x".repeat(1 << 20)).unwrap();
    for stored in [
        "{ not json",
        r#"{"verdict": 3}"#,
        "[]",
        "null",
        &huge,
        &deep,
    ] {
        sqlx::query("UPDATE rollouts SET last_eval = $1 WHERE id = $2")
            .bind(stored)
            .bind(&id)
            .execute(service.store().pool())
            .await
            .unwrap();
        let v = service.rollouts().view(&id).await.unwrap();
        assert_eq!(v.last_eval, None, "{:.40}", stored);
        assert_eq!(v.state, RolloutState::Running);
    }
    // The driver evaluates it again and stores an evaluation that reads back.
    let hash = baseline_reported(&service, &id, 100).await;
    assert!(!hash.is_empty());
    let v = service.rollouts().view(&id).await.unwrap();
    assert!(v.last_eval.is_some(), "{v:?}");
}
