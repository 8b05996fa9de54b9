//! One reading of a rollout: the API's [`RolloutView`], with its last evaluation decoded.

use anyhow::{Context, Result};
use rampart_api::{RolloutState, RolloutView};
use rampart_model::change::StageDef;
use serde::Deserialize;

/// A rollout as the commands show it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Reading {
    pub(super) view: RolloutView,
    /// The newest evaluation of the current stage's gates, if any.
    pub(super) eval: Option<StageEval>,
}

/// What the rollout engine stores as a rollout's `last_eval`: the API carries it as an
/// untyped object, and these are the fields the CLI shows.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(super) struct StageEval {
    pub(super) stage: String,
    pub(super) elapsed_secs: f64,
    pub(super) samples: f64,
    pub(super) min_samples: f64,
    /// `pass`, `pending` or `fail`.
    pub(super) verdict: String,
    pub(super) gates: Vec<GateEval>,
}

/// One gate's result in a [`StageEval`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(super) struct GateEval {
    pub(super) gate: String,
    pub(super) verdict: String,
    pub(super) value: Option<f64>,
    pub(super) threshold: Option<f64>,
    pub(super) message: String,
}

impl TryFrom<RolloutView> for Reading {
    type Error = anyhow::Error;

    fn try_from(view: RolloutView) -> Result<Reading> {
        let eval = view
            .last_eval
            .clone()
            .map(serde_json::from_value)
            .transpose()
            .context("the rollout's last evaluation does not parse")?;
        Ok(Reading { view, eval })
    }
}

impl Reading {
    /// Succeeded, rolled back or aborted: it will not change again.
    pub(super) fn is_terminal(&self) -> bool {
        !self.view.state.is_active()
    }

    pub(super) fn succeeded(&self) -> bool {
        self.view.state == RolloutState::Succeeded
    }

    pub(super) fn stage(&self) -> Option<&StageDef> {
        self.view.stages.get(self.view.stage_index)
    }

    /// `stage 2/4 10% of cell a`.
    pub(super) fn stage_label(&self) -> String {
        let n = self.view.stages.len();
        if n == 0 {
            return "stage -".into();
        }
        let i = (self.view.stage_index + 1).min(n);
        match self.stage() {
            Some(s) => format!("stage {i}/{n} {}", s.name),
            None => format!("stage {i}/{n}"),
        }
    }

    /// Why it ended, when it says.
    pub(super) fn reason(&self) -> Option<&str> {
        self.view.reason.as_deref().filter(|s| !s.is_empty())
    }

    /// Each gate's result of the last evaluation.
    pub(super) fn gates(&self) -> &[GateEval] {
        self.eval.as_ref().map_or(&[], |e| &e.gates)
    }
}
