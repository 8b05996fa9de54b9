//! The fast path back: rollback to the last known good snapshot.

use rampart_api::{ErrorCode, SnapshotRecord};
use rampart_model::EnumName;
use rampart_model::Snapshot;
use rampart_model::change::Edit;
use rampart_model::config::Environment;
use rampart_store::ops::*;
use serde_json::{Value, json};

use super::objects::{kind_from_str, objects_of};
use super::{Result, Service, ServiceError, commit_audited, deployed_record};
use crate::audit::AuditAction;
use rampart_store::StoreTx;

impl Service {
    /// Go back to the last known good snapshot of `env` at once: the only fast path. A rollout
    /// in progress is aborted. The environment's objects are set back to the LKG's (as a new
    /// version, history kept) and the LKG is deployed to every gateway.
    pub async fn rollback(&self, env: Environment, actor: &str) -> Result<SnapshotRecord> {
        // A rollout in progress is aborted (which returns to the LKG). The driver writes the
        // rollout at every evaluation: re-read and retry when it moved meanwhile.
        for attempt in 1.. {
            let Some(active) = self.rollouts.active(env).await? else {
                break;
            };
            let reason = format!("rolled back to the LKG by {actor}");
            match self
                .rollouts
                .end(
                    active,
                    rampart_api::RolloutState::Aborted,
                    actor,
                    &reason,
                    json!({ "manual": true }),
                )
                .await
            {
                Err(ServiceError::Conflict {
                    code: ErrorCode::RolloutMoved,
                    ..
                }) if attempt < 5 => continue,
                other => return other,
            }
        }
        let lkg = self
            .store
            .last_verified(env)
            .await?
            .ok_or_else(|| ServiceError::Conflict {
                code: ErrorCode::NoLkg,
                message: format!("{env} has no verified snapshot to roll back to"),
            })?;
        let mut tx = self.store.begin().await?;
        let (version, detail) = Self::return_to(&mut tx, &lkg, actor, "rollback").await?;
        commit_audited(
            tx,
            actor,
            AuditAction::Rollback,
            &format!("env/{env}"),
            detail,
        )
        .await?;
        Ok(deployed_record(&lkg, version, self.now_ms()))
    }

    /// Inside `tx`: set the objects of the target's environment back to the target's (a new
    /// version, unless they are equal already), store its snapshot at that version and deploy
    /// it. Returns the version and an audit detail.
    pub(crate) async fn return_to(
        tx: &mut StoreTx,
        target: &SnapshotRecord,
        actor: &str,
        cause: &str,
    ) -> Result<(u64, Value)> {
        let env = target.env;
        let (current, head) = tx.config(env).await?;
        let goal = objects_of(target.snapshot.config());
        let now = objects_of(&current);
        let mut edits: Vec<Edit> = goal
            .iter()
            .filter(|(k, o)| now.get(*k) != Some(*o))
            .map(|(_, o)| Edit::Upsert(o.clone()))
            .collect();
        for (kind, name) in now.keys().filter(|k| !goal.contains_key(*k)) {
            let kind = kind_from_str(kind)?;
            edits.push(Edit::Delete {
                kind,
                name: name.clone(),
            });
        }
        let snapshot = Snapshot::new(target.snapshot.config().clone(), Vec::new());
        let version = if edits.is_empty() {
            head
        } else {
            let rollback_id = rampart_store::new_id("rbk")?;
            let v = tx
                .apply_edits(env, head, &edits, actor, &rollback_id)
                .await?;
            tx.put_snapshot(env, v, &snapshot).await?;
            v
        };
        tx.put_deployment(&snapshot, None, cause).await?;
        let detail = json!({
            "env": env.as_str(),
            "to_hash": target.hash.to_string(),
            "to_version": target.version,
            "lkg": target.verified,
            "version": version,
            "edits": edits.len(),
        });
        Ok((version, detail))
    }
}
