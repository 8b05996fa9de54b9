//! The demo's own traffic: a gentle stream of requests through the gateway, so rollout gates
//! in `rampart up` have something to judge.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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

/// The address the demo traffic comes from: the example fleet's trusted proxy
/// (`settings.trusted_proxies`), so the gateway believes the tenant it names.
const PROXY_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Send the targets in turn through the gateway at `proxy`, 50 per second, spread over 200
/// tenants so sticky buckets split them as they would real traffic. The requests come from
/// [`PROXY_ADDRESS`], standing in for the edge proxy that names each tenant; where that
/// address cannot be bound (not every system routes all of 127/8), they come from the default
/// address and the gateway, rightly, ignores their tenant header. It stops with the process.
pub(super) async fn run(proxy: SocketAddr, targets: Targets) {
    if targets.requests.is_empty() {
        return;
    }
    // Whether the system lets us use the address at all (it routes all of 127/8 on Linux).
    let local = match std::net::TcpListener::bind((PROXY_ADDRESS, 0)) {
        Ok(_) => Some(PROXY_ADDRESS),
        Err(e) => {
            tracing::info!(address = %PROXY_ADDRESS, error = %e, "demo traffic cannot come from the trusted-proxy address; its tenant header will be ignored");
            None
        }
    };
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .local_address(local)
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
