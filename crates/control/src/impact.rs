//! The impact test: replay recent traffic through the baseline and a candidate, and block a
//! change whose measured impact exceeds what it declared.
//!
//! # What is replayed
//!
//! Gateways keep a sample of recent request metadata ([`RequestSample`](rampart_model::wire::RequestSample)) and upload it in
//! [`SampleBatch`]es, one per gateway. [`rampart_eval::diff::replay`] rebuilds each sample into
//! a [`RequestMeta`](rampart_eval::RequestMeta): its method, host, path, client IP and recorded
//! headers, no extra attributes, and the identity of the gateway that took it (so `cell`,
//! `gateway` and `gateway_version` flag rules resolve as they did there), and decides it with
//! both evaluators as [`Cohort::Baseline`](rampart_eval::Cohort::Baseline); each
//! evaluator is meant to be compiled from a plain snapshot (the current configuration, and the
//! configuration the change would produce) without rollouts.
//!
//! # Classes
//!
//! The two decisions are compared by [`rampart_eval::diff::classify`], which is also what
//! gateways' shadow stage uses. Most severe first: [`ImpactClass::AllowedToDenied`] (the
//! baseline admits the request, the candidate refuses it or answers with a status of 400 or
//! more), [`ImpactClass::DeniedToAllowed`], [`ImpactClass::RouteChanged`] (both admit it, but
//! through another route or to another upstream) and [`ImpactClass::StatusChanged`] (another
//! status for the client, such as a 403 that becomes a 401). Headers edits, rate-limit
//! settings, timeouts and flag values are not compared.
//!
//! # The threshold
//!
//! The measured impact is the share of compared requests in any class. A change is blocked
//! when it exceeds the share it declared ([`rampart_model::DeclaredImpact::changed_percent`])
//! by more than `max_excess_percent` points: `changed_percent > declared_percent +
//! max_excess_percent`. It is also blocked when fewer than `min_samples` (and never fewer than
//! one) requests were sampled: no data is never a pass. A threshold that is not a finite
//! number blocks too.
//!
//! # Fidelity limits
//!
//! The replay sees metadata only, so it cannot judge everything a gateway would:
//!
//! - no bodies, and no query strings (routing does not read them either);
//! - no rate-limit state: which requests a bucket would refuse depends on live traffic, so a
//!   change to a rate limit shows no impact here;
//! - no upstream health or upstream responses: an admitted request counts as admitted even if
//!   its upstream is down, and "status" compares only statuses the gateway itself decides;
//! - only the headers the gateway recorded (the first 32, values cut at 256 bytes);
//! - credentials: gateways keep only the presence of credential headers (API keys,
//!   `authorization`, cookies), their value replaced by `[redacted]`, which no key matches.
//!   Both sides see the same value, so the comparison is symmetric and a change that leaves authentication alone
//!   measures correctly, but such requests replay as refused for invalid credentials on both
//!   sides: policies after the authentication step are not reached, and a tenant that came
//!   from an API key is lost. A change that adds, removes or re-keys an API-key policy on a
//!   route with authenticated traffic is therefore misjudged, and its author should declare
//!   its impact generously.

use rampart_model::EnumName;
use std::fmt::Write as _;
use strum::VariantArray;

use rampart_eval::diff::{classify, replay};
use rampart_eval::{Decision, Evaluator, Outcome};
use rampart_model::wire::{ImpactClass, ImpactCounts, SampleBatch};
use serde::{Deserialize, Serialize};

/// The most examples a report keeps.
pub const MAX_EXAMPLES: usize = 10;

/// One sampled request whose outcome changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpactExample {
    pub method: String,
    pub host: String,
    pub path: String,
    /// The tenant the gateway saw, else the one the baseline decided.
    pub tenant: Option<String>,
    pub class: ImpactClass,
    /// What the baseline does, such as `allow route r1 → upstream u1`.
    pub baseline: String,
    /// What the candidate does, such as `deny 403 access_denied (policy p)`.
    pub candidate: String,
}

