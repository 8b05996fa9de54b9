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
