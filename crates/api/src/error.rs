//! The one error body of the API and its stable codes.

use serde::{Deserialize, Serialize};

rampart_model::wire_enum! {
    /// What went wrong, as a stable code: clients match on it, people read `message`.
    pub enum ErrorCode {
        /// No token, a malformed `Authorization` header, or an unknown or revoked token (401).
        Unauthorized,
        /// A gateway token on a user endpoint (or the reverse), or a role too low (403).
        Forbidden,
        /// No such endpoint, environment, change, rollout or flag (404).
        NotFound,
        /// The body is not JSON of the expected shape; `fields` names the path at fault (400).
        BadJson,
        /// The body could not be read, or contradicts the query (400).
        BadBody,
        /// The body is larger than the API accepts (413).
        TooLarge,
        /// A query parameter is unknown or out of range (400).
        BadQuery,
        /// Well-formed but refused: validation failed, with `fields` (422).
        Invalid,
        /// Written against an older version of the environment (409).
        StaleVersion,
        /// The change's status moved meanwhile, or does not allow the action (409).
        StatusConflict,
        /// The object exists already (409).
        Duplicate,
        /// The change does not meet the risk rules yet; `fields` lists what it lacks (409).
        NotReady,
        /// The environment has no verified snapshot to roll back to (409).
        NoLkg,
        /// The environment has a rollout in progress (409).
        RolloutActive,
        /// The rollout moved meanwhile (409).
        RolloutMoved,
        /// The rollout's state does not allow the action (409).
        RolloutState,
        /// The impact test blocked the change (409).
        ImpactBlocked,
        /// Something the caller cannot fix; the details are in the control plane's log (500).
        Internal,
    }
}

/// One error at one path of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
    #[serde(default)]
    pub fields: Vec<FieldError>,
    /// The change recorded as rejected, when a submission failed validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_id: Option<String>,
}
