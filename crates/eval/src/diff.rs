//! Comparing two decisions for the same request: [`classify`].
//!
//! The impact test (control plane) and the shadow stage (gateways) both decide a request with
//! the baseline and with a candidate, and count how the outcome changed. This module is the one
//! definition of "changed", so both agree.
//!
//! A request is *admitted* when it took a route and its outcome either forwards it upstream
//! ([`Outcome::Allow`]) or answers it from the gateway with a status below 400
//! ([`Outcome::Static`]); it is *denied* otherwise: any [`Outcome::Deny`] (including no route),
//! or a static response with a status of 400 or more. The classes, most severe first:
//!
//! 1. [`ImpactClass::AllowedToDenied`]: the baseline admits, the candidate denies;
//! 2. [`ImpactClass::DeniedToAllowed`]: the baseline denies, the candidate admits;
//! 3. [`ImpactClass::RouteChanged`]: both admit, through another route id or to another
//!    upstream (the route a denied request matched is invisible to the client and the
//!    upstream, so it is not compared);
//! 4. [`ImpactClass::StatusChanged`]: the status the client sees differs
//!    ([`Outcome::status`]: deny 401 vs 403, static 503 vs 500, upstream vs static 200).
//!
//! Header edits, rate limits, timeouts and flag values are not compared. [`classify`] borrows
//! and compares only; it never allocates. [`replay`] decides a recorded request sample with
//! both evaluators.

use rampart_model::GatewayIdentity;
pub use rampart_model::wire::ImpactClass;
use rampart_model::wire::RequestSample;

use crate::decision::{Decision, Outcome};
use crate::{Cohort, Evaluator, RequestMeta};

/// Whether a decision lets the request through: it took a route, and is forwarded upstream or
/// answered with a static status below 400.
#[inline]
pub fn admitted(decision: &Decision<'_>) -> bool {
    decision.route.is_some()
        && match &decision.outcome {
            Outcome::Allow => true,
            Outcome::Static { status, .. } => *status < 400,
            Outcome::Deny { .. } => false,
        }
}

/// How the outcome of one request differs between `baseline` and `candidate`, or `None` when
/// it is the same. See the module docs for the classes and their precedence.
#[inline]
pub fn classify(baseline: &Decision<'_>, candidate: &Decision<'_>) -> Option<ImpactClass> {
    let (b, c) = (admitted(baseline), admitted(candidate));
    match (b, c) {
        (true, false) => return Some(ImpactClass::AllowedToDenied),
        (false, true) => return Some(ImpactClass::DeniedToAllowed),
        (true, true) => {
            let moved = match (&baseline.route, &candidate.route) {
                (Some(br), Some(cr)) => br.id != cr.id || br.upstream != cr.upstream,
                // Unreachable: admitted implies a route.
                _ => false,
            };
            if moved {
                return Some(ImpactClass::RouteChanged);
            }
        }
        (false, false) => {}
    }
    (baseline.outcome.status() != candidate.outcome.status()).then_some(ImpactClass::StatusChanged)
}

