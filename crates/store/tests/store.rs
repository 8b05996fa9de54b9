//! The store's integration suite: every case runs against SQLite (a file in a temporary
//! directory) and, when `RAMPART_TEST_DATABASE_URL` is set, against PostgreSQL in a fresh
//! schema that is dropped afterwards. Without the variable the PostgreSQL cases print a
//! message and pass; with it set, an unreachable database fails them.

use rampart_api::{AuditAction, ChangeStatus, Role, TokenKind};
use rampart_model::EnumName;
use std::sync::Arc;
use strum::VariantArray;

use rampart_model::change::{Edit, Object, ObjectKind};
use rampart_model::config::{Config, Environment, Product, Upstream};
use rampart_model::{Change, DeclaredImpact, Risk, Snapshot};
use rampart_store::ops::*;
use rampart_store::{
    AuditRecord, Backend, GENESIS_HASH, NewAuditRecord, NewChange, Store, StoreError, StoreTx,
    hash_secret, new_id,
};
use sha2::{Digest, Sha256};
use sqlx::Row;

mod support;

use support::example_fleet as fleet;

suite!(
    migrations_are_idempotent,
    fleet_round_trips_through_apply_and_config,
    history_is_kept,
    stale_base_version_conflicts,
    concurrent_writers_one_wins_nothing_lost,
    snapshots_and_last_known_good,
    change_status_is_compare_and_set,
    duplicate_approval_is_refused,
    tokens_are_stored_hashed,
    audit_rows_chain_in_order,
    transactions_commit_all_or_nothing,
    corrupt_rows_are_errors_not_panics,
    restart_loses_nothing,
    gateways_upsert_keeps_what_is_not_given,
    settings_are_an_object_and_default_when_absent,
);

// ---- fixtures ----

/// Every object of a config, as upserts.
fn upserts(config: &Config) -> Vec<Edit> {
    config.objects().map(Edit::Upsert).collect()
}

/// A config as the store materializes it: each list ordered by name.
fn sorted(mut config: Config, env: Environment) -> Config {
    config.environment = env;
    config.products.sort_by(|a, b| a.name.cmp(&b.name));
    config.upstreams.sort_by(|a, b| a.name.cmp(&b.name));
    config.policies.sort_by(|a, b| a.id.cmp(&b.id));
    config.routes.sort_by(|a, b| a.id.cmp(&b.id));
    config.flags.sort_by(|a, b| a.name.cmp(&b.name));
    config
}

fn product(name: &str, description: &str) -> Edit {
    Edit::Upsert(Object::Product(Product {
        name: name.to_owned(),
        description: description.to_owned(),
    }))
}

fn upstream(name: &str, endpoint: &str) -> Edit {
    let u: Upstream = serde_json::from_value(serde_json::json!({
        "name": name,
        "endpoints": [endpoint],
    }))
    .unwrap();
    Edit::Upsert(Object::Upstream(u))
}

fn delete(kind: ObjectKind, name: &str) -> Edit {
    Edit::Delete {
        kind,
        name: name.to_owned(),
    }
}

fn new_change(id: &str, env: Environment, author: &str) -> NewChange {
    NewChange {
        id: id.to_owned(),
        change: Change {
            environment: env,
            author: author.to_owned(),
            reason: format!("test change {id}"),
            declared_impact: DeclaredImpact::default(),
            edits: vec![product("p", "from a change")],
        },
        risk: Risk::Medium,
        status: ChangeStatus::Submitted,
        base_version: 0,
        validation: None,
    }
}

/// The audit hash the tests use (the real one lives in `audit.rs`).
fn test_hash(e: &AuditRecord) -> String {
    let text = format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}",
        e.seq,
        e.at_ms,
        e.actor,
        e.action.map_or("?", EnumName::as_str),
        e.subject,
        e.detail,
        e.prev_hash
    );
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn audit(action: AuditAction) -> NewAuditRecord {
    NewAuditRecord {
        actor: "alice".to_owned(),
        action,
        subject: "change chg_1".to_owned(),
        detail: r#"{"k":"v"}"#.to_owned(),
    }
}

/// A transaction that has moved change `chg_t` from submitted to applied.
async fn applying(store: &Store) -> StoreTx {
    let mut tx = store.begin().await.unwrap();
    tx.set_change_status("chg_t", ChangeStatus::Submitted, ChangeStatus::Applied)
        .await
        .unwrap();
    tx
}

