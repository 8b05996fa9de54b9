//! The request target, decided once before routing: the canonical host and path of a request
//! ([`rampart_model::paths`] decides both). Routing, policies, samples and the request
//! forwarded upstream all use this target, so what was checked is what is forwarded:
//! `/public/../admin`, `/%61dmin` or `//admin` cannot take the policies of another route and
//! still reach `/admin` upstream.

use std::borrow::Cow;
use std::ops::Range;

use http::header::{self, HeaderMap};
use http::{Uri, Version};
use rampart_model::paths::{PathSettings, checked_authority, normalize_path};

use super::Reject;

/// Where a request goes: its canonical host (and port) and path. The path is borrowed from
/// the request head when it was already canonical.
#[derive(Debug)]
pub struct Target<'u> {
    /// The canonical host and the port the client named, if any (`jira.example.com:8443`,
    /// `[::1]:80`): the `Host` the upstream gets.
    authority: String,
    /// The host within `authority`: lowercase, no port, no trailing dot, no brackets.
    host: Range<usize>,
    pub path: Cow<'u, str>,
    /// The path had escaped slashes decoded under `decode_and_redirect`: answer 307.
    pub redirect: bool,
}

impl<'u> Target<'u> {
    /// Read the target of a request. Refused with 400: two `Host` headers (one could route
    /// and the other reach the upstream, RFC 9112 section 3.2); a host that is not a host; an
    /// HTTP/2 `Host` that disagrees with `:authority` (RFC 9113 section 8.3.1); a path that
    /// has no canonical form. An absolute-form target's authority wins over `Host` (RFC 9112
    /// section 3.2.2).
    pub fn read(
        version: Version,
        headers: &HeaderMap,
        uri: &'u Uri,
        settings: &PathSettings,
    ) -> Result<Self, Reject<'static>> {
        let mut hosts = headers.get_all(header::HOST).iter();
        let host_header = match (hosts.next(), hosts.next()) {
            (Some(_), Some(_)) => return Err(Reject::DuplicateHost),
            (Some(h), None) => Some(h.to_str().map_err(|_| Reject::BadHost)?),
            (None, _) => None,
        };
        let named = match (uri.authority(), host_header) {
            (Some(a), Some(h)) if version == Version::HTTP_2 => {
                let canonical = |s| checked_authority(s).map_err(|_| Reject::BadHost);
                if canonical(a.as_str())? != canonical(h)? {
                    return Err(Reject::HostMismatch);
                }
                a.as_str()
            }
            (Some(a), _) => a.as_str(),
            (None, h) => h.unwrap_or_default(),
        };
        let (host, port) = checked_authority(named).map_err(|_| Reject::BadHost)?;
        let normalized = normalize_path(uri.path(), settings).map_err(Reject::BadPath)?;
        let bracketed = host.contains(':');
        let start = usize::from(bracketed);
        let host_range = start..start + host.len();
        let authority = match (bracketed, port) {
            (false, None) => host.into_owned(),
            (false, Some(p)) => format!("{host}:{p}"),
            (true, None) => format!("[{host}]"),
            (true, Some(p)) => format!("[{host}]:{p}"),
        };
        Ok(Target {
            authority,
            host: host_range,
            path: normalized.path,
            redirect: normalized.redirect,
        })
    }

    /// The canonical host: what routes match.
    pub fn host(&self) -> &str {
        &self.authority[self.host.clone()]
    }

    /// The canonical host and the client's port: the `Host` sent upstream.
    pub fn authority(&self) -> &str {
        &self.authority
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn read(
        version: Version,
        hosts: &[&str],
        target: &str,
    ) -> Result<(String, String, String), &'static str> {
        let mut headers = HeaderMap::new();
        for h in hosts {
            headers.append(header::HOST, HeaderValue::from_str(h).unwrap());
        }
        let uri: Uri = target.parse().unwrap();
        Target::read(version, &headers, &uri, &PathSettings::default())
            .map(|t| {
                (
                    t.host().to_owned(),
                    t.authority().to_owned(),
                    t.path.into_owned(),
                )
            })
            .map_err(|r| r.code())
    }

    #[test]
    fn host_is_canonical_and_forwarded_with_its_port() {
        let h1 = Version::HTTP_11;
        let ok = |h: &str, a: &str, p: &str| Ok((h.to_owned(), a.to_owned(), p.to_owned()));
        assert_eq!(
            read(h1, &["Jira.Example.COM."], "/a"),
            ok("jira.example.com", "jira.example.com", "/a")
        );
        assert_eq!(
            read(h1, &["jira.example.com:8443"], "/a"),
            ok("jira.example.com", "jira.example.com:8443", "/a")
        );
        assert_eq!(read(h1, &["[::1]:8080"], "/"), ok("::1", "[::1]:8080", "/"));
        assert_eq!(read(h1, &["[::1]"], "/"), ok("::1", "[::1]", "/"));
        assert_eq!(read(h1, &[], "/"), ok("", "", "/"));
        // Absolute form: the target's authority wins over Host.
        assert_eq!(
            read(
                h1,
                &["evil.example.com"],
                "http://JIRA.example.com./rest/%61pi"
            ),
            ok("jira.example.com", "jira.example.com", "/rest/api")
        );
        assert_eq!(read(h1, &["a", "b"], "/"), Err("duplicate_host"));
        assert_eq!(read(h1, &["a", "a"], "/"), Err("duplicate_host"));
        assert_eq!(read(h1, &["user@a.com"], "/"), Err("bad_host"));
        assert_eq!(read(h1, &["a..com"], "/"), Err("bad_host"));
        assert_eq!(read(h1, &["a.com"], "http://user@a.com/"), Err("bad_host"));
        assert_eq!(read(h1, &["a.com"], "/a%2fb"), Err("escaped_slash"));
        assert_eq!(
            read(h1, &["a.com"], "/a%zz"),
            Err("invalid_percent_encoding")
        );
    }

    #[test]
    fn http2_host_must_agree_with_authority() {
        let h2 = Version::HTTP_2;
        assert_eq!(read(h2, &[], "http://a.com/x").unwrap().0, "a.com");
        assert_eq!(read(h2, &["A.com."], "http://a.com/x").unwrap().0, "a.com");
        assert_eq!(read(h2, &["b.com"], "http://a.com/x"), Err("host_mismatch"));
        assert_eq!(
            read(h2, &["a.com:81"], "http://a.com/x"),
            Err("host_mismatch")
        );
        assert_eq!(
            read(h2, &["a.com"], "http://a.com:443/x"),
            Err("host_mismatch")
        );
        // Without :authority, Host names the host.
        assert_eq!(read(h2, &["b.com"], "/x").unwrap().0, "b.com");
    }

    #[test]
    fn a_canonical_path_is_not_copied() {
        let uri: Uri = "/rest/api/2/issue?x=1".parse().unwrap();
        let t = Target::read(
            Version::HTTP_11,
            &HeaderMap::new(),
            &uri,
            &PathSettings::default(),
        )
        .unwrap();
        assert!(matches!(t.path, Cow::Borrowed(_)));
    }
}
