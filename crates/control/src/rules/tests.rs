use rampart_api::{Missing, Readiness, Role};
use rampart_model::{Change, Config, EnumName, Environment, Risk};
use serde_json::{Value, json};
use strum::VariantArray;

use super::*;

const ENVS: [Environment; 3] = [Environment::Dev, Environment::Staging, Environment::Prod];

/// The expected defaults, written out independently of [`EnvRules::defaults`]:
/// (approvals, staging soak, change window).
fn expected(env: Environment, risk: Risk) -> (u32, Option<u64>, bool) {
    use Environment::*;
    use Risk::*;
    match (env, risk) {
        (Dev, Low | Medium) => (0, None, false),
        (Dev, High | Critical) => (1, None, false),
        (Staging, Low) => (0, None, false),
        (Staging, Medium) => (1, None, false),
        (Staging, High | Critical) => (2, None, false),
        (Prod, Low) => (0, None, false),
        (Prod, Medium) => (1, None, false),
        (Prod, High) => (2, Some(3600), false),
        (Prod, Critical) => (2, Some(3 * 3600), true),
    }
}

const OPEN: u64 = 1_000_000;
const CLOSED: u64 = 5_000_000;

fn rules_with_window(env: Environment) -> EnvRules {
    EnvRules::defaults(env)
        .with_change_windows(vec![Window::new(OPEN, OPEN + 3_600_000).unwrap()])
        .unwrap()
}

fn facts(approvers: &[&str], now_ms: u64, staging_soaked: bool) -> ApprovalFacts {
    ApprovalFacts {
        author: "alice".into(),
        approvers: approvers.iter().map(|s| s.to_string()).collect(),
        now_ms,
        staging_soaked,
    }
}

/// The approvals that the approve endpoint would have recorded: each attempt goes through
/// [`may_approve`] with the attempter's role.
fn recorded(role: Role, author: &str, attempts: &[String]) -> Vec<String> {
    attempts
        .iter()
        .filter(|a| may_approve(role, author, a).is_ok())
        .cloned()
        .collect()
}