fn product_names(config: &Config) -> Vec<&str> {
    config.products.iter().map(|p| p.name.as_str()).collect()
}

// ---- cases ----

async fn migrations_are_idempotent(url: String) {
    let first = Store::connect(&url).await.expect("first connect");
    // A second store on the same database while the first is open, then a third after.
    let second = Store::connect(&url).await.expect("second connect");
    assert_eq!(second.head(Environment::Prod).await.unwrap(), 0);
    first.close().await;
    second.close().await;
    let third = Store::connect(&url).await.expect("third connect");
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(third.pool())
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count();
    assert_eq!(applied, i64::try_from(files).unwrap());
    if third.backend() == Backend::Postgres {
        // The suite's isolation: this run's tables live in its own schema.
        let schema: String = sqlx::query_scalar("SELECT CAST(current_schema() AS TEXT)")
            .fetch_one(third.pool())
            .await
            .unwrap();
        assert!(schema.starts_with("rampart_test_"), "{schema}");
    }
    if third.backend() == Backend::Sqlite {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(third.pool())
            .await
            .unwrap();
        assert_eq!(mode.to_lowercase(), "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(third.pool())
            .await
            .unwrap();
        assert_eq!(fk, 1);
    }
}

async fn fleet_round_trips_through_apply_and_config(url: String) {
    let store = Store::connect(&url).await.unwrap();
    let fleet = fleet();
    let env = fleet.environment;
    let edits = upserts(&fleet);
    assert!(edits.len() > 10, "the example fleet has many objects");
    let v = store
        .apply_edits(env, 0, &edits, "alice", "chg_seed")
        .await
        .unwrap();
    assert_eq!(v, 1);
    let (config, version) = store.config(env).await.unwrap();
    assert_eq!(version, 1);
    assert_eq!(config, sorted(fleet.clone(), env));
    // Deterministic, and the same objects in another environment carry its name.
    assert_eq!(store.config(env).await.unwrap().0, config);
    store
        .apply_edits(Environment::Staging, 0, &edits, "alice", "chg_staging")
        .await
        .unwrap();
    let (staging, version) = store.config(Environment::Staging).await.unwrap();
    assert_eq!(version, 1);
    assert_eq!(staging, sorted(fleet, Environment::Staging));
    // Untouched environments are empty, at version 0.
    let (dev, version) = store.config(Environment::Dev).await.unwrap();
    assert_eq!(version, 0);
    assert!(dev.products.is_empty() && dev.routes.is_empty() && dev.flags.is_empty());
    assert_eq!(dev.environment, Environment::Dev);
    // The snapshot of the stored config hashes like the one of the file.
    let snap = Snapshot::new(config, vec![]);
    let direct = Snapshot::new(store.config(env).await.unwrap().0, vec![]);
    assert_eq!(snap.hash(), direct.hash());
}

async fn settings_are_an_object_and_default_when_absent(url: String) {
    let store = Store::connect(&url).await.unwrap();
    let env = Environment::Dev;
    // Written before settings were objects (no settings row): the defaults.
    store
        .apply_edits(env, 0, &[product("jira", "")], "alice", "chg_old")
        .await
        .unwrap();
    assert_eq!(
        store.config(env).await.unwrap().0.settings,
        Default::default()
    );
    let mut fleet = fleet();
    fleet.settings.tenant_header = "x-org".to_owned();
    let edits = upserts(&fleet);
    assert!(matches!(&edits[0], Edit::Upsert(Object::Settings(_))));
    store
        .apply_edits(env, 1, &edits, "alice", "chg_settings")
        .await
        .unwrap();
    let (config, _) = store.config(env).await.unwrap();
    assert_eq!(config, sorted(fleet.clone(), env));
    let objects = store.objects_at(env, 2).await.unwrap();
    let settings = objects
        .iter()
        .find(|o| o.kind == ObjectKind::Settings)
        .expect("a settings object");
    assert_eq!(settings.name, "settings");
    // Its history is kept like any object's; deleting it restores the defaults.
    store
        .apply_edits(
            env,
            2,
            &[delete(ObjectKind::Settings, "settings")],
            "bob",
            "chg_reset",
        )
        .await
        .unwrap();
    assert_eq!(
        store.config(env).await.unwrap().0.settings,
        Default::default()
    );
    assert_eq!(
        store.config_at(env, 2).await.unwrap().settings,
        fleet.settings
    );
    let history = store
        .object_history(env, ObjectKind::Settings, "settings")
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[1].object.is_none());
}

