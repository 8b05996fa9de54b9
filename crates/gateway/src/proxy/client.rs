//! Who the client is, decided once, before evaluation ([`Client::read`]):
//!
//! - **Its address.** When the peer is not in `settings.trusted_proxies`, the peer is the
//!   client and any `X-Forwarded-For` it sent is not believed. When it is, the gateway walks
//!   `X-Forwarded-For` (every field, in order, as one list) from the right, skipping trusted
//!   addresses; the first untrusted one is the client (the rightmost-untrusted rule). An entry
//!   that is not an address (`unknown`, garbage, an empty entry), or a walk longer than
//!   [`MAX_HOPS`], stops the walk: the last address believed (a trusted hop, or the peer) is
//!   then the client. Entries may be IPv4, IPv6, `[IPv6]:port` or `IPv4:port`.
//! - **What goes upstream in `X-Forwarded-For`**: the believed part of the chain (from the
//!   client to the right end) and then the peer. Entries left of the client, which nobody
//!   trusted vouched for, are dropped; a client's own `X-Forwarded-For` is replaced.
//! - **A tenant a trusted proxy asserts**: with `settings.tenant.from_trusted_proxy` on, the
//!   tenant header a trusted peer sends is the request's tenant before credentials are read.
//!   In every other case the tenant header is removed before evaluation, so neither policies
//!   nor flags nor the upstream see a client's own.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use http::header::HeaderName;
use ipnet::IpNet;
use rampart_model::config::Settings;

use super::headers::X_FORWARDED_FOR;
use super::reject::Reject;

/// The most `X-Forwarded-For` entries the walk reads.
pub const MAX_HOPS: usize = 32;
/// The longest tenant a trusted proxy may assert, in bytes.
pub const MAX_TENANT_BYTES: usize = 256;

/// What a snapshot says about trust, parsed once per snapshot.
#[derive(Debug, Default)]
pub struct Trust {
    proxies: Box<[IpNet]>,
    /// The tenant header: removed from every request, set upstream to the established tenant.
    pub tenant_header: Option<HeaderName>,
    tenant_from_proxy: bool,
}

impl Trust {
    pub fn new(settings: &Settings) -> Self {
        Trust {
            proxies: settings.trusted_proxies.clone().into(),
            tenant_header: HeaderName::from_bytes(settings.tenant_header.as_bytes()).ok(),
            tenant_from_proxy: settings.tenant.from_trusted_proxy,
        }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.proxies.iter().any(|n| n.contains(&ip))
    }
}

/// The client of one request, as the gateway decided it.
#[derive(Debug)]
pub struct Client {
    /// The address policies, limits, flags, hashing and samples use.
    pub ip: IpAddr,
    /// The `X-Forwarded-For` value for the upstream.
    pub forwarded_for: String,
    /// The tenant a trusted proxy asserted, if it may.
    pub proxy_tenant: Option<String>,
}

impl Client {
    /// Decide the client of a request from `peer`, and take the tenant header out of
    /// `headers`. A trusted proxy that asserts a tenant badly (twice, empty, not visible
    /// ASCII, too long) gets 400.
    pub fn read(
        peer: SocketAddr,
        headers: &mut HeaderMap,
        trust: &Trust,
    ) -> Result<Client, Reject<'static>> {
        let peer = peer.ip().to_canonical();
        let trusted_peer = trust.trusts(peer);
        let proxy_tenant = match &trust.tenant_header {
            Some(name) => take_tenant(headers, name, trusted_peer && trust.tenant_from_proxy)?,
            None => None,
        };
        let mut believed: Vec<IpAddr> = Vec::new();
        let mut ip = peer;
        if trusted_peer {
            for entry in entries(headers).take(MAX_HOPS) {
                let Some(hop) = parse_entry(entry) else { break };
                believed.push(hop);
                ip = hop;
                if !trust.trusts(hop) {
                    break;
                }
            }
        }
        let mut forwarded_for = String::with_capacity(16 * (believed.len() + 1));
        for hop in believed.iter().rev().chain(std::iter::once(&peer)) {
            if !forwarded_for.is_empty() {
                forwarded_for.push_str(", ");
            }
            forwarded_for.push_str(&crate::server::ip_text(*hop));
        }
        Ok(Client {
            ip,
            forwarded_for,
            proxy_tenant,
        })
    }
}

