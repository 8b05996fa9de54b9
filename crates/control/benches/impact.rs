//! The impact test's replay: what `apply` pays before a rollout starts. The peer, measured in
//! the same run, is the floor of any replay: the same samples decided by both evaluators with
//! nothing else done. The ratio is the impact test's own cost (building each request, the
//! comparison, the counts and the examples) on top of evaluation.
//!
//! Run with `cargo bench -p rampart-control --bench impact`; results in `docs/BENCHMARKS.md`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart_control::impact::impact;
use rampart_eval::Evaluator;
use rampart_eval::diff::replay;
use rampart_model::wire::{RequestSample, SampleBatch};
use rampart_model::{Config, GatewayIdentity, Snapshot};

/// Samples per batch and batches: what 10 gateways upload in 50 s at the gateway's default
/// sampling (one request in 8) of 1,600 req/s each, about.
const PER_BATCH: usize = 1_000;
const BATCHES: usize = 10;

fn fleet() -> Config {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/fleet.yaml"
    ))
    .expect("examples/fleet.yaml");
    rampart_model::load::from_yaml(&text).expect("the example fleet loads")
}

/// Requests spread over the fleet's hosts and paths, many tenants.
fn batches() -> Vec<SampleBatch> {
    let targets = [
        ("GET", "jira.example.com", "/browse/PROJ-42"),
        ("POST", "jira.example.com", "/rest/api/2/issue"),
        ("GET", "acme.atlassian-wiki.example.com", "/wiki/spaces/ENG"),
        ("GET", "acme.atlassian-wiki.example.com", "/robots.txt"),
        (
            "GET",
            "bitbucket.example.com",
            "/scm/team/repo.git/info/refs",
        ),
        ("GET", "admin.example.com", "/admin/users"),
        ("GET", "unknown.example.com", "/"),
    ];
    (0..BATCHES)
        .map(|b| SampleBatch {
            gateway: GatewayIdentity {
                id: format!("gw-{b}"),
                cell: if b % 2 == 0 { "eu-1" } else { "us-1" }.into(),
                version: semver::Version::new(0, 1, 0),
            },
            samples: (0..PER_BATCH)
                .map(|i| {
                    let (method, host, path) = targets[i % targets.len()];
                    RequestSample {
                        at_ms: i as u64,
                        method: method.into(),
                        host: host.into(),
                        path: path.into(),
                        client_ip: IpAddr::V4(Ipv4Addr::new(10, 1, (i / 256) as u8, i as u8)),
                        headers: vec![
                            ("x-tenant-id".into(), format!("tenant-{}", i % 500)),
                            ("user-agent".into(), "bench".into()),
                        ],
                        tenant: Some(format!("tenant-{}", i % 500)),
                        route: None,
                        status: 200,
                        outcome: "allow".into(),
                        rollout: None,
                    }
                })
                .collect(),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let base_cfg = fleet();
    let mut cand_cfg = base_cfg.clone();
    // A change that moves outcomes: Jira's maintenance page on for everyone.
    for f in &mut cand_cfg.flags {
        if f.name == "jira-maintenance" {
            f.default = serde_json::json!(true);
        }
    }
    let base = Evaluator::compile(&Snapshot::new(base_cfg, vec![])).expect("compiles");
    let cand = Evaluator::compile(&Snapshot::new(cand_cfg, vec![])).expect("compiles");
    let batches = batches();
    let n = (PER_BATCH * BATCHES) as u64;
    let report = impact(&base, &cand, &batches, 0.0, 1.0, 100);
    eprintln!(
        "impact: {} compared, {:.1}% changed, blocked: {}",
        report.counts.compared, report.changed_percent, report.blocked
    );

    let mut g = c.benchmark_group("impact_10k_samples");
    g.throughput(Throughput::Elements(n));
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("impact_test", |b| {
        b.iter(|| black_box(impact(&base, &cand, black_box(&batches), 0.0, 1.0, 100)))
    });
    // The peer: both evaluators on every sample, nothing else.
    g.bench_function("evaluate_both_only", |b| {
        b.iter(|| {
            let mut admitted = 0u64;
            for batch in &batches {
                for s in &batch.samples {
                    admitted += replay(&base, &cand, s, &batch.gateway, |a, b| {
                        u64::from(a.route.is_some()) + u64::from(b.route.is_some())
                    });
                }
            }
            black_box(admitted)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
