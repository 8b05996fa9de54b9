//! `rampart change`: submit, show, approve, reject, list and apply changes; and how a change
//! and its impact report are printed.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rampart_api::{
    ApplyResponse, ChangeList, ChangeRecord, ChangeView, EmptyRequest, FieldError, Missing,
    RejectRequest, SubmitRequest,
};
use rampart_control::impact::ImpactReport;
use rampart_model::change::Edit;
use rampart_model::load::{from_json, from_yaml};
use rampart_model::{DeclaredImpact, EnumName, Environment};
use serde::Deserialize;

use super::ClientArgs;
use crate::client::{client, enc, parse_env};
use crate::output::{Reported, answer, num, out};

#[derive(Debug, Args)]
pub(crate) struct ChangeArgs {
    #[command(subcommand)]
    cmd: ChangeCmd,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum ChangeCmd {
    /// Submit a change from a file (JSON or YAML): `{ environment?, reason, declared_impact?,
    /// edits, base_version? }`; without a base version, the environment's current one.
    Submit {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// The environment, if the file does not name it.
        #[arg(long)]
        env: Option<String>,
    },
    /// A change, its approvals and what it lacks.
    Show { id: String },
    /// Approve a change (never your own).
    Approve { id: String },
    /// Reject a change.
    Reject {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// The newest changes of an environment.
    List {
        #[arg(long)]
        env: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Apply an approved change: a new snapshot of its environment.
    Apply { id: String },
}

/// A change file: the submit body, the environment optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeFile {
    #[serde(default)]
    environment: Option<Environment>,
    /// Ignored: the author is whoever holds the token.
    #[serde(default)]
    #[allow(dead_code)]
    author: Option<String>,
    reason: String,
    #[serde(default)]
    declared_impact: DeclaredImpact,
    edits: Vec<Edit>,
    #[serde(default)]
    base_version: Option<u64>,
}

pub(crate) fn run(a: ChangeArgs) -> Result<()> {
    let json = a.client.json;
    // Read a change file before any network call.
    let file = match &a.cmd {
        ChangeCmd::Submit { file, env } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let parsed: Result<ChangeFile, _> = if text.trim_start().starts_with('{') {
                from_json(&text)
            } else {
                from_yaml(&text)
            };
            let cf = parsed.map_err(|e| {
                eprintln!("{}: {e}", file.display());
                anyhow::Error::from(Reported)
            })?;
            let env = match (env.as_deref().map(parse_env).transpose()?, cf.environment) {
                (Some(a), Some(b)) if a != b => {
                    anyhow::bail!("--env {a} does not match the file's environment {b}")
                }
                (Some(e), _) | (None, Some(e)) => e,
                (None, None) => anyhow::bail!(
                    "{}: name the environment with --env or `environment:`",
                    file.display()
                ),
            };
            Some((env, cf))
        }
        _ => None,
    };
    client(&a.client, |api| async move {
        let view: ChangeView = match a.cmd {
            ChangeCmd::Submit { .. } => {
                let Some((env, cf)) = file else {
                    unreachable!("read above")
                };
                let base_version = match cf.base_version {
                    Some(v) => v,
                    None => super::diff::version(&api, env).await?,
                };
                let body = SubmitRequest {
                    reason: cf.reason,
                    declared_impact: cf.declared_impact,
                    edits: cf.edits,
                    base_version,
                };
                api.post(&format!("/v1/envs/{env}/changes"), &body).await?
            }
            ChangeCmd::Show { id } => api.get(&format!("/v1/changes/{}", enc(&id))).await?,
            ChangeCmd::Approve { id } => {
                let path = format!("/v1/changes/{}/approve", enc(&id));
                api.post(&path, &EmptyRequest {}).await?
            }
            ChangeCmd::Reject { id, reason } => {
                let path = format!("/v1/changes/{}/reject", enc(&id));
                let v: ChangeRecord = api.post(&path, &RejectRequest { reason }).await?;
                return answer(json, &v, print_record);
            }
            ChangeCmd::Apply { id } => {
                let path = format!("/v1/changes/{}/apply", enc(&id));
                let v: ApplyResponse = api.post(&path, &EmptyRequest {}).await?;
                return answer(json, &v, print_applied);
            }
            ChangeCmd::List { env, limit } => {
                let rest = format!("/changes?limit={limit}");
                let (env, v): (_, ChangeList) = api.get_env(&env, &rest).await?;
                return answer(json, &v, |v| print_list(env, v));
            }
        };
        answer(json, &view, print_change)
    })
}

/// A change record without a view's approvals, verdict, impact or rollout: the answer of
/// reject, and part of apply's.
fn print_record(record: &ChangeRecord) -> Result<()> {
    print_change(&ChangeView {
        record: record.clone(),
        approvals: Vec::new(),
        verdict: None,
        impact: None,
        rollout_id: None,
    })
}

/// What `rampart change apply` prints: the change, its snapshot and its rollout.
fn print_applied(v: &ApplyResponse) -> Result<()> {
    print_record(&v.change)?;
    out(&format!(
        "  snapshot: version {} hash sha256:{}",
        v.snapshot.version, v.snapshot.hash
    ))?;
    if let Some(r) = &v.rollout_id {
        out(&format!(
            "  rolling out: {r}   follow it with: rampart rollout watch {r}"
        ))?;
    }
    Ok(())
}

/// What `rampart change list` prints: one line per change.
fn print_list(env: Environment, v: &ChangeList) -> Result<()> {
    out(&format!("{} change(s) in {env}", v.changes.len()))?;
    for c in &v.changes {
        out(&format!(
            "  {}  {:<17} {:<8} {}  {}",
            c.id,
            c.status.as_str(),
            c.risk.as_str(),
            c.author,
            c.reason
        ))?;
    }
    Ok(())
}

/// A change: its status and risk, approvals, what it lacks, its validation errors, its impact
/// report and its rollout.
pub(crate) fn print_change(v: &ChangeView) -> Result<()> {
    let r = &v.record;
    out(&format!(
        "change {}: {} (risk {}, {} by {})",
        r.id,
        r.status.as_str(),
        r.risk.as_str(),
        r.env.as_str(),
        r.author
    ))?;
    if !v.approvals.is_empty() {
        out(&format!("  approvals: {}", v.approvals.join(", ")))?;
    }
    for m in v.verdict.iter().flat_map(|v| &v.missing) {
        out(&format!("  needs: {}", missing_text(m)))?;
    }
    let validation: Option<Vec<FieldError>> = match &r.validation {
        Some(errors) => serde_json::from_value(errors.clone())
            .context("the change's validation errors do not parse")?,
        None => None,
    };
    for e in validation.iter().flatten() {
        out(&format!("  {}: {}", e.path, e.message))?;
    }
    if let Some(impact) = &v.impact {
        let report: ImpactReport = serde_json::from_value(impact.clone())
            .context("the change's impact report does not parse")?;
        for line in impact_lines(&report) {
            out(&line)?;
        }
    }
    if let Some(id) = &v.rollout_id {
        out(&format!("  rollout: {id}"))?;
    }
    Ok(())
}

/// `approvals (have 0, need 2)`, `staging_soak (need_secs 3600)`, `change_window_closed`.
fn missing_text(m: &Missing) -> String {
    match m {
        Missing::Approvals { have, need } => format!("approvals (have {have}, need {need})"),
        Missing::StagingSoak { need_secs } => format!("staging_soak (need_secs {need_secs})"),
        Missing::AuthorApproved => "author_approved".into(),
        Missing::ChangeWindowClosed => "change_window_closed".into(),
    }
}

/// The lines of a change's impact report.
fn impact_lines(v: &ImpactReport) -> Vec<String> {
    let mut l = Vec::new();
    let mut head = format!(
        "  impact: {}",
        if v.blocked {
            "BLOCKED"
        } else {
            "within bounds"
        }
    );
    if !v.reason.is_empty() {
        head.push_str(": ");
        head.push_str(&v.reason);
    }
    l.push(head);
    l.push(format!(
        "    changed {}% (declared {}%, +{}% allowed, min samples {})",
        num(v.changed_percent),
        num(v.declared_percent),
        num(v.max_excess_percent),
        v.min_samples
    ));
    let c = &v.counts;
    l.push(format!(
        "    compared {}: allowed→denied {}, denied→allowed {}, route changed {}, status changed {}",
        c.compared, c.allowed_to_denied, c.denied_to_allowed, c.route_changed, c.status_changed
    ));
    for e in v.examples.iter().take(5) {
        let tenant = e
            .tenant
            .as_deref()
            .map(|t| format!(" tenant {t}"))
            .unwrap_or_default();
        l.push(format!(
            "    e.g. {} {}{}{tenant} [{}]: {} ⇒ {}",
            e.method,
            e.host,
            e.path,
            e.class.as_str(),
            e.baseline,
            e.candidate
        ));
    }
    if v.examples.len() > 5 {
        l.push(format!(
            "    … and {} more example(s)",
            v.examples.len() - 5
        ));
    }
    l
}

#[cfg(test)]
mod tests {
    use rampart_api::Readiness;
    use serde_json::json;

