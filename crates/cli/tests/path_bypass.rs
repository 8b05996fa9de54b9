//! The path-bypass corpus (tests/data/path_bypass.tsv) against a real `rampart gateway`
//! process: every variant of a protected path, sent raw so that no client normalises it
//! first, is either routed exactly like its canonical form (the same route, the same
//! policies, the same outcome, with and without the protecting credential) or refused with
//! 400; and the upstreams only ever see canonical targets.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use rampart_model::paths::{PathSettings, normalize_path};
use serde_json::Value;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "corpus-key-7f3a9c1e5b2d4a6f8e0c2b4d6f8a0c2e";
const KEY_SHA256: &str = "402998941d9968ae16df1ae76f9424ce87cd019a379a02a501439fd85e7293dc";
const CORPUS: &str = include_str!("data/path_bypass.tsv");

/// Two protected routes, each tagging the requests it forwards (`x-route`), and open routes
/// to another upstream for everything else.
fn fleet(secure: SocketAddr, open: SocketAddr) -> String {
    format!(
        r#"
environment: dev
products: [{{ name: app }}]
upstreams:
  - {{ name: secure, endpoints: ["{secure}"] }}
  - {{ name: open, endpoints: ["{open}"] }}
policies:
  - id: jira-key
    auth: {{ api_key: {{ keys: [{{ id: corpus, sha256: {KEY_SHA256} }}] }} }}
  - id: office-only
    access:
      default: deny
      deny_status: 403
      rules: [{{ action: allow, headers: [{{ name: x-office, value: {{ exact: "yes" }} }}] }}]
  - {{ id: tag-rest, headers: {{ request: {{ set: [{{ name: x-route, value: jira-rest }}] }} }} }}
  - {{ id: tag-admin, headers: {{ request: {{ set: [{{ name: x-route, value: bb-admin }}] }} }} }}
  - {{ id: tag-web, headers: {{ request: {{ set: [{{ name: x-route, value: web }}] }} }} }}
routes:
  - id: jira-rest
    product: app
    match: {{ host: jira.example.com, path: {{ prefix: /rest/api/ }} }}
    upstream: secure
    policies: [jira-key, tag-rest]
  - id: bb-admin
    product: app
    match: {{ host: bitbucket.example.com, path: {{ prefix: /admin/ }}, path_case: insensitive }}
    upstream: secure
    policies: [office-only, tag-admin]
  - id: web
    product: app
    match: {{ path: {{ prefix: / }} }}
    upstream: open
    policies: [tag-web]
"#
    )
}

/// One line of the corpus.
#[derive(Debug)]
struct Variant<'a> {
    line: usize,
    h2: bool,
    host: &'a str,
    /// The canonical target, or `None` for 400.
    expect: Option<&'a str>,
    /// The `x-rampart-error` a 400 must carry, if the line names one.
    code: Option<&'a str>,
    host_header: Option<&'a str>,
    target: &'a str,
}

fn corpus() -> Vec<Variant<'static>> {
    CORPUS
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, l)| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "line {}: 5 tab-separated columns: {l:?}", i + 1);
            let (expect, code) = match f[2].strip_prefix("400") {
                Some(rest) => (None, rest.strip_prefix(':')),
                None => (Some(f[2]), None),
            };
            assert!(
                matches!(f[0], "h1" | "h2"),
                "line {}: protocol {}",
                i + 1,
                f[0]
            );
            Variant {
                line: i + 1,
                h2: f[0] == "h2",
                host: f[1],
                expect,
                code,
                host_header: (f[3] != "-").then_some(f[3]),
                target: f[4],
            }
        })
        .collect()
}

/// Which upstream answered, which route's tag it received, and the target it saw.
type Echo = (String, String, String);

/// What came back: the status, the gateway's error code, and the upstream's echo.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: u16,
    error: Option<String>,
    /// Which upstream, which route's tag, which target: `None` unless an upstream answered.
    echo: Option<Echo>,
    /// The Host the upstream received.
    upstream_host: Option<String>,
}

impl Answer {
    /// What must be equal between a variant and its canonical form.
    fn outcome(&self) -> (u16, Option<&str>, Option<&Echo>) {
        (self.status, self.error.as_deref(), self.echo.as_ref())
    }
}

fn answer(status: u16, error: Option<String>, body: &[u8]) -> Answer {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let echo = json.as_ref().filter(|j| j.get("upstream").is_some());
    Answer {
        status,
        error,
        echo: echo.map(|j| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (s(&j["upstream"]), s(&j["headers"]["x-route"]), s(&j["uri"]))
        }),
        upstream_host: echo.map(|j| j["headers"]["host"].as_str().unwrap_or_default().to_owned()),
    }
}

/// The credentials that get past both protecting policies.
const CREDENTIALS: [(&str, &str); 2] = [("x-api-key", KEY), ("x-office", "yes")];

