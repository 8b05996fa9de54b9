//! One reading of a rollout: the API's [`RolloutView`] and what the commands derive from it.

use rampart_api::{GateResult, RolloutState, RolloutView, StageEval};
use rampart_model::change::StageDef;

/// A rollout as the commands show it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Reading {
    pub(super) view: RolloutView,
    /// The newest evaluation of the current stage's gates, if any.
    pub(super) eval: Option<StageEval>,
}

impl From<RolloutView> for Reading {
    fn from(view: RolloutView) -> Reading {
        let eval = view.last_eval.clone();
        Reading { view, eval }
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
    pub(super) fn gates(&self) -> &[GateResult] {
        self.eval.as_ref().map_or(&[], |e| &e.gates)
    }
}