async fn history_is_kept(url: String) {
    let store = Store::connect(&url).await.unwrap();
    let env = Environment::Dev;
    let v1 = store
        .apply_edits(
            env,
            0,
            &[product("jira", "v1"), upstream("jira-app", "127.0.0.1:1")],
            "alice",
            "chg_1",
        )
        .await
        .unwrap();
    let v2 = store
        .apply_edits(
            env,
            v1,
            &[
                upstream("jira-app", "127.0.0.1:2"),
                product("confluence", "v2"),
            ],
            "bob",
            "chg_2",
        )
        .await
        .unwrap();
    let v3 = store
        .apply_edits(
            env,
            v2,
            &[delete(ObjectKind::Product, "jira")],
            "carol",
            "chg_3",
        )
        .await
        .unwrap();
    assert_eq!((v1, v2, v3), (1, 2, 3));

    let at1 = store.config_at(env, 1).await.unwrap();
    assert_eq!(product_names(&at1), ["jira"]);
    assert_eq!(at1.upstreams[0].endpoints, ["127.0.0.1:1"]);
    let at2 = store.config_at(env, 2).await.unwrap();
    assert_eq!(product_names(&at2), ["confluence", "jira"]);
    assert_eq!(at2.upstreams[0].endpoints, ["127.0.0.1:2"]);
    let (now, version) = store.config(env).await.unwrap();
    assert_eq!(version, 3);
    assert_eq!(product_names(&now), ["confluence"]);
    assert!(store.config_at(env, 0).await.unwrap().products.is_empty());
    assert!(matches!(
        store.config_at(env, 4).await,
        Err(StoreError::NotFound { .. })
    ));

    let history = store
        .object_history(env, ObjectKind::Product, "jira")
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].version, 1);
    assert_eq!(history[0].author, "alice");
    assert_eq!(history[0].change_id, "chg_1");
    assert!(history[0].object.is_some());
    assert_eq!(history[1].version, 3);
    assert_eq!(history[1].author, "carol");
    assert!(history[1].object.is_none(), "a deletion is a version too");
    let upstream_history = store
        .object_history(env, ObjectKind::Upstream, "jira-app")
        .await
        .unwrap();
    assert_eq!(
        upstream_history
            .iter()
            .map(|o| o.version)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    let live = store.objects_at(env, 2).await.unwrap();
    assert_eq!(
        live.iter()
            .map(|o| (o.kind, o.name.as_str(), o.version))
            .collect::<Vec<_>>(),
        [
            (ObjectKind::Product, "confluence", 2),
            (ObjectKind::Product, "jira", 1),
            (ObjectKind::Upstream, "jira-app", 2),
        ]
    );

    // Refused writes leave no trace.
    let err = store
        .apply_edits(env, 3, &[delete(ObjectKind::Product, "jira")], "d", "c")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let err = store
        .apply_edits(env, 3, &[product("x", "a"), product("x", "b")], "d", "c")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    let err = store.apply_edits(env, 3, &[], "d", "c").await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    assert_eq!(store.head(env).await.unwrap(), 3);
    // Re-creating a deleted object is a new version.
    let v4 = store
        .apply_edits(env, 3, &[product("jira", "back")], "d", "c4")
        .await
        .unwrap();
    assert_eq!(v4, 4);
    assert_eq!(
        product_names(&store.config(env).await.unwrap().0),
        ["confluence", "jira"]
    );
}

