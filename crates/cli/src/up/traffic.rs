//! The demo's own traffic: a gentle stream of requests through the gateway, so rollout gates
//! in `rampart up` have something to judge.

use std::net::SocketAddr;
use std::time::Duration;

use rampart_model::Config;
use rampart_model::config::PathMatch;

/// What the demo traffic requests: the header that names the tenant, and one (host, path) per
/// route of the fleet that matches no header (a wildcard host's `demo` subdomain).
pub(super) struct Targets {
    tenant_header: String,
    requests: Vec<(String, String)>,
}

impl Targets {
    pub(super) fn of(cfg: &Config) -> Self {
        let requests = cfg
            .routes
            .iter()
            .filter(|r| r.matcher.headers.is_empty())
            .map(|r| {
                let host = r.matcher.host.clone().unwrap_or_else(|| "localhost".into());
                let host = host.replace("*.", "demo.");
                let path = match &r.matcher.path {
                    PathMatch::Prefix(p) => format!("{}/demo", p.trim_end_matches('/')),
                    PathMatch::Exact(p) => p.clone(),
                };
                (host, path)
            })
            .collect();
        Self {
            tenant_header: cfg.settings.tenant_header.clone(),
            requests,
        }
    }
}

/// Send the targets in turn through the gateway at `proxy`, 50 per second, spread over 200
/// tenants so sticky buckets split them as they would real traffic. It stops with the process.
pub(super) async fn run(proxy: SocketAddr, targets: Targets) {
    if targets.requests.is_empty() {
        return;
    }
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0usize.. {
        tick.tick().await;
        let (host, path) = &targets.requests[i % targets.requests.len()];
        let req = client
            .get(format!("http://{proxy}{path}"))
            .header("host", host.as_str())
            .header(
                targets.tenant_header.as_str(),
                format!("tenant-{}", i % 200),
            );
        let _ = req.send().await;
    }
}
