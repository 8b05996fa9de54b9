//! The staged rollouts of applied changes, over the control plane's admin API: `rampart rollout`
//! (list, show, watch, pause, resume, abort) and `rampart rollback`.
//!
//! ```text
//! export RAMPART_SERVER=http://127.0.0.1:7070 RAMPART_TOKEN=rpt_...
//! rampart rollout list --env prod                 # newest first: id, change, state, stage, candidate
//! rampart rollout show rol_...                    # stages, the last evaluation, the decisions log
//! rampart rollout watch rol_... --interval-ms 500 # live until it ends; exit 1 unless it succeeded
//! rampart rollout pause rol_... --reason "waiting for the on-call"
//! rampart rollout resume rol_... ; rampart rollout abort rol_... --reason "wrong upstream"
//! rampart rollback --env prod                     # back on the last known good snapshot, now
//! ```
//!
//! `watch` draws live bars (stage, soak, samples, one line per gate) when stderr is a terminal;
//! otherwise it prints one plain line to stdout each time the stage, the state or a gate's
//! verdict changes. At the end it prints the final state; a rollout that did not succeed is
//! reported as `rollout ID ended ROLLED_BACK: reason` on stderr and the command exits 1.
//!
//! Errors are one line, like the other client commands; `--json` prints the API's JSON.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use rampart_api::{ControlRequest, EmptyRequest};

use crate::client::{Api, ApiFailure, client, enc, json_out, parse_env};
use crate::control_cmds::ClientArgs;
use crate::{Reported, out};

// ---------------------------------------------------------------------------------------------
// The commands.

