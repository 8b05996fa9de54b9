//! Who a request comes from, through an in-process gateway: a client cannot change its
//! tenant (and with it its tenant-keyed bucket and its rollout cohort) or its address by
//! sending the tenant header or `X-Forwarded-For`; a trusted proxy can. JWT refusals carry
//! `WWW-Authenticate: Bearer`, and a token's tenant claim reaches the upstream.

mod support;

use std::collections::BTreeSet;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rampart_model::load::from_yaml;
use rampart_model::snapshot::StageScope;
use rampart_model::{Attribute, Config, Rollout, Snapshot};
use serde_json::json;
use support::*;

const RSA_KEY: &str = include_str!("../../eval/tests/keys/rsa-old.key.pem");
const RSA_PUB: &str = include_str!("../../eval/tests/keys/rsa-old.pub.pem");

/// Policies and routes shared by the tests; `@mark@` is the cohort's name, which a header
/// policy tells the upstream.
const REST: &str = r#"
policies:
  - id: key-auth
    auth: { api_key: { keys: [{ id: good, sha256: "@good-key@", tenant: acme }] } }
  - id: per-tenant
    rate_limit: { per_second: 1, burst: 3, key: tenant }
  - id: office-only
    access: { default: deny, rules: [{ action: allow, cidrs: ["10.0.0.0/8", "198.51.100.0/24"] }] }
  - id: mark
    headers: { request: { set: [{ name: x-cohort, value: "@mark@" }] } }
routes:
  - { id: keyed, product: app, match: { path: { prefix: /keyed/ } }, upstream: app, policies: [key-auth, per-tenant, mark] }
  - { id: open, product: app, match: { path: { prefix: /open/ } }, upstream: app, policies: [per-tenant, mark] }
  - { id: office, product: app, match: { path: { prefix: /office/ } }, upstream: app, policies: [office-only, mark] }
"#;

const TRUSTING: &str = r#"
settings:
  trusted_proxies: ["127.0.0.0/8", "::1/128"]
  tenant: { from_trusted_proxy: true }
"#;