#[test]
fn matrix_risk_role_environment() {
    let mut combinations = 0;
    for env in ENVS {
        let rules = rules_with_window(env);
        rules.check_for(env).unwrap();
        for &risk in Risk::VARIANTS {
            let (need, soak, window) = expected(env, risk);
            let policy = rules.policy(risk);
            assert_eq!(policy.approvals(), need, "{env} {risk:?}");
            assert_eq!(policy.staging_soak_secs(), soak, "{env} {risk:?}");
            assert_eq!(policy.needs_change_window(), window, "{env} {risk:?}");
            assert!(!policy.author_may_approve());
            for author_role in Role::VARIANTS.iter().copied() {
                assert_eq!(
                    allowed(author_role, Permission::SubmitChange),
                    author_role >= Role::Editor
                );
                // Whatever the author's role, their own approval is refused...
                assert!(may_approve(author_role, "alice", "alice").is_err());
                assert_eq!(can_approve("alice", "alice"), Err(Refusal::OwnChange));
                for approver_role in Role::VARIANTS.iter().copied() {
                    combinations += 1;
                    let ctx =
                        format!("{env} {risk:?} author={author_role} approver={approver_role}");
                    let can = approver_role >= Role::Approver;
                    let others: Vec<String> = (0..need).map(|i| format!("user{i}")).collect();
                    let got = recorded(approver_role, "alice", &others);
                    assert_eq!(got.len(), if can { need as usize } else { 0 }, "{ctx}");

                    // Everything else satisfied: ready iff enough approvals were recorded.
                    let names: Vec<&str> = got.iter().map(String::as_str).collect();
                    let v = check(&rules, risk, &facts(&names, OPEN, true));
                    assert_eq!(v.ready, can || need == 0, "{ctx}: {v}");
                    assert_eq!(v.ready, v.missing.is_empty(), "{ctx}");
                    if !v.ready {
                        assert_eq!(
                            v.missing,
                            vec![Missing::Approvals { have: 0, need }],
                            "{ctx}"
                        );
                    }
                    if !can || need == 0 {
                        continue;
                    }

                    // One short: not ready, whoever the approvers are.
                    let short = &names[..names.len() - 1];
                    let v = check(&rules, risk, &facts(short, OPEN, true));
                    assert!(!v.ready, "{ctx}");
                    assert_eq!(
                        v.missing,
                        vec![Missing::Approvals {
                            have: need - 1,
                            need
                        }],
                        "{ctx}"
                    );

                    // ...and if the author's approval was recorded anyway, it does not count
                    // and blocks the change.
                    let mut with_author = short.to_vec();
                    with_author.push("alice");
                    let v = check(&rules, risk, &facts(&with_author, OPEN, true));
                    assert!(!v.ready, "{ctx}");
                    assert!(v.missing.contains(&Missing::AuthorApproved), "{ctx}");
                    assert!(
                        v.missing.contains(&Missing::Approvals {
                            have: need - 1,
                            need
                        }),
                        "{ctx}"
                    );

                    // The same person twice counts once.
                    let mut dup = short.to_vec();
                    dup.push(short.first().copied().unwrap_or("user0"));
                    let v = check(&rules, risk, &facts(&dup, OPEN, true));
                    assert_eq!(v.ready, need == 1 && short.is_empty(), "{ctx}");
                }
            }

            // Staging soak: required exactly for prod high and critical.
            let all: Vec<String> = (0..need).map(|i| format!("user{i}")).collect();
            let names: Vec<&str> = all.iter().map(String::as_str).collect();
            let v = check(&rules, risk, &facts(&names, OPEN, false));
            assert_eq!(
                v.missing.contains(&Missing::StagingSoak {
                    need_secs: soak.unwrap_or(0)
                }),
                soak.is_some(),
                "{env} {risk:?}"
            );
            assert_eq!(
                soak.is_some(),
                env == Environment::Prod && risk >= Risk::High,
                "{env} {risk:?}"
            );
            // Change window: required exactly for prod critical.
            let v = check(&rules, risk, &facts(&names, CLOSED, true));
            assert_eq!(
                v.missing.contains(&Missing::ChangeWindowClosed),
                window,
                "{env} {risk:?}"
            );
            assert_eq!(window, env == Environment::Prod && risk == Risk::Critical);
            assert_eq!(v.ready, !window, "{env} {risk:?}");
        }
    }
    assert_eq!(combinations, 3 * 4 * 4 * 4);
}

#[test]
fn no_role_skips_approvals() {
    let rules = rules_with_window(Environment::Prod);
    // `check` takes no role. An admin who wrote a critical change cannot approve it, and
    // one admin approval is one approval.
    for role in Role::VARIANTS.iter().copied() {
        assert!(may_approve(role, "root", "root").is_err(), "{role}");
        assert!(may_approve(role, "root", " ROOT ").is_err(), "{role}");
    }
    assert_eq!(may_approve(Role::Admin, "alice", "root"), Ok(()));
    let v = check(&rules, Risk::Critical, &facts(&["root"], OPEN, true));
    assert_eq!(v.missing, vec![Missing::Approvals { have: 1, need: 2 }]);
    let v = check(&rules, Risk::Critical, &facts(&["root", "bob"], OPEN, true));
    assert!(v.ready, "{v}");
    // Not even with every approval can a critical change skip its soak or its window.
    let v = check(
        &rules,
        Risk::Critical,
        &facts(&["root", "bob", "carol"], CLOSED, false),
    );
    assert_eq!(
        v.missing,
        vec![
            Missing::StagingSoak {
                need_secs: CRITICAL_STAGING_SOAK_SECS
            },
            Missing::ChangeWindowClosed
        ]
    );
    // Editors and viewers cannot approve at all; nobody but editors and up can roll back.
    assert_eq!(
        may_approve(Role::Editor, "alice", "bob"),
        Err(Refusal::Role(Role::Editor))
    );
    assert_eq!(
        may_approve(Role::Viewer, "alice", "bob"),
        Err(Refusal::Role(Role::Viewer))
    );
    assert_eq!(can_approve("", "bob"), Err(Refusal::NoIdentity));
    assert_eq!(can_approve("alice", "  "), Err(Refusal::NoIdentity));
    // Empty or blank approvers never count.
    let v = check(&rules, Risk::Medium, &facts(&["", "  "], OPEN, true));
    assert_eq!(v.missing, vec![Missing::Approvals { have: 0, need: 1 }]);
    // Prod defaults have no change window: critical changes wait until one is configured.
    let closed = EnvRules::defaults(Environment::Prod);
    let v = check(
        &closed,
        Risk::Critical,
        &facts(&["root", "bob"], OPEN, true),
    );
    assert_eq!(v.missing, vec![Missing::ChangeWindowClosed]);
}