async fn stale_base_version_conflicts(url: String) {
    let store = Store::connect(&url).await.unwrap();
    let env = Environment::Prod;
    store
        .apply_edits(env, 0, &[product("a", "")], "alice", "c1")
        .await
        .unwrap();
    let err = store
        .apply_edits(env, 0, &[product("b", "")], "bob", "c2")
        .await
        .unwrap_err();
    assert!(err.is_conflict());
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                expected: 0,
                actual: 1
            }
        ),
        "{err}"
    );
    let err = store
        .apply_edits(env, 7, &[product("b", "")], "bob", "c2")
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Conflict {
            expected: 7,
            actual: 1
        }
    ));
    // Nothing of the losing writes was stored.
    let (config, version) = store.config(env).await.unwrap();
    assert_eq!(version, 1);
    assert_eq!(product_names(&config), ["a"]);
    assert!(
        store
            .object_history(env, ObjectKind::Product, "b")
            .await
            .unwrap()
            .is_empty()
    );
    // An environment that was never written conflicts against any base but 0.
    let err = store
        .apply_edits(Environment::Dev, 1, &[product("b", "")], "bob", "c3")
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Conflict {
            expected: 1,
            actual: 0
        }
    ));
}

async fn concurrent_writers_one_wins_nothing_lost(url: String) {
    let store = Store::connect(&url).await.unwrap();
    let env = Environment::Staging;
    let base = store
        .apply_edits(env, 0, &[product("seed", "")], "seed", "c0")
        .await
        .unwrap();

    // Two writers read the same base and write at once.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let tasks = ["alice", "bob"].map(|who| {
        let store = store.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            let result = store
                .apply_edits(env, base, &[product(who, who)], who, who)
                .await;
            (who, result)
        })
    });
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for task in tasks {
        let (who, result) = task.await.unwrap();
        match result {
            Ok(v) => winners.push((who, v)),
            Err(StoreError::Conflict { expected, actual }) => {
                assert_eq!((expected, actual), (base, base + 1));
                losers.push(who);
            }
            Err(e) => panic!("{who}: unexpected error {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins: {winners:?}");
    assert_eq!(winners[0].1, base + 1);
    assert_eq!(losers.len(), 1);
    // The loser re-reads and retries on the new base; both edits end up present.
    let loser = losers[0];
    let (_, current) = store.config(env).await.unwrap();
    let v = store
        .apply_edits(env, current, &[product(loser, loser)], loser, loser)
        .await
        .unwrap();
    assert_eq!(v, base + 2);
    let (config, _) = store.config(env).await.unwrap();
    assert_eq!(product_names(&config), ["alice", "bob", "seed"]);

    // Many writers, each retrying on conflict until it lands: nothing is lost.
    let writers = 8;
    let start = store.head(env).await.unwrap();
    let tasks: Vec<_> = (0..writers)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let name = format!("w{i}");
                let mut conflicts = 0;
                loop {
                    let base = store.head(env).await.unwrap();
                    match store
                        .apply_edits(env, base, &[product(&name, "")], &name, &name)
                        .await
                    {
                        Ok(v) => return (v, conflicts),
                        Err(e) if e.is_conflict() => conflicts += 1,
                        Err(e) => panic!("{name}: {e}"),
                    }
                    assert!(conflicts < 1000, "{name} never lands");
                }
            })
        })
        .collect();
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap().0);
    }
    versions.sort_unstable();
    assert_eq!(
        versions,
        (start + 1..=start + writers).collect::<Vec<_>>(),
        "every writer got its own version"
    );
    let (config, version) = store.config(env).await.unwrap();
    assert_eq!(version, start + writers);
    for i in 0..writers {
        assert!(
            config.products.iter().any(|p| p.name == format!("w{i}")),
            "w{i} was lost"
        );
    }
}

