//! Route precedence: which route wins when several match a request.
//!
//! The order is computed from the routes themselves, never from where they are written or
//! stored, so a gateway reading a fleet file and a gateway fed by the control plane (whose
//! store keeps objects by name) route every request alike. Like the Kubernetes Gateway API's
//! HTTPRoute precedence, the more specific route wins. Comparing two routes, the first
//! criterion that differs decides:
//!
//! 1. a higher `priority` (default 0);
//! 2. the host: an exact host, then a wildcard (`*.example.com`; a longer suffix first), then
//!    no host;
//! 3. the path: an exact path, then a prefix; a longer path first;
//! 4. a method constraint before none, and fewer methods before more;
//! 5. more header matches before fewer;
//! 6. the route id, in byte order.
//!
//! Route ids are unique, so this is a total order: any permutation of the same routes gives
//! the same order, hence the same decisions.

use std::cmp::{Ordering, Reverse};

use rampart_model::config::{PathMatch, Route};

/// The sort key of a route: smaller sorts first, wins first.
fn key(r: &Route) -> impl Ord + '_ {
    let m = &r.matcher;
    let host = match m.host.as_deref() {
        Some(h) if h.starts_with('*') => (1, Reverse(h.len())),
        Some(h) => (0, Reverse(h.len())),
        None => (2, Reverse(0)),
    };
    let path = match &m.path {
        PathMatch::Exact(p) => (0, Reverse(p.len())),
        PathMatch::Prefix(p) => (1, Reverse(p.len())),
    };
    let methods = match m.methods.len() {
        0 => usize::MAX,
        n => n,
    };
    (
        Reverse(r.priority),
        host,
        path,
        methods,
        Reverse(m.headers.len()),
        r.id.as_bytes(),
    )
}

/// How two routes compare: `Less` when `a` takes precedence over `b`.
pub fn compare(a: &Route, b: &Route) -> Ordering {
    key(a).cmp(&key(b))
}

/// The indices of `routes`, highest precedence first: the order in which routes are tried.
pub fn order(routes: &[Route]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..routes.len()).collect();
    idx.sort_by(|&a, &b| compare(&routes[a], &routes[b]));
    idx
}

/// The route ids in precedence order.
pub fn ordered_ids(routes: &[Route]) -> Vec<&str> {
    order(routes)
        .into_iter()
        .map(|i| routes[i].id.as_str())
        .collect()
}

/// Whether one request could match both routes. Header matches are taken to be satisfiable
/// together, so this can say yes for routes that never share a request; never the reverse.
pub fn may_overlap(a: &Route, b: &Route) -> bool {
    let (a, b) = (&a.matcher, &b.matcher);
    let hosts = match (a.host.as_deref(), b.host.as_deref()) {
        (None, _) | (_, None) => true,
        (Some(x), Some(y)) => match (x.strip_prefix('*'), y.strip_prefix('*')) {
            (None, None) => x == y,
            (Some(s), None) => y.len() > s.len() && y.ends_with(s),
            (None, Some(s)) => x.len() > s.len() && x.ends_with(s),
            (Some(s), Some(t)) => s.ends_with(t) || t.ends_with(s),
        },
    };
    let paths = match (&a.path, &b.path) {
        (PathMatch::Exact(x), PathMatch::Exact(y)) => x == y,
        (PathMatch::Exact(e), PathMatch::Prefix(p))
        | (PathMatch::Prefix(p), PathMatch::Exact(e)) => e.starts_with(p.as_str()),
        (PathMatch::Prefix(x), PathMatch::Prefix(y)) => {
            x.starts_with(y.as_str()) || y.starts_with(x.as_str())
        }
    };
    let methods = a.methods.is_empty()
        || b.methods.is_empty()
        || a.methods.iter().any(|m| b.methods.contains(m));
    hosts && paths && methods
}

