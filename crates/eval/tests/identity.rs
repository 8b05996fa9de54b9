//! Who a request is: the JWT auth policy (valid, expired, early, wrong issuer or audience,
//! bad signature, `none`, `HS256` against a public key, rotation, attacks) and the tenant a
//! request's credentials establish before its cohort is chosen.

use std::net::IpAddr;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use rampart_eval::{Cohort, DenyReason, Evaluator, HeaderList, LimitKey, Outcome, RequestMeta};
use rampart_model::load::from_yaml;
use rampart_model::snapshot::StageScope;
use rampart_model::validate::validate_runnable;
use rampart_model::{Attribute, Config, GatewayIdentity, Rollout, Snapshot};
use serde_json::{Value, json};

const RSA_OLD_KEY: &str = include_str!("keys/rsa-old.key.pem");
const RSA_OLD_PUB: &str = include_str!("keys/rsa-old.pub.pem");
const RSA_NEW_KEY: &str = include_str!("keys/rsa-new.key.pem");
const RSA_NEW_PUB: &str = include_str!("keys/rsa-new.pub.pem");
const EC_KEY: &str = include_str!("keys/ec.key.pem");
const EC_PUB: &str = include_str!("keys/ec.pub.pem");

/// The time every request is decided at (seconds since the epoch).
const NOW: u64 = 1_800_000_000;

fn indent(pem: &str) -> String {
    pem.lines()
        .map(|l| format!("                {l}\n"))
        .collect()
}

/// A fleet with one JWT-protected route, rate-limited by tenant; `keys` is YAML for the
/// policy's `keys` list.
fn fleet(keys: &str) -> Config {
    let yaml = fleet_yaml(keys);
    from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn fleet_yaml(keys: &str) -> String {
    format!(
        r#"
environment: prod
products: [{{ name: api }}]
upstreams: [{{ name: api, endpoints: ["127.0.0.1:9"] }}]
policies:
  - id: jwt
    auth:
      jwt:
        issuer: https://id.example.com
        audience: api
        algorithms: [RS256, ES256]
        leeway_s: 30
        tenant_claim: org
        keys:
{keys}
  - id: per-tenant
    rate_limit: {{ per_second: 10, burst: 10, key: tenant }}
routes:
  - id: api
    product: api
    match: {{ path: {{ prefix: / }} }}
    upstream: api
    policies: [jwt, per-tenant]
"#
    )
}

fn pem_key(kid: &str, pem: &str) -> String {
    format!(
        "          - kid: {kid}\n            material:\n              pem: |\n{}",
        indent(pem)
    )
}

fn both_rsa_and_ec() -> Config {
    fleet(&format!(
        "{}{}",
        pem_key("old", RSA_OLD_PUB),
        pem_key("ec", EC_PUB)
    ))
}

fn gateway() -> GatewayIdentity {
    GatewayIdentity {
        id: "gw-1".into(),
        cell: "us-1".into(),
        version: "0.1.0".parse().unwrap(),
    }
}

fn claims() -> Value {
    json!({
        "iss": "https://id.example.com",
        "aud": "api",
        "exp": NOW + 600,
        "nbf": NOW - 10,
        "org": "acme",
    })
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).unwrap()
}

fn rsa(pem: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
}

fn old(claims: &Value) -> String {
    sign(Algorithm::RS256, Some("old"), claims, &rsa(RSA_OLD_KEY))
}

/// The outcome and tenant of a request bearing `authorization`, decided like a gateway does:
/// the tenant identified first, then the evaluation.
fn decide(ev: &Evaluator, authorization: Option<&str>) -> (Outcome<'static>, Option<String>) {
    let value = authorization.map(|t| format!("Bearer {t}"));
    let list: Vec<(&str, &str)> = value
        .as_deref()
        .map(|v| ("authorization", v))
        .into_iter()
        .collect();
    let headers = HeaderList(&list);
    let gw = gateway();
    let mut meta = RequestMeta {
        method: "GET",
        host: "api.example.com",
        path: "/x",
        client_ip: IpAddr::from([198, 51, 100, 7]),
        headers: &headers,
        tenant: None,
        now_ms: NOW * 1000,
        attributes: &[],
        gateway: &gw,
    };
    let id = ev.identify(&meta).map(|t| t.into_owned());
    meta.tenant = id.as_deref();
    let d = ev.evaluate(&meta, Cohort::Baseline);
    let outcome = match d.outcome {
        Outcome::Allow => Outcome::Allow,
        Outcome::Deny { status, reason, .. } => Outcome::Deny {
            status,
            reason,
            policy: None,
        },
        other => panic!("unexpected {other:?}"),
    };
    (outcome, d.tenant.map(str::to_owned))
}

