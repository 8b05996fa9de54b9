//! One route precedence everywhere, with real processes: the same fleet is served by a
//! `rampart gateway` reading the file and by one following a `rampart control` the file was
//! applied to (`rampart apply`), and 10,000 generated requests get the same decision from both.
//!
//! The fleet's routes overlap and are listed out of alphabetical order (the control plane's
//! store keeps objects by name), and its settings are not the defaults (the tenant comes from
//! `x-org`, sent by a trusted proxy), so a gateway that got the routes in another order, or the
//! default settings, decides differently. Each route has its own upstream, which echoes its name: a decision is
//! the status, the `x-rampart-error` code and the upstream that answered.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{rampart_bin, start_gateway_with_args, upstream};

const ENV: &str = "dev";
const REQUESTS: usize = 10_000;
/// A key of 128 random bits, and its SHA-256.
const API_KEY: &str = "rk_7f3a9c2e41d84b6f9a0c5e7d2b1f4a86";
const API_KEY_SHA256: &str = "ec837c057b96aac9d7443ee666da8de8f6c37d824f30a2bd9101fa5001596aab";

/// Listed as an author of "first match in file order" would: `zz-first` above the routes it
/// overlaps. Under precedence `a-data` (a method constraint) would beat it, so it says so with
/// a priority; `q-last` is the catch-all and sinks below the others with a negative one.
const ROUTES: [&str; 8] = [
    "zz-first", "a-data", "shop-all", "m-exact", "k-wild", "b-any", "c-admin", "q-last",
];

fn fleet(ups: &[(&str, SocketAddr)]) -> String {
    let mut text = format!(
        r#"environment: {ENV}
settings:
  tenant_header: x-org
  # The test client speaks as a load balancer would: its tenant header is believed.
  trusted_proxies: [127.0.0.1/32]
  tenant: {{ from_trusted_proxy: true }}
products: [{{ name: shop }}]
policies:
  - id: block-tenant
    access: {{ default: allow, rules: [{{ action: deny, tenants: [blocked] }}] }}
  - id: key-auth
    auth: {{ api_key: {{ keys: [{{ id: k1, sha256: {API_KEY_SHA256}, tenant: keyed }}] }} }}
routes:
  - id: zz-first
    product: shop
    priority: 1
    match:
      host: shop.test
      path: {{ prefix: /data/ }}
      headers: [{{ name: x-beta, value: present }}]
    upstream: zz-first
  - id: a-data
    product: shop
    match: {{ host: shop.test, path: {{ prefix: /data/ }}, methods: [GET, PUT] }}
    upstream: a-data
    policies: [block-tenant]
  - id: shop-all
    product: shop
    match: {{ host: shop.test, path: {{ prefix: / }} }}
    upstream: shop-all
  - id: m-exact
    product: shop
    match: {{ host: shop.test, path: {{ exact: /data/health }} }}
    upstream: m-exact
  - id: k-wild
    product: shop
    match: {{ host: "*.test", path: {{ prefix: /data/ }} }}
    upstream: k-wild
    policies: [key-auth]
  - id: b-any
    product: shop
    match: {{ path: {{ prefix: /data/ }} }}
    upstream: b-any
    policies: [block-tenant]
  - id: c-admin
    product: shop
    match: {{ path: {{ prefix: /admin/ }}, methods: [POST] }}
    upstream: c-admin
    policies: [key-auth]
  - id: q-last
    product: shop
    priority: -1
    match: {{ path: {{ prefix: / }} }}
    upstream: q-last
upstreams:
"#
    );
    for (name, addr) in ups {
        text.push_str(&format!(
            "  - {{ name: {name}, endpoints: [\"{addr}\"] }}\n"
        ));
    }
    text
}

/// The control plane's rules: no approvals in dev, whatever the risk.
const CONTROL_CONFIG: &str = r#"{ "rules": { "dev": {
  "low": { "approvals": 0 }, "medium": { "approvals": 0 },
  "high": { "approvals": 0 }, "critical": { "approvals": 0 } } } }"#;