async fn snapshots_and_last_known_good(url: String) {
    let store = Store::connect(&url).await.unwrap();
    let env = Environment::Prod;
    assert!(store.latest_snapshot(env).await.unwrap().is_none());
    assert!(store.last_verified(env).await.unwrap().is_none());

    let v1 = store
        .apply_edits(env, 0, &upserts(&fleet()), "alice", "c1")
        .await
        .unwrap();
    let s1 = Snapshot::new(store.config(env).await.unwrap().0, vec![]);
    store.put_snapshot(env, v1, &s1).await.unwrap();
    // Storing the same snapshot again is a no-op.
    store.put_snapshot(env, v1, &s1).await.unwrap();
    let got = store.snapshot(env, v1).await.unwrap().unwrap();
    assert_eq!(got.snapshot, s1);
    assert_eq!(got.hash, s1.hash());
    assert_eq!((got.env, got.version, got.verified), (env, 1, false));
    assert!(store.last_verified(env).await.unwrap().is_none());

    store.mark_verified(env, s1.hash()).await.unwrap();
    store.mark_verified(env, s1.hash()).await.unwrap();
    let lkg = store.last_verified(env).await.unwrap().unwrap();
    assert_eq!((lkg.version, lkg.hash), (1, s1.hash()));
    assert!(lkg.verified && lkg.verified_at_ms.is_some());

    let v2 = store
        .apply_edits(env, v1, &[product("new", "")], "bob", "c2")
        .await
        .unwrap();
    let s2 = Snapshot::new(store.config(env).await.unwrap().0, vec![]);
    assert_ne!(s1.hash(), s2.hash());
    store.put_snapshot(env, v2, &s2).await.unwrap();
    assert_eq!(
        store.latest_snapshot(env).await.unwrap().unwrap().version,
        2
    );
    // Until v2 is verified, the LKG stays v1.
    assert_eq!(store.last_verified(env).await.unwrap().unwrap().version, 1);
    assert_eq!(
        store
            .snapshot_by_hash(env, s2.hash())
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    store.mark_verified(env, s2.hash()).await.unwrap();
    assert_eq!(
        store.last_verified(env).await.unwrap().unwrap().hash,
        s2.hash()
    );
    // Old snapshots stay.
    assert_eq!(store.snapshot(env, 1).await.unwrap().unwrap().snapshot, s1);

    // Refusals.
    let err = store.put_snapshot(env, v1, &s2).await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate { .. }), "{err}");
    let err = store.put_snapshot(env, 9, &s2).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    assert!(store.snapshot(env, 9).await.unwrap().is_none());
    let err = store
        .put_snapshot(Environment::Dev, 0, &s2)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    let other = Snapshot::new(
        Config {
            environment: env,
            ..store.config_at(env, 0).await.unwrap()
        },
        vec![],
    );
    let err = store.mark_verified(env, other.hash()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    // Other environments are separate.
    assert!(
        store
            .last_verified(Environment::Staging)
            .await
            .unwrap()
            .is_none()
    );
}

async fn change_status_is_compare_and_set(url: String) {
    let store = Store::connect(&url).await.unwrap();
    let mut new = new_change(&new_id("chg").unwrap(), Environment::Prod, "alice");
    new.validation = Some(serde_json::json!([{"path": "routes[0]", "message": "bad"}]));
    let rec = store.insert_change(&new).await.unwrap();
    assert_eq!(rec.status, ChangeStatus::Submitted);
    let got = store.change(&new.id).await.unwrap().unwrap();
    assert_eq!(got, rec);
    assert_eq!(got.change, new.change);
    assert_eq!(got.validation, new.validation);
    assert_eq!((got.author.as_str(), got.risk), ("alice", Risk::Medium));
    assert!(store.change("chg_missing").await.unwrap().is_none());
    let err = store.insert_change(&new).await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate { .. }), "{err}");

    store
        .set_change_status(&new.id, ChangeStatus::Submitted, ChangeStatus::Validated)
        .await
        .unwrap();
    let err = store
        .set_change_status(
            &new.id,
            ChangeStatus::Submitted,
            ChangeStatus::AwaitingApproval,
        )
        .await
        .unwrap_err();
    assert!(err.is_conflict());
    assert!(
        matches!(
            &err,
            StoreError::StatusConflict {
                expected: ChangeStatus::Submitted,
                actual: ChangeStatus::Validated,
                ..
            }
        ),
        "{err}"
    );
    let err = store
        .set_change_status(
            "chg_missing",
            ChangeStatus::Submitted,
            ChangeStatus::Validated,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let got = store.change(&new.id).await.unwrap().unwrap();
    assert_eq!(got.status, ChangeStatus::Validated);
    assert!(got.updated_at_ms >= got.created_at_ms);

    // Two racers from the same status: exactly one moves it.
    let tasks = [ChangeStatus::Approved, ChangeStatus::Withdrawn].map(|to| {
        let store = store.clone();
        let id = new.id.clone();
        tokio::spawn(async move {
            (
                to,
                store
                    .set_change_status(&id, ChangeStatus::Validated, to)
                    .await,
            )
        })
    });
    let mut won = Vec::new();
    for task in tasks {
        let (to, result) = task.await.unwrap();
        match result {
            Ok(()) => won.push(to),
            Err(e) => assert!(e.is_conflict(), "{e}"),
        }
    }
    assert_eq!(won.len(), 1);
    assert_eq!(store.change(&new.id).await.unwrap().unwrap().status, won[0]);

    // Listing: newest first, by environment, limited.
    let mut ids = vec![new.id.clone()];
    for env in [Environment::Prod, Environment::Staging, Environment::Prod] {
        let c = new_change(&new_id("chg").unwrap(), env, "bob");
        store.insert_change(&c).await.unwrap();
        ids.push(c.id);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let prod = store
        .list_changes(Some(Environment::Prod), 10)
        .await
        .unwrap();
    assert_eq!(
        prod.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [&ids[3], &ids[1], &ids[0]]
    );
    let all = store.list_changes(None, 2).await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [&ids[3], &ids[2]]
    );
}

