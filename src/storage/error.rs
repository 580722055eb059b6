//! One error for both stores: what a service function returns when Redis or PostgreSQL fails,
//! converted with `?` into the service's error and from there into the API's.

/// A store that failed, with its own error (logged where it is turned into an answer, never
/// shown to a client).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Redis is unavailable: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("PostgreSQL failed: {0}")]
    Postgres(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether the store refused what it was given (PostgreSQL: a NUL byte, a value out of
    /// range, an index row too large; it would refuse it again), as opposed to being away or
    /// busy (worth waiting for).
    pub fn refuses_content(&self) -> bool {
        match self {
            Self::Redis(_) => false,
            Self::Postgres(err) => refuses_content(err),
        }
    }
}

/// Whether PostgreSQL refused a row for its content: SQLSTATE class 22 (data exception), 54
/// (program limit exceeded) or 23 other than `unique_violation` (callers skip rows already
/// there), or a value sqlx could not encode.
pub fn refuses_content(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            code.starts_with("22")
                || code.starts_with("54")
                || (code.starts_with("23") && code != "23505")
        }
        sqlx::Error::Encode(_) => true,
        _ => false,
    }
}
