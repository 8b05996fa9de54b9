//! Every enum of the contract: its names are pinned (they are stored, hashed into the audit
//! chain, and read by clients: add names, never rename one), they parse back, and serde uses
//! the same ones.

use std::fmt::Debug;
use std::str::FromStr;

use rampart_model::{EnumName, parse_name};
use serde::Serialize;
use strum::VariantArray;

use crate::*;

fn names_round_trip<T>(what: &'static str, pinned: &[&str])
where
    T: VariantArray + EnumName + FromStr + Serialize + PartialEq + Debug,
{
    let names: Vec<&str> = T::VARIANTS.iter().map(|v| v.as_str()).collect();
    assert_eq!(names, pinned, "the names of every {what}");
    for v in T::VARIANTS {
        assert_eq!(parse_name::<T>(what, v.as_str()), Ok(*v));
        assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
    }
}

#[test]
fn names_are_pinned_round_trip_and_match_serde() {
    names_round_trip::<AuditAction>(
        "audit action",
        &[
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
        ],
    );
    names_round_trip::<ChangeStatus>(
        "change status",
        &[
            "submitted",
            "validated",
            "awaiting_approval",
            "approved",
            "rolling_out",
            "applied",
            "rejected",
            "withdrawn",
            "rolled_back",
        ],
    );
    names_round_trip::<DecisionAction>(
        "decision action",
        &[
            "started",
            "advanced",
            "paused",
            "resumed",
            "aborted",
            "rolled_back",
            "succeeded",
        ],
    );
    names_round_trip::<ErrorCode>(
        "error code",
        &[
            "unauthorized",
            "forbidden",
            "not_found",
            "bad_json",
            "bad_body",
            "too_large",
            "bad_query",
            "invalid",
            "stale_version",
            "status_conflict",
            "duplicate",
            "not_ready",
            "no_lkg",
            "rollout_active",
            "rollout_moved",
            "rollout_state",
            "impact_blocked",
            "internal",
        ],
    );
    names_round_trip::<Role>("role", &["viewer", "editor", "approver", "admin"]);
    names_round_trip::<RolloutAction>("rollout action", &["pause", "resume", "abort"]);
    names_round_trip::<RolloutState>(
        "rollout state",
        &["running", "paused", "succeeded", "rolled_back", "aborted"],
    );
    names_round_trip::<TokenKind>("token kind", &["user", "gateway"]);
}
