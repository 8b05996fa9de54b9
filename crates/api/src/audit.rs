//! What an audit entry records.

rampart_model::wire_enum! {
    /// What happened. The wire name is part of every entry's hash (see the control plane's
    /// `audit` module): add variants, never rename one.
    pub enum AuditAction {
        ChangeSubmitted,
        ChangeValidated,
        ChangeApproved,
        ChangeRejected,
        ChangeWithdrawn,
        ChangeApplied,
        /// Back to the last known good snapshot, by a person or automatically.
        Rollback,
        RolloutStarted,
        RolloutAdvanced,
        RolloutAborted,
        RolloutCompleted,
        RolloutPaused,
        RolloutResumed,
        /// The impact test blocked a change.
        ImpactBlocked,
        LoginFailed,
        TokenCreated,
        TokenRevoked,
        GatewayNack,
    }
}

#[cfg(test)]
mod tests {
    use rampart_model::EnumName;
    use strum::VariantArray;

    use super::*;

    /// The names are hashed into every stored entry: they must never change.
    #[test]
    fn names_are_the_hashed_ones() {
        let names: Vec<&str> = AuditAction::VARIANTS.iter().map(|a| a.as_str()).collect();
        assert_eq!(
            names,
            [
                "change_submitted",
                "change_validated",
                "change_approved",
                "change_rejected",
                "change_withdrawn",
                "change_applied",
                "rollback",
                "rollout_started",
                "rollout_advanced",
                "rollout_aborted",
                "rollout_completed",
                "rollout_paused",
                "rollout_resumed",
                "impact_blocked",
                "login_failed",
                "token_created",
                "token_revoked",
                "gateway_nack",
            ]
        );
    }
}