/// Pairs of routes that may match the same request where precedence disagrees with the order
/// in which they are listed: `(listed first, wins)`. Where a fleet was written for
/// "first match in file order", these are the requests whose route changes; an explicit
/// `priority` on the first restores it.
pub fn inversions(routes: &[Route]) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    for (i, a) in routes.iter().enumerate() {
        for b in &routes[i + 1..] {
            if compare(b, a) == Ordering::Less && may_overlap(a, b) {
                out.push((a.id.as_str(), b.id.as_str()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use rampart_model::config::{Method, RouteMatch};

    use super::*;

    fn route(id: &str, host: Option<&str>, path: PathMatch) -> Route {
        Route {
            id: id.into(),
            product: "p".into(),
            matcher: RouteMatch {
                host: host.map(Into::into),
                path,
                methods: vec![],
                headers: vec![],
                path_case: Default::default(),
            },
            upstream: "u".into(),
            policies: vec![],
            priority: 0,
            max_body_bytes: None,
        }
    }

    fn prefix(p: &str) -> PathMatch {
        PathMatch::Prefix(p.into())
    }

    #[test]
    fn each_criterion_in_turn() {
        let mut any = route("a-any", None, prefix("/"));
        let exact_host = route("z-host", Some("x.example.com"), prefix("/"));
        let wild = route("y-wild", Some("*.example.com"), prefix("/"));
        let longer_wild = route("y-wild2", Some("*.x.example.com"), prefix("/"));
        assert_eq!(
            ordered_ids(&[any.clone(), wild.clone(), longer_wild, exact_host.clone()]),
            ["z-host", "y-wild2", "y-wild", "a-any"]
        );
        any.priority = 1;
        assert_eq!(
            ordered_ids(&[wild, exact_host, any]),
            ["a-any", "z-host", "y-wild"]
        );

        let exact = route("z-exact", None, PathMatch::Exact("/a".into()));
        let long = route("y-long", None, prefix("/api/v2/"));
        let short = route("x-short", None, prefix("/api/"));
        assert_eq!(
            ordered_ids(&[short, long, exact]),
            ["z-exact", "y-long", "x-short"]
        );

        let mut get = route("z-get", None, prefix("/"));
        get.matcher.methods = vec![Method::Get];
        let mut two = route("y-two", None, prefix("/"));
        two.matcher.methods = vec![Method::Get, Method::Post];
        let mut header = route("w-header", None, prefix("/"));
        header.matcher.headers = vec![rampart_model::config::HeaderMatch {
            name: "x".into(),
            value: rampart_model::config::ValueMatch::Present,
        }];
        let plain = route("v-plain", None, prefix("/"));
        assert_eq!(
            ordered_ids(&[plain, header, two, get]),
            ["z-get", "y-two", "w-header", "v-plain"]
        );
    }

    #[test]
    fn overlaps() {
        let r = |id: &str, host: Option<&str>, path: PathMatch, methods: Vec<Method>| {
            let mut r = route(id, host, path);
            r.matcher.methods = methods;
            r
        };
        let p = prefix;
        let e = |s: &str| PathMatch::Exact(s.into());
        let yes = [
            (
                r("a", None, p("/a/"), vec![]),
                r("b", Some("h"), p("/"), vec![]),
            ),
            (
                r("a", Some("x.h.com"), p("/"), vec![]),
                r("b", Some("*.h.com"), p("/"), vec![]),
            ),
            (
                r("a", Some("*.x.h.com"), p("/"), vec![]),
                r("b", Some("*.h.com"), p("/"), vec![]),
            ),
            (
                r("a", None, e("/a/b"), vec![]),
                r("b", None, p("/a/"), vec![]),
            ),
            (
                r("a", None, p("/"), vec![Method::Get]),
                r("b", None, p("/"), vec![Method::Get, Method::Put]),
            ),
        ];
        for (a, b) in &yes {
            assert!(may_overlap(a, b) && may_overlap(b, a), "{a:?} {b:?}");
        }
        let no = [
            (
                r("a", Some("h.com"), p("/"), vec![]),
                r("b", Some("*.h.com"), p("/"), vec![]),
            ),
            (
                r("a", Some("g.com"), p("/"), vec![]),
                r("b", Some("h.com"), p("/"), vec![]),
            ),
            (
                r("a", None, p("/a/"), vec![]),
                r("b", None, p("/b/"), vec![]),
            ),
            (
                r("a", None, e("/a"), vec![]),
                r("b", None, e("/a/"), vec![]),
            ),
            (
                r("a", None, p("/"), vec![Method::Get]),
                r("b", None, p("/"), vec![Method::Put]),
            ),
        ];
        for (a, b) in &no {
            assert!(!may_overlap(a, b) && !may_overlap(b, a), "{a:?} {b:?}");
        }
        // Listed general-first: the specific one now wins, and that is reported.
        let general = r("general", None, p("/"), vec![]);
        let specific = r("specific", None, p("/api/"), vec![]);
        let other = r("other", None, p("/other/"), vec![]);
        assert_eq!(
            inversions(&[general.clone(), specific.clone(), other.clone()]),
            [("general", "specific"), ("general", "other")]
        );
        assert!(inversions(&[specific, other, general]).is_empty());
    }

    #[test]
    fn ties_fall_to_the_id_and_negative_priorities_sink() {
        let b = route("b", None, prefix("/"));
        let a = route("a", None, prefix("/"));
        let mut low = route("0-low", None, prefix("/"));
        low.priority = -1;
        assert_eq!(ordered_ids(&[low, b, a]), ["a", "b", "0-low"]);
    }
}
