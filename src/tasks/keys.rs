//! Redis key names of the engine (DESIGN.md §6, §8). Braces are Redis Cluster hash tags: a
//! task's hash and its events share a slot. `lua/promote.lua` and `lua/start.lua` build task keys the
//! same way.
//!
//! # Today's slots, and the layout the engine moves to on Redis Cluster (issue 21)
//!
//! Today a task (`{task_id}`), its user's index and feed (`{user_id}`), its queue stream, the
//! delayed and dead sets and the announcement keys (no tag) are in different slots, and one
//! script touches several of them: right on one Redis, refused by a cluster
//! (`tests/api/cluster.rs` lists which scripts, and why). The target layout:
//!
//! - **Partitions.** A logical queue is P streams (`ai:{p<n>}:queue:<queue>`), each with its
//!   consumer group, delayed set and dead set in the same slot. A task's partition is a hash of
//!   its id mod P, so any process finds `ai:{p<n>}:task:<id>` and its events from the id alone,
//!   and create, start, finish, promote, reclaim and cancel each stay one atomic script in one
//!   slot. P is fixed per deployment (changing it strands tasks), 16 by default: enough for
//!   16 shards, few enough streams for one blocking read.
//! - **Users.** Every key of one user (limits, quota, bucket, task index, feed, Idempotency-Key)
//!   keeps the `{user_id}` tag, as now.
//! - **What crosses slots** (the user's index and feed when a task is created, quota settlement
//!   and batch counters when it ends, event announcements, a final task's webhook) becomes a
//!   follow-up step: the partition script appends it to the partition's outbox stream in the
//!   same atomic step, a follower applies it to the other slot with an idempotent script (each
//!   entry carries its task id and step, so a repeat is a no-op) and acknowledges it. A crash
//!   between the two loses nothing (the entry stays) and applies nothing twice.
//! - **Fetching.** One `XREADGROUP` may name streams of one slot only, so a worker pool holds a
//!   blocking read per partition (each on a dedicated connection: a blocking read holds its
//!   connection) and hands what any of them takes to the same workers; the start script takes a
//!   batch from one partition, and the reads are re-armed in a rotating order so none starves.

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
