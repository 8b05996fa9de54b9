//! What `eval` needs to know about a request: [`RequestMeta`].

use std::fmt;
use std::net::IpAddr;

use rampart_model::GatewayIdentity;

/// Read access to request headers. Names are compared case-insensitively.
pub trait Headers {
    /// The first value of header `name` (given in lowercase), if present.
    fn get(&self, name: &str) -> Option<&str>;
}

/// Headers as a borrowed list of `(name, value)` pairs.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeaderList<'a>(pub &'a [(&'a str, &'a str)]);

/// Header-name equality: exact bytes first (names are usually lowercase already), then
/// ignoring ASCII case.
#[inline]
fn same_name(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.as_bytes().first().map(u8::to_ascii_lowercase)
            == b.as_bytes().first().map(u8::to_ascii_lowercase)
        && (a.as_bytes() == b.as_bytes() || a.eq_ignore_ascii_case(b))
}

impl Headers for HeaderList<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| same_name(n, name))
            .map(|(_, v)| *v)
    }
}

impl Headers for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| same_name(n, name))
            .map(|(_, v)| v.as_str())
    }
}

/// The metadata of one request, as a gateway sees it (or as a sample replays it).
#[derive(Clone, Copy)]
pub struct RequestMeta<'a> {
    /// The method token, such as `GET`.
    pub method: &'a str,
    /// The `Host` (or `:authority`); a port and letter case are ignored.
    pub host: &'a str,
    /// The path, without the query string.
    pub path: &'a str,
    /// The client's address as the gateway decided it (the peer, or the rightmost untrusted
    /// `X-Forwarded-For` entry when the peer is a trusted proxy).
    pub client_ip: IpAddr,
    /// The request's headers, without the tenant header (a client's own is removed before
    /// evaluation). Everything here is client-controlled.
    pub headers: &'a dyn Headers,
    /// The tenant established before evaluation by a declared source: a trusted proxy's
    /// tenant header, or a credential [`crate::Evaluator::identify`] resolved. An API key
    /// that names a tenant overrides it.
    pub tenant: Option<&'a str>,
    /// Wall-clock time, in milliseconds since the Unix epoch (JWT `exp` and `nbf`).
    pub now_ms: u64,
    /// Extra context attributes, read by `attr.<name>` in flag rules.
    pub attributes: &'a [(&'a str, &'a str)],
    /// The gateway evaluating the request.
    pub gateway: &'a GatewayIdentity,
}

impl fmt::Debug for RequestMeta<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestMeta")
            .field("method", &self.method)
            .field("host", &self.host)
            .field("path", &self.path)
            .field("client_ip", &self.client_ip)
            .field("tenant", &self.tenant)
            .field("gateway", &self.gateway.id)
            .finish_non_exhaustive()
    }
}