#[derive(Debug, Args)]
pub(crate) struct RolloutArgs {
    #[command(subcommand)]
    cmd: RolloutCmd,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum RolloutCmd {
    /// The rollouts of an environment, newest first.
    List {
        /// The environment: dev, staging or prod.
        #[arg(long)]
        env: String,
    },
    /// A rollout: its stages, its last evaluation and its decisions.
    Show { id: String },
    /// Follow a rollout until it ends; exit 1 unless it succeeded.
    Watch {
        id: String,
        /// How often the rollout is read, in milliseconds.
        #[arg(long, default_value_t = 500)]
        interval_ms: u64,
    },
    /// Hold a rollout at its current stage.
    Pause {
        id: String,
        /// Why: recorded with the decision.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Let a paused rollout go on.
    Resume {
        id: String,
        /// Why: recorded with the decision.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Stop a rollout and put its environment back on the baseline.
    Abort {
        id: String,
        /// Why: recorded with the decision.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct RollbackArgs {
    /// The environment: dev, staging or prod.
    #[arg(long)]
    env: String,
    #[command(flatten)]
    client: ClientArgs,
}

pub(crate) fn rollout_cmd(a: RolloutArgs) -> Result<()> {
    let json = a.client.json;
    if let RolloutCmd::List { env } = &a.cmd {
        // Refuse a bad environment before any network call.
        parse_env(env)?;
    }
    client(&a.client, |api| async move {
        match a.cmd {
            RolloutCmd::List { env } => {
                let env = parse_env(&env)?;
                let v: Value = api.get(&format!("/v1/envs/{env}/rollouts")).await?;
                if json {
                    return json_out(&v);
                }
                let list = v["rollouts"].as_array().cloned().unwrap_or_default();
                out(&format!("{} rollout(s) in {env}", list.len()))?;
                for r in &list {
                    out(&format!("  {}", list_line(&Rollout::parse(r)?)))?;
                }
                Ok(())
            }
            RolloutCmd::Show { id } => {
                let v = api.get(&format!("/v1/rollouts/{}", enc(&id))).await?;
                if json {
                    return json_out(&v);
                }
                for line in show_lines(&Rollout::parse(&v)?) {
                    out(&line)?;
                }
                Ok(())
            }
            RolloutCmd::Watch { id, interval_ms } => watch(&api, &id, interval_ms, json).await,
            RolloutCmd::Pause { id, reason } => act(&api, &id, "pause", reason, json).await,
            RolloutCmd::Resume { id, reason } => act(&api, &id, "resume", reason, json).await,
            RolloutCmd::Abort { id, reason } => act(&api, &id, "abort", reason, json).await,
        }
    })
}

pub(crate) fn rollback_cmd(a: RollbackArgs) -> Result<()> {
    let json = a.client.json;
    let env = parse_env(&a.env)?;
    client(&a.client, |api| async move {
        let v = api
            .post(&format!("/v1/envs/{env}/rollback"), &EmptyRequest {})
            .await?;
        if json {
            json_out(&v)
        } else {
            out(&rollback_line(&env.to_string(), &v))
        }
    })
}

/// Pause, resume or abort.
async fn act(api: &Api, id: &str, verb: &str, reason: Option<String>, json: bool) -> Result<()> {
    let v = api
        .post(
            &format!("/v1/rollouts/{}/{verb}", enc(id)),
            &ControlRequest { reason },
        )
        .await?;
    if json {
        return json_out(&v);
    }
    let done = match verb {
        "pause" => "paused",
        "resume" => "resumed",
        _ => "aborted",
    };
    let r = Rollout::parse(&v).unwrap_or_default();
    let id = if r.id.is_empty() { id } else { &r.id };
    if r.state.is_empty() || r.state == done {
        out(&format!("rollout {id}: {done}"))
    } else {
        out(&format!("rollout {id}: {done} (now {})", r.state))
    }
}

/// What `rampart rollback` prints.
fn rollback_line(env: &str, v: &Value) -> String {
    let version = scalar(&v["version"]);
    let hash = scalar(&v["hash"]);
    match (version, hash) {
        (None, None) => format!("{env} is back on the last known good: {v}"),
        (version, hash) => format!(
            "{env} is back on the last known good: version {}, hash {}",
            version.as_deref().unwrap_or("?"),
            hash.as_deref().unwrap_or("?")
        ),
    }
}

/// A string or a number as text; `None` for null and anything else.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The rollout view (`GET /v1/rollouts/{id}`), every field optional.

/// Null reads as the default, like a missing field.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct Rollout {
    #[serde(default, deserialize_with = "nullable")]
    id: String,
    #[serde(default, deserialize_with = "nullable")]
    change_id: String,
    #[serde(default, deserialize_with = "nullable")]
    env: String,
    #[serde(default, deserialize_with = "nullable")]
    risk: String,
    #[serde(default, deserialize_with = "nullable")]
    state: String,
    #[serde(default, deserialize_with = "nullable")]
    stage_index: usize,
    #[serde(default, deserialize_with = "nullable")]
    stages: Vec<Stage>,
    #[serde(default, deserialize_with = "nullable")]
    soaked_secs: f64,
    #[serde(default)]
    baseline_hash: Option<String>,
    #[serde(default)]
    candidate_hash: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    last_eval: Option<Eval>,
    #[serde(default, deserialize_with = "nullable")]
    decisions: Vec<Decision>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct Stage {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default)]
    scope: Option<Scope>,
    #[serde(default, deserialize_with = "nullable")]
    shadow: bool,
    #[serde(default, deserialize_with = "nullable")]
    min_soak_secs: f64,
    #[serde(default, deserialize_with = "nullable")]
    min_samples: f64,
    #[serde(default, deserialize_with = "nullable")]
    gates: Vec<Gate>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct Scope {
    #[serde(default, deserialize_with = "nullable")]
    cells: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    gateways: Vec<String>,
    #[serde(default)]
    percent: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct Gate {
    #[serde(default)]
    check: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct Eval {
    #[serde(default, deserialize_with = "nullable")]
    stage: String,
    #[serde(default, deserialize_with = "nullable")]
    elapsed_secs: f64,
    #[serde(default, deserialize_with = "nullable")]
    samples: f64,
    #[serde(default, deserialize_with = "nullable")]
    min_samples: f64,
    #[serde(default, deserialize_with = "nullable")]
    verdict: String,
    #[serde(default, deserialize_with = "nullable")]
    gates: Vec<GateResult>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct GateResult {
    #[serde(default, deserialize_with = "nullable")]
    gate: String,
    #[serde(default, deserialize_with = "nullable")]
    verdict: String,
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    threshold: Option<f64>,
    #[serde(default, deserialize_with = "nullable")]
    message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
struct Decision {
    #[serde(default)]
    at_ms: Option<i64>,
    #[serde(default)]
    stage_index: Option<usize>,
    #[serde(default, deserialize_with = "nullable")]
    stage: String,
    #[serde(default, deserialize_with = "nullable")]
    action: String,
    #[serde(default, deserialize_with = "nullable")]
    actor: String,
    #[serde(default)]
    evidence: Value,
}

impl Rollout {
    fn parse(v: &Value) -> Result<Rollout> {
        Rollout::deserialize(v).context("the control plane's rollout does not parse")
    }

    /// Succeeded, rolled back, aborted or blocked: it will not change again.
    fn is_terminal(&self) -> bool {
        is_terminal(&self.state)
    }

    fn stage(&self) -> Option<&Stage> {
        self.stages.get(self.stage_index)
    }

    /// `stage 2/4 10% of cell a`.
    fn stage_label(&self) -> String {
        let n = self.stages.len();
        if n == 0 {
            return "stage -".into();
        }
        let i = (self.stage_index + 1).min(n);
        match self.stage() {
            Some(s) => format!("stage {i}/{n} {}", s.name),
            None => format!("stage {i}/{n}"),
        }
    }
}

fn is_terminal(state: &str) -> bool {
    matches!(state, "succeeded" | "rolled_back" | "aborted" | "blocked")
}

impl Gate {
    /// The check's name: `"no_nack"` or the key of `{"error_rate": {...}}`.
    fn name(&self) -> String {
        match &self.check {
            Value::String(s) => s.clone(),
            Value::Object(o) => o.keys().next().cloned().unwrap_or_else(|| "?".into()),
            Value::Null => "?".into(),
            other => other.to_string(),
        }
    }
}

/// `cells=a,b gateways=* 1%`: an empty list is every one.
fn scope_text(s: Option<&Scope>) -> String {
    let Some(s) = s else {
        return "cells=* gateways=*".into();
    };
    let list = |l: &[String]| {
        if l.is_empty() {
            "*".to_owned()
        } else {
            l.join(",")
        }
    };
    let mut t = format!("cells={} gateways={}", list(&s.cells), list(&s.gateways));
    if let Some(p) = s.percent {
        t.push_str(&format!(" {}%", num(p)));
    }
    t
}

/// A number without needless decimals: `1`, `4.55`, `0.333`.
fn num(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return format!("{x:.0}");
    }
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

fn opt_num(x: Option<f64>) -> String {
    x.map(num).unwrap_or_else(|| "-".into())
}

fn short_hash(h: Option<&str>) -> &str {
    match h {
        Some(h) if !h.is_empty() => {
            let h = h.strip_prefix("sha256:").unwrap_or(h);
            h.get(..12).unwrap_or(h)
        }
        _ => "-",
    }
}

/// UTC `2023-11-14 22:13:20Z` from milliseconds since the epoch.
fn time_text(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "-".into();
    };
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Evidence on one line: `key=value` pairs (nested keys dotted), at most 120 characters.
fn evidence_text(v: &Value) -> String {
    fn walk(prefix: &str, v: &Value, parts: &mut Vec<String>) {
        match v {
            Value::Null => {}
            Value::Object(o) => {
                for (k, inner) in o {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, inner, parts);
                }
            }
            other => {
                let text = match other {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.as_f64().map(num).unwrap_or_else(|| n.to_string()),
                    other => other.to_string(),
                };
                if prefix.is_empty() {
                    parts.push(text);
                } else {
                    parts.push(format!("{prefix}={text}"));
                }
            }
        }
    }
    let mut parts = Vec::new();
    walk("", v, &mut parts);
    let text = parts.join(" ");
    if text.chars().count() > 120 {
        let mut t: String = text.chars().take(119).collect();
        t.push('…');
        t
    } else {
        text
    }
}

// ---------------------------------------------------------------------------------------------
// Human output.

/// One line of `rampart rollout list`.
fn list_line(r: &Rollout) -> String {
    let mut line = format!(
        "{}  {}  {:<11} {}  {}",
        or_dash(&r.id),
        or_dash(&r.change_id),
        or_dash(&r.state),
        r.stage_label(),
        short_hash(r.candidate_hash.as_deref())
    );
    if let Some(reason) = r.reason.as_deref().filter(|s| !s.is_empty()) {
        line.push_str("  ");
        line.push_str(reason);
    }
    line
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

/// One gate's result: `error_rate  pending  1.2 / 4.55  message`.
fn gate_text(g: &GateResult) -> String {
    let mut t = format!(
        "{}  {}  {} / {}",
        or_dash(&g.gate),
        or_dash(&g.verdict),
        opt_num(g.value),
        opt_num(g.threshold)
    );
    if !g.message.is_empty() {
        t.push_str("  ");
        t.push_str(&g.message);
    }
    t
}

/// What `rampart rollout show` prints.
fn show_lines(r: &Rollout) -> Vec<String> {
    let mut l = Vec::new();
    l.push(format!(
        "rollout {}: {} (change {}, {}, risk {})",
        or_dash(&r.id),
        or_dash(&r.state),
        or_dash(&r.change_id),
        or_dash(&r.env),
        or_dash(&r.risk)
    ));
    if let Some(reason) = r.reason.as_deref().filter(|s| !s.is_empty()) {
        l.push(format!("  reason: {reason}"));
    }
    l.push(format!(
        "  baseline {}  candidate {}",
        short_hash(r.baseline_hash.as_deref()),
        short_hash(r.candidate_hash.as_deref())
    ));
    l.push(format!(
        "  {}, soaked {}s",
        r.stage_label(),
        num(r.soaked_secs)
    ));
    if !r.stages.is_empty() {
        l.push("stages:".into());
        let width = r
            .stages
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0);
        let scopes: Vec<String> = r
            .stages
            .iter()
            .map(|s| scope_text(s.scope.as_ref()))
            .collect();
        let swidth = scopes.iter().map(|s| s.chars().count()).max().unwrap_or(0);
        for (i, (s, scope)) in r.stages.iter().zip(&scopes).enumerate() {
            let marker = if i == r.stage_index && !r.is_terminal() {
                '>'
            } else {
                ' '
            };
            let gates: Vec<String> = s.gates.iter().map(Gate::name).collect();
            let mut line = format!(
                "  {marker} {}. {:<width$}  {:<swidth$}  shadow={}  soak {}s  samples {}",
                i + 1,
                s.name,
                scope,
                if s.shadow { "yes" } else { "no" },
                num(s.min_soak_secs),
                num(s.min_samples),
            );
            if !gates.is_empty() {
                line.push_str(&format!("  gates {}", gates.join(", ")));
            }
            l.push(line);
        }
    }
    if let Some(e) = &r.last_eval {
        l.push(format!(
            "last evaluation: {} (stage {}, {}s, {}/{} samples)",
            or_dash(&e.verdict),
            or_dash(&e.stage),
            num(e.elapsed_secs),
            num(e.samples),
            num(e.min_samples)
        ));
        for g in &e.gates {
            l.push(format!("  {}", gate_text(g)));
        }
    }
    if !r.decisions.is_empty() {
        l.push("decisions:".into());
        for d in &r.decisions {
            let stage = match d.stage_index {
                Some(i) => format!("stage {} {}", i + 1, d.stage),
                None => d.stage.clone(),
            };
            let mut line = format!(
                "  {}  {}  {}  by {}",
                time_text(d.at_ms),
                stage.trim_end(),
                or_dash(&d.action),
                or_dash(&d.actor)
            );
            let ev = evidence_text(&d.evidence);
            if !ev.is_empty() {
                line.push_str("  ");
                line.push_str(&ev);
            }
            l.push(line);
        }
    }
    l
}

/// The lines of a change's impact report (`"impact"` of `GET /v1/changes/{id}`); none if null.
pub(crate) fn impact_lines(v: &Value) -> Vec<String> {
    if !v.is_object() {
        return Vec::new();
    }
    let n = |k: &str| v[k].as_f64().map(num).unwrap_or_else(|| "?".into());
    let c = |k: &str| {
        v["counts"][k]
            .as_f64()
            .map(num)
            .unwrap_or_else(|| "?".into())
    };
    let blocked = v["blocked"].as_bool().unwrap_or(false);
    let mut l = Vec::new();
    let mut head = format!(
        "  impact: {}",
        if blocked { "BLOCKED" } else { "within bounds" }
    );
    if let Some(reason) = v["reason"].as_str().filter(|s| !s.is_empty()) {
        head.push_str(": ");
        head.push_str(reason);
    }
    l.push(head);
    l.push(format!(
        "    changed {}% (declared {}%, +{}% allowed, min samples {})",
        n("changed_percent"),
        n("declared_percent"),
        n("max_excess_percent"),
        n("min_samples")
    ));
    l.push(format!(
        "    compared {}: allowed→denied {}, denied→allowed {}, route changed {}, status changed {}",
        c("compared"),
        c("allowed_to_denied"),
        c("denied_to_allowed"),
        c("route_changed"),
        c("status_changed")
    ));
    let examples = v["examples"].as_array().cloned().unwrap_or_default();
    for e in examples.iter().take(5) {
        let s = |k: &str| e[k].as_str().unwrap_or("?").to_owned();
        let tenant = e["tenant"]
            .as_str()
            .map(|t| format!(" tenant {t}"))
            .unwrap_or_default();
        l.push(format!(
            "    e.g. {} {}{}{tenant} [{}]: {} ⇒ {}",
            s("method"),
            e["host"].as_str().unwrap_or(""),
            s("path"),
            s("class"),
            s("baseline"),
            s("candidate")
        ));
    }
    if examples.len() > 5 {
        l.push(format!("    … and {} more example(s)", examples.len() - 5));
    }
    l
}

// ---------------------------------------------------------------------------------------------
// Watch.

/// What the plain (non-terminal) watch output follows: a line each time it changes.
#[derive(Debug, Default)]
struct Watcher {
    last: Option<WatchKey>,
}

/// The stage index, the state, and each gate's name and verdict.
type WatchKey = (usize, String, Vec<(String, String)>);

impl Watcher {
    /// The line to print for this reading, if the stage, the state or a gate's verdict changed.
    fn observe(&mut self, r: &Rollout) -> Option<String> {
        let gates: Vec<(String, String)> = r
            .last_eval
            .iter()
            .flat_map(|e| &e.gates)
            .map(|g| (g.gate.clone(), g.verdict.clone()))
            .collect();
        let key = (r.stage_index, r.state.clone(), gates);
        if self.last.as_ref() == Some(&key) {
            return None;
        }
        self.last = Some(key);
        Some(plain_line(r))
    }
}

/// `rol_x running stage 1/3 1% of cell a  soak 12s/30s  samples 120/200  error_rate=pending`.
fn plain_line(r: &Rollout) -> String {
    let mut t = format!(
        "rollout {} {}  {}",
        or_dash(&r.id),
        or_dash(&r.state),
        r.stage_label()
    );
    if let Some(s) = r.stage() {
        t.push_str(&format!(
            "  soak {}s/{}s",
            num(r.soaked_secs),
            num(s.min_soak_secs)
        ));
    }
    if let Some(e) = &r.last_eval {
        t.push_str(&format!(
            "  samples {}/{}",
            num(e.samples),
            num(e.min_samples)
        ));
        for g in &e.gates {
            t.push_str(&format!("  {}={}", or_dash(&g.gate), or_dash(&g.verdict)));
        }
    }
    t
}

/// The final line of a watch, and the error line if the rollout did not succeed.
fn final_lines(r: &Rollout) -> (String, Option<String>) {
    let reason = r.reason.as_deref().filter(|s| !s.is_empty());
    let mut done = format!(
        "rollout {} {} at {}",
        or_dash(&r.id),
        or_dash(&r.state),
        r.stage_label()
    );
    if let Some(reason) = reason {
        done.push_str(": ");
        done.push_str(reason);
    }
    if r.state == "succeeded" {
        return (done, None);
    }
    let mut err = format!(
        "rollout {} ended {}",
        or_dash(&r.id),
        or_dash(&r.state).to_uppercase()
    );
    if let Some(reason) = reason {
        err.push_str(": ");
        err.push_str(reason);
    }
    (done, Some(err))
}

/// The live bars of a watch on a terminal.
struct Bars {
    multi: indicatif::MultiProgress,
    stage: indicatif::ProgressBar,
    soak: indicatif::ProgressBar,
    samples: indicatif::ProgressBar,
    gates: Vec<indicatif::ProgressBar>,
    gate_style: indicatif::ProgressStyle,
}

impl std::fmt::Debug for Bars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bars")
    }
}

impl Bars {
    /// The bars, or `None` when stderr is not a terminal (indicatif would hide them).
    fn new() -> Option<Bars> {
        let multi = indicatif::MultiProgress::new();
        if multi.is_hidden() {
            return None;
        }
        let bar = |prefix: &'static str, template: &str| {
            let style = indicatif::ProgressStyle::with_template(template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> ");
            multi.add(
                indicatif::ProgressBar::new(1)
                    .with_style(style)
                    .with_prefix(prefix),
            )
        };
        let stage = bar("stage", "{prefix:>8} [{bar:30}] {pos}/{len} {msg}");
        let soak = bar("soak", "{prefix:>8} [{bar:30}] {pos}s/{len}s {msg}");
        let samples = bar("samples", "{prefix:>8} [{bar:30}] {pos}/{len} {msg}");
        let gate_style = indicatif::ProgressStyle::with_template("{prefix:>8} {spinner} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        Some(Bars {
            multi,
            stage,
            soak,
            samples,
            gates: Vec::new(),
            gate_style,
        })
    }

    fn update(&mut self, r: &Rollout) {
        self.stage.set_length(r.stages.len() as u64);
        let done = if r.state == "succeeded" {
            r.stages.len()
        } else {
            r.stage_index.min(r.stages.len())
        };
        self.stage.set_position(done as u64);
        let name = r.stage().map(|s| s.name.as_str()).unwrap_or("-");
        self.stage
            .set_message(format!("{name} ({})", or_dash(&r.state)));

        let min_soak = r.stage().map(|s| s.min_soak_secs).unwrap_or(0.0);
        self.soak.set_length(min_soak.ceil().max(0.0) as u64);
        self.soak
            .set_position(r.soaked_secs.min(min_soak).max(0.0) as u64);
        let remaining = (min_soak - r.soaked_secs).max(0.0).ceil();
        self.soak
            .set_message(format!("soak remaining {}s", num(remaining)));

        let (samples, min_samples) = match &r.last_eval {
            Some(e) => (e.samples, e.min_samples),
            None => (0.0, r.stage().map(|s| s.min_samples).unwrap_or(0.0)),
        };
        self.samples.set_length(min_samples.max(0.0) as u64);
        self.samples
            .set_position(samples.min(min_samples).max(0.0) as u64);
        self.samples.set_message(format!("{} seen", num(samples)));

        let results: Vec<GateResult> = r
            .last_eval
            .as_ref()
            .map(|e| e.gates.clone())
            .unwrap_or_default();
        while self.gates.len() > results.len() {
            if let Some(pb) = self.gates.pop() {
                pb.finish_and_clear();
                self.multi.remove(&pb);
            }
        }
        while self.gates.len() < results.len() {
            let pb = self.multi.add(
                indicatif::ProgressBar::new_spinner()
                    .with_style(self.gate_style.clone())
                    .with_prefix("gate"),
            );
            pb.enable_steady_tick(Duration::from_millis(120));
            self.gates.push(pb);
        }
        for (pb, g) in self.gates.iter().zip(&results) {
            pb.set_message(gate_text(g));
        }
    }

    fn finish(&self) {
        for pb in &self.gates {
            pb.disable_steady_tick();
        }
        self.stage.abandon();
        self.soak.abandon();
        self.samples.abandon();
        for pb in &self.gates {
            pb.abandon();
        }
    }
}

/// Poll the rollout until it ends. Transient failures (network, 5xx) are retried a few times.
async fn watch(api: &Api, id: &str, interval_ms: u64, json: bool) -> Result<()> {
    let path = format!("/v1/rollouts/{}", enc(id));
    let interval = Duration::from_millis(interval_ms.max(50));
    let mut bars = if json { None } else { Bars::new() };
    let mut plain = Watcher::default();
    let mut failures = 0u32;
    let last = loop {
        let v = match api.get(&path).await {
            Ok(v) => {
                failures = 0;
                v
            }
            Err(e) => {
                let transient = e.is::<Reported>()
                    || e.downcast_ref::<ApiFailure>()
                        .is_some_and(|f| f.status >= 500);
                failures += 1;
                if !transient || failures > 10 {
                    if let Some(b) = &bars {
                        b.finish();
                    }
                    return Err(e);
                }
                tokio::time::sleep(interval).await;
                continue;
            }
        };
        let r = Rollout::parse(&v)?;
        if !json {
            match &mut bars {
                Some(b) => b.update(&r),
                None => {
                    if let Some(line) = plain.observe(&r) {
                        out(&line)?;
                    }
                }
            }
        }
        if r.is_terminal() {
            break (v, r);
        }
        tokio::time::sleep(interval).await;
    };
    if let Some(b) = &bars {
        b.finish();
    }
    let (v, r) = last;
    if json {
        json_out(&v)?;
    }
    let (done, err) = final_lines(&r);
    if !json {
        out(&done)?;
    }
    match err {
        None => Ok(()),
        Some(line) => {
            eprintln!("{line}");
            Err(Reported.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture() -> Value {
        json!({
            "id": "rol_1", "change_id": "chg_1", "env": "prod", "risk": "high",
            "state": "running", "stage_index": 0,
            "stages": [
                {"name": "1% of cell a", "scope": {"cells": ["a"], "gateways": [], "percent": 1.0},
                 "shadow": false, "min_soak_secs": 30, "min_samples": 200,
                 "gates": [
                    {"deadline_secs": 120, "check": {"error_rate": {"alpha": 0.01, "min_effect": 0.05, "min_samples": 20}}},
                    {"deadline_secs": 120, "check": "no_nack"}]},
                {"name": "all", "scope": {"cells": [], "gateways": [], "percent": 100.0},
                 "shadow": true, "min_soak_secs": 60, "min_samples": 1000, "gates": []}
            ],
            "stage_started_ms": 1_700_000_000_000_i64, "soaked_secs": 12.5,
            "baseline_hash": "ab12ab12ab12ab12ab12", "candidate_hash": "sha256:cd34cd34cd34cd34cd34",
            "created_ms": 1, "updated_ms": 2, "finished_ms": null, "reason": null,
            "last_eval": {"at_ms": 1, "stage": "1% of cell a", "elapsed_secs": 12.5, "min_soak_secs": 30,
                "samples": 120, "min_samples": 200, "verdict": "pending",
                "gates": [{"gate": "error_rate", "verdict": "pending", "value": 1.2, "threshold": 4.55,
                           "evidence": {}, "message": "candidate error rate 0.0% (0/120)"}]},
            "decisions": [{"at_ms": 1_700_000_000_000_i64, "stage_index": 0, "stage": "1% of cell a",
                "action": "started", "actor": "engine", "evidence": {"baseline": {"errors": 0, "requests": 10}, "note": "go"}}]
        })
    }

    #[test]
    fn list_line_names_stage_and_candidate() {
        let r = Rollout::parse(&fixture()).unwrap();
        assert_eq!(
            list_line(&r),
            "rol_1  chg_1  running     stage 1/2 1% of cell a  cd34cd34cd34"
        );
        let mut v = fixture();
        v["state"] = json!("rolled_back");
        v["reason"] = json!("error rate up");
        v["stage_index"] = json!(1);
        let line = list_line(&Rollout::parse(&v).unwrap());
        assert!(
            line.ends_with("stage 2/2 all  cd34cd34cd34  error rate up"),
            "{line}"
        );
    }

    #[test]
    fn show_lines_have_stages_eval_and_decisions() {
        let r = Rollout::parse(&fixture()).unwrap();
        let lines = show_lines(&r);
        let text = lines.join("\n");
        assert_eq!(
            lines[0],
            "rollout rol_1: running (change chg_1, prod, risk high)"
        );
        assert!(
            text.contains(
                "> 1. 1% of cell a  cells=a gateways=* 1%    shadow=no  soak 30s  samples 200  gates error_rate, no_nack"
            ),
            "{text}"
        );
        assert!(
            text.contains("  2. all           cells=* gateways=* 100%  shadow=yes"),
            "{text}"
        );
        assert!(
            text.contains("last evaluation: pending (stage 1% of cell a, 12.5s, 120/200 samples)")
        );
        assert!(
            text.contains("  error_rate  pending  1.2 / 4.55  candidate error rate 0.0% (0/120)")
        );
        assert!(
            text.contains(
                "  2023-11-14 22:13:20Z  stage 1 1% of cell a  started  by engine  baseline.errors=0 baseline.requests=10 note=go"
            ),
            "{text}"
        );
    }

    #[test]
    fn missing_and_null_fields_are_tolerated() {
        let r = Rollout::parse(&json!({})).unwrap();
        assert_eq!(list_line(&r), "-  -  -           stage -  -");
        let r = Rollout::parse(
            &json!({"id": null, "stages": null, "soaked_secs": null, "decisions": null}),
        )
        .unwrap();
        assert_eq!(r, Rollout::default());
        assert!(!show_lines(&r).is_empty());
        let r = Rollout::parse(&json!({
            "id": null, "state": null,
            "last_eval": {"gates": [{"gate": "x", "value": null}]},
            "stages": [{"name": null, "scope": null, "gates": [{}]}],
        }))
        .unwrap();
        let text = show_lines(&r).join("\n");
        assert!(text.contains("x  -  - / -"), "{text}");
        assert!(text.contains("gates ?"), "{text}");
        assert!(plain_line(&r).contains("x=-"));
        assert!(impact_lines(&Value::Null).is_empty());
        assert!(!impact_lines(&json!({})).is_empty());
    }

    #[test]
    fn terminal_states() {
        for s in ["succeeded", "rolled_back", "aborted", "blocked"] {
            assert!(is_terminal(s), "{s}");
        }
        for s in ["impact_test", "running", "paused", "", "unknown"] {
            assert!(!is_terminal(s), "{s}");
        }
    }

    #[test]
    fn scope_formatting() {
        let s = |v: Value| scope_text(Some(&serde_json::from_value::<Scope>(v).unwrap()));
        assert_eq!(
            s(json!({"cells": ["a", "b"], "gateways": [], "percent": 1.0})),
            "cells=a,b gateways=* 1%"
        );
        assert_eq!(
            s(json!({"cells": [], "gateways": ["gw-1"], "percent": 12.5})),
            "cells=* gateways=gw-1 12.5%"
        );
        assert_eq!(s(json!({})), "cells=* gateways=*");
        assert_eq!(scope_text(None), "cells=* gateways=*");
    }

    #[test]
    fn watch_prints_only_on_change() {
        let mut w = Watcher::default();
        let mut v = fixture();
        let r = |v: &Value| Rollout::parse(v).unwrap();
        let first = w.observe(&r(&v)).expect("the first reading is printed");
        assert_eq!(
            first,
            "rollout rol_1 running  stage 1/2 1% of cell a  soak 12.5s/30s  samples 120/200  error_rate=pending"
        );
        // More soak and samples only: nothing.
        v["soaked_secs"] = json!(20.0);
        v["last_eval"]["samples"] = json!(150);
        assert_eq!(w.observe(&r(&v)), None);
        // A gate's verdict changes.
        v["last_eval"]["gates"][0]["verdict"] = json!("pass");
        assert!(w.observe(&r(&v)).unwrap().contains("error_rate=pass"));
        assert_eq!(w.observe(&r(&v)), None);
        // The stage changes.
        v["stage_index"] = json!(1);
        assert!(w.observe(&r(&v)).unwrap().contains("stage 2/2 all"));
        // The state changes.
        v["state"] = json!("paused");
        assert!(w.observe(&r(&v)).unwrap().contains("rol_1 paused"));
        assert_eq!(w.observe(&r(&v)), None);
    }

    #[test]
    fn final_lines_report_failure() {
        let mut v = fixture();
        v["state"] = json!("succeeded");
        v["stage_index"] = json!(1);
        let (done, err) = final_lines(&Rollout::parse(&v).unwrap());
        assert_eq!(done, "rollout rol_1 succeeded at stage 2/2 all");
        assert_eq!(err, None);
        v["state"] = json!("rolled_back");
        v["reason"] = json!("error_rate failed");
        let (_, err) = final_lines(&Rollout::parse(&v).unwrap());
        assert_eq!(
            err.as_deref(),
            Some("rollout rol_1 ended ROLLED_BACK: error_rate failed")
        );
    }

    #[test]
    fn impact_report_lines() {
        let v = json!({"counts":{"compared":500,"allowed_to_denied":500,"denied_to_allowed":0,"route_changed":0,"status_changed":0},
            "changed_percent":100.0,"declared_percent":0.0,"max_excess_percent":1.0,"min_samples":50,"blocked":true,
            "reason":"100.0% of 500 sampled requests change outcome, declared 0.0% (+1.0% allowed)",
            "examples":[{"method":"GET","host":"a.example","path":"/x","tenant":"t1","class":"allowed_to_denied",
                "baseline":"allow route r1 → upstream u1","candidate":"static 503"}]});
        let l = impact_lines(&v);
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
    fn rollback_line_prints_version_and_hash() {
        assert_eq!(
            rollback_line("prod", &json!({"version": 7, "hash": "abc"})),
            "prod is back on the last known good: version 7, hash abc"
        );
        assert_eq!(
            rollback_line("prod", &json!({"ok": true})),
            "prod is back on the last known good: {\"ok\":true}"
        );
    }

    #[test]
    fn numbers_and_times() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(4.55), "4.55");
        assert_eq!(num(1.0 / 3.0), "0.333");
        assert_eq!(num(-0.0001), "0");
        assert_eq!(time_text(Some(0)), "1970-01-01 00:00:00Z");
        assert_eq!(time_text(None), "-");
        assert_eq!(short_hash(Some("sha256:0123456789abcdef")), "0123456789ab");
        assert_eq!(short_hash(Some("abc")), "abc");
        assert_eq!(short_hash(None), "-");
    }
}
