//! Rollouts: their life, how they are shown, and how people steer them.

use rampart_model::change::StageDef;
use rampart_model::{ContentHash, Environment, Risk};
use serde::{Deserialize, Serialize};

use crate::decision::DecisionAction;
use serde_json::Value;

rampart_model::wire_enum! {
    /// Where a rollout is.
    pub enum RolloutState {
        Running,
        Paused,
        Succeeded,
        RolledBack,
        Aborted,
    }
}

impl RolloutState {
    /// Whether the rollout still has a candidate live (running or paused).
    pub fn is_active(self) -> bool {
        matches!(self, RolloutState::Running | RolloutState::Paused)
    }
}

/// One decision of a rollout, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RolloutDecision {
    pub at_ms: u64,
    pub stage_index: usize,
    pub stage: String,
    pub action: DecisionAction,
    pub actor: String,
    /// What the decision was based on (the gates' results, a person's reason).
    #[schema(value_type = Object)]
    pub evidence: Value,
}

/// A rollout as the API shows it: `GET /v1/rollouts/{id}`, and the answer of pause, resume
/// and abort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RolloutView {
    pub id: String,
    pub change_id: String,
    pub env: Environment,
    pub risk: Risk,
    pub state: RolloutState,
    /// The plan's stages.
    pub stages: Vec<StageDef>,
    pub stage_index: usize,
    /// When the current stage started (ms since the epoch).
    pub stage_started_ms: u64,
    /// Set while paused: when the pause began.
    pub paused_at_ms: Option<u64>,
    /// Time paused during the current stage, not counted as soak.
    pub paused_total_ms: u64,
    pub baseline_version: u64,
    pub candidate_version: u64,
    pub baseline_hash: ContentHash,
    pub candidate_hash: ContentHash,
    /// The newest evaluation of the gates, for `rampart rollout watch`.
    pub last_eval: Option<crate::gate::StageEval>,
    /// Why it ended, when it did not succeed.
    pub reason: Option<String>,
    /// Bumped by every update.
    pub rev: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub finished_ms: Option<u64>,
    /// Soak of the current stage so far, pauses excluded.
    pub soaked_secs: f64,
    pub decisions: Vec<RolloutDecision>,
}

/// `GET /v1/envs/{env}/rollouts`: the newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RolloutList {
    pub rollouts: Vec<RolloutView>,
}

rampart_model::wire_enum! {
    /// What a person may do to a rollout: `POST /v1/rollouts/{id}/{action}`.
    pub enum RolloutAction {
        /// Stay at the current stage; soak stops counting, gates still judge.
        Pause,
        /// Continue a paused rollout.
        Resume,
        /// Return the environment to its LKG at once.
        Abort,
    }
}

/// The body of pause, resume and abort: an optional reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