async fn duplicate_approval_is_refused(url: String) {
    let store = Store::connect(&url).await.unwrap();
    let c = new_change("chg_a", Environment::Prod, "alice");
    store.insert_change(&c).await.unwrap();
    let a = store.add_approval("chg_a", "bob").await.unwrap();
    assert_eq!(
        (a.change_id.as_str(), a.approver.as_str()),
        ("chg_a", "bob")
    );
    let err = store.add_approval("chg_a", "bob").await.unwrap_err();
    assert!(matches!(err, StoreError::Duplicate { .. }), "{err}");
    store.add_approval("chg_a", "carol").await.unwrap();
    let err = store.add_approval("chg_missing", "bob").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let approvals = store.approvals("chg_a").await.unwrap();
    let mut approvers: Vec<_> = approvals.iter().map(|a| a.approver.as_str()).collect();
    approvers.sort_unstable();
    assert_eq!(approvers, ["bob", "carol"]);
    assert!(store.approvals("chg_missing").await.unwrap().is_empty());
}

async fn tokens_are_stored_hashed(url: String) {
    let store = Store::connect(&url).await.unwrap();
    let (admin, secret) = store
        .create_token("first admin", TokenKind::User, Some(Role::Admin))
        .await
        .unwrap();
    let (gw, gw_secret) = store
        .create_token("gw-1", TokenKind::Gateway, None)
        .await
        .unwrap();
    assert!(secret.starts_with("rpt_"));
    assert_eq!(secret.len(), 4 + 32);
    assert!(secret[4..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(secret, gw_secret);

    assert_eq!(
        store.token_by_secret(&secret).await.unwrap(),
        Some(admin.clone())
    );
    assert_eq!(
        store.token_by_secret(&gw_secret).await.unwrap(),
        Some(gw.clone())
    );
    assert_eq!(gw.kind, TokenKind::Gateway);
    assert!(store.token_by_secret("rpt_wrong").await.unwrap().is_none());
    let mut near = secret.clone();
    near.pop();
    near.push(if secret.ends_with('0') { '1' } else { '0' });
    assert!(store.token_by_secret(&near).await.unwrap().is_none());
    assert!(store.token_by_secret("").await.unwrap().is_none());

    // Only the hash is stored: no column of any token row holds a secret.
    let rows = sqlx::query("SELECT id, name, kind, role, hash FROM tokens")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        for col in ["id", "name", "kind", "role", "hash"] {
            let v: String = row.try_get(col).unwrap();
            assert!(!v.contains(&secret[4..]) && !v.contains(&gw_secret[4..]));
        }
    }
    let stored: String = sqlx::query_scalar("SELECT hash FROM tokens WHERE id = $1")
        .bind(admin.id.as_str())
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(stored, hash_secret(&secret));
    assert_eq!(stored, hex::encode(Sha256::digest(secret.as_bytes())));

    store.revoke_token(&admin.id).await.unwrap();
    assert!(store.token_by_secret(&secret).await.unwrap().is_none());
    assert!(store.token_by_secret(&gw_secret).await.unwrap().is_some());
    let err = store.revoke_token("tok_missing").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }));
    let all = store.list_tokens().await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().any(|t| t.id == admin.id && t.revoked));
}

