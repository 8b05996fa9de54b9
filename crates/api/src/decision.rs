//! What a rollout decided at a step: its decision log's actions.

use crate::audit::AuditAction;

rampart_model::wire_enum! {
    /// One action in a rollout's decision log. Stored by name: add variants, never rename one.
    pub enum DecisionAction {
        Started,
        Advanced,
        Paused,
        Resumed,
        Aborted,
        RolledBack,
        Succeeded,
    }
}

impl DecisionAction {
    /// The audit entry that goes with the decision.
    pub fn audit_action(self) -> AuditAction {
        match self {
            DecisionAction::Started => AuditAction::RolloutStarted,
            DecisionAction::Advanced => AuditAction::RolloutAdvanced,
            DecisionAction::Paused => AuditAction::RolloutPaused,
            DecisionAction::Resumed => AuditAction::RolloutResumed,
            DecisionAction::Aborted => AuditAction::RolloutAborted,
            DecisionAction::RolledBack => AuditAction::Rollback,
            DecisionAction::Succeeded => AuditAction::RolloutCompleted,
        }
    }
}
