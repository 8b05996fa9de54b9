//! Every header name the gateway reads or writes on the request path, and the edits it makes:
//! hop-by-hop stripping, the forwarding headers, cookie joining and policy header edits.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Version, request};
use rampart_eval::{HeaderEdit, Headers};

/// Marks a response the gateway produced itself (value [`GATEWAY`]).
pub const X_RAMPART_ORIGIN: HeaderName = HeaderName::from_static("x-rampart-origin");
/// Why the gateway refused or failed a request (see [`super::Reject`]).
pub const X_RAMPART_ERROR: HeaderName = HeaderName::from_static("x-rampart-error");
/// `tenant` on a 429 whose bucket is the tenant's.
pub const X_RATELIMIT_SCOPE: HeaderName = HeaderName::from_static("x-ratelimit-scope");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The value of [`X_RAMPART_ORIGIN`].
pub const GATEWAY: HeaderValue = HeaderValue::from_static("gateway");

/// Headers that describe one connection, never forwarded (RFC 9110, section 7.6.1).
pub const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Request headers, as `eval` reads them.
#[derive(Debug)]
pub struct HeaderView<'a>(pub &'a HeaderMap);

impl Headers for HeaderView<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Remove the hop-by-hop headers, those the `Connection` header lists, and
/// `Transfer-Encoding` (hyper frames each hop itself).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of them: one pass over the names (standard names compare as
    // integers) is cheaper than a hash lookup for each of the nine.
    let any = headers
        .keys()
        .any(|n| *n == header::TRANSFER_ENCODING || HOP_BY_HOP.contains(n));
    if !any {
        return;
    }
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&listed) {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// Only the gateway says a response is its own: drop what an upstream claims.
pub fn strip_gateway_marks(headers: &mut HeaderMap) {
    headers.remove(X_RAMPART_ORIGIN);
    headers.remove(X_RAMPART_ERROR);
}

/// A header edit with parsed names and values.
#[derive(Debug)]
pub enum Edit {
    Set(HeaderName, HeaderValue),
    Remove(HeaderName),
}

/// Parse a decision's edits; an edit whose name or value is not valid is dropped.
pub fn edits(list: &[HeaderEdit<'_>]) -> Vec<Edit> {
    list.iter()
        .filter_map(|e| match e {
            HeaderEdit::Set(n, v) => Some(Edit::Set(
                HeaderName::from_bytes(n.as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            )),
            HeaderEdit::Remove(n) => HeaderName::from_bytes(n.as_bytes()).ok().map(Edit::Remove),
        })
        .collect()
}

/// Apply parsed edits, in order.
pub fn apply(edits: &[Edit], headers: &mut HeaderMap) {
    for e in edits {
        match e {
            Edit::Set(n, v) => {
                headers.insert(n.clone(), v.clone());
            }
            Edit::Remove(n) => {
                headers.remove(n);
            }
        }
    }
}

/// The headers of a request about to go upstream: hop-by-hop ones stripped, the forwarding
/// headers set (`X-Forwarded-For` replaced by the believed chain, see [`super::client`]), the
/// tenant set and the policy edits applied.
pub fn upstream_request(
    parts: &mut request::Parts,
    forwarded_for: &str,
    tls: bool,
    host: &str,
    tenant: Option<&(HeaderName, HeaderValue)>,
    edits: &[Edit],
) {
    let headers = &mut parts.headers;
    strip_hop_by_hop(headers);
    match HeaderValue::from_str(forwarded_for) {
        Ok(v) => {
            headers.insert(X_FORWARDED_FOR, v);
        }
        Err(_) => {
            headers.remove(X_FORWARDED_FOR);
        }
    }
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    );
    if let Ok(v) = HeaderValue::from_str(host) {
        headers.insert(X_FORWARDED_HOST, v.clone());
        headers.insert(header::HOST, v);
    }
    if parts.version == Version::HTTP_2 {
        join_cookies(headers);
    }
    if let Some((name, value)) = tenant {
        headers.insert(name.clone(), value.clone());
    }
    apply(edits, headers);
}

/// HTTP/2 lets clients split cookies over several fields; HTTP/1.1 upstreams need one
/// (RFC 9113, section 8.2.3).
fn join_cookies(headers: &mut HeaderMap) {
    let values: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    if values.len() > 1
        && let Ok(v) = HeaderValue::from_str(&values.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}
