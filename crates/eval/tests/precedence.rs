//! Route precedence: any permutation of the same routes compiles to the same decisions, and the
//! example fleet routes as it is written.

use proptest::prelude::*;
use rampart_eval::{Cohort, Evaluator, HeaderList, RequestMeta, precedence};
use rampart_model::config::{HeaderMatch, Method, PathMatch, Route, RouteMatch, ValueMatch};
use rampart_model::load::from_yaml;
use rampart_model::{Config, GatewayIdentity, Snapshot};

fn example() -> Config {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/fleet.yaml"
    ))
    .expect("the example fleet");
    from_yaml(&text).expect("the example fleet parses")
}

#[test]
fn the_example_fleet_routes_as_written() {
    // Written most specific first, so "first match in file order" and precedence agree.
    let cfg = example();
    assert_eq!(
        precedence::inversions(&cfg.routes),
        Vec::<(&str, &str)>::new()
    );
}

const HOSTS: [&str; 4] = [
    "a.example.com",
    "b.example.com",
    "x.a.example.com",
    "other.org",
];
const PATHS: [&str; 6] = ["/", "/api/", "/api/v1/", "/api/v1/x", "/web/", "/status"];
const METHODS: [Method; 3] = [Method::Get, Method::Post, Method::Put];

/// A route from small indices into the tables above, so that routes overlap often.
fn route(
    i: usize,
    (host, path, exact, methods, header, priority): (u8, u8, bool, u8, bool, i8),
) -> Route {
    let host = match host % 6 {
        0 | 1 => None,
        2 => Some("*.example.com".to_owned()),
        3 => Some("*.a.example.com".to_owned()),
        n => Some(HOSTS[usize::from(n) - 4].to_owned()),
    };
    let p = PATHS[usize::from(path) % PATHS.len()].to_owned();
    Route {
        id: format!("r{i:02}"),
        product: "p".into(),
        matcher: RouteMatch {
            host,
            path: if exact {
                PathMatch::Exact(p)
            } else {
                PathMatch::Prefix(p)
            },
            methods: METHODS
                .iter()
                .enumerate()
                .filter(|(b, _)| methods & (1 << b) != 0)
                .map(|(_, m)| *m)
                .collect(),
            headers: if header {
                vec![HeaderMatch {
                    name: "x-canary".into(),
                    value: ValueMatch::Exact("1".into()),
                }]
            } else {
                vec![]
            },
            path_case: Default::default(),
        },
        upstream: "u".into(),
        policies: vec![],
        priority: i32::from(priority % 3),
        max_body_bytes: None,
    }
}

fn config(routes: Vec<Route>) -> Config {
    let mut cfg: Config = from_yaml(
        "environment: dev\nproducts: [{ name: p }]\nupstreams: [{ name: u, endpoints: [\"127.0.0.1:1\"] }]\n",
    )
    .expect("a base fleet");
    cfg.routes = routes;
    cfg
}

fn decide(
    ev: &Evaluator,
    gw: &GatewayIdentity,
    host: &str,
    path: &str,
    method: &str,
    canary: bool,
) -> Option<String> {
    let list: &[(&str, &str)] = if canary { &[("x-canary", "1")] } else { &[] };
    let headers = HeaderList(list);
    let meta = RequestMeta {
        method,
        host,
        path,
        client_ip: "127.0.0.1".parse().expect("an ip"),
        headers: &headers,
        tenant: None,
        now_ms: 0,
        attributes: &[],
        gateway: gw,
    };
    ev.evaluate(&meta, Cohort::Baseline)
        .route
        .map(|r| r.id.to_owned())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_permutation_of_the_same_routes_decides_alike(
        specs in prop::collection::vec((0u8..6, 0u8..6, any::<bool>(), 0u8..8, any::<bool>(), any::<i8>()), 1..12),
        shuffle in any::<u64>(),
    ) {
        let routes: Vec<Route> = specs.into_iter().enumerate().map(|(i, s)| route(i, s)).collect();
        let mut permuted = routes.clone();
        // A Fisher-Yates shuffle driven by the generated seed.
        let mut seed = shuffle;
        for i in (1..permuted.len()).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            permuted.swap(i, (seed >> 33) as usize % (i + 1));
        }
        let mut reversed = routes.clone();
        reversed.reverse();
        let evs: Vec<Evaluator> = [routes, permuted, reversed]
            .into_iter()
            .map(|r| Evaluator::compile(&Snapshot::new(config(r), vec![])).expect("compiles"))
            .collect();
        let gw = GatewayIdentity { id: "gw".into(), cell: "c".into(), version: semver::Version::new(1, 0, 0) };
        let probe_paths = ["/", "/api/", "/api/v1/", "/api/v1/x", "/api/v2", "/web/x", "/status", "/statusx"];
        for host in HOSTS.iter().chain(["example.com", "y.x.a.example.com"].iter()) {
            for path in probe_paths {
                for method in ["GET", "POST", "PUT", "DELETE"] {
                    for canary in [false, true] {
                        let want = decide(&evs[0], &gw, host, path, method, canary);
                        for ev in &evs[1..] {
                            prop_assert_eq!(&decide(ev, &gw, host, path, method, canary), &want, "{} {}{} canary={}", method, host, path, canary);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_bad_priority_is_refused_at_its_path() {
    let with = |v: &str| {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/fleet.yaml"
        ))
        .unwrap()
        .replacen(
            "  - id: jira-rest\n",
            &format!("  - id: jira-rest\n    priority: {v}\n"),
            1,
        );
        from_yaml::<Config>(&text).map(|c| c.routes[0].priority)
    };
    assert_eq!(with("-2147483648").unwrap(), i32::MIN);
    for bad in [
        "99999999999",
        "\"high\"",
        "1.5",
        "null",
        "1\n    priority: 2",
    ] {
        let e = with(bad).unwrap_err().to_string();
        assert!(e.contains("routes[0]"), "{bad}: {e}");
    }
}
