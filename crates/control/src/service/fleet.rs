//! What the API reads of an environment, and what gateways tell the control plane: their
//! place in the fleet, ACKs, reports and request samples, and the deployments they stream.

use rampart_api::{ApplyResponse, ChangeRecord, GatewaySeen, SnapshotRecord, TokenRecord};
use rampart_model::EnumName;
use rampart_model::config::{Config, Environment};
use rampart_model::wire::{ConfigAck, GatewayReport, SampleBatch};
use rampart_store::ops::*;
use serde_json::json;

use super::{Result, Service, ServiceError};
use crate::audit::AuditAction;
use rampart_store::{Deployment, StoreError};

/// Sample batches kept per environment for the impact test.
const KEPT_SAMPLE_BATCHES: u32 = 200;

/// A store error the caller cannot fix, whatever it is.
fn internal(e: StoreError) -> ServiceError {
    ServiceError::Internal(e.to_string())
}

/// A gateway's last NACK, as the fleet view shows it: `<hash>: <reason>`.
fn nack_text(ack: Option<&ConfigAck>) -> Option<String> {
    match ack {
        Some(ConfigAck::Nack { hash, reason }) => Some(format!("{hash}: {reason}")),
        _ => None,
    }
}

impl Service {
    /// The current config of `env` and its version.
    pub async fn config(&self, env: Environment) -> Result<(Config, u64)> {
        Ok(self.store.config(env).await?)
    }

    /// The newest snapshot of `env`.
    pub async fn latest_snapshot(&self, env: Environment) -> Result<SnapshotRecord> {
        self.store
            .latest_snapshot(env)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("a snapshot of {env}")))
    }

    /// The live token with this secret, if any.
    pub async fn token_by_secret(&self, secret: &str) -> Result<Option<TokenRecord>> {
        self.store.token_by_secret(secret).await.map_err(internal)
    }

    /// What an apply did: the change, its candidate snapshot, its rollout, and the hash
    /// gateways are now told to run.
    pub async fn apply_outcome(
        &self,
        change: ChangeRecord,
        snapshot: &SnapshotRecord,
    ) -> Result<ApplyResponse> {
        let rollout = self
            .store
            .rollout_of_change(&change.id)
            .await
            .map_err(internal)?;
        let deployed = self
            .store
            .deployed_hash(snapshot.env)
            .await
            .map_err(internal)?
            .map(|(hash, _)| hash);
        Ok(ApplyResponse {
            snapshot: snapshot.to_ref(),
            change,
            rollout_id: rollout.map(|r| r.id),
            deployed_hash: deployed,
        })
    }

    /// The newest deployment of `env`. A store written before deployments existed deploys its
    /// newest snapshot first.
    pub async fn newest_deployment(
        &self,
        env: Environment,
    ) -> Result<Option<Deployment>, StoreError> {
        let dep = self.store.latest_deployment(env).await?;
        if dep.is_some() {
            return Ok(dep);
        }
        let Some(rec) = self.store.latest_snapshot(env).await? else {
            return Ok(None);
        };
        if let Err(e) = self
            .store
            .put_deployment(&rec.snapshot, None, "migrated")
            .await
        {
            tracing::warn!(error = %e, env = %env, "cannot record the first deployment");
        }
        self.store.latest_deployment(env).await
    }

    /// The `seq` of the newest deployment of `env`.
    pub async fn deployment_seq(&self, env: Environment) -> Result<Option<u64>, StoreError> {
        self.store.deployment_seq(env).await
    }

    /// With PostgreSQL, a listener for other replicas' deployments (None on SQLite).
    pub async fn listen_deployments(
        &self,
    ) -> Result<Option<rampart_store::DeploymentListener>, StoreError> {
        self.store.listen_deployments().await
    }

    /// Record that a gateway was seen.
    pub async fn gateway_seen(&self, seen: &GatewaySeen) -> Result<()> {
        self.store.upsert_gateway(seen).await.map_err(internal)
    }

    /// A gateway's ACK or NACK; a NACK is audited as `gateway_nack`.
    pub async fn gateway_ack(&self, mut seen: GatewaySeen, ack: &ConfigAck) -> Result<()> {
        match ack {
            ConfigAck::Ack { hash } => seen.hash = Some(hash.to_string()),
            ConfigAck::Nack { hash, reason } => {
                seen.last_nack = nack_text(Some(ack));
                let detail = json!({ "gateway": seen.id, "cell": seen.cell, "hash": hash.to_string(), "reason": reason });
                self.audit(
                    &format!("gateway:{}", seen.id),
                    AuditAction::GatewayNack,
                    seen.env.as_str(),
                    detail,
                )
                .await?;
            }
        }
        self.gateway_seen(&seen).await
    }

    /// A gateway's report: its identity, the snapshot it runs and its counters.
    pub async fn gateway_report(&self, env: Environment, report: &GatewayReport) -> Result<()> {
        let seen = GatewaySeen {
            env,
            id: report.gateway.id.clone(),
            cell: report.gateway.cell.clone(),
            version: report.gateway.version.to_string(),
            hash: report.snapshot.map(|h| h.to_string()),
            last_seen_ms: self.now_ms(),
            last_nack: nack_text(report.last_nack.as_ref()),
        };
        self.gateway_seen(&seen).await?;
        self.store.put_report(env, report).await.map_err(internal)
    }

    /// Keep a gateway's request samples for the impact test (the newest batches only).
    pub async fn gateway_samples(
        &self,
        env: Environment,
        gateway: &str,
        batch: &SampleBatch,
    ) -> Result<()> {
        if batch.samples.is_empty() {
            return Ok(());
        }
        let json =
            serde_json::to_string(batch).map_err(|e| ServiceError::Internal(e.to_string()))?;
        self.store
            .put_samples(env, gateway, &json, KEPT_SAMPLE_BATCHES)
            .await
            .map_err(internal)
    }

    /// Every gateway of `env`.
    pub async fn fleet(&self, env: Environment) -> Result<Vec<GatewaySeen>> {
        self.store.gateways(env).await.map_err(internal)
    }
}
