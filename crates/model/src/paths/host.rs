//! The canonical host of a request: lowercase, without its port or a trailing dot.

use std::borrow::Cow;

/// A `Host` (or `:authority`) that names no host a route could match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a host with an optional port")]
pub struct HostError(pub String);

/// Split an authority into its host and port: `[::1]:8080` is `[::1]` and `8080`, `a.com` is
/// `a.com` and none. A part after `:` that is not all digits stays in the host, and so does
/// everything in a bare IPv6 address (`::1`, more than one `:` and no brackets): it has no
/// port, which keeps [`normalize_host`] a fixed point on its own output.
pub fn split_port(authority: &str) -> (&str, Option<&str>) {
    if !authority.starts_with('[') && authority.bytes().filter(|&b| b == b':').count() > 1 {
        return (authority, None);
    }
    if authority.starts_with('[') {
        return match authority.split_once(']') {
            Some((h, rest)) => (
                &authority[..h.len() + 1],
                rest.strip_prefix(':')
                    .filter(|p| p.bytes().all(|b| b.is_ascii_digit())),
            ),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (h, Some(port)),
        _ => (authority, None),
    }
}

/// The host an authority names, as routes compare it: without a port (or the brackets of an
/// IPv6 literal) or a trailing dot, in lowercase. Borrowed when nothing changes. This is the
/// one place that decides it: the gateway's request target and the evaluator both call it.
pub fn normalize_host(authority: &str) -> Cow<'_, str> {
    let (host, _) = split_port(authority);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// Check an authority from a request (`Host`, `:authority` or an absolute-form target) and
/// return its canonical host ([`normalize_host`]) and port. A name is letters, digits, `-`,
/// `_` and dots between non-empty labels (one trailing dot allowed); an IPv6 literal is in
/// brackets; a port is 1 to 5 digits. User info, empty labels and any other byte are errors.
pub fn checked_authority(authority: &str) -> Result<(Cow<'_, str>, Option<&str>), HostError> {
    let bad = || HostError(authority.chars().take(256).collect());
    let (host, port) = split_port(authority);
    if port.is_some_and(|p| p.is_empty() || p.len() > 5) {
        return Err(bad());
    }
    let ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        let name = host.strip_suffix('.').unwrap_or(host);
        host.len() <= 255
            && (name.is_empty() && host.is_empty()
                || name.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                }))
    };
    if !ok {
        return Err(bad());
    }
    Ok((normalize_host(authority), port))
}
