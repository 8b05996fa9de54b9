//! How a route matches the request path: with letter case by default, without it when the
//! route says `path_case: insensitive`; and the host without case, port or trailing dot.

use rampart_eval::{Cohort, Evaluator, HeaderList, RequestMeta};
use rampart_model::load::from_yaml;
use rampart_model::{Config, GatewayIdentity, Snapshot};

const FLEET: &str = r#"
environment: dev
products: [{ name: app }]
upstreams: [{ name: app, endpoints: ["127.0.0.1:9"] }]
routes:
  - id: admin-exact
    product: app
    match: { host: app.example.com, path: { exact: /Admin }, path_case: insensitive }
    upstream: app
  - id: admin
    product: app
    match: { host: app.example.com, path: { prefix: /admin/ }, path_case: insensitive }
    upstream: app
  - id: api
    product: app
    match: { host: app.example.com, path: { prefix: /api/ } }
    upstream: app
  - id: escaped
    product: app
    match: { host: app.example.com, path: { prefix: /caf%C3%A9/ }, path_case: insensitive }
    upstream: app
  - id: rest
    product: app
    match: { path: { prefix: / } }
    upstream: app
"#;

fn route(ev: &Evaluator, host: &str, path: &str) -> String {
    let gw = GatewayIdentity {
        id: "gw".into(),
        cell: "c".into(),
        version: "0.1.0".parse().unwrap(),
    };
    let headers = HeaderList(&[]);
    let meta = RequestMeta {
        method: "GET",
        host,
        path,
        client_ip: "192.0.2.1".parse().unwrap(),
        headers: &headers,
        tenant: None,
        now_ms: 0,
        attributes: &[],
        gateway: &gw,
    };
    let d = ev.evaluate(&meta, Cohort::Baseline);
    d.route.map(|r| r.id.to_owned()).unwrap_or_default()
}

fn evaluator() -> Evaluator {
    let cfg: Config = from_yaml(FLEET).unwrap();
    Evaluator::compile(&Snapshot::new(cfg, vec![])).unwrap()
}

#[test]
fn routes_are_case_sensitive_unless_they_say_otherwise() {
    let ev = evaluator();
    let h = "app.example.com";
    for (path, want) in [
        ("/admin/x", "admin"),
        ("/ADMIN/x", "admin"),
        ("/aDmIn/", "admin"),
        ("/admin", "admin-exact"),
        ("/ADMIN", "admin-exact"),
        ("/Admin/", "admin"),
        ("/adminx", "rest"),
        ("/Admin2", "rest"),
        ("/api/v1", "api"),
        ("/API/v1", "rest"),
        ("/Api/v1", "rest"),
        ("/caf%C3%A9/x", "escaped"),
        ("/CAF%C3%A9/x", "escaped"),
        ("/", "rest"),
    ] {
        assert_eq!(route(&ev, h, path), want, "{path}");
    }
}

#[test]
fn hosts_match_without_case_port_or_trailing_dot() {
    let ev = evaluator();
    for host in [
        "app.example.com",
        "APP.Example.Com",
        "app.example.com.",
        "app.example.com:8080",
        "App.Example.com.:443",
    ] {
        assert_eq!(route(&ev, host, "/api/x"), "api", "{host}");
    }
    for host in [
        "app.example.com..",
        "xapp.example.com",
        "app.example.co",
        "",
    ] {
        assert_eq!(route(&ev, host, "/api/x"), "rest", "{host}");
    }
}

#[test]
fn path_case_is_written_only_when_it_is_not_the_default() {
    let cfg: Config = from_yaml(FLEET).unwrap();
    let json = serde_json::to_value(&cfg).unwrap();
    assert_eq!(json["routes"][0]["match"]["path_case"], "insensitive");
    assert!(json["routes"][2]["match"].get("path_case").is_none());
    let bad = FLEET.replace("path_case: insensitive }", "path_case: lower }");
    let e = from_yaml::<Config>(&bad).unwrap_err().to_string();
    assert!(e.contains("path_case"), "{e}");
}
