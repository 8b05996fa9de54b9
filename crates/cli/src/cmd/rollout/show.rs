//! What `rampart rollout list` and `rampart rollout show` print.

use rampart_model::EnumName;
use rampart_model::change::GateCheck;
use rampart_model::snapshot::StageScope;
use serde_json::Value;

use rampart_api::GateResult;

use super::reading::Reading;
use crate::output::num;

/// One line of `rampart rollout list`.
pub(super) fn list_line(r: &Reading) -> String {
    let v = &r.view;
    let mut line = format!(
        "{}  {}  {:<11} {}  {}",
        v.id,
        v.change_id,
        v.state.as_str(),
        r.stage_label(),
        v.candidate_hash.short()
    );
    if let Some(reason) = r.reason() {
        line.push_str("  ");
        line.push_str(reason);
    }
    line
}

/// One gate's result: `error_rate  pending  1.2 / 4.55  message`.
pub(super) fn gate_text(g: &GateResult) -> String {
    let mut t = format!(
        "{}  {}  {} / {}",
        g.gate,
        g.verdict,
        opt_num(g.value),
        num(g.threshold)
    );
    if !g.message.is_empty() {
        t.push_str("  ");
        t.push_str(&g.message);
    }
    t
}

/// What `rampart rollout show` prints.
pub(super) fn show_lines(r: &Reading) -> Vec<String> {
    let v = &r.view;
    let mut l = Vec::new();
    l.push(format!(
        "rollout {}: {} (change {}, {}, risk {})",
        v.id,
        v.state.as_str(),
        v.change_id,
        v.env.as_str(),
        v.risk.as_str()
    ));
    if let Some(reason) = r.reason() {
        l.push(format!("  reason: {reason}"));
    }
    l.push(format!(
        "  baseline {}  candidate {}",
        v.baseline_hash.short(),
        v.candidate_hash.short()
    ));
    l.push(format!(
        "  {}, soaked {}s",
        r.stage_label(),
        num(v.soaked_secs)
    ));
    if !v.stages.is_empty() {
        l.push("stages:".into());
        let width = v
            .stages
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0);
        let scopes: Vec<String> = v.stages.iter().map(|s| scope_text(&s.scope)).collect();
        let swidth = scopes.iter().map(|s| s.chars().count()).max().unwrap_or(0);
        for (i, (s, scope)) in v.stages.iter().zip(&scopes).enumerate() {
            let marker = if i == v.stage_index && !r.is_terminal() {
                '>'
            } else {
                ' '
            };
            let gates: Vec<String> = s.gates.iter().map(|g| gate_name(&g.check)).collect();
            let mut line = format!(
                "  {marker} {}. {:<width$}  {:<swidth$}  shadow={}  soak {}s  samples {}",
                i + 1,
                s.name,
                scope,
                if s.shadow { "yes" } else { "no" },
                s.min_soak_secs,
                s.min_samples,
            );
            if !gates.is_empty() {
                line.push_str(&format!("  gates {}", gates.join(", ")));
            }
            l.push(line);
        }
    }
    if let Some(e) = &r.eval {
        l.push(format!(
            "last evaluation: {} (stage {}, {}s, {}/{} samples)",
            e.verdict,
            e.stage,
            num(e.elapsed_secs),
            e.samples,
            e.min_samples
        ));
        for g in &e.gates {
            l.push(format!("  {}", gate_text(g)));
        }
    }
    if !v.decisions.is_empty() {
        l.push("decisions:".into());
        for d in &v.decisions {
            let stage = format!("stage {} {}", d.stage_index + 1, d.stage);
            let mut line = format!(
                "  {}  {}  {}  by {}",
                time_text(d.at_ms),
                stage.trim_end(),
                d.action,
                d.actor
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

/// The check's name as the API spells it: `no_nack`, or the key of `{"error_rate": {...}}`.
fn gate_name(check: &GateCheck) -> String {
    match serde_json::to_value(check) {
        Ok(Value::String(s)) => s,
        Ok(Value::Object(o)) => o.keys().next().cloned().unwrap_or_else(|| "?".into()),
        _ => "?".into(),
    }
}

/// `cells=a,b gateways=* 1%`: an empty list is every one.
pub(super) fn scope_text(s: &StageScope) -> String {
    let list = |l: &[String]| {
        if l.is_empty() {
            "*".to_owned()
        } else {
            l.join(",")
        }
    };
    format!(
        "cells={} gateways={} {}%",
        list(&s.cells),
        list(&s.gateways),
        num(s.percent)
    )
}

pub(super) fn opt_num(x: Option<f64>) -> String {
    x.map(num).unwrap_or_else(|| "-".into())
}

/// UTC `2023-11-14 22:13:20Z` from milliseconds since the epoch.
pub(super) fn time_text(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
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
pub(super) fn evidence_text(v: &Value) -> String {
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
