//! What an environment holds: its config, flags and snapshots, and the way back to its LKG.

use rampart_model::{Config, ContentHash, Environment, Flag, Snapshot};
use serde::{Deserialize, Deserializer, Serialize};

/// `GET /v1/envs/{env}/config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConfigResponse {
    /// The environment's version: what a change's `base_version` names.
    pub version: u64,
    pub config: Config,
}

/// `GET /v1/envs/{env}/flags`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FlagsResponse {
    pub version: u64,
    pub flags: Vec<Flag>,
}

/// A stored snapshot: `GET /v1/envs/{env}/snapshot`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnapshotRecord {
    pub env: Environment,
    pub version: u64,
    pub hash: ContentHash,
    /// Read back with its format version and hash checked.
    #[serde(deserialize_with = "checked_snapshot")]
    pub snapshot: Snapshot,
    /// Whether a rollout of it completed: a verified snapshot can be an LKG.
    pub verified: bool,
    pub verified_at_ms: Option<u64>,
    pub created_at_ms: u64,
}

impl SnapshotRecord {
    /// The snapshot by version and hash.
    pub fn to_ref(&self) -> SnapshotRef {
        SnapshotRef {
            version: self.version,
            hash: self.hash,
        }
    }
}

/// A snapshot by version and hash: what `POST /v1/envs/{env}/rollback` returns, and part of
/// an apply's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SnapshotRef {
    pub version: u64,
    pub hash: ContentHash,
}

fn checked_snapshot<'de, D: Deserializer<'de>>(d: D) -> Result<Snapshot, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Snapshot::try_from(value).map_err(serde::de::Error::custom)
}