#[test]
fn no_configuration_lets_the_author_approve_or_drops_prod_floors() {
    let p = |extra: Value| {
        let mut base = json!({"approvals": 2, "staging_soak_secs": 3600});
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        base
    };
    let env = |high: Value, critical: Value| {
        json!({
            "low": {"approvals": 0},
            "medium": {"approvals": 1},
            "high": high,
            "critical": critical,
        })
    };
    let ok_critical = p(json!({"needs_change_window": true}));
    let good = json!({ "prod": env(p(json!({})), ok_critical.clone()) });
    let cfg: RulesConfig = serde_json::from_value(good).unwrap();
    assert_eq!(
        cfg.for_env(Environment::Prod)
            .policy(Risk::High)
            .approvals(),
        2
    );
    assert_eq!(
        cfg.for_env(Environment::Dev),
        &EnvRules::defaults(Environment::Dev)
    );

    let err = |v: Value| {
        serde_json::from_value::<RulesConfig>(v)
            .unwrap_err()
            .to_string()
    };
    let e = err(json!({"prod": env(p(json!({"author_may_approve": true})), ok_critical.clone())}));
    assert!(e.contains("prod.high.author_may_approve"), "{e}");
    // Explicitly `false` is accepted.
    serde_json::from_value::<RulesConfig>(
        json!({"prod": env(p(json!({"author_may_approve": false})), ok_critical.clone())}),
    )
    .unwrap();
    let e = err(json!({"prod": env(p(json!({"approvals": 0})), ok_critical.clone())}));
    assert!(e.contains("prod.high.approvals"), "{e}");
    let e = err(json!({"prod": env(p(json!({"approvals": 11})), ok_critical.clone())}));
    assert!(e.contains("more than the maximum"), "{e}");
    let e = err(json!({"prod": env(json!({"approvals": 2}), ok_critical.clone())}));
    assert!(e.contains("prod.high.staging_soak_secs"), "{e}");
    let e = err(json!({"prod": env(p(json!({})), p(json!({})))}));
    assert!(e.contains("prod.critical.needs_change_window"), "{e}");
    let e = err(json!({"prod": env(p(json!({"approvals": 3})), ok_critical.clone())}));
    assert!(
        e.contains("prod.critical") && e.contains("less than"),
        "{e}"
    );
    let e = err(json!({"staging": env(p(json!({})), ok_critical.clone())}));
    assert!(e.contains("staging.high.staging_soak_secs"), "{e}");
    let e = err(json!({"prod": env(p(json!({"bypass": true})), ok_critical.clone())}));
    assert!(e.contains("unknown field"), "{e}");
    let e = err(json!({"qa": {}}));
    assert!(e.contains("unknown field"), "{e}");
    let mut with_window = env(p(json!({})), ok_critical.clone());
    with_window["change_windows"] = json!([{"start_unix_ms": 10, "end_unix_ms": 10}]);
    let e = err(json!({ "prod": with_window }));
    assert!(e.contains("prod.change_windows[0]"), "{e}");

    assert!(RiskPolicy::new(MAX_APPROVALS + 1, None, false).is_err());
    assert!(RiskPolicy::new(1, Some(MAX_STAGING_SOAK_SECS + 1), false).is_err());
    assert!(Window::new(5, 5).is_err());
}

