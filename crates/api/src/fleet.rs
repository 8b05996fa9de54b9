//! The fleet: what each gateway runs, as it last told the control plane.

use rampart_model::Environment;
use serde::{Deserialize, Serialize};

/// One gateway as the fleet view knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GatewaySeen {
    pub env: Environment,
    pub id: String,
    pub cell: String,
    /// The gateway's software version.
    pub version: String,
    /// The snapshot hash it last said it runs.
    pub hash: Option<String>,
    pub last_seen_ms: u64,
    /// Its last NACK: `<hash>: <reason>`.
    pub last_nack: Option<String>,
}

/// `GET /v1/fleet?env=E`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Fleet {
    pub env: Environment,
    pub gateways: Vec<GatewaySeen>,
}