/// The result of an impact test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImpactReport {
    pub counts: ImpactCounts,
    /// The share of compared requests whose outcome changed, in percent; 0 when none were.
    pub changed_percent: f64,
    /// The share the change declared.
    pub declared_percent: f64,
    /// Blocked when `changed_percent > declared_percent + max_excess_percent`.
    pub max_excess_percent: f64,
    pub min_samples: u64,
    pub blocked: bool,
    /// One sentence: why it is blocked, or why it passed.
    pub reason: String,
    /// Up to [`MAX_EXAMPLES`] changed requests, most severe classes first.
    pub examples: Vec<ImpactExample>,
}

impl ImpactReport {
    /// `declared_percent + max_excess_percent`.
    pub fn threshold_percent(&self) -> f64 {
        self.declared_percent + self.max_excess_percent
    }
}

/// What a decision does, in a few words.
fn describe(d: &Decision<'_>) -> String {
    match (&d.outcome, &d.route) {
        (Outcome::Allow, Some(r)) => format!("allow route {} → upstream {}", r.id, r.upstream),
        (Outcome::Allow, None) => "allow".to_owned(),
        (
            Outcome::Deny {
                status,
                reason,
                policy,
            },
            _,
        ) => {
            let mut s = format!("deny {status} {}", reason.as_str());
            if let Some(p) = policy {
                let _ = write!(s, " (policy {p})");
            }
            s
        }
        (Outcome::Static { status, policy, .. }, _) => format!("static {status} (policy {policy})"),
    }
}

/// Replay every sample of `batches` through `baseline` and `candidate` and judge the change.
/// See the module docs.
pub fn impact(
    baseline: &Evaluator,
    candidate: &Evaluator,
    batches: &[SampleBatch],
    declared_percent: f64,
    max_excess_percent: f64,
    min_samples: u64,
) -> ImpactReport {
    let mut counts = ImpactCounts::default();
    // Up to MAX_EXAMPLES per class, indexed by the class (declared most severe first).
    let mut by_class: [Vec<ImpactExample>; 4] = Default::default();
    for batch in batches {
        for sample in &batch.samples {
            let example = replay(baseline, candidate, sample, &batch.gateway, |b, c| {
                let class = classify(b, c);
                counts.record(class);
                let class = class?;
                (by_class[class as usize].len() < MAX_EXAMPLES).then(|| ImpactExample {
                    method: sample.method.clone(),
                    host: sample.host.clone(),
                    path: sample.path.clone(),
                    tenant: sample
                        .tenant
                        .clone()
                        .or_else(|| b.tenant.map(str::to_owned)),
                    class,
                    baseline: describe(b),
                    candidate: describe(c),
                })
            });
            if let Some(example) = example {
                by_class[example.class as usize].push(example);
            }
        }
    }
    let examples: Vec<ImpactExample> = by_class.into_iter().flatten().take(MAX_EXAMPLES).collect();

    let changed_percent = counts.changed_percent().unwrap_or(0.0);
    let threshold = declared_percent + max_excess_percent;
    let needed = min_samples.max(1);
    let (blocked, reason) = if counts.compared < needed {
        (
            true,
            format!(
                "only {} samples, the impact test needs at least {needed}",
                counts.compared
            ),
        )
    } else if !declared_percent.is_finite() || !max_excess_percent.is_finite() {
        (
            true,
            format!(
                "the threshold is not a number (declared {declared_percent}%, allowed excess {max_excess_percent} points)"
            ),
        )
    } else if changed_percent > threshold {
        (
            true,
            format!(
                "{changed_percent:.2}% of {} sampled requests would change outcome, more than the declared {declared_percent:.2}% plus {max_excess_percent:.2} points ({threshold:.2}%)",
                counts.compared
            ),
        )
    } else {
        (
            false,
            format!(
                "{changed_percent:.2}% of {} sampled requests would change outcome, within the declared {declared_percent:.2}% plus {max_excess_percent:.2} points ({threshold:.2}%)",
                counts.compared
            ),
        )
    };
    ImpactReport {
        counts,
        changed_percent,
        declared_percent,
        max_excess_percent,
        min_samples,
        blocked,
        reason,
        examples,
    }
}