fn denied(reason: DenyReason) -> Outcome<'static> {
    Outcome::Deny {
        status: 401,
        reason,
        policy: None,
    }
}

fn evaluator(cfg: Config) -> Evaluator {
    Evaluator::compile(&Snapshot::new(cfg, vec![])).unwrap()
}

#[test]
fn a_valid_token_is_allowed_and_names_the_tenant() {
    let ev = evaluator(both_rsa_and_ec());
    assert_eq!(
        decide(&ev, Some(&old(&claims()))),
        (Outcome::Allow, Some("acme".into()))
    );
    // An EC key verifies ES256, and `aud` may be a list.
    let mut c = claims();
    c["aud"] = json!(["other", "api"]);
    let ec = sign(
        Algorithm::ES256,
        Some("ec"),
        &c,
        &EncodingKey::from_ec_pem(EC_KEY.as_bytes()).unwrap(),
    );
    assert_eq!(
        decide(&ev, Some(&ec)),
        (Outcome::Allow, Some("acme".into()))
    );
    // Without the tenant claim the token is valid and names no tenant.
    let mut c = claims();
    c.as_object_mut().unwrap().remove("org");
    assert_eq!(decide(&ev, Some(&old(&c))), (Outcome::Allow, None));
}

#[test]
fn missing_expired_early_and_misaddressed_tokens_are_refused() {
    let ev = evaluator(both_rsa_and_ec());
    assert_eq!(decide(&ev, None).0, denied(DenyReason::MissingToken));
    let with = |field: &str, v: Value| {
        let mut c = claims();
        c[field] = v;
        decide(&ev, Some(&old(&c))).0
    };
    // `exp` and `nbf` with the 30 s leeway, at both edges.
    assert_eq!(
        with("exp", json!(NOW - 31)),
        denied(DenyReason::ExpiredToken)
    );
    assert_eq!(with("exp", json!(NOW - 29)), Outcome::Allow);
    assert_eq!(
        with("nbf", json!(NOW + 31)),
        denied(DenyReason::TokenNotYetValid)
    );
    assert_eq!(with("nbf", json!(NOW + 29)), Outcome::Allow);
    assert_eq!(
        with("exp", json!("tomorrow")),
        denied(DenyReason::InvalidToken)
    );
    assert_eq!(
        with("iss", json!("https://evil.example.com")),
        denied(DenyReason::WrongIssuer)
    );
    assert_eq!(with("iss", json!(null)), denied(DenyReason::WrongIssuer));
    assert_eq!(
        with("aud", json!("other")),
        denied(DenyReason::WrongAudience)
    );
    assert_eq!(
        with("aud", json!(["a", "b"])),
        denied(DenyReason::WrongAudience)
    );
    // A tenant claim that is not a string is not a tenant.
    assert_eq!(
        with("org", json!({"id": "acme"})),
        denied(DenyReason::InvalidToken)
    );
    assert_eq!(with("org", json!("")), denied(DenyReason::InvalidToken));
    // No `exp` at all.
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        decide(&ev, Some(&old(&c))).0,
        denied(DenyReason::InvalidToken)
    );
}

#[test]
fn bad_signatures_none_and_algorithm_confusion_are_refused() {
    let ev = evaluator(both_rsa_and_ec());
    // Signed by another key under the old kid.
    let forged = sign(Algorithm::RS256, Some("old"), &claims(), &rsa(RSA_NEW_KEY));
    assert_eq!(
        decide(&ev, Some(&forged)).0,
        denied(DenyReason::InvalidToken)
    );
    // A valid token with its payload swapped for another tenant's.
    let token = old(&claims());
    let mut parts: Vec<&str> = token.split('.').collect();
    let mut other = claims();
    other["org"] = json!("globex");
    let payload = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &other,
        &EncodingKey::from_secret(b"x"),
    )
    .unwrap();
    parts[1] = payload.split('.').nth(1).unwrap();
    assert_eq!(
        decide(&ev, Some(&parts.join("."))).0,
        denied(DenyReason::InvalidToken)
    );
    // `alg: none`, with and without a signature part.
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none_header = b64(&json!({"alg": "none", "kid": "old", "typ": "JWT"}));
    for sig in ["", "c2ln"] {
        let t = format!("{none_header}.{}.{sig}", b64(&claims()));
        assert_eq!(decide(&ev, Some(&t)).0, denied(DenyReason::InvalidToken));
    }
    // HS256 whose secret is the RSA (or EC) public key PEM: the key's type refuses it.
    for (kid, public) in [("old", RSA_OLD_PUB), ("ec", EC_PUB)] {
        let t = sign(
            Algorithm::HS256,
            Some(kid),
            &claims(),
            &EncodingKey::from_secret(public.as_bytes()),
        );
        assert_eq!(decide(&ev, Some(&t)).0, denied(DenyReason::InvalidToken));
    }
    // An RSA-signed token presented under the EC key's kid, and an algorithm not allowed.
    let t = sign(Algorithm::RS256, Some("ec"), &claims(), &rsa(RSA_OLD_KEY));
    assert_eq!(decide(&ev, Some(&t)).0, denied(DenyReason::InvalidToken));
    let t = sign(Algorithm::RS512, Some("old"), &claims(), &rsa(RSA_OLD_KEY));
    assert_eq!(decide(&ev, Some(&t)).0, denied(DenyReason::InvalidToken));
}

