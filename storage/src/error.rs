//! The storage error type. The server maps each variant to a Kubernetes `Status` once, at the
//! HTTP edge.

/// Everything a storage operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object {0} already exists")]
    AlreadyExists(String),
    #[error("object {0} not found")]
    NotFound(String),
    /// A precondition (expected resourceVersion or uid) did not hold.
    #[error("conflict on {key}: {reason}")]
    Conflict { key: String, reason: String },
    /// The requested revision was compacted away (Kubernetes answers 410 Gone).
    #[error("required revision {requested} has been compacted (oldest available is {compacted})")]
    Expired { requested: u64, compacted: u64 },
    /// The requested revision is ahead of the shard, even after a short wait.
    #[error("Too large resource version: {requested}, current: {current}")]
    TooLargeRevision { requested: u64, current: u64 },
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("invalid value: {0}")]
    InvalidValue(String),
    #[error("invalid continue token: {0}")]
    InvalidContinue(String),
    /// The database could not be reached or failed; the operation may be retried.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The write reached the database but its outcome is unknown (the connection broke during
    /// COMMIT and the outcome could not be read back).
    #[error("outcome of write unknown: {0}")]
    UnknownOutcome(String),
    #[error("storage internal error: {0}")]
    Internal(String),
    /// The store was written by a newer binary (its schema version is `found`, this binary
    /// knows up to `known`): refused rather than read or written.
    #[error(
        "the store's schema version {found} is newer than this binary supports ({known}): it \
         was last opened by a newer trellis. Run that version (or a newer one) on it, or \
         restore a backup taken before the upgrade; this binary does not downgrade a store"
    )]
    SchemaTooNew { found: i64, known: i64 },
}

impl StorageError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound(_))
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl From<tokio_postgres::Error> for StorageError {
    fn from(err: tokio_postgres::Error) -> Self {
        if err.is_closed() || err.as_db_error().is_none() {
            StorageError::Unavailable(err.to_string())
        } else {
            StorageError::Internal(err.to_string())
        }
    }
}

impl From<deadpool_postgres::PoolError> for StorageError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        StorageError::Unavailable(err.to_string())
    }
}

impl From<rusqlite::Error> for StorageError {
    fn from(err: rusqlite::Error) -> Self {
        match err.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                StorageError::Unavailable(err.to_string())
            }
            _ => StorageError::Internal(err.to_string()),
        }
    }
}
