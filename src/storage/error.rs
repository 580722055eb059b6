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