#[test]
fn key_rotation_overlaps_then_retires_the_old_kid() {
    let old_only = evaluator(fleet(&pem_key("old", RSA_OLD_PUB)));
    let overlap = evaluator(fleet(&format!(
        "{}{}",
        pem_key("old", RSA_OLD_PUB),
        pem_key("new", RSA_NEW_PUB)
    )));
    let new_only = evaluator(fleet(&pem_key("new", RSA_NEW_PUB)));
    let old_token = old(&claims());
    let new_token = sign(Algorithm::RS256, Some("new"), &claims(), &rsa(RSA_NEW_KEY));
    let ok = |ev: &Evaluator, t: &str| decide(ev, Some(t)).0 == Outcome::Allow;
    assert!(ok(&old_only, &old_token));
    assert!(!ok(&old_only, &new_token), "new kid before it is published");
    assert!(ok(&overlap, &old_token) && ok(&overlap, &new_token));
    assert!(ok(&new_only, &new_token));
    assert_eq!(
        decide(&new_only, Some(&old_token)).0,
        denied(DenyReason::InvalidToken),
        "old kid after rotation"
    );
    // Without `kid`: accepted only when the policy has exactly one key.
    let bare = sign(Algorithm::RS256, None, &claims(), &rsa(RSA_NEW_KEY));
    assert!(ok(&new_only, &bare));
    assert!(!ok(&overlap, &bare));
}