/// A gateway booted from a last-known-good snapshot of the fleet `rest` (see [`app_fleet`])
/// with a 50% rollout sticky by tenant whose candidate marks requests `candidate`.
async fn gateway_with_rollout(rest: &str) -> (Upstream, Gateway) {
    let up = upstream("app").await;
    let config = |mark: &str| -> Config {
        from_yaml(&app_fleet(up.addr, rest).replace("@mark@", mark)).unwrap()
    };
    let rollout = Rollout {
        id: "r".into(),
        salt: "identity-test".into(),
        sticky_key: Attribute::Tenant,
        scope: StageScope {
            cells: vec![],
            gateways: vec![],
            percent: 50.0,
        },
        shadow: false,
        candidate: config("candidate"),
    };
    let snapshot = Snapshot::new(config("baseline"), vec![rollout]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gw");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("current.json"), snapshot.to_json_pretty()).unwrap();
    let gw = Gateway::start(options(&data), dir).await;
    eventually(
        10,
        "the gateway serves its last-known-good snapshot",
        async || {
            reqwest::get(gw.admin_url("/readyz"))
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    (up, gw)
}

/// The cohort that served a 200, and what the upstream saw of the tenant and the client.
async fn seen(r: reqwest::Response) -> (String, Option<String>, String) {
    assert_eq!(r.status(), 200, "{:?}", r.headers());
    let h = &echo(r).await["headers"];
    (
        h["x-cohort"].as_str().unwrap().to_owned(),
        h.get("x-tenant-id").map(|t| t.as_str().unwrap().to_owned()),
        h["x-forwarded-for"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_pick_its_tenant_bucket_cohort_or_address() {
    let (_up, gw) = gateway_with_rollout(REST).await;
    let c = reqwest::Client::new();
    let spoofs: Vec<String> = (0..24).map(|i| format!("tenant-{i}")).collect();

    // The key names acme: whatever tenant or address the client claims, the upstream sees
    // acme from 127.0.0.1, in one cohort, and acme's bucket runs dry after its burst of 3.
    let mut cohorts = BTreeSet::new();
    for (i, spoof) in spoofs.iter().take(3).enumerate() {
        let xff = format!("10.0.0.{i}");
        let r = fetch(
            &c,
            &gw,
            "/keyed/x",
            &[
                ("x-api-key", "proxy-test-key"),
                ("x-tenant-id", spoof),
                ("x-forwarded-for", &xff),
            ],
        )
        .await;
        let (cohort, tenant, forwarded) = seen(r).await;
        assert_eq!(tenant.as_deref(), Some("acme"));
        assert_eq!(
            forwarded, "127.0.0.1",
            "a client's X-Forwarded-For is replaced"
        );
        cohorts.insert(cohort);
    }
    assert_eq!(cohorts.len(), 1, "one cohort for one tenant: {cohorts:?}");
    let r = fetch(
        &c,
        &gw,
        "/keyed/x",
        &[
            ("x-api-key", "proxy-test-key"),
            ("x-tenant-id", "fresh-bucket"),
        ],
    )
    .await;
    assert_gateway_error(&r, 429, "rate_limited");
    assert_eq!(r.headers()["x-ratelimit-scope"], "tenant");

    // Without credentials there is no tenant: the header is dropped, the bucket is the
    // client's address, and the cohort is the address's, whatever tenant is named. (Were the
    // header believed, 24 tenants at 50% would land in both cohorts and have 24 buckets.)
    let mut cohorts = BTreeSet::new();
    let mut limited = 0;
    for spoof in &spoofs {
        let r = fetch(
            &c,
            &gw,
            "/open/x",
            &[
                ("x-tenant-id", spoof),
                ("x-tenant-id", "acme"),
                ("x-forwarded-for", "198.51.100.7"),
            ],
        )
        .await;
        if r.status() == 429 {
            assert!(r.headers().get("x-ratelimit-scope").is_none());
            limited += 1;
            continue;
        }
        let (cohort, tenant, forwarded) = seen(r).await;
        assert_eq!(
            tenant, None,
            "a client's tenant header never reaches the upstream"
        );
        assert_eq!(forwarded, "127.0.0.1");
        cohorts.insert(cohort);
    }
    assert_eq!(cohorts.len(), 1, "{cohorts:?}");
    assert!(
        limited >= 12,
        "one bucket for every claimed tenant: {limited} refused"
    );

    // Access by CIDR sees the peer, not the claimed address.
    for xff in [
        "10.1.2.3",
        "198.51.100.7",
        "198.51.100.7, 10.0.0.1",
        "garbage",
    ] {
        let r = fetch(&c, &gw, "/office/x", &[("x-forwarded-for", xff)]).await;
        assert_gateway_error(&r, 403, "access_denied");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_speaks_for_its_client() {
    let (_up, gw) = gateway_with_rollout(&format!("{TRUSTING}{REST}")).await;
    let c = reqwest::Client::new();
    // The rightmost untrusted address is the client; entries left of it are dropped.
    let r = fetch(
        &c,
        &gw,
        "/office/x",
        &[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 127.0.0.9")],
    )
    .await;
    let (_, _, forwarded) = seen(r).await;
    assert_eq!(forwarded, "198.51.100.7, 127.0.0.9, 127.0.0.1");
    // A forged trusted-looking entry left of an untrusted one does not help.
    let r = fetch(
        &c,
        &gw,
        "/office/x",
        &[("x-forwarded-for", "10.0.0.1, 203.0.113.5")],
    )
    .await;
    assert_gateway_error(&r, 403, "access_denied");

    // The proxy's tenant keys the bucket and the cohort; a credential's tenant wins over it.
    let cohort_of = async |tenant: &str| {
        let r = fetch(&c, &gw, "/open/x", &[("x-tenant-id", tenant)]).await;
        let (cohort, seen_tenant, _) = seen(r).await;
        assert_eq!(seen_tenant.as_deref(), Some(tenant));
        cohort
    };
    let mut cohorts = BTreeSet::new();
    for i in 0..24 {
        cohorts.insert(cohort_of(&format!("tenant-{i}")).await);
    }
    assert_eq!(cohorts.len(), 2, "tenants spread over both cohorts");
    for _ in 0..3 {
        cohort_of("acme").await;
    }
    let r = fetch(&c, &gw, "/open/x", &[("x-tenant-id", "acme")]).await;
    assert_gateway_error(&r, 429, "rate_limited");
    assert_eq!(r.headers()["x-ratelimit-scope"], "tenant");
    let r = fetch(
        &c,
        &gw,
        "/keyed/x",
        &[("x-api-key", "proxy-test-key"), ("x-tenant-id", "globex")],
    )
    .await;
    assert_gateway_error(&r, 429, "rate_limited");

    // Several tenant headers, or an empty one, from a trusted proxy: refused.
    for headers in [
        &[("x-tenant-id", "acme"), ("x-tenant-id", "globex")][..],
        &[("x-tenant-id", "")],
    ] {
        let r = fetch(&c, &gw, "/open/x", headers).await;
        assert_gateway_error(&r, 400, "bad_tenant_header");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_refusals_challenge_and_the_claim_is_the_tenant() {
    let key_yaml: String = RSA_PUB
        .lines()
        .map(|l| format!("                {l}\n"))
        .collect();
    let (up, gw) = app_gateway(&format!(
        r#"
policies:
  - id: jwt
    auth:
      jwt:
        issuer: https://id.example.com
        audience: app
        algorithms: [RS256]
        tenant_claim: org
        keys:
          - kid: k1
            material:
              pem: |
{key_yaml}
routes:
  - {{ id: api, product: app, match: {{ path: {{ prefix: / }} }}, upstream: app, policies: [jwt] }}
"#
    ))
    .await;
    let now = rampart_model::clock::unix_ms() / 1000;
    let token = |exp: u64| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("k1".into());
        let claims =
            json!({"iss": "https://id.example.com", "aud": "app", "exp": exp, "org": "acme"});
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let c = reqwest::Client::new();
    let r = fetch(&c, &gw, "/x", &[]).await;
    assert_gateway_error(&r, 401, "missing_token");
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let expired = format!("Bearer {}", token(now - 3600));
    let r = fetch(&c, &gw, "/x", &[("authorization", &expired)]).await;
    assert_gateway_error(&r, 401, "expired_token");
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    let huge = format!("Bearer {}", "a".repeat(64 * 1024));
    let r = fetch(&c, &gw, "/x", &[("authorization", &huge)]).await;
    assert!(
        [401, 431].contains(&r.status().as_u16()),
        "a 64 KiB token: {}",
        r.status()
    );
    assert_eq!(up.hits(), 0);
    let valid = format!("Bearer {}", token(now + 3600));
    let r = fetch(
        &c,
        &gw,
        "/x",
        &[("authorization", &valid), ("x-tenant-id", "globex")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(echo(r).await["headers"]["x-tenant-id"], "acme");
}