/// Send one HTTP/1.1 request with a hand-written request line, and read the answer.
async fn send_h1(gw: SocketAddr, host: Option<&str>, target: &str, creds: bool) -> Answer {
    let mut req = format!("GET {target} HTTP/1.1\r\n");
    if let Some(h) = host {
        req.push_str(&format!("Host: {h}\r\n"));
    }
    if creds {
        for (n, v) in CREDENTIALS {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
    }
    req.push_str("Connection: close\r\n\r\n");
    let mut s = tokio::net::TcpStream::connect(gw).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("the gateway answers within 10 s")
        .unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut error = None;
    let mut chunked = false;
    for l in lines {
        let (n, v) = l.split_once(':').unwrap();
        match n.to_ascii_lowercase().as_str() {
            "x-rampart-error" => error = Some(v.trim().to_owned()),
            "transfer-encoding" => chunked = v.trim().eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let mut body = raw[end + 4..].to_vec();
    if chunked {
        body = dechunk(&body);
    }
    answer(status, error, &body)
}

/// The data of a chunked body.
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 4 + size..];
    }
    out
}

/// Send one HTTP/2 request (h2c, prior knowledge): `:authority` and `:path` from `target`,
/// and a `Host` header if given.
async fn send_h2(gw: SocketAddr, host: Option<&str>, target: &str, creds: bool) -> Answer {
    let tcp = tokio::net::TcpStream::connect(gw).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let mut req = http::Request::get(target);
    if let Some(h) = host {
        req = req.header("host", h);
    }
    if creds {
        for (n, v) in CREDENTIALS {
            req = req.header(n, v);
        }
    }
    let (resp, _) = client.send_request(req.body(()).unwrap(), true).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .expect("the gateway answers within 10 s")
        .unwrap();
    let status = resp.status().as_u16();
    let error = resp
        .headers()
        .get("x-rampart-error")
        .map(|v| v.to_str().unwrap().to_owned());
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    drop(client);
    conn.abort();
    answer(status, error, &bytes)
}

async fn send(gw: SocketAddr, v: &Variant<'_>, creds: bool) -> Answer {
    if v.h2 {
        send_h2(gw, v.host_header, v.target, creds).await
    } else {
        send_h1(gw, v.host_header, v.target, creds).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_variant_of_a_protected_path_gets_past_its_policy() {
    let corpus = corpus();
    assert!(corpus.len() >= 150, "{} variants", corpus.len());
    let (secure, open) = (upstream("secure").await, upstream("open").await);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    write_atomic(&file, &fleet(secure.addr, open.addr));
    let gw = start_gateway_with_args(Some(&file), &dir.path().join("gw"), &[], &[]);
    gw.wait_for_snapshot(None).await;

    let mut canonical: HashMap<(String, bool), Answer> = HashMap::new();
    let mut failures = Vec::new();
    let (mut routed, mut refused) = (0, 0);
    for v in &corpus {
        for creds in [false, true] {
            let got = send(gw.proxy, v, creds).await;
            // The upstreams only ever see canonical targets, whatever was sent.
            if let Some((_, _, uri)) = &got.echo {
                let path = uri.split('?').next().unwrap();
                let n = normalize_path(path, &PathSettings::default());
                if n.as_ref().map(|n| &*n.path) != Ok(path) {
                    failures.push(format!("line {}: the upstream saw {uri:?}", v.line));
                }
            }
            let Some(expect) = v.expect else {
                refused += 1;
                if got.status != 400 || v.code.is_some_and(|c| got.error.as_deref() != Some(c)) {
                    failures.push(format!(
                        "line {} ({}, creds {creds}): want 400 {:?}, got {got:?}",
                        v.line, v.target, v.code
                    ));
                }
                continue;
            };
            routed += 1;
            let key = (format!("{} {expect}", v.host), creds);
            if !canonical.contains_key(&key) {
                let a = send_h1(gw.proxy, Some(v.host), expect, creds).await;
                canonical.insert(key.clone(), a);
            }
            let want = &canonical[&key];
            if got.outcome() != want.outcome() {
                failures.push(format!(
                    "line {} ({}, creds {creds}): got {got:?}, its canonical form {expect} got {want:?}",
                    v.line, v.target
                ));
            }
            if let Some(h) = &got.upstream_host
                && h.split(':').next() != Some(v.host)
            {
                failures.push(format!("line {}: the upstream got Host {h:?}", v.line));
            }
        }
    }
    // The corpus reaches both sides of both policies.
    let seen = |status: u16, route: &str| {
        canonical
            .values()
            .any(|a| a.status == status && a.echo.as_ref().is_none_or(|(_, r, _)| r == route))
    };
    assert!(
        seen(401, ""),
        "no canonical request was refused for want of a key"
    );
    assert!(
        seen(403, ""),
        "no canonical request was refused by the access policy"
    );
    assert!(
        seen(200, "jira-rest") && seen(200, "bb-admin"),
        "{canonical:?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {} requests went wrong:\n{}\nlog:\n{}",
        failures.len(),
        2 * corpus.len(),
        failures.join("\n"),
        gw.log()
    );
    eprintln!(
        "{} variants: {routed} requests routed like their canonical form, {refused} refused with 400",
        corpus.len()
    );
}