#[test]
fn hostile_tokens_are_refused_without_panic() {
    let ev = evaluator(both_rsa_and_ec());
    let invalid = denied(DenyReason::InvalidToken);
    // 64 KiB: refused before any decoding.
    let mut c = claims();
    c["pad"] = json!("x".repeat(64 * 1024));
    assert_eq!(decide(&ev, Some(&old(&c))).0, invalid);
    // 10,000-deep JSON in the header and in the (signed) payload.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let t = format!("{}.{}.c2ln", b64(&deep), b64(&claims().to_string()));
    assert_eq!(decide(&ev, Some(&t)).0, invalid);
    let header = b64(r#"{"alg":"RS256","kid":"old"}"#);
    let t = format!("{header}.{}.c2ln", b64(&deep));
    assert_eq!(decide(&ev, Some(&t)).0, invalid);
    // Unknown kid, garbage, empty parts, wrong scheme.
    let unknown = sign(Algorithm::RS256, Some("nope"), &claims(), &rsa(RSA_OLD_KEY));
    for t in [
        unknown.as_str(),
        "a.b.c",
        "..",
        "",
        "not a token",
        "Ünïcode.x.y",
    ] {
        assert_eq!(decide(&ev, Some(t)).0, invalid, "{t:?}");
    }
    let headers = [("authorization", "Basic dXNlcjpwdw==")];
    let gw = gateway();
    let meta = RequestMeta {
        method: "GET",
        host: "api.example.com",
        path: "/x",
        client_ip: IpAddr::from([198, 51, 100, 7]),
        headers: &HeaderList(&headers),
        tenant: None,
        now_ms: NOW * 1000,
        attributes: &[],
        gateway: &gw,
    };
    assert!(matches!(
        ev.evaluate(&meta, Cohort::Baseline).outcome,
        Outcome::Deny {
            reason: DenyReason::InvalidToken,
            ..
        }
    ));
}

#[test]
fn validation_names_bad_key_material_algorithms_and_skew() {
    let errors = |cfg: &Config| -> String {
        validate_runnable(cfg)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let cfg = fleet(&pem_key(
        "old",
        "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----",
    ));
    assert!(
        errors(&cfg).contains("policies[0].auth.jwt.keys[0].material"),
        "{}",
        errors(&cfg)
    );
    let yaml = fleet_yaml(&pem_key("old", RSA_OLD_PUB));
    for (from, to, path) in [
        ("leeway_s: 30", "leeway_s: 3600", "auth.jwt.leeway_s"),
        ("[RS256, ES256]", "[RS256, HS256]", "algorithms"),
        ("[RS256, ES256]", "[none]", "algorithms"),
        ("[RS256, ES256]", "[]", "algorithms"),
        ("[RS256, ES256]", "[RS256, RS256]", "algorithms"),
        ("[RS256, ES256]", "[ES256]", "keys[0].material"),
        (
            "issuer: https://id.example.com",
            "issuer: ''",
            "auth.jwt.issuer",
        ),
    ] {
        assert!(yaml.contains(from), "{from} in {yaml}");
        let text = yaml.replacen(from, to, 1);
        let msg = match from_yaml::<Config>(&text) {
            Err(e) => e.to_string(),
            Ok(c) => errors(&c),
        };
        assert!(msg.contains(path), "{from} -> {to}: {msg}");
    }
    // Private keys are refused: they would travel with the configuration.
    let cfg = fleet(&pem_key("old", RSA_OLD_KEY));
    assert!(
        errors(&cfg).contains("is a private key"),
        "{}",
        errors(&cfg)
    );
    // A symmetric JWK is refused, naming the field.
    let jwk =
        "          - kid: k\n            material:\n              jwk: { kty: oct, k: c2VjcmV0 }\n";
    assert!(errors(&fleet(jwk)).contains("keys[0].material"));
    // A JWK whose own kid disagrees with its listing.
    let jwk = format!(
        "          - kid: k\n            material:\n              jwk: {}\n",
        json!({"kty": "EC", "crv": "P-256", "kid": "other",
               "x": "WKn-ZIGevcwGIyyrzFoZNBdaq9_TsqzGl96oc0CWuis",
               "y": "y77t-RvAHRKTsSGdIYUfweuOvwrvDD-Q3Hv5J0fSKbE"})
    );
    assert!(errors(&fleet(&jwk)).contains("has kid `other`"));
}

/// A snapshot of `cfg` with a 50% rollout sticky by tenant.
fn with_rollout(cfg: Config) -> Evaluator {
    let rollout = Rollout {
        id: "r".into(),
        salt: "salt".into(),
        sticky_key: Attribute::Tenant,
        scope: StageScope {
            cells: vec![],
            gateways: vec![],
            percent: 50.0,
        },
        shadow: false,
        candidate: cfg.clone(),
    };
    Evaluator::compile(&Snapshot::new(cfg, vec![rollout])).unwrap()
}

#[test]
fn the_cohort_and_the_bucket_follow_the_token_not_the_client() {
    let ev = with_rollout(both_rsa_and_ec());
    let gw = gateway();
    // Tenants whose tokens land in different cohorts.
    let cohort_of = |org: &str, spoof: &str| {
        let mut c = claims();
        c["org"] = json!(org);
        let value = format!("Bearer {}", old(&c));
        let list = [
            ("authorization", value.as_str()),
            ("x-tenant-id", spoof),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        let headers = HeaderList(&list);
        let mut meta = RequestMeta {
            method: "GET",
            host: "api.example.com",
            path: "/x",
            client_ip: IpAddr::from([198, 51, 100, 7]),
            headers: &headers,
            tenant: None,
            now_ms: NOW * 1000,
            attributes: &[],
            gateway: &gw,
        };
        let id = ev.identify(&meta).map(|t| t.into_owned());
        meta.tenant = id.as_deref();
        let cohort = ev.cohort(&meta);
        let d = ev.evaluate(&meta, cohort);
        let key = d.rate_limits[0].key;
        assert_eq!(key, LimitKey::Tenant(org));
        cohort
    };
    let orgs: Vec<String> = (0..40).map(|i| format!("org-{i}")).collect();
    let cohorts: Vec<Cohort> = orgs.iter().map(|o| cohort_of(o, "x")).collect();
    assert!(cohorts.contains(&Cohort::Baseline) && cohorts.contains(&Cohort::Candidate(0)));
    // Whatever tenant header the client sends, its cohort and bucket are its token's.
    for (org, cohort) in orgs.iter().zip(&cohorts) {
        for spoof in &orgs {
            assert_eq!(cohort_of(org, spoof), *cohort);
        }
    }
}
