//! Redis key names of the engine (DESIGN.md §6, §8). Braces are Redis Cluster hash tags: a
//! task's hash and its events share a slot. `lua/promote.lua` and `lua/start.lua` build task keys the
//! same way.

/// Consumer group every worker process joins on every queue stream.
pub const GROUP: &str = "workers";
/// Pub/sub channel on which cancellations of running tasks are announced.
pub const CANCEL_CHANNEL: &str = "ai:cancel";
/// Sorted set of dead task ids, scored by when they died.
pub const DEAD: &str = "ai:dead";
/// A stream of the keys of event streams that just got an entry: what event readers block on.
pub const EVENTS_ALL: &str = "ai:events";
/// Sorted set of the event streams someone subscribes to (score: expiry, Unix ms). Only appends
/// to these are announced on [`EVENTS_ALL`] (`lua/prelude.lua`).
pub const WATCHING: &str = "ai:watching";
/// Sorted set of worker pools (consumer names, `<kind>@<host>:<pid>:<n>`) by their last
/// heartbeat (Unix ms): every pool checks in every third of its visibility timeout.
pub const WORKERS: &str = "ai:workers";
/// Events kept per task stream (approximate trim).
pub const EVENTS_MAXLEN: usize = 1000;

pub fn task(id: &str) -> String {
    format!("ai:task:{{{id}}}")
}

pub fn events(id: &str) -> String {
    format!("ai:task:{{{id}}}:events")
}

pub fn queue(queue: &str) -> String {
    format!("ai:queue:{queue}")
}

pub fn delayed(queue: &str) -> String {
    format!("ai:delayed:{queue}")
}

/// A batch's hash (`batches/store.rs` has its other keys).
pub fn batch(id: &str) -> String {
    format!("ai:batch:{{{id}}}")
}

pub fn user_tasks(user_id: &str) -> String {
    format!("ai:tasks:user:{{{user_id}}}")
}

/// A stream of the ids of a user's new tasks.
pub fn user_feed(user_id: &str) -> String {
    format!("ai:user:{{{user_id}}}:feed")
}

/// The slot of one caller's `Idempotency-Key`: the user in the hash tag (one slot per user) and
/// a digest of the length-prefixed pair, so no two (user, key) pairs share a slot however
/// either is spelled (`a}:b` + `c` and `a` + `b}:c` once did).
pub fn idempotency(user_id: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update((user_id.len() as u64).to_be_bytes());
    hasher.update(user_id.as_bytes());
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(32);
    for byte in &digest[..16] {
        use std::fmt::Write as _;
        let _ = write!(hex, "{byte:02x}");
    }
    format!("ai:idem:{{{user_id}}}:{hex}")
}

pub fn latency(feature: &str) -> String {
    format!("ai:latency:{feature}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn braces_are_literal_hash_tags() {
        assert_eq!(super::task("42"), "ai:task:{42}");
        assert_eq!(super::events("42"), "ai:task:{42}:events");
        assert_eq!(super::user_tasks("u1"), "ai:tasks:user:{u1}");
    }

    #[test]
    fn idempotency_slots_are_injective() {
        assert_ne!(
            super::idempotency("a}:b", "c"),
            super::idempotency("a", "b}:c")
        );
        assert_ne!(super::idempotency("ab", "c"), super::idempotency("a", "bc"));
        assert!(super::idempotency("u1", "k").starts_with("ai:idem:{u1}:"));
    }
}