/// Remove every tenant header; return its value when it may be believed.
fn take_tenant(
    headers: &mut HeaderMap,
    name: &HeaderName,
    believe: bool,
) -> Result<Option<String>, Reject<'static>> {
    if !headers.contains_key(name) {
        return Ok(None);
    }
    let count = headers.get_all(name).iter().count();
    let first = headers.remove(name);
    if !believe {
        return Ok(None);
    }
    let value = first
        .filter(|_| count == 1)
        .and_then(|v| v.to_str().ok().map(str::to_owned))
        .filter(|v| {
            !v.is_empty() && v.len() <= MAX_TENANT_BYTES && v.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or(Reject::BadTenantHeader)?;
    Ok(Some(value))
}

/// The `X-Forwarded-For` entries, rightmost first, over every field. A field that is not
/// visible ASCII counts as one malformed entry.
fn entries(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .rev()
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").rsplit(','))
}

/// One entry: an address, optionally with a port (`[v6]:port`, `v4:port`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let e = entry.trim_matches([' ', '\t']);
    if let Ok(ip) = e.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    e.parse::<SocketAddr>().ok().map(|s| s.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn trust(nets: &[&str], from_proxy: bool) -> Trust {
        Trust::new(&Settings {
            trusted_proxies: nets.iter().map(|n| n.parse().unwrap()).collect(),
            tenant: rampart_model::identity::TenantSettings {
                from_trusted_proxy: from_proxy,
            },
            ..Settings::default()
        })
    }

    fn read(peer: &str, xff: &[&str], tenant: &[&str], t: &Trust) -> Result<Client, String> {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        for v in tenant {
            h.append("x-tenant-id", HeaderValue::from_str(v).unwrap());
        }
        let peer: SocketAddr = if peer.contains('[') {
            peer.parse().unwrap()
        } else {
            format!("{peer}:4000").parse().unwrap()
        };
        let c = Client::read(peer, &mut h, t).map_err(|r| r.code().to_owned())?;
        assert!(
            !h.contains_key("x-tenant-id"),
            "the tenant header is always removed"
        );
        Ok(c)
    }

    fn ip(c: &Client) -> String {
        c.ip.to_string()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let t = trust(&["10.0.0.0/8"], true);
        let c = read("203.0.113.5", &["1.2.3.4", "10.0.0.1"], &["acme"], &t).unwrap();
        assert_eq!(ip(&c), "203.0.113.5");
        assert_eq!(c.forwarded_for, "203.0.113.5");
        assert_eq!(c.proxy_tenant, None);
        // No proxies trusted at all: the same.
        let c = read("10.0.0.1", &["1.2.3.4"], &["acme"], &trust(&[], false)).unwrap();
        assert_eq!(
            (ip(&c), c.forwarded_for.as_str()),
            ("10.0.0.1".into(), "10.0.0.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_entry_is_the_client() {
        let t = trust(&["10.0.0.0/8", "fd00::/8"], false);
        // The client forged the first two entries; the load balancers appended the rest.
        let c = read(
            "10.0.0.2",
            &["6.6.6.6, 7.7.7.7", "198.51.100.7, 10.1.1.1"],
            &[],
            &t,
        )
        .unwrap();
        assert_eq!(ip(&c), "198.51.100.7");
        assert_eq!(c.forwarded_for, "198.51.100.7, 10.1.1.1, 10.0.0.2");
        // Every entry trusted: the leftmost is the client.
        let c = read("10.0.0.2", &["10.9.9.9, 10.1.1.1"], &[], &t).unwrap();
        assert_eq!(ip(&c), "10.9.9.9");
        // IPv6, ports, brackets, IPv4-mapped peers.
        let c = read(
            "[::ffff:10.0.0.2]:80",
            &["[2001:db8::1]:443, fd00::1"],
            &[],
            &t,
        )
        .unwrap();
        assert_eq!(ip(&c), "2001:db8::1");
        assert_eq!(c.forwarded_for, "2001:db8::1, fd00::1, 10.0.0.2");
        let c = read("10.0.0.2", &["198.51.100.7:5000"], &[], &t).unwrap();
        assert_eq!(ip(&c), "198.51.100.7");
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_trusted_hop() {
        let t = trust(&["10.0.0.0/8"], false);
        for xff in [
            "unknown",
            "198.51.100.7, garbage",
            "198.51.100.7,,",
            "198.51.100.7, 10.0.0.9 10.0.0.8",
            "198.51.100.7, _hidden",
            "198.51.100.7, 300.1.1.1",
            "198.51.100.7, [::1",
            "",
        ] {
            let c = read("10.0.0.2", &[xff], &[], &t).unwrap();
            assert_eq!(ip(&c), "10.0.0.2", "{xff:?}");
            assert_eq!(c.forwarded_for, "10.0.0.2", "{xff:?}");
        }
        let c = read(
            "10.0.0.2",
            &["198.51.100.7, 10.0.0.3, junk, 10.0.0.4"],
            &[],
            &t,
        )
        .unwrap();
        assert_eq!(ip(&c), "10.0.0.4");
        assert_eq!(c.forwarded_for, "10.0.0.4, 10.0.0.2");
    }

    #[test]
    fn huge_and_duplicated_forwarded_for_is_bounded() {
        let t = trust(&["10.0.0.0/8"], false);
        let many = vec!["10.0.0.7"; 5000].join(", ");
        let c = read("10.0.0.2", &[&many, &many], &[], &t).unwrap();
        assert_eq!(ip(&c), "10.0.0.7");
        assert_eq!(c.forwarded_for.matches(", ").count(), MAX_HOPS);
        // A forged client far to the left never wins over the believed one.
        let forged = format!("6.6.6.6, {many}");
        let c = read("10.0.0.2", &[&forged], &[], &t).unwrap();
        assert_eq!(ip(&c), "10.0.0.7");
    }

    #[test]
    fn only_a_trusted_proxy_may_assert_the_tenant_and_only_once() {
        let t = trust(&["10.0.0.0/8"], true);
        let c = read("10.0.0.2", &[], &["acme"], &t).unwrap();
        assert_eq!(c.proxy_tenant.as_deref(), Some("acme"));
        for bad in [
            &["acme", "globex"][..],
            &[""],
            &["a b"],
            &[&*"x".repeat(300)],
        ] {
            assert_eq!(
                read("10.0.0.2", &[], bad, &t).unwrap_err(),
                "bad_tenant_header",
                "{bad:?}"
            );
        }
        // Not believed from a client, even duplicated or empty: removed, not refused.
        for sent in [&["acme", "globex"][..], &[""], &["acme"]] {
            let c = read("198.51.100.7", &[], sent, &t).unwrap();
            assert_eq!(c.proxy_tenant, None);
        }
        // Trusted proxy, but the setting is off.
        let c = read("10.0.0.2", &[], &["acme"], &trust(&["10.0.0.0/8"], false)).unwrap();
        assert_eq!(c.proxy_tenant, None);
    }
}
