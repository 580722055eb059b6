//! Redis key names of the response cache, built here and nowhere else. The request's hash is
//! the Redis Cluster hash tag of both, so the lookup and store scripts touch one slot.

/// An answer kept for requests with this hash.
pub fn answer(hash: &str) -> String {
    format!("ai:cache:response:{{{hash}}}")
}

/// The lock of the one caller computing the answer for this hash.
pub fn lock(hash: &str) -> String {
    format!("ai:cache:lock:{{{hash}}}")
}