async fn audit_rows_chain_in_order(url: String) {
    let store = Store::connect(&url).await.unwrap();
    assert!(store.audit_rows().await.unwrap().is_empty());
    for action in [
        AuditAction::ChangeSubmitted,
        AuditAction::ChangeApproved,
        AuditAction::TokenCreated,
    ] {
        store
            .append_audit_row(&audit(action), test_hash)
            .await
            .unwrap();
    }
    // Concurrent appenders are serialized: no gaps, no forks.
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append_audit_row(&audit(AuditAction::VARIANTS[i]), test_hash)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let rows = store.audit_rows().await.unwrap();
    assert_eq!(rows.len(), 13);
    assert_eq!(rows[0].action, Some(AuditAction::ChangeSubmitted));
    assert_eq!(rows[2].action, Some(AuditAction::TokenCreated));
    assert_eq!(rows[0].prev_hash, GENESIS_HASH);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.seq, i as u64 + 1);
        assert_eq!(
            row.hash,
            test_hash(&AuditRecord {
                hash: String::new(),
                ..row.clone()
            }),
            "row {} rehashes",
            row.seq
        );
        if i > 0 {
            assert_eq!(row.prev_hash, rows[i - 1].hash, "row {} links", i + 1);
            assert!(row.at_ms >= rows[i - 1].at_ms);
        }
    }
    assert_eq!(rows[1].detail, r#"{"k":"v"}"#);
}

async fn transactions_commit_all_or_nothing(url: String) {
    let store = Store::connect(&url).await.unwrap();
    let env = Environment::Prod;
    let c = new_change("chg_t", env, "alice");
    store.insert_change(&c).await.unwrap();

    // Dropped without commit: nothing happened.
    {
        let mut tx = applying(&store).await;
        tx.apply_edits(env, 0, &c.change.edits, "alice", "chg_t")
            .await
            .unwrap();
        tx.append_audit_row(&audit(AuditAction::ChangeApplied), test_hash)
            .await
            .unwrap();
    }
    assert_eq!(store.head(env).await.unwrap(), 0);
    assert!(store.audit_rows().await.unwrap().is_empty());
    assert_eq!(
        store.change("chg_t").await.unwrap().unwrap().status,
        ChangeStatus::Submitted
    );

    // A failure inside poisons it: commit rolls back the earlier, successful steps.
    let mut tx = applying(&store).await;
    let err = tx
        .apply_edits(env, 5, &c.change.edits, "alice", "chg_t")
        .await
        .unwrap_err();
    assert!(err.is_conflict());
    assert!(matches!(tx.commit().await, Err(StoreError::Aborted)));
    assert_eq!(
        store.change("chg_t").await.unwrap().unwrap().status,
        ChangeStatus::Submitted
    );

    // Committed: everything at once.
    let mut tx = applying(&store).await;
    let v = tx
        .apply_edits(env, 0, &c.change.edits, "alice", "chg_t")
        .await
        .unwrap();
    let (config, version) = tx.config(env).await.unwrap();
    assert_eq!(version, v);
    let snapshot = Snapshot::new(config, vec![]);
    tx.put_snapshot(env, v, &snapshot).await.unwrap();
    tx.append_audit_row(&audit(AuditAction::ChangeApplied), test_hash)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.head(env).await.unwrap(), 1);
    assert_eq!(
        store.latest_snapshot(env).await.unwrap().unwrap().hash,
        snapshot.hash()
    );
    assert_eq!(store.audit_rows().await.unwrap().len(), 1);
    assert_eq!(
        store.change("chg_t").await.unwrap().unwrap().status,
        ChangeStatus::Applied
    );
}