/// Decide a request sample recorded by `gateway` with `baseline` and with `candidate` (both
/// as the baseline cohort), and hand the two decisions to `compare` (such as [`classify`]).
pub fn replay<R>(
    baseline: &Evaluator,
    candidate: &Evaluator,
    sample: &RequestSample,
    gateway: &GatewayIdentity,
    compare: impl FnOnce(&Decision<'_>, &Decision<'_>) -> R,
) -> R {
    let meta = RequestMeta {
        method: &sample.method,
        host: &sample.host,
        path: &sample.path,
        client_ip: sample.client_ip,
        headers: &sample.headers,
        // The tenant the gateway established, and the time it decided the request.
        tenant: sample.tenant.as_deref(),
        now_ms: sample.at_ms,
        attributes: &[],
        gateway,
    };
    compare(
        &baseline.evaluate(&meta, Cohort::Baseline),
        &candidate.evaluate(&meta, Cohort::Baseline),
    )
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use rampart_model::load::from_yaml;
    use rampart_model::{Config, GatewayIdentity, Snapshot};

    use super::*;
    use crate::HeaderList;

    /// A small fleet: `/a/` (through `a_policies`) and `/b/` (to `b_upstream`) go to upstream
    /// `ua`, `/c/` to `uc`, `/robots.txt` is a static `robots_status`, and `/d/` has a route
    /// only `with_d`.
    fn config(a_policies: &str, b_upstream: &str, robots_status: u16, with_d: bool) -> Config {
        let d_route = if with_d {
            "  - id: rd\n    product: p\n    match: { path: { prefix: /d/ } }\n    upstream: ua\n"
        } else {
            ""
        };
        let yaml = format!(
            r#"
environment: staging
products:
  - name: p
upstreams:
  - name: ua
    endpoints: ["127.0.0.1:1"]
  - name: uc
    endpoints: ["127.0.0.1:2"]
policies:
  - id: deny-all
    access: {{ default: deny }}
  - id: deny-all-401
    access: {{ default: deny, deny_status: 401 }}
  - id: down
    static_response: {{ status: 503, body: down }}
  - id: down-500
    static_response: {{ status: 500, body: down }}
  - id: robots
    static_response: {{ status: {robots_status}, body: "User-agent: *" }}
routes:
  - id: ra
    product: p
    match: {{ path: {{ prefix: /a/ }} }}
    upstream: ua
    policies: [{a_policies}]
  - id: rb
    product: p
    match: {{ path: {{ prefix: /b/ }} }}
    upstream: {b_upstream}
  - id: rc
    product: p
    match: {{ path: {{ prefix: /c/ }} }}
    upstream: uc
  - id: robots
    product: p
    match: {{ path: {{ exact: /robots.txt }} }}
    upstream: ua
    policies: [robots]
{d_route}"#
        );
        from_yaml(&yaml).unwrap()
    }

    fn evaluator(cfg: Config) -> Evaluator {
        Evaluator::compile(&Snapshot::new(cfg, vec![])).unwrap()
    }

    fn gateway() -> GatewayIdentity {
        GatewayIdentity {
            id: "gw-1".into(),
            cell: "us-1".into(),
            version: "0.1.0".parse().unwrap(),
        }
    }

    /// `GET http://example.com{path}` from 192.0.2.1, with no headers, through `gw`.
    fn get<'a>(path: &'a str, gw: &'a GatewayIdentity) -> RequestMeta<'a> {
        RequestMeta {
            method: "GET",
            host: "example.com",
            path,
            client_ip: IpAddr::from([192, 0, 2, 1]),
            headers: &HeaderList(&[]),
            tenant: None,
            now_ms: 0,
            attributes: &[],
            gateway: gw,
        }
    }

    /// Classify `path` between two evaluators.
    fn class(base: &Evaluator, cand: &Evaluator, path: &str) -> Option<ImpactClass> {
        let gw = gateway();
        let meta = get(path, &gw);
        let b = base.evaluate(&meta, Cohort::Baseline);
        let c = cand.evaluate(&meta, Cohort::Baseline);
        classify(&b, &c)
    }

    fn base() -> Evaluator {
        evaluator(config("", "ua", 200, false))
    }

    #[test]
    fn identical_configs_change_nothing() {
        let (b, c) = (base(), base());
        for path in ["/a/x", "/b/x", "/c/x", "/robots.txt", "/nowhere"] {
            assert_eq!(class(&b, &c, path), None, "{path}");
        }
    }

    #[test]
    fn allowed_to_denied_by_access_static_error_or_lost_route() {
        let b = base();
        assert_eq!(
            class(&b, &evaluator(config("deny-all", "ua", 200, false)), "/a/x"),
            Some(ImpactClass::AllowedToDenied)
        );
        assert_eq!(
            class(&b, &evaluator(config("down", "ua", 200, false)), "/a/x"),
            Some(ImpactClass::AllowedToDenied)
        );
        // A static 200 turning into a static 503 is a denial too.
        assert_eq!(
            class(&b, &evaluator(config("", "ua", 503, false)), "/robots.txt"),
            Some(ImpactClass::AllowedToDenied)
        );
        // A route that disappears.
        let with_d = evaluator(config("", "ua", 200, true));
        assert_eq!(
            class(&with_d, &b, "/d/x"),
            Some(ImpactClass::AllowedToDenied)
        );
        // Untouched routes are unaffected.
        assert_eq!(
            class(&b, &evaluator(config("deny-all", "ua", 200, false)), "/b/x"),
            None
        );
    }

    #[test]
    fn denied_to_allowed() {
        let denying = evaluator(config("deny-all", "ua", 200, false));
        assert_eq!(
            class(&denying, &base(), "/a/x"),
            Some(ImpactClass::DeniedToAllowed)
        );
        // A new route for a path that had none.
        let with_d = evaluator(config("", "ua", 200, true));
        assert_eq!(
            class(&base(), &with_d, "/d/x"),
            Some(ImpactClass::DeniedToAllowed)
        );
        // A static error page turning into a 200.
        let erroring = evaluator(config("", "ua", 500, false));
        assert_eq!(
            class(&erroring, &base(), "/robots.txt"),
            Some(ImpactClass::DeniedToAllowed)
        );
    }

    #[test]
    fn route_changed_on_another_upstream() {
        let moved = evaluator(config("", "uc", 200, false));
        assert_eq!(
            class(&base(), &moved, "/b/x"),
            Some(ImpactClass::RouteChanged)
        );
        assert_eq!(class(&base(), &moved, "/a/x"), None);
    }

    #[test]
    fn route_changed_on_another_route_id() {
        // Routes `ra` and `rb` share upstream `ua`: compare their decisions directly.
        let b = base();
        let gw = gateway();
        let (ma, mb) = (get("/a/x", &gw), get("/b/x", &gw));
        let (da, db) = (
            b.evaluate(&ma, Cohort::Baseline),
            b.evaluate(&mb, Cohort::Baseline),
        );
        // Same upstream `ua`, different route ids.
        assert_eq!(classify(&da, &db), Some(ImpactClass::RouteChanged));
    }

    #[test]
    fn status_changed_between_denials_and_between_static_errors() {
        let d403 = evaluator(config("deny-all", "ua", 200, false));
        let d401 = evaluator(config("deny-all-401", "ua", 200, false));
        assert_eq!(
            class(&d403, &d401, "/a/x"),
            Some(ImpactClass::StatusChanged)
        );
        let s503 = evaluator(config("down", "ua", 200, false));
        let s500 = evaluator(config("down-500", "ua", 200, false));
        assert_eq!(
            class(&s503, &s500, "/a/x"),
            Some(ImpactClass::StatusChanged)
        );
        // Identical static errors.
        let s503b = evaluator(config("down", "ua", 200, false));
        assert_eq!(class(&s503, &s503b, "/a/x"), None);
        // No route on either side.
        assert_eq!(class(&d403, &base(), "/nowhere"), None);
    }

    #[test]
    fn status_changed_between_upstream_and_static_success() {
        // The maintenance page answered with 200 replaces the upstream: both admitted, same
        // route, but the client now sees the gateway's 200 instead of the upstream's answer.
        let cfg = config("robots", "ua", 200, false);
        assert_eq!(
            class(&base(), &evaluator(cfg), "/a/x"),
            Some(ImpactClass::StatusChanged)
        );
    }
}
