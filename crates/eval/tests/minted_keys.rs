//! API-key entries that declare a minted key (`format: rampart_v1`) match only presented keys
//! in that format: an entry whose hash is of a guessable word cannot authenticate it.

use rampart_eval::{Cohort, DenyReason, Evaluator, HeaderList, Outcome, RequestMeta};
use rampart_model::apikey;
use rampart_model::load::from_yaml;
use rampart_model::{Config, GatewayIdentity, Snapshot};

fn fleet(entries: &str) -> Config {
    from_yaml(&format!(
        r#"
environment: dev
products: [{{ name: app }}]
upstreams: [{{ name: app, endpoints: ["127.0.0.1:9"] }}]
policies:
  - id: keys
    auth: {{ api_key: {{ keys: [{entries}] }} }}
routes:
  - {{ id: r, product: app, match: {{ path: {{ prefix: / }} }}, upstream: app, policies: [keys] }}
"#
    ))
    .unwrap()
}

fn outcome(ev: &Evaluator, key: &str) -> Outcome<'static> {
    let headers = [("x-api-key", key)];
    let headers = HeaderList(&headers);
    let gw = GatewayIdentity {
        id: "gw".into(),
        cell: "c".into(),
        version: "0.1.0".parse().unwrap(),
    };
    let meta = RequestMeta {
        method: "GET",
        host: "h",
        path: "/x",
        client_ip: "192.0.2.1".parse().unwrap(),
        headers: &headers,
        tenant: None,
        now_ms: 0,
        attributes: &[],
        gateway: &gw,
    };
    match ev.evaluate(&meta, Cohort::Baseline).outcome {
        Outcome::Allow => Outcome::Allow,
        Outcome::Deny { status, reason, .. } => Outcome::Deny {
            status,
            reason,
            policy: None,
        },
        other => panic!("unexpected {other:?}"),
    }
}

fn denied() -> Outcome<'static> {
    Outcome::Deny {
        status: 401,
        reason: DenyReason::InvalidCredentials,
        policy: None,
    }
}

#[test]
fn an_entry_claiming_a_minted_key_never_matches_a_word() {
    let mut n = 3u8;
    let key = apikey::mint(move || {
        n = n.wrapping_mul(37).wrapping_add(11);
        n
    });
    let entries = format!(
        "{{ id: word, sha256: {}, format: rampart_v1 }}, {{ id: minted, sha256: {}, format: rampart_v1 }}, {{ id: plain, sha256: {} }}",
        apikey::sha256_hex("hunter2"),
        apikey::sha256_hex(&key),
        apikey::sha256_hex("dev-only-readable-key"),
    );
    let ev = Evaluator::compile(&Snapshot::new(fleet(&entries), vec![])).unwrap();
    assert_eq!(outcome(&ev, &key), Outcome::Allow);
    // The hash matches, but the presented key is not in the declared format.
    assert_eq!(outcome(&ev, "hunter2"), denied());
    // A well-shaped key with a wrong check character is refused too.
    let mut bad = key.clone().into_bytes();
    let last = bad.len() - 1;
    bad[last] = if bad[last] == b'a' { b'b' } else { b'a' };
    assert_eq!(outcome(&ev, std::str::from_utf8(&bad).unwrap()), denied());
    // An entry without a format (dev) matches its key as before.
    assert_eq!(outcome(&ev, "dev-only-readable-key"), Outcome::Allow);
    // The form is checked once per entry and remembered only when it passes: asking again,
    // with the good key served in between, changes nothing.
    for _ in 0..3 {
        assert_eq!(outcome(&ev, "hunter2"), denied());
        assert_eq!(outcome(&ev, &key), Outcome::Allow);
    }
    // Huge and non-ASCII presented keys are refused like any wrong key.
    for wrong in ["k".repeat(64 * 1024), "rk_\u{e9}".to_owned()] {
        assert_eq!(outcome(&ev, &wrong), denied(), "{:.20}", wrong);
    }
}
