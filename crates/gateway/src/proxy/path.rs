//! The request target: the one host a request names and its path with dot-segments resolved.
//! Routing and forwarding both use this path, so `/a/../admin` cannot take the policies of
//! `/a/` and still reach `/admin` upstream.

use std::borrow::Cow;

use http::Uri;
use http::header::{self, HeaderMap};

use super::Reject;

/// Where a request goes: its host and normalised path, borrowed from the request head where
/// they can be.
#[derive(Debug)]
pub struct Target<'u> {
    pub host: String,
    pub path: Cow<'u, str>,
}

impl<'u> Target<'u> {
    /// Read the target of a request whose URI is `uri`: two Host headers could route by one
    /// and reach the upstream with the other (RFC 9112, section 3.2: answer 400), and a path
    /// that is not absolute is refused.
    pub fn read(headers: &HeaderMap, uri: &'u Uri) -> Result<Self, Reject<'static>> {
        let mut hosts = headers.get_all(header::HOST).iter();
        if hosts.next().is_some() && hosts.next().is_some() {
            return Err(Reject::DuplicateHost);
        }
        let host = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let path = normalize_path(uri.path()).ok_or(Reject::BadRequestTarget)?;
        Ok(Target { host, path })
    }
}

/// Resolve `.` and `..` segments (also percent-encoded) as RFC 3986 section 5.2.4 does.
/// `None` for a path that is not absolute.
pub fn normalize_path(path: &str) -> Option<Cow<'_, str>> {
    if !path.starts_with('/') {
        return (path == "*").then_some(Cow::Borrowed("/"));
    }
    let dotty = |seg: &str| {
        let lower = seg.to_ascii_lowercase().replace("%2e", ".");
        match lower.as_str() {
            "." => Some(false),
            ".." => Some(true),
            _ => None,
        }
    };
    let suspicious = path.contains("/.") || path.to_ascii_lowercase().contains("/%2e");
    if !suspicious {
        return Some(Cow::Borrowed(path));
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        match dotty(seg) {
            Some(up) => {
                if up {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            None => out.push(seg),
        }
    }
    Some(Cow::Owned(format!("/{}", out.join("/"))))
}

#[cfg(test)]
mod tests {
    use super::normalize_path;

    #[test]
    fn dot_segments_are_resolved() {
        for (input, want) in [
            ("/a/b", "/a/b"),
            ("/public/../admin/x", "/admin/x"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E%2e/admin", "/admin"),
            ("/a/./b/.", "/a/b/"),
            ("/../../etc", "/etc"),
            ("/a/..", "/"),
            ("/a/b/../", "/a/"),
            ("/.well-known/x", "/.well-known/x"),
            ("/a/.hidden", "/a/.hidden"),
            ("/", "/"),
        ] {
            assert_eq!(normalize_path(input).unwrap(), want, "{input}");
        }
        assert!(normalize_path("relative").is_none());
    }
}
