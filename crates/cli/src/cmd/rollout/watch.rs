//! `rampart rollout watch`: follow a rollout until it ends, with live bars on a terminal or
//! one plain line per change otherwise; exit 1 unless it succeeded.

use std::time::Duration;

use anyhow::Result;
use rampart_api::{GateVerdict, RolloutState, RolloutView};
use rampart_model::EnumName;

use super::reading::Reading;
use super::show::gate_text;
use crate::client::{Api, ApiFailure, enc};
use crate::output::{Reported, json_out, num, out};

/// What the plain (non-terminal) watch output follows: a line each time it changes.
#[derive(Debug, Default)]
pub(super) struct Watcher {
    last: Option<WatchKey>,
}

/// The stage index, the state, and each gate's name and verdict.
type WatchKey = (usize, RolloutState, Vec<(String, GateVerdict)>);

impl Watcher {
    /// The line to print for this reading, if the stage, the state or a gate's verdict changed.
    pub(super) fn observe(&mut self, r: &Reading) -> Option<String> {
        let gates: Vec<(String, GateVerdict)> = r
            .gates()
            .iter()
            .map(|g| (g.gate.clone(), g.verdict))
            .collect();
        let key = (r.view.stage_index, r.view.state, gates);
        if self.last.as_ref() == Some(&key) {
            return None;
        }
        self.last = Some(key);
        Some(plain_line(r))
    }
}

/// `rol_x running stage 1/3 1% of cell a  soak 12s/30s  samples 120/200  error_rate=pending`.
pub(super) fn plain_line(r: &Reading) -> String {
    let mut t = format!(
        "rollout {} {}  {}",
        r.view.id,
        r.view.state.as_str(),
        r.stage_label()
    );
    if let Some(s) = r.stage() {
        t.push_str(&format!(
            "  soak {}s/{}s",
            num(r.view.soaked_secs),
            s.min_soak_secs
        ));
    }
    if let Some(e) = &r.eval {
        t.push_str(&format!("  samples {}/{}", e.samples, e.min_samples));
        for g in &e.gates {
            t.push_str(&format!("  {}={}", g.gate, g.verdict));
        }
    }
    t
}

/// The final line of a watch, and the error line if the rollout did not succeed.
pub(super) fn final_lines(r: &Reading) -> (String, Option<String>) {
    let reason = r.reason();
    let mut done = format!(
        "rollout {} {} at {}",
        r.view.id,
        r.view.state.as_str(),
        r.stage_label()
    );
    if let Some(reason) = reason {
        done.push_str(": ");
        done.push_str(reason);
    }
    if r.succeeded() {
        return (done, None);
    }
    let mut err = format!(
        "rollout {} ended {}",
        r.view.id,
        r.view.state.as_str().to_uppercase()
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

    fn update(&mut self, r: &Reading) {
        let stages = r.view.stages.len();
        self.stage.set_length(stages as u64);
        let done = if r.succeeded() {
            stages
        } else {
            r.view.stage_index.min(stages)
        };
        self.stage.set_position(done as u64);
        let name = r.stage().map(|s| s.name.as_str()).unwrap_or("-");
        self.stage
            .set_message(format!("{name} ({})", r.view.state.as_str()));

        let min_soak = r.stage().map_or(0.0, |s| s.min_soak_secs as f64);
        let soaked = r.view.soaked_secs;
        self.soak.set_length(min_soak.ceil().max(0.0) as u64);
        self.soak.set_position(soaked.min(min_soak).max(0.0) as u64);
        let remaining = (min_soak - soaked).max(0.0).ceil();
        self.soak
            .set_message(format!("soak remaining {}s", num(remaining)));

        let (samples, min_samples) = match &r.eval {
            Some(e) => (e.samples as f64, e.min_samples as f64),
            None => (0.0, r.stage().map_or(0.0, |s| s.min_samples as f64)),
        };
        self.samples.set_length(min_samples.max(0.0) as u64);
        self.samples
            .set_position(samples.min(min_samples).max(0.0) as u64);
        self.samples.set_message(format!("{} seen", num(samples)));

        let results = r.gates();
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
        for (pb, g) in self.gates.iter().zip(results) {
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
pub(super) async fn watch(api: &Api, id: &str, interval_ms: u64, json: bool) -> Result<()> {
    let path = format!("/v1/rollouts/{}", enc(id));
    let interval = Duration::from_millis(interval_ms.max(50));
    let mut bars = if json { None } else { Bars::new() };
    let mut plain = Watcher::default();
    let mut failures = 0u32;
    let last = loop {
        let v: RolloutView = match api.get(&path).await {
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
        let r = Reading::from(v);
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
            break r;
        }
        tokio::time::sleep(interval).await;
    };
    if let Some(b) = &bars {
        b.finish();
    }
    if json {
        json_out(&last.view)?;
    }
    let (done, err) = final_lines(&last);
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
