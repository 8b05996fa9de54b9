//! `rampart rollout pause|resume|abort`: a person steers a rollout.

use anyhow::Result;
use rampart_api::{ControlRequest, RolloutAction, RolloutView};
use rampart_model::EnumName;

use crate::client::{Api, enc};
use crate::output::{answer, out};

/// Pause, resume or abort, with an optional reason recorded with the decision.
pub(super) async fn act(
    api: &Api,
    id: &str,
    action: RolloutAction,
    reason: Option<String>,
    json: bool,
) -> Result<()> {
    let path = format!("/v1/rollouts/{}/{}", enc(id), action.as_str());
    let v: RolloutView = api.post(&path, &ControlRequest { reason }).await?;
    answer(json, &v, |v| out(&acted_line(action, v)))
}

/// `rollout rol_1: paused`, or `rollout rol_1: resumed (now running)` when the state's name
/// differs from the action's.
fn acted_line(action: RolloutAction, v: &RolloutView) -> String {
    let done = match action {
        RolloutAction::Pause => "paused",
        RolloutAction::Resume => "resumed",
        RolloutAction::Abort => "aborted",
    };
    let state = v.state.as_str();
    if state == done {
        format!("rollout {}: {done}", v.id)
    } else {
        format!("rollout {}: {done} (now {state})", v.id)
    }
}
