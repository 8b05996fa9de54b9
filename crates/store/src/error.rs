//! Why a store operation failed.

use rampart_api::ChangeStatus;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write was based on a version of the environment that is no longer current (HTTP 409).
    #[error(
        "version conflict: the write was based on version {expected}, but the environment is at version {actual}; re-read and retry"
    )]
    Conflict { expected: u64, actual: u64 },
    /// A change's status moved since it was read (HTTP 409).
    #[error("change `{id}` is `{actual}`, not `{expected}`: its status moved; re-read and retry")]
    StatusConflict {
        id: String,
        expected: ChangeStatus,
        actual: ChangeStatus,
    },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what} already exists")]
    Duplicate { what: String },
    /// The caller asked for something the store cannot record as such.
    #[error("invalid store request: {reason}")]
    Invalid { reason: String },
    /// The database holds something this version cannot read.
    #[error("corrupt data in the store: {what}: {reason}")]
    Corrupt { what: String, reason: String },
    /// A [`StoreTx`](crate::StoreTx) had an error and was rolled back instead of committed.
    #[error("the transaction was rolled back because an operation inside it failed")]
    Aborted,
    #[error("unsupported database URL scheme `{scheme}`: expected sqlite:// or postgres://")]
    UnsupportedUrl { scheme: String },
    #[error("cannot create the database directory `{path}`: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read random bytes from /dev/urandom: {0}")]
    Random(#[source] std::io::Error),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Whether the caller lost a race and may re-read and retry (HTTP 409).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            StoreError::Conflict { .. } | StoreError::StatusConflict { .. }
        )
    }
}
