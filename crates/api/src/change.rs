//! The life of a change.

use serde::{Deserialize, Serialize};

/// Where a change is in its life. A rollout slots in between `approved` and `applied`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ChangeStatus {
    Submitted,
    Validated,
    AwaitingApproval,
    Approved,
    RollingOut,
    Applied,
    Rejected,
    Withdrawn,
    RolledBack,
}

impl ChangeStatus {
    /// Whether the change can move no further.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ChangeStatus::Applied
                | ChangeStatus::Rejected
                | ChangeStatus::Withdrawn
                | ChangeStatus::RolledBack
        )
    }
}

#[cfg(test)]
mod tests {
    use rampart_model::{EnumName, parse_name};
    use strum::VariantArray;

    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for s in ChangeStatus::VARIANTS {
            assert_eq!(
                parse_name::<ChangeStatus>("change status", s.as_str()),
                Ok(*s)
            );
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(ChangeStatus::AwaitingApproval.as_str(), "awaiting_approval");
    }
}