/// A running `rampart control` on SQLite; killed on drop.
struct Control {
    child: std::process::Child,
    url: String,
    admin: String,
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Control {
    fn start(dir: &Path) -> Control {
        use std::io::{BufRead, BufReader};
        let config = dir.join("control.json");
        std::fs::write(&config, CONTROL_CONFIG).unwrap();
        let mut child = Command::new(rampart_bin())
            .arg("control")
            .arg("--db")
            .arg(format!("sqlite://{}/control.db", dir.display()))
            .args(["--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--bootstrap-token-file")
            .arg(dir.join("admin-token"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("rampart control starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(a) = line.strip_prefix("rampart control listening on ") {
                    let _ = tx.send(a.trim().to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("rampart control printed its address in time");
        let admin = std::fs::read_to_string(dir.join("admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        Control { child, url, admin }
    }

    /// Run the CLI against this control plane with `--json`; its output parsed.
    fn json(&self, args: &[&str]) -> Value {
        let o = Command::new(rampart_bin())
            .args(args)
            .args(["--server", &self.url, "--token", &self.admin, "--json"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let show = || {
            format!(
                "{args:?}: exit {:?}\n{}\n{}",
                o.status.code(),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        };
        assert!(o.status.success(), "{}", show());
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", show()))
    }

    /// A gateway token, over the API.
    async fn gateway_token(&self, name: &str) -> String {
        let v: Value = reqwest::Client::new()
            .post(format!("{}/v1/tokens", self.url))
            .bearer_auth(&self.admin)
            .json(&serde_json::json!({ "name": name, "kind": "gateway" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["secret"].as_str().expect("a gateway token").to_owned()
    }
}

/// A deterministic request generator (a 64-bit LCG): hosts, paths, methods and headers drawn
/// from small tables, so that routes overlap on most requests.
struct Requests(u64);

#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    host: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
}

impl Requests {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.next(from.len())]
    }

    fn request(&mut self) -> Req {
        const HOSTS: [&str; 7] = [
            "shop.test",
            "SHOP.test:8080",
            "x.test",
            "a.b.test",
            "other.org",
            "test",
            "127.0.0.1",
        ];
        const PATHS: [&str; 12] = [
            "/",
            "/data/",
            "/data/health",
            "/data/healthz",
            "/data/x/y?q=1",
            "/admin/",
            "/admin/users",
            "/api/",
            "/datax",
            "/DATA/x",
            "/data",
            "/other",
        ];
        const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];
        let mut headers = Vec::new();
        if self.next(2) == 0 {
            headers.push(("x-beta", "1"));
        }
        match self.next(4) {
            0 => headers.push(("x-org", "blocked")),
            1 => headers.push(("x-org", "acme")),
            // The default tenant header: no tenant here, where the settings say `x-org`.
            2 => headers.push(("x-tenant-id", "blocked")),
            _ => {}
        }
        match self.next(3) {
            0 => headers.push(("x-api-key", API_KEY)),
            1 => headers.push(("x-api-key", "rk_wrong")),
            _ => {}
        }
        Req {
            method: self.pick(&METHODS),
            host: self.pick(&HOSTS),
            path: self.pick(&PATHS),
            headers,
        }
    }
}

/// What a gateway decided: the status, the gateway's error code, and the upstream that
/// answered (none when the gateway answered itself).
type Outcome = (u16, Option<String>, Option<String>);

/// The outcomes of `reqs` through the gateway at `base`, four requests at a time.
async fn decide_all(base: &str, reqs: &[Req]) -> Vec<Outcome> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut out = Vec::with_capacity(reqs.len());
    for chunk in reqs.chunks(4) {
        let mut set = tokio::task::JoinSet::new();
        for (i, r) in chunk.iter().enumerate() {
            let (client, r, base) = (client.clone(), r.clone(), base.to_owned());
            set.spawn(async move { (i, decide_at(&client, &base, &r).await) });
        }
        let mut got = set.join_all().await;
        got.sort_by_key(|(i, _)| *i);
        out.extend(got.into_iter().map(|(_, o)| o));
    }
    out
}

/// What the gateway at `base` decides for `r`.
async fn decide_at(client: &reqwest::Client, base: &str, r: &Req) -> Outcome {
    let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap();
    let mut req = client
        .request(method, format!("{base}{}", r.path))
        .header("host", r.host);
    for (k, v) in &r.headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("the gateway answers");
    let status = resp.status().as_u16();
    let error = resp
        .headers()
        .get("x-rampart-error")
        .map(|v| v.to_str().unwrap_or("?").to_owned());
    let body = resp.bytes().await.unwrap_or_default();
    let upstream = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["upstream"].as_str().map(str::to_owned));
    (status, error, upstream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_and_the_control_plane_route_10000_requests_alike() {
    let dir = tempfile::tempdir().unwrap();
    let mut ups = Vec::new();
    for name in ROUTES {
        ups.push(upstream(name).await);
    }
    let addrs: Vec<(&str, SocketAddr)> = ups.iter().map(|u| (u.name.as_str(), u.addr)).collect();
    let file = dir.path().join("fleet.yaml");
    std::fs::write(&file, fleet(&addrs)).unwrap();

    // The control plane gets the file by `rampart apply`; the diff shows the settings object.
    let control = Control::start(dir.path());
    let path = file.display().to_string();
    let plan = control.json(&["diff", "-f", &path, "--env", ENV]);
    assert_eq!(plan["diff"][0]["kind"], "settings", "{plan:#}");
    let applied = control.json(&["apply", "-f", &path, "--env", ENV, "--reason", "precedence"]);
    let id = applied["change"]["id"]
        .as_str()
        .expect("a change")
        .to_owned();
    let v = control.json(&["change", "apply", &id]);
    assert_eq!(v["change"]["status"], "applied", "{v:#}");
    let v = control.json(&["diff", "-f", &path, "--env", ENV]);
    assert_eq!(v["diff"], serde_json::json!([]), "{v:#}");

    let from_file = start_gateway_with_args(Some(&file), &dir.path().join("gw-file"), &[], &[]);
    let token = control.gateway_token("gw-control").await;
    let from_control = start_gateway_with_args(
        None,
        &dir.path().join("gw-control"),
        &[
            "--id",
            "gw-control",
            "--control",
            &control.url,
            "--control-token",
            &token,
            "--env",
            ENV,
        ],
        &[],
    );
    from_file.wait_for_snapshot(None).await;
    from_control.wait_for_snapshot(None).await;

    let mut gen_ = Requests(11);
    let reqs: Vec<Req> = (0..REQUESTS).map(|_| gen_.request()).collect();
    let bound = Duration::from_secs(300);
    let (a, b) = tokio::time::timeout(bound, async {
        let a = decide_all(&from_file.url(""), &reqs).await;
        let b = decide_all(&from_control.url(""), &reqs).await;
        (a, b)
    })
    .await
    .expect("20,000 requests within the test's bound");

    let differ: Vec<String> = reqs
        .iter()
        .zip(a.iter().zip(&b))
        .filter(|(_, (x, y))| x != y)
        .take(10)
        .map(|(r, (x, y))| format!("{r:?}: file {x:?}, control {y:?}"))
        .collect();
    assert!(
        differ.is_empty(),
        "decisions differ:\n{}",
        differ.join("\n")
    );

    // The requests exercised what they were meant to: every route won some, the settings'
    // tenant header blocked some, and API keys were refused.
    for route in ROUTES {
        assert!(
            a.iter().any(|o| o.2.as_deref() == Some(route)),
            "no request reached {route}"
        );
    }
    let count = |f: &dyn Fn(&Outcome) -> bool| a.iter().filter(|o| f(o)).count();
    assert!(count(&|o| o.0 == 403) > 100, "tenant blocks");
    assert!(count(&|o| o.0 == 401) > 100, "refused credentials");

    // The issue's case: a request meant for zz-first goes there on both.
    let client = reqwest::Client::new();
    let meant = Req {
        method: "GET",
        host: "shop.test",
        path: "/data/x",
        headers: vec![("x-beta", "1"), ("x-org", "blocked")],
    };
    for gw in [&from_file, &from_control] {
        let o = decide_at(&client, &gw.url(""), &meant).await;
        assert_eq!(o, (200, None, Some("zz-first".to_owned())), "{}", gw.log());
    }
}
