//! What people do to a rollout in progress: pause it, resume it, or abort it (back to the LKG
//! at once, like a failed gate). The driver writes a rollout at every evaluation, so each action
//! re-reads and retries when the rollout moved meanwhile.

use rampart_api::ErrorCode;
use rampart_api::RolloutState;
use rampart_store::ops::*;
use serde_json::json;

use super::{CONTROL_ATTEMPTS, DecisionAction, RolloutView, Rollouts, is_moved, moved};
use crate::service::{Result, ServiceError};
use rampart_store::RolloutRecord;

/// A change of a rollout's state, or why it cannot be made.
type Transition = fn(&mut RolloutRecord, u64) -> std::result::Result<(), String>;

impl Rollouts {
    /// Pause a running rollout: it stays at its stage, soak stops counting, gates still judge
    /// (a failing gate still rolls back).
    pub async fn pause(&self, id: &str, actor: &str, reason: Option<&str>) -> Result<RolloutView> {
        self.control(id, actor, reason, DecisionAction::Paused, |r, now| {
            if r.state != RolloutState::Running {
                return Err(format!("rollout `{}` is {}, not running", r.id, r.state));
            }
            r.state = RolloutState::Paused;
            r.paused_at_ms = Some(now);
            Ok(())
        })
        .await
    }

    /// Resume a paused rollout.
    pub async fn resume(&self, id: &str, actor: &str, reason: Option<&str>) -> Result<RolloutView> {
        self.control(id, actor, reason, DecisionAction::Resumed, |r, now| {
            if r.state != RolloutState::Paused {
                return Err(format!("rollout `{}` is {}, not paused", r.id, r.state));
            }
            r.state = RolloutState::Running;
            r.paused_total_ms += now.saturating_sub(r.paused_at_ms.unwrap_or(now));
            r.paused_at_ms = None;
            Ok(())
        })
        .await
    }

    /// Abort a rollout: back to the LKG at once, like a failed gate.
    pub async fn abort(&self, id: &str, actor: &str, reason: Option<&str>) -> Result<RolloutView> {
        let why = format!(
            "aborted by {actor}{}",
            reason.map(|r| format!(": {r}")).unwrap_or_default()
        );
        retry_moved(|| async {
            let r = self.record(id).await?;
            if !r.state.is_active() {
                return Err(ServiceError::Conflict {
                    code: ErrorCode::RolloutState,
                    message: format!("rollout `{id}` is {}: it has already ended", r.state),
                });
            }
            let evidence = json!({ "reason": reason });
            self.end(r, RolloutState::Aborted, actor, &why, evidence)
                .await
        })
        .await?;
        self.view(id).await
    }

    /// Apply `transition` to rollout `id` and record it as `action`, retried while the
    /// rollout moves.
    async fn control(
        &self,
        id: &str,
        actor: &str,
        reason: Option<&str>,
        action: DecisionAction,
        transition: Transition,
    ) -> Result<RolloutView> {
        let r = retry_moved(|| async {
            let mut r = self.record(id).await?;
            transition(&mut r, self.now_ms()).map_err(|message| ServiceError::Conflict {
                code: ErrorCode::RolloutState,
                message,
            })?;
            let detail = json!({ "rollout": id, "reason": reason });
            let mut tx = self.store.begin().await?;
            tx.update_rollout(&mut r).await.map_err(moved(id))?;
            self.decide(&mut tx, &r, action, actor, detail).await?;
            tx.commit().await?;
            Ok(r)
        })
        .await?;
        self.view_of(r).await
    }
}

/// Run `attempt` until it succeeds, fails for another reason than the rollout having moved, or
/// has been tried [`CONTROL_ATTEMPTS`] times.
async fn retry_moved<T, F, Fut>(attempt: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(e) if is_moved(&e) && tries < CONTROL_ATTEMPTS => tries += 1,
            other => return other,
        }
    }
}
