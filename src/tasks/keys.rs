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

/// A batch's hash (`tasks/batches.rs` has its other keys).
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

pub fn idempotency(user_id: &str, key: &str) -> String {
    format!("ai:idem:{{{user_id}}}:{key}")
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
}