#[test]
fn defaults_validate_and_round_trip() {
    let cfg = RulesConfig::default();
    for env in ENVS {
        cfg.for_env(env).check_for(env).unwrap();
    }
    let text = serde_json::to_string(&cfg).unwrap();
    assert!(text.contains(r#""author_may_approve":false"#), "{text}");
    let back: RulesConfig = serde_json::from_str(&text).unwrap();
    assert_eq!(back, cfg);
    let rules = rules_with_window(Environment::Prod);
    let back: EnvRules = serde_json::from_value(serde_json::to_value(&rules).unwrap()).unwrap();
    assert_eq!(back, rules);
    assert!(rules.window_open(OPEN));
    assert!(!rules.window_open(OPEN + 3_600_000));
    assert!(!rules.window_open(OPEN - 1));
}

#[test]
fn permissions_are_one_ordered_table() {
    for permission in Permission::VARIANTS.iter().copied() {
        for role in Role::VARIANTS.iter().copied() {
            for higher in Role::VARIANTS.iter().copied().filter(|h| *h >= role) {
                assert!(
                    !allowed(role, permission) || allowed(higher, permission),
                    "{permission:?}"
                );
            }
        }
        assert!(allowed(Role::Admin, permission), "{permission:?}");
    }
    assert!(allowed(Role::Viewer, Permission::Read));
    assert!(!allowed(Role::Viewer, Permission::SubmitChange));
    assert!(!allowed(Role::Editor, Permission::Approve));
    assert!(!allowed(Role::Approver, Permission::ManageTokens));
    assert!(!rollback_allowed(Role::Viewer));
    for role in [Role::Editor, Role::Approver, Role::Admin] {
        assert!(rollback_allowed(role));
    }
    assert!(can_withdraw(Role::Editor, "alice", "Alice"));
    assert!(!can_withdraw(Role::Approver, "alice", "bob"));
    assert!(can_withdraw(Role::Admin, "alice", "root"));
    assert!(!can_withdraw(Role::Viewer, "alice", "alice"));
    for role in Role::VARIANTS.iter().copied() {
        assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        assert_eq!(serde_json::to_value(role).unwrap(), json!(role.as_str()));
    }
    assert!("root".parse::<Role>().is_err());
}

#[test]
fn missing_reads_well() {
    assert_eq!(
        Missing::Approvals { have: 1, need: 2 }.to_string(),
        "needs 2 approvals from people other than the author, has 1"
    );
    assert_eq!(
        Missing::StagingSoak { need_secs: 3600 }.to_string(),
        "the same values must have been live in staging for 3600 s first"
    );
    let v = Readiness {
        ready: false,
        missing: vec![Missing::AuthorApproved, Missing::ChangeWindowClosed],
    };
    assert!(
        v.to_string().starts_with("not ready: the author approved"),
        "{v}"
    );
}

fn config() -> Config {
    rampart_model::load::from_value(json!({
        "environment": "prod",
        "products": [{"name": "app"}],
        "upstreams": [{"name": "app-up", "endpoints": ["127.0.0.1:8080"]}],
        "flags": [
            {"name": "low-f", "type": "bool", "default": false, "risk": "low", "owner": "o"},
            {"name": "high-f", "type": "int", "default": 10, "risk": "high", "owner": "o"},
            {"name": "crit-f", "type": "int", "default": 10, "risk": "critical", "owner": "o"}
        ],
        "policies": [
            {"id": "rl", "rate_limit": {"per_second": {"flag": "high-f"}, "burst": 5, "key": "tenant"}},
            {"id": "plain", "rate_limit": {"per_second": 10, "burst": 5, "key": "tenant"}}
        ],
        "routes": [
            {"id": "r", "product": "app", "match": {"path": {"prefix": "/"}}, "upstream": "app-up", "policies": ["plain"]}
        ]
    }))
    .unwrap()
}

fn risk_of(edits: Value) -> Risk {
    let change: Change = rampart_model::load::from_value(json!({
        "environment": "prod",
        "author": "alice",
        "reason": "test",
        "edits": edits,
    }))
    .unwrap();
    change_risk(&change, &config())
}

#[test]
fn risk_is_derived_from_what_a_change_touches() {
    let flag = |name: &str, risk: &str| json!({"upsert": {"flag": {"name": name, "type": "int", "default": 1, "risk": risk, "owner": "o"}}});
    let delete = |kind: &str, name: &str| json!({"delete": {"kind": kind, "name": name}});
    let cases = [
        (json!([]), Risk::Low),
        // A flag's own risk, old or new, whichever is higher.
        (json!([flag("low-f", "low")]), Risk::Low),
        (json!([flag("new-f", "medium")]), Risk::Medium),
        (json!([flag("high-f", "low")]), Risk::High),
        (json!([flag("low-f", "critical")]), Risk::Critical),
        // Deletions are at least medium; a flag's deletion keeps its risk.
        (json!([delete("flag", "low-f")]), Risk::Medium),
        (json!([delete("flag", "crit-f")]), Risk::Critical),
        (json!([delete("product", "app")]), Risk::Medium),
        (json!([delete("upstream", "app-up")]), Risk::Medium),
        // Products are metadata; upstreams and routes are medium.
        (
            json!([{"upsert": {"product": {"name": "app", "description": "x"}}}]),
            Risk::Low,
        ),
        (
            json!([{"upsert": {"upstream": {"name": "app-up", "endpoints": ["127.0.0.1:9"]}}}]),
            Risk::Medium,
        ),
        // The settings apply to every request: high, to set or to reset to the defaults.
        (
            json!([{"upsert": {"settings": {"tenant_header": "x-org"}}}]),
            Risk::High,
        ),
        (json!([delete("settings", "settings")]), Risk::High),
        // Max over edits.
        (json!([flag("low-f", "low"), flag("x", "high")]), Risk::High),
    ];
    for (edits, want) in cases {
        assert_eq!(risk_of(edits.clone()), want, "{edits}");
    }
}

#[test]
fn policies_and_routes_inherit_the_risk_of_flags_they_wire_in_or_out() {
    let policy = |id: &str, per_second: Value, burst: Value| json!({"upsert": {"policy": {"id": id, "rate_limit": {"per_second": per_second, "burst": burst, "key": "tenant"}}}});
    let cases = [
        // Editing around an unchanged binding: medium.
        (
            policy("rl", json!({"flag": "high-f"}), json!(9)),
            Risk::Medium,
        ),
        // Unbinding, rebinding to another flag, or moving the binding: the flags' risk.
        (policy("rl", json!(10), json!(5)), Risk::High),
        (
            policy("rl", json!({"flag": "crit-f"}), json!(5)),
            Risk::Critical,
        ),
        (
            policy("rl", json!(10), json!({"flag": "high-f"})),
            Risk::High,
        ),
        // A new policy binding a flag, and a plain one.
        (
            policy("new", json!({"flag": "crit-f"}), json!(1)),
            Risk::Critical,
        ),
        (
            policy("new", json!({"flag": "low-f"}), json!(1)),
            Risk::Medium,
        ),
        (policy("plain", json!(1), json!(1)), Risk::Medium),
    ];
    for (edit, want) in cases {
        assert_eq!(risk_of(json!([edit.clone()])), want, "{edit}");
    }
    // Binding a flag the same change makes critical.
    assert_eq!(
        risk_of(json!([
            policy("plain", json!({"flag": "low-f"}), json!(1)),
            {"upsert": {"flag": {"name": "low-f", "type": "int", "default": 1, "risk": "critical", "owner": "o"}}}
        ])),
        Risk::Critical
    );
    // Deleting a policy takes its bindings off traffic.
    assert_eq!(
        risk_of(json!([{"delete": {"kind": "policy", "name": "rl"}}])),
        Risk::High
    );
    assert_eq!(
        risk_of(json!([{"delete": {"kind": "policy", "name": "plain"}}])),
        Risk::Medium
    );
    // Routes: attaching or detaching a policy bound to a flag.
    let route = |policies: Value| json!({"upsert": {"route": {"id": "r", "product": "app", "match": {"path": {"prefix": "/"}}, "upstream": "app-up", "policies": policies}}});
    assert_eq!(risk_of(json!([route(json!(["plain"]))])), Risk::Medium);
    assert_eq!(risk_of(json!([route(json!(["plain", "rl"]))])), Risk::High);
    assert_eq!(risk_of(json!([route(json!([]))])), Risk::Medium);
    assert_eq!(
        risk_of(json!([
            route(json!(["new"])),
            policy("new", json!({"flag": "crit-f"}), json!(1))
        ])),
        Risk::Critical
    );
    assert_eq!(
        risk_of(json!([{"delete": {"kind": "route", "name": "r"}}])),
        Risk::Medium
    );
}