    use super::*;

    #[test]
    fn impact_report_lines() {
        let v = json!({"counts":{"compared":500,"allowed_to_denied":500,"denied_to_allowed":0,"route_changed":0,"status_changed":0},
            "changed_percent":100.0,"declared_percent":0.0,"max_excess_percent":1.0,"min_samples":50,"blocked":true,
            "reason":"100.0% of 500 sampled requests change outcome, declared 0.0% (+1.0% allowed)",
            "examples":[{"method":"GET","host":"a.example","path":"/x","tenant":"t1","class":"allowed_to_denied",
                "baseline":"allow route r1 → upstream u1","candidate":"static 503"}]});
        let l = impact_lines(&serde_json::from_value(v).unwrap());
        assert_eq!(
            l[0],
            "  impact: BLOCKED: 100.0% of 500 sampled requests change outcome, declared 0.0% (+1.0% allowed)"
        );
        assert_eq!(
            l[1],
            "    changed 100% (declared 0%, +1% allowed, min samples 50)"
        );
        assert!(l[2].starts_with("    compared 500: allowed→denied 500"));
        assert_eq!(
            l[3],
            "    e.g. GET a.example/x tenant t1 [allowed_to_denied]: allow route r1 → upstream u1 ⇒ static 503"
        );
    }

    #[test]
    fn missing_reads_as_its_json_did() {
        let verdict = Readiness {
            ready: false,
            missing: vec![
                Missing::Approvals { have: 0, need: 2 },
                Missing::AuthorApproved,
                Missing::StagingSoak { need_secs: 3600 },
                Missing::ChangeWindowClosed,
            ],
        };
        let text: Vec<String> = verdict.missing.iter().map(missing_text).collect();
        assert_eq!(
            text,
            [
                "approvals (have 0, need 2)",
                "author_approved",
                "staging_soak (need_secs 3600)",
                "change_window_closed"
            ]
        );
    }
}
