//! Shared helpers of the proxy tests: a gateway running in this process through
//! `rampart_gateway::run` on ephemeral loopback ports, fleets written for one test, and the
//! requests and assertions the tests share. The upstreams are `rampart_gateway::testing`'s.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{oneshot, watch};

pub use rampart_gateway::testing::*;

/// `proxy-test-key` and `banned-key`, as SHA-256 hex.
pub const GOOD_KEY_SHA: &str = "a9dfa22d2fcc6856f2fa8d24a5f32d7b75c81558c83578ae688c45724b89d448";
pub const BANNED_KEY_SHA: &str = "f2023b3fd0f8fdc23aa91ae614165d25036eff6eafae3bb1388e1fc43fa84805";

/// A gateway running in this process; stopped when dropped.
pub struct Gateway {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub tls: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Gateway {
    /// Run a gateway on `opts` once its listeners are up.
    pub async fn start(opts: rampart_gateway::GatewayOptions, dir: tempfile::TempDir) -> Self {
        let (stop, stopped) = watch::channel(false);
        let (ready_tx, ready) = oneshot::channel();
        tokio::spawn(async move {
            let ran = rampart_gateway::run(opts, stopped, move |proxy, admin, tls| {
                let _ = ready_tx.send((proxy, admin, tls));
            })
            .await;
            if let Err(e) = ran {
                panic!("the gateway failed: {e}");
            }
        });
        let (proxy, admin, tls) = ready.await.expect("the gateway starts");
        Gateway {
            proxy,
            admin,
            tls,
            stop,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The metrics exposition of the admin API.
    pub async fn metrics(&self) -> String {
        reqwest::get(self.admin_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// A gateway serving `fleet`, with `configure` applied to its options (for TLS). The fleet
/// file is read before the listeners report ready, so the gateway serves it at once.
pub async fn boot_with(
    fleet: &str,
    configure: impl FnOnce(&Path, &mut rampart_gateway::GatewayOptions),
) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    std::fs::write(&file, fleet).unwrap();
    let mut opts = options(&dir.path().join("gw"));
    opts.config = Some(file);
    configure(dir.path(), &mut opts);
    let gw = Gateway::start(opts, dir).await;
    let ready = reqwest::get(gw.admin_url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200, "the fleet was refused");
    gw
}

/// A gateway serving `fleet`.
pub async fn boot(fleet: &str) -> Gateway {
    boot_with(fleet, |_, _| {}).await
}

/// A dev fleet of product `app`; `rest` holds its upstreams, policies and routes.
pub fn fleet(rest: &str) -> String {
    format!("environment: dev\nproducts: [{{ name: app }}]\n{rest}")
}

/// A dev fleet whose one upstream, `app`, is `up`; `rest` holds its policies and routes, in
/// which `@good-key@` and `@banned-key@` stand for [`GOOD_KEY_SHA`] and [`BANNED_KEY_SHA`].
pub fn app_fleet(up: SocketAddr, rest: &str) -> String {
    fleet(&format!(
        "upstreams: [{{ name: app, endpoints: [\"{up}\"] }}]\n{rest}"
    ))
    .replace("@good-key@", GOOD_KEY_SHA)
    .replace("@banned-key@", BANNED_KEY_SHA)
}

/// An upstream `app` and a gateway serving it with `rest` (see [`app_fleet`]).
pub async fn app_gateway(rest: &str) -> (Upstream, Gateway) {
    let up = upstream("app").await;
    let gw = boot(&app_fleet(up.addr, rest)).await;
    (up, gw)
}

/// A dev fleet (see [`fleet`]) with each `(placeholder, address)` filled in.
pub fn fleet_at<S: AsRef<str>>(rest: &str, addrs: &[(S, SocketAddr)]) -> String {
    let mut text = fleet(rest);
    for (from, to) in addrs {
        text = text.replace(from.as_ref(), &to.to_string());
    }
    text
}

/// `@name@` for each upstream of `ups`, to fill a fleet with ([`fleet_at`]).
pub fn placeholders(ups: &HashMap<&str, Upstream>) -> Vec<(String, SocketAddr)> {
    ups.iter()
        .map(|(n, u)| (format!("@{n}@"), u.addr))
        .collect()
}

/// An upstream of the standard kind for each name.
pub async fn upstreams<'a>(names: &[&'a str]) -> HashMap<&'a str, Upstream> {
    let mut ups = HashMap::new();
    for n in names {
        ups.insert(*n, upstream(n).await);
    }
    ups
}

/// An upstream of the standard kind for each of `names`, and a gateway serving the dev fleet
/// `rest` (see [`fleet`]) with each `@name@` in it filled in with that upstream's address.
pub async fn upstreams_gateway<'a>(
    names: &[&'a str],
    rest: &str,
) -> (HashMap<&'a str, Upstream>, Gateway) {
    let ups = upstreams(names).await;
    let gw = boot(&fleet_at(rest, &placeholders(&ups))).await;
    (ups, gw)
}

/// The JSON a response carries (an upstream's echo, or a gateway error).
pub async fn echo(resp: reqwest::Response) -> Value {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {text:?}: {e}"))
}

/// The JSON object in a raw HTTP/1.1 response.
pub fn raw_echo(raw: &str) -> Value {
    let (start, end) = (raw.find('{').unwrap(), raw.rfind('}').unwrap());
    serde_json::from_str(&raw[start..=end]).unwrap()
}

/// Send `method path` through the gateway with `headers` (a repeated name adds a field).
pub async fn request(
    client: &reqwest::Client,
    gw: &Gateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client.request(method.parse().unwrap(), gw.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// GET `path` through the gateway with `headers`.
pub async fn fetch(
    client: &reqwest::Client,
    gw: &Gateway,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    request(client, gw, "GET", path, headers).await
}

/// Which upstream served `method host path` (with extra headers); panics unless 200.
pub async fn served_by(
    client: &reqwest::Client,
    gw: &Gateway,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> String {
    let with_host = [&[("host", host)], headers].concat();
    let resp = request(client, gw, method, path, &with_host).await;
    assert_eq!(
        resp.status(),
        200,
        "{method} {host}{path} {headers:?}: {:?}",
        resp.headers()
    );
    let body = echo(resp).await;
    body["upstream"].as_str().unwrap().to_owned()
}

/// Assert a gateway-originated failure: its status and `x-rampart-error`.
pub fn assert_gateway_error(resp: &reqwest::Response, status: u16, error: &str) {
    assert_eq!(resp.status(), status, "{:?}", resp.headers());
    assert_eq!(resp.headers()["x-rampart-origin"], "gateway");
    assert_eq!(resp.headers()["x-rampart-error"], error);
}

/// Assert a refusal by a policy: the gateway error and the policy its body names.
pub async fn assert_refused(resp: reqwest::Response, status: u16, error: &str, policy: &str) {
    assert_gateway_error(&resp, status, error);
    assert_eq!(echo(resp).await["policy"], policy);
}

/// Poll `cond` every 20 ms until it holds; panic with `what` after `secs`.
pub async fn eventually(secs: u64, what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An HTTP/2 cleartext client (prior knowledge).
pub fn h2c() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

/// Send `head` (a request head without its final empty line) on a new connection, with
/// `Connection: close`, and return the whole response.
pub async fn raw_http1(gw: &Gateway, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(gw.proxy).await.unwrap();
    s.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the gateway closes the connection")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}
