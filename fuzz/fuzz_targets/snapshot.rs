//! Fuzz the snapshot and configuration loaders, validation, compilation and evaluation.
//!
//! The input is read as UTF-8 text (other inputs are skipped) and fed to:
//! 1. `Snapshot::from_json` (and, if it loads, `Evaluator::compile` and evaluation);
//! 2. `load::from_yaml::<Config>` (YAML is a superset of JSON, so JSON seeds reach it too),
//!    then `validate`, `Snapshot::new`, `Evaluator::compile` and, if it compiles, a few fixed
//!    requests plus one request aimed at each route.
//!
//! Invariants checked (a failure is a real bug):
//! - nothing panics on any input;
//! - a sealed snapshot round-trips: `to_json_pretty` then `Snapshot::from_json` loads, with the
//!   same hash and the same content.

#![no_main]

use rampart_model::EnumName;
use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use rampart_eval::{Cohort, Evaluator, HeaderList, RequestMeta};
use rampart_model::config::{PathMatch, ValueMatch};
use rampart_model::load::from_yaml;
use rampart_model::validate::validate;
use rampart_model::{Config, GatewayIdentity, Snapshot};

/// At most this many routes get a request aimed at them, to keep each run fast.
const MAX_ROUTE_REQUESTS: usize = 16;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(snap) = Snapshot::from_json(text) {
        round_trip(&snap);
        exercise(&snap);
    }

    if let Ok(cfg) = from_yaml::<Config>(text) {
        let _ = validate(&cfg, &Default::default());
        let snap = Snapshot::new(cfg, vec![]);
        round_trip(&snap);
        exercise(&snap);
    }
});

/// Serialize, reload, and check that nothing changed.
fn round_trip(snap: &Snapshot) {
    let json = snap.to_json_pretty();
    let back = match Snapshot::from_json(&json) {
        Ok(back) => back,
        Err(e) => panic!("a sealed snapshot does not reload: {e}\n--- snapshot ---\n{json}"),
    };
    assert_eq!(
        back.hash(),
        snap.hash(),
        "the hash changed on a JSON round trip\n--- snapshot ---\n{json}"
    );
    assert_eq!(
        &back, snap,
        "the content changed on a JSON round trip\n--- snapshot ---\n{json}"
    );
}

/// Compile the snapshot and, if it compiles, evaluate requests against every cohort.
fn exercise(snap: &Snapshot) {
    let Ok(ev) = Evaluator::compile(snap) else {
        return;
    };
    assert_eq!(ev.hash(), snap.hash());

    let gw_us = GatewayIdentity {
        id: "gw-us-1".into(),
        cell: "us-1".into(),
        version: "0.1.0".parse().unwrap(),
    };
    let gw_eu = GatewayIdentity {
        id: "gw-eu-2".into(),
        cell: "eu-2".into(),
        version: "1.2.3".parse().unwrap(),
    };
    let tenant_header = snap.config().settings.tenant_header.as_str();
    let v4: IpAddr = "198.51.100.7".parse().unwrap();
    let v6: IpAddr = "2001:db8:bad::1".parse().unwrap();
    let office: IpAddr = "10.1.2.3".parse().unwrap();

    let fixed_headers: [(&str, &str); 5] = [
        (tenant_header, "acme"),
        ("x-api-key", "rk_VomMm2KNErbM414agnhrtAIQgG3vLV2mGjP8C5i6XXX_21RjwO"),
        ("x-plan", "enterprise"),
        ("x-beta", "1"),
        ("user-agent", "git/2.45.0"),
    ];
    let fixed: [(&str, &str, &str, IpAddr, &[(&str, &str)], &GatewayIdentity); 4] = [
        ("GET", "jira.example.com", "/rest/api/2/issue", v4, &fixed_headers, &gw_us),
        ("POST", "JIRA.example.com:443", "/", v6, &[], &gw_eu),
        ("HEAD", "a.atlassian-wiki.example.com", "/robots.txt", office, &fixed_headers[..1], &gw_us),
        ("DELETE", "", "", v4, &[], &gw_eu),
    ];
    for (method, host, path, ip, headers, gw) in fixed {
        let headers = HeaderList(headers);
        let meta = RequestMeta {
            method,
            host,
            path,
            client_ip: ip,
            headers: &headers,
            tenant: None,
            now_ms: 0,
            attributes: &[("plan", "enterprise")],
            gateway: gw,
        };
        decide(&ev, snap, &meta);
    }

    // One request aimed at each route, built from its own matcher, so that policies run.
    for route in snap.config().routes.iter().take(MAX_ROUTE_REQUESTS) {
        let m = &route.matcher;
        let host = m
            .host
            .as_deref()
            .map(|h| h.strip_prefix("*.").map_or_else(|| h.to_owned(), |s| format!("x.{s}")))
            .unwrap_or_else(|| "example.com".to_owned());
        let path = match &m.path {
            PathMatch::Prefix(p) => format!("{p}x"),
            PathMatch::Exact(p) => p.clone(),
        };
        let method = m.methods.first().map_or("GET", |m| m.as_str());
        let mut headers: Vec<(String, String)> = m
            .headers
            .iter()
            .map(|h| {
                let v = match &h.value {
                    ValueMatch::Present | ValueMatch::Regex(_) => "git/2.45.0".to_owned(),
                    ValueMatch::Exact(v) | ValueMatch::Prefix(v) => v.clone(),
                };
                (h.name.clone(), v)
            })
            .collect();
        headers.push((tenant_header.to_owned(), "acme".to_owned()));
        headers.push(("x-api-key".to_owned(), "rk_VomMm2KNErbM414agnhrtAIQgG3vLV2mGjP8C5i6XXX_21RjwO".to_owned()));
        for ip in [v4, office] {
            let meta = RequestMeta {
                method,
                host: &host,
                path: &path,
                client_ip: ip,
                headers: &headers,
                tenant: None,
                now_ms: 0,
                attributes: &[],
                gateway: &gw_us,
            };
            decide(&ev, snap, &meta);
        }
    }
}

/// Evaluate one request in its own cohort, the baseline and every candidate, and read every
/// flag outside any route.
fn decide(ev: &Evaluator, snap: &Snapshot, meta: &RequestMeta<'_>) {
    let cohort = ev.cohort(meta);
    if let Cohort::Candidate(i) = cohort {
        assert!(i < ev.rollout_count(), "cohort {i} of {} rollouts", ev.rollout_count());
        assert!(ev.rollout_id(cohort).is_some());
    }
    let mut cohorts = vec![cohort, Cohort::Baseline];
    cohorts.extend((0..ev.rollout_count()).map(Cohort::Candidate));
    for c in cohorts {
        let d = ev.evaluate(meta, c);
        std::hint::black_box(format!("{d:?}"));
        let flags = match c {
            Cohort::Baseline => &snap.config().flags,
            Cohort::Candidate(i) => &snap.rollouts()[i].candidate.flags,
        };
        for flag in flags {
            let id = ev
                .flag_id(c, &flag.name)
                .unwrap_or_else(|| panic!("flag `{}` of a compiled config has no id", flag.name));
            std::hint::black_box(ev.flag_value(c, id, meta));
        }
    }
}
