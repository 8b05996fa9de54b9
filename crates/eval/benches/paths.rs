//! The cost of the canonical request target next to the evaluation of one request: the path
//! normaliser on a path that is already canonical (the common case: one scan, no
//! allocation), on paths that need work, and the host check; then one evaluation of a request
//! on the example fleet, for scale.
//!
//! Run with `cargo bench -p rampart-eval --bench paths`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rampart_eval::{Cohort, Evaluator, HeaderList, Outcome, RequestMeta};
use rampart_model::paths::{PathSettings, checked_authority, normalize_path};
use rampart_model::{Config, GatewayIdentity, Snapshot};

fn bench(c: &mut Criterion) {
    let s = PathSettings::default();
    let mut g = c.benchmark_group("target");
    for (name, path) in [
        ("canonical", "/rest/api/2/issue/PROJ-1234/comment"),
        ("escapes", "/rest/api/2/issue/caf%c3%a9/%7euser"),
        ("slashes_dots", "/rest//api/2/./issue/x/../PROJ-1234"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| normalize_path(black_box(path), &s).map(|n| n.path.len()))
        });
    }
    g.bench_function("host", |b| {
        b.iter(|| checked_authority(black_box("Jira.Example.com:8443")).map(|h| h.0.len()))
    });
    g.finish();

    let cfg: Config =
        rampart_model::load::from_yaml(include_str!("../../../examples/fleet.yaml")).unwrap();
    let ev = Evaluator::compile(&Snapshot::new(cfg, vec![])).unwrap();
    let gw = GatewayIdentity {
        id: "gw".into(),
        cell: "us-1".into(),
        version: "0.1.0".parse().unwrap(),
    };
    let headers = [("x-api-key", "jira-ci-demo-key"), ("x-tenant-id", "acme")];
    let headers = HeaderList(&headers);
    c.bench_function("evaluate/jira_rest", |b| {
        b.iter(|| {
            let meta = RequestMeta {
                method: "GET",
                host: "jira.example.com",
                path: black_box("/rest/api/2/issue/PROJ-1234/comment"),
                client_ip: "198.51.100.7".parse().unwrap(),
                headers: &headers,
                tenant: None,
                now_ms: 0,
                attributes: &[],
                gateway: &gw,
            };
            matches!(ev.evaluate(&meta, Cohort::Baseline).outcome, Outcome::Allow)
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
