//! Every enum of the contract: its names parse back, and serde uses the same ones.

use std::fmt::Debug;
use std::str::FromStr;

use rampart_model::{EnumName, parse_name};
use serde::Serialize;
use strum::VariantArray;

use crate::*;

fn names_round_trip<T>(what: &'static str)
where
    T: VariantArray + EnumName + FromStr + Serialize + PartialEq + Debug,
{
    for v in T::VARIANTS {
        assert_eq!(parse_name::<T>(what, v.as_str()), Ok(*v));
        assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
    }
}

#[test]
fn names_round_trip_and_match_serde() {
    names_round_trip::<AuditAction>("audit action");
    names_round_trip::<ChangeStatus>("change status");
    names_round_trip::<DecisionAction>("decision action");
    names_round_trip::<ErrorCode>("error code");
    names_round_trip::<Role>("role");
    names_round_trip::<RolloutAction>("rollout action");
    names_round_trip::<RolloutState>("rollout state");
    names_round_trip::<TokenKind>("token kind");
}
