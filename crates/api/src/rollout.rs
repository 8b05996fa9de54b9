//! The life of a rollout.

use serde::{Deserialize, Serialize};

/// Where a rollout is.
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
pub enum RolloutState {
    Running,
    Paused,
    Succeeded,
    RolledBack,
    Aborted,
}

impl RolloutState {
    /// Whether the rollout still has a candidate live (running or paused).
    pub fn is_active(self) -> bool {
        matches!(self, RolloutState::Running | RolloutState::Paused)
    }
}

#[cfg(test)]
mod tests {
    use rampart_model::{EnumName, parse_name};
    use strum::VariantArray;

    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for s in RolloutState::VARIANTS {
            assert_eq!(
                parse_name::<RolloutState>("rollout state", s.as_str()),
                Ok(*s)
            );
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