async fn corrupt_rows_are_errors_not_panics(url: String) {
    let store = Store::connect(&url).await.unwrap();
    let env = Environment::Dev;
    store
        .insert_change(&new_change("chg_c", env, "alice"))
        .await
        .unwrap();
    let v = store
        .apply_edits(env, 0, &[product("p", "")], "alice", "chg_c")
        .await
        .unwrap();
    let snap = Snapshot::new(store.config(env).await.unwrap().0, vec![]);
    store.put_snapshot(env, v, &snap).await.unwrap();

    let pool = store.pool();
    sqlx::query("UPDATE changes SET status = 'exploded' WHERE id = 'chg_c'")
        .execute(pool)
        .await
        .unwrap();
    let err = store.change("chg_c").await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    sqlx::query("UPDATE objects SET body = '{\"name\": 3}'")
        .execute(pool)
        .await
        .unwrap();
    let err = store.config(env).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    // A snapshot whose body no longer matches its hash is refused on read.
    let tampered = serde_json::to_string(&snap)
        .unwrap()
        .replacen("\"p\"", "\"q\"", 1);
    sqlx::query("UPDATE snapshots SET body = $1")
        .bind(tampered)
        .execute(pool)
        .await
        .unwrap();
    let err = store.snapshot(env, v).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    sqlx::query("UPDATE env_heads SET version = -4")
        .execute(pool)
        .await
        .unwrap();
    let err = store.head(env).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

async fn restart_loses_nothing(url: String) {
    let env = Environment::Prod;
    let fleet = fleet();
    let store = Store::connect(&url).await.unwrap();
    let v1 = store
        .apply_edits(env, 0, &upserts(&fleet), "alice", "c1")
        .await
        .unwrap();
    let v2 = store
        .apply_edits(env, v1, &[product("extra", "x")], "bob", "c2")
        .await
        .unwrap();
    let (config, _) = store.config(env).await.unwrap();
    let snap = Snapshot::new(config.clone(), vec![]);
    store.put_snapshot(env, v2, &snap).await.unwrap();
    store.mark_verified(env, snap.hash()).await.unwrap();
    let change = store
        .insert_change(&new_change("chg_r", env, "alice"))
        .await
        .unwrap();
    store
        .set_change_status("chg_r", ChangeStatus::Submitted, ChangeStatus::Validated)
        .await
        .unwrap();
    store.add_approval("chg_r", "bob").await.unwrap();
    let (token, secret) = store
        .create_token("admin", TokenKind::User, Some(Role::Admin))
        .await
        .unwrap();
    for action in [AuditAction::ChangeSubmitted, AuditAction::ChangeApproved] {
        store
            .append_audit_row(&audit(action), test_hash)
            .await
            .unwrap();
    }
    let audit_before = store.audit_rows().await.unwrap();
    store.close().await;
    drop(store);

    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.config(env).await.unwrap(), (config, v2));
    assert_eq!(
        product_names(&store.config_at(env, v1).await.unwrap()),
        product_names(&sorted(fleet, env))
    );
    let lkg = store.last_verified(env).await.unwrap().unwrap();
    assert_eq!((lkg.version, lkg.snapshot), (v2, snap));
    let got = store.change("chg_r").await.unwrap().unwrap();
    assert_eq!(got.status, ChangeStatus::Validated);
    assert_eq!(got.change, change.change);
    assert_eq!(store.approvals("chg_r").await.unwrap().len(), 1);
    assert_eq!(store.token_by_secret(&secret).await.unwrap(), Some(token));
    assert_eq!(store.audit_rows().await.unwrap(), audit_before);
    // The chain continues where it stopped.
    let next = store
        .append_audit_row(&audit(AuditAction::ChangeApplied), test_hash)
        .await
        .unwrap();
    assert_eq!(next.seq, 3);
    assert_eq!(next.prev_hash, audit_before[1].hash);
    // And so does optimistic concurrency.
    assert!(
        store
            .apply_edits(env, v1, &[product("late", "")], "carol", "c3")
            .await
            .unwrap_err()
            .is_conflict()
    );
}

async fn gateways_upsert_keeps_what_is_not_given(url: String) {
    use rampart_api::GatewaySeen;
    let store = Store::connect(&url).await.unwrap();
    let seen = |hash: Option<&str>, nack: Option<&str>, at: u64| GatewaySeen {
        env: Environment::Prod,
        id: "gw-1".into(),
        cell: "eu-1".into(),
        version: "0.1.0".into(),
        hash: hash.map(str::to_owned),
        last_seen_ms: at,
        last_nack: nack.map(str::to_owned),
    };
    store.upsert_gateway(&seen(None, None, 1)).await.unwrap();
    store
        .upsert_gateway(&seen(Some("h1"), None, 2))
        .await
        .unwrap();
    store
        .upsert_gateway(&seen(None, Some("h2: refused"), 3))
        .await
        .unwrap();
    store.upsert_gateway(&seen(None, None, 4)).await.unwrap();
    let gws = store.gateways(Environment::Prod).await.unwrap();
    assert_eq!(gws, vec![seen(Some("h1"), Some("h2: refused"), 4)]);
    assert!(
        store
            .gateways(Environment::Staging)
            .await
            .unwrap()
            .is_empty()
    );
}
