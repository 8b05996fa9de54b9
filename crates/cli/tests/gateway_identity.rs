//! The real `rampart gateway` process believes `X-Forwarded-For` and the tenant header only
//! from its trusted proxy (127.0.0.2 here): a client on 127.0.0.1 cannot choose its tenant,
//! its tenant-keyed bucket or its address. (The full spoofing suite, with cohorts, runs in
//! process: crates/gateway/tests/identity.rs.)

mod support;

use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value;
use support::*;

const PROXY: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// What the upstream saw: its tenant header and `X-Forwarded-For`, or the gateway's error.
async fn seen(resp: reqwest::Response) -> Result<(Option<String>, String), String> {
    if resp.status() != 200 {
        let scope = resp
            .headers()
            .get("x-ratelimit-scope")
            .map(|v| v.to_str().unwrap().to_owned());
        return Err(format!("{} {scope:?}", resp.status()));
    }
    let v: Value = resp.json().await.unwrap();
    let h = &v["headers"];
    Ok((
        h.get("x-tenant-id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        h["x-forwarded-for"].as_str().unwrap().to_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_trusted_proxy_names_the_tenant_and_the_client() {
    if std::net::TcpListener::bind((PROXY, 0)).is_err() {
        eprintln!("skipped: this system does not route {PROXY}");
        return;
    }
    let up = upstream("app").await;
    let fleet = format!(
        r#"
environment: dev
settings:
  trusted_proxies: ["127.0.0.2/32"]
  tenant: {{ from_trusted_proxy: true }}
products: [{{ name: app }}]
upstreams: [{{ name: app, endpoints: ["{}"] }}]
policies:
  - {{ id: per-tenant, rate_limit: {{ per_second: 1, burst: 2, key: tenant }} }}
routes:
  - {{ id: all, product: app, match: {{ path: {{ prefix: / }} }}, upstream: app, policies: [per-tenant] }}
"#,
        up.addr
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fleet.yaml");
    write_atomic(&file, &fleet);
    let gw = start_gateway_with_args(Some(&file), &dir.path().join("gw"), &[], &[]);
    gw.wait_for_snapshot(None).await;
    let client = reqwest::Client::new();
    let proxy = reqwest::Client::builder()
        .local_address(PROXY)
        .build()
        .unwrap();
    let get = |c: &reqwest::Client, tenant: &str, xff: &str| {
        c.get(gw.url("/x"))
            .header("x-tenant-id", tenant)
            .header("x-forwarded-for", xff)
            .send()
    };

    // A client: its tenant header is dropped, its X-Forwarded-For replaced, and every tenant
    // it claims shares its address's bucket (burst 2, refilled at 1/s): six claimed tenants
    // in a row run it dry.
    let mut refused = 0;
    for i in 0..6 {
        match seen(
            get(&client, &format!("t{i}"), "198.51.100.7")
                .await
                .unwrap(),
        )
        .await
        {
            Ok(r) => assert_eq!(r, (None, "127.0.0.1".to_owned())),
            Err(e) => {
                assert_eq!(e, "429 Too Many Requests None");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "one bucket for every claimed tenant");

    // The trusted proxy: its tenant and its client's address are believed, and each tenant
    // has its own bucket.
    for t in ["acme", "globex", "initech"] {
        let r = seen(get(&proxy, t, "6.6.6.6, 198.51.100.7").await.unwrap()).await;
        assert_eq!(
            r,
            Ok((Some(t.to_owned()), "198.51.100.7, 127.0.0.2".to_owned()))
        );
    }
    let mut refused = None;
    for _ in 0..6 {
        if let Err(e) = seen(get(&proxy, "acme", "198.51.100.7").await.unwrap()).await {
            refused = Some(e);
            break;
        }
    }
    assert_eq!(
        refused.as_deref(),
        Some("429 Too Many Requests Some(\"tenant\")")
    );
}