fn class_label(class: ImpactClass) -> &'static str {
    match class {
        ImpactClass::AllowedToDenied => "allowed → denied",
        ImpactClass::DeniedToAllowed => "denied → allowed",
        ImpactClass::RouteChanged => "route changed",
        ImpactClass::StatusChanged => "status changed",
    }
}

/// A report as readable text, for `rampart change show`.
pub fn render(report: &ImpactReport) -> String {
    let c = &report.counts;
    let pct = |n: u64| {
        if c.compared == 0 {
            0.0
        } else {
            n as f64 * 100.0 / c.compared as f64
        }
    };
    let mut out = String::new();
    let verdict = if report.blocked { "BLOCKED" } else { "passed" };
    let _ = writeln!(out, "Impact test: {verdict}");
    let _ = writeln!(
        out,
        "  compared          {:>8} sampled requests",
        c.compared
    );
    let _ = writeln!(
        out,
        "  changed           {:>8}  {:>7.2}%",
        c.changed(),
        report.changed_percent
    );
    for &class in ImpactClass::VARIANTS {
        let n = c.count(class);
        let _ = writeln!(
            out,
            "    {:<16}{:>8}  {:>7.2}%",
            class_label(class),
            n,
            pct(n)
        );
    }
    let _ = writeln!(
        out,
        "  declared {:.2}%, measured {:.2}%, threshold {:.2}% (declared + {:.2} points), at least {} samples",
        report.declared_percent,
        report.changed_percent,
        report.threshold_percent(),
        report.max_excess_percent,
        report.min_samples.max(1)
    );
    let _ = writeln!(out, "  verdict: {verdict}: {}", report.reason);
    if !report.examples.is_empty() {
        let _ = writeln!(out, "  examples:");
        for e in &report.examples {
            let tenant = e
                .tenant
                .as_deref()
                .map(|t| format!(" (tenant {t})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    [{}] {} {}{}{}",
                class_label(e.class),
                e.method,
                e.host,
                e.path,
                tenant
            );
            let _ = writeln!(out, "        baseline:  {}", e.baseline);
            let _ = writeln!(out, "        candidate: {}", e.candidate);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use rampart_model::load::from_yaml;
    use rampart_model::wire::RequestSample;
    use rampart_model::{Config, GatewayIdentity, Snapshot};

    use super::*;

    /// One product, routes `/api/` (through `api_policies`) and `/web/`, to upstreams `api`
    /// and `web`.
    fn evaluator(api_policies: &str) -> Evaluator {
        let yaml = format!(
            r#"
environment: staging
products: [{{ name: p }}]
upstreams: [{{ name: api, endpoints: ["127.0.0.1:1"] }}, {{ name: web, endpoints: ["127.0.0.1:2"] }}]
policies:
  - id: down
    static_response: {{ status: 503, body: down }}
  - id: deny-all
    access: {{ default: deny }}
  - id: key
    auth:
      api_key:
        header: x-api-key
        keys:
          - {{ id: k, sha256: f50dbf7e0ab7a522c4036720886f6f874ee1b53dc9caf0b7fb77d8cff8dab64c, format: rampart_v1, prefix: rk_VomMm2 }}
routes:
  - {{ id: api, product: p, match: {{ path: {{ prefix: /api/ }} }}, upstream: api, policies: [{api_policies}] }}
  - {{ id: web, product: p, match: {{ path: {{ prefix: /web/ }} }}, upstream: web }}
"#
        );
        let cfg: Config = from_yaml(&yaml).unwrap();
        Evaluator::compile(&Snapshot::new(cfg, vec![])).unwrap()
    }

    fn sample(i: u32, path: String, headers: Vec<(String, String)>) -> RequestSample {
        RequestSample {
            at_ms: 1_700_000_000_000 + u64::from(i),
            method: "GET".into(),
            host: "example.com".into(),
            path,
            client_ip: IpAddr::from([198, 51, 100, (i % 250) as u8]),
            headers,
            tenant: i.is_multiple_of(2).then(|| "acme".to_owned()),
            route: Some("api".into()),
            status: 200,
            outcome: "allow".into(),
            rollout: None,
        }
    }

    /// `samples` in one batch, from one gateway.
    fn batch(samples: impl IntoIterator<Item = RequestSample>) -> Vec<SampleBatch> {
        let gateway = GatewayIdentity {
            id: "gw-1".into(),
            cell: "us-1".into(),
            version: "0.1.0".parse().unwrap(),
        };
        let samples = samples.into_iter().collect();
        vec![SampleBatch { gateway, samples }]
    }

    /// `n` samples on `/api/` in one batch.
    fn api_batch(n: u32) -> Vec<SampleBatch> {
        batch((0..n).map(|i| sample(i, format!("/api/items/{i}"), vec![])))
    }

    #[test]
    fn candidate_that_denies_everything_is_blocked() {
        let report = impact(
            &evaluator(""),
            &evaluator("down"),
            &api_batch(100),
            0.0,
            1.0,
            50,
        );
        assert_eq!(report.counts.compared, 100);
        assert_eq!(report.counts.allowed_to_denied, 100);
        assert_eq!(report.counts.changed(), 100);
        assert_eq!(report.changed_percent, 100.0);
        assert!(report.blocked, "{}", report.reason);
        assert!(report.reason.contains("more than"), "{}", report.reason);
        assert_eq!(report.examples.len(), MAX_EXAMPLES);
        let e = &report.examples[0];
        assert_eq!(e.class, ImpactClass::AllowedToDenied);
        assert_eq!(e.baseline, "allow route api → upstream api");
        assert_eq!(e.candidate, "static 503 (policy down)");
        assert_eq!(e.tenant.as_deref(), Some("acme"));
        let text = render(&report);
        assert!(text.contains("BLOCKED"), "{text}");
        assert!(text.contains("allowed → denied"), "{text}");
        assert!(text.contains("static 503 (policy down)"), "{text}");
    }

    #[test]
    fn identical_configs_pass_with_no_change() {
        let report = impact(
            &evaluator(""),
            &evaluator(""),
            &api_batch(100),
            0.0,
            1.0,
            50,
        );
        assert_eq!(report.counts.compared, 100);
        assert_eq!(report.counts.changed(), 0);
        assert_eq!(report.changed_percent, 0.0);
        assert!(!report.blocked, "{}", report.reason);
        assert!(report.reason.contains("within"), "{}", report.reason);
        assert!(report.examples.is_empty());
        assert!(render(&report).contains("passed"));
    }

    #[test]
    fn declared_impact_is_respected() {
        let (base, cand, batches) = (evaluator(""), evaluator("deny-all"), api_batch(100));
        let report = impact(&base, &cand, &batches, 100.0, 0.0, 50);
        assert_eq!(report.changed_percent, 100.0);
        assert!(!report.blocked, "{}", report.reason);
        // Just below the threshold blocks: 100% > 90% + 5 points.
        let report = impact(&base, &cand, &batches, 90.0, 5.0, 50);
        assert!(report.blocked, "{}", report.reason);
    }

    #[test]
    fn partial_impact_is_measured_against_the_threshold() {
        // 25 of 100 requests on the changed route, the rest on /web/.
        let samples: Vec<RequestSample> = (0..100u32)
            .map(|i| {
                let path = if i.is_multiple_of(4) {
                    "/api/x"
                } else {
                    "/web/x"
                };
                sample(i, path.to_owned(), vec![])
            })
            .collect();
        let batches = batch(samples);
        let (base, cand) = (evaluator(""), evaluator("deny-all"));
        let report = impact(&base, &cand, &batches, 20.0, 5.0, 10);
        assert_eq!(report.changed_percent, 25.0);
        assert!(
            !report.blocked,
            "25 is not more than 20 + 5: {}",
            report.reason
        );
        let report = impact(&base, &cand, &batches, 20.0, 4.9, 10);
        assert!(report.blocked, "{}", report.reason);
    }

    #[test]
    fn too_few_samples_block() {
        let report = impact(&evaluator(""), &evaluator(""), &api_batch(5), 0.0, 1.0, 50);
        assert!(report.blocked);
        assert_eq!(
            report.reason,
            "only 5 samples, the impact test needs at least 50"
        );
        // No samples at all never pass, even with no minimum.
        let report = impact(&evaluator(""), &evaluator(""), &[], 0.0, 1.0, 0);
        assert!(report.blocked);
        assert_eq!(report.changed_percent, 0.0);
        assert_eq!(
            report.reason,
            "only 0 samples, the impact test needs at least 1"
        );
    }

    #[test]
    fn non_finite_threshold_blocks() {
        let report = impact(
            &evaluator(""),
            &evaluator(""),
            &api_batch(10),
            f64::NAN,
            1.0,
            1,
        );
        assert!(report.blocked, "{}", report.reason);
    }

    #[test]
    fn examples_put_the_most_severe_class_first_and_counts_add_up_across_batches() {
        // Baseline denies /api/ with 403; candidate answers it with a static 503 (status
        // changed) — and /web/ is unchanged. A second gateway's batch also counts.
        let mut batches = api_batch(30);
        batches.push(SampleBatch {
            gateway: GatewayIdentity {
                id: "gw-2".into(),
                cell: "eu-1".into(),
                version: "0.1.0".parse().unwrap(),
            },
            samples: (0..10)
                .map(|i| sample(i, "/web/x".into(), vec![]))
                .collect(),
        });
        let report = impact(
            &evaluator("deny-all"),
            &evaluator("down"),
            &batches,
            0.0,
            100.0,
            1,
        );
        assert_eq!(report.counts.compared, 40);
        assert_eq!(report.counts.status_changed, 30);
        assert_eq!(report.changed_percent, 75.0);
        assert!(!report.blocked);
        assert!(
            report
                .examples
                .iter()
                .all(|e| e.class == ImpactClass::StatusChanged)
        );
        assert_eq!(
            report.examples[0].baseline,
            "deny 403 access_denied (policy deny-all)"
        );

        // Severity order: denied → allowed examples come before status changes.
        let mixed = batch(
            (0..20)
                .map(|i| sample(i, "/api/x".into(), vec![]))
                .chain((0..20).map(|i| sample(i, "/nowhere".into(), vec![]))),
        );
        let report = impact(
            &evaluator("deny-all"),
            &evaluator(""),
            &mixed,
            0.0,
            100.0,
            1,
        );
        assert_eq!(report.counts.denied_to_allowed, 20);
        assert_eq!(report.counts.changed(), 20);
        assert_eq!(report.examples[0].class, ImpactClass::DeniedToAllowed);
    }

    #[test]
    fn redacted_credentials_replay_the_same_on_both_sides() {
        // The gateway redacted the key: both sides refuse it alike.
        let fp = vec![("x-api-key".to_owned(), "[redacted]".to_owned())];
        let batches = batch((0..20).map(|i| sample(i, "/api/x".into(), fp.clone())));
        let report = impact(&evaluator("key"), &evaluator("key"), &batches, 0.0, 0.0, 1);
        assert_eq!(report.counts.changed(), 0);
        assert!(!report.blocked, "{}", report.reason);
    }

    #[test]
    fn report_round_trips_through_json() {
        let report = impact(
            &evaluator(""),
            &evaluator("down"),
            &api_batch(20),
            10.0,
            5.0,
            1,
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["counts"]["allowed_to_denied"], 20);
        assert_eq!(json["examples"][0]["class"], "allowed_to_denied");
        let back: ImpactReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, report);
    }
}
