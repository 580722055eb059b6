//! Redis key names of the engine (DESIGN.md §6, §8), built here and nowhere else in Rust.
//! Braces are Redis Cluster hash tags: keys with the same tag share a slot, so one script may
//! change them together. The layout (issue 21):
//!
//! - **Partitions.** A logical queue is P streams (`ai:{<tag>}:queue:<queue>`), each with its
//!   consumer group, delayed set and dead set in the same slot; a task's record and events
//!   (`ai:{<tag>}:task:<id>`, `…:events`) are in the partition its id hashes to, so any process
//!   finds them from the id alone, and create, start, finish, promote, reclaim, cancel and replay
//!   each stay one atomic script in one slot. Each partition also has its watching set and
//!   announcement stream (`hub.rs`), its outbox (`outbox.rs`) and its ended batches. A batch
//!   lives in the partition of its id and its items are given ids of that partition
//!   ([`Partitions::new_id_in`]), so counting items and releasing held ones stays atomic with
//!   the item's change. P is `redis.partitions`: 1 by default on one server (one core gains
//!   nothing from more streams), 6 on a cluster (even over 2, 3 or 6 shards); it is fixed for a
//!   deployment (changing it strands the tasks of the partitions that go). Partition `n`'s tag is
//!   chosen so its slot lies mid-way in the `n`-th of P equal slot ranges: the partitions spread
//!   evenly over shards that split the slots evenly.
//! - **Users.** Every key of one user (limits, quota, bucket, settled reservations, task index,
//!   feed, Idempotency-Key) carries the `{user_id}` tag: one slot per user.
//! - **What crosses slots.** A user's index and feed get a new task first (`lua/user_task.lua`),
//!   then its partition records it: a crash between leaves an id without a record, which readers
//!   skip. Settling the user's reservation when a task ends, and queueing the webhook of a task
//!   with a callback URL, are follow-ups: the partition's script appends them to the
//!   partition's outbox in the same step, the caller applies them at once and deletes them, and
//!   a sweeper applies what a crash left; the user's slot remembers what it settled, and a
//!   webhook's delivery task has an id that comes from the task and its end, so nothing counts
//!   twice. (On one server an inline run's finish is given the user's settlement keys and
//!   settles in its own step.) A user's feed is announced by the
//!   create script of the task's partition, on that partition's announcement stream; the hub
//!   registers a feed in every partition's watching set.
//! - **Fetching.** One `XREADGROUP` may name streams of one slot only: a worker pool reads the
//!   partitions in turn without blocking while they have work, and when all are empty waits on
//!   doorbells (`fetcher.rs`): one blocking read of all partitions on one server, one per
//!   partition on a cluster, each on a connection of its own.
//! - **Global keys** (one key each, so one slot each): the worker check-ins ([`WORKERS`]), the
//!   latency averages, the audit spool. Cancellations go over pub/sub ([`CANCEL_CHANNEL`]).

/// Consumer group every worker process joins on every queue stream.
pub const GROUP: &str = "workers";
/// Pub/sub channel on which cancellations of running tasks are announced (a cluster forwards a
/// `PUBLISH` to every node, so one subscription per process hears all of them).
pub const CANCEL_CHANNEL: &str = "ai:cancel";
/// Sorted set of worker pools (consumer names, `<kind>@<host>:<pid>:<n>`) by their last
/// heartbeat (Unix ms): every pool checks in every third of its visibility timeout.
pub const WORKERS: &str = "ai:workers";
/// Events kept per task stream (approximate trim).
pub const EVENTS_MAXLEN: usize = 1000;

/// Partitions by default on one Redis server: one core gains nothing from more streams.
pub const DEFAULT_PARTITIONS_SINGLE: usize = 1;
/// Partitions by default on a Redis Cluster: even over 2, 3 or 6 shards; a deployment with
/// more shards sets `redis.partitions` to a multiple of their number.
pub const DEFAULT_PARTITIONS_CLUSTER: usize = 6;

/// The partitions of the engine's keys: partition `n` has a hash tag whose slot lies in the
/// middle of the `n`-th of `P` equal slot ranges, so the partitions spread evenly over shards
/// that split the slots evenly (as `redis-cli --cluster create` does). Cloning is one
/// reference count.
#[derive(Clone, Debug)]
pub struct Partitions {
    tags: std::sync::Arc<[String]>,
}

impl Partitions {
    pub fn new(count: usize) -> Self {
        let count = count.clamp(1, 1024);
        let width = crate::storage::slots::SLOTS as usize / count;
        let tags = (0..count)
            .map(|n| {
                let (low, high) = (n * width + width / 4, n * width + 3 * width / 4);
                (0u32..)
                    .map(|k| format!("p{n}.{k}"))
                    .find(|tag| {
                        let slot = crate::storage::slots::slot(tag.as_bytes()) as usize;
                        (low..=high).contains(&slot)
                    })
                    .expect("some tag falls in every range")
            })
            .collect();
        Self { tags }
    }

    /// `redis.partitions`, else the default for one server or a cluster.
    pub fn configured(partitions: Option<usize>, cluster: bool) -> Self {
        let default = if cluster {
            DEFAULT_PARTITIONS_CLUSTER
        } else {
            DEFAULT_PARTITIONS_SINGLE
        };
        Self::new(partitions.unwrap_or(default))
    }

    pub fn count(&self) -> usize {
        self.tags.len()
    }

    /// Every partition, in order.
    pub fn all(&self) -> std::ops::Range<usize> {
        0..self.tags.len()
    }

    /// The partition of a task (or batch) id.
    pub fn of(&self, id: &str) -> usize {
        let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        (hash % self.tags.len() as u64) as usize
    }

    /// A new task id (UUIDv7) that falls in partition `p`: a batch's items live in their
    /// batch's partition, so counting them and releasing held ones stay one atomic step.
    pub fn new_id_in(&self, p: usize) -> String {
        loop {
            let id = uuid::Uuid::now_v7().to_string();
            if self.of(&id) == p {
                return id;
            }
        }
    }

    fn at(&self, p: usize, rest: std::fmt::Arguments<'_>) -> String {
        format!("ai:{{{}}}:{rest}", self.tags[p])
    }

    pub fn task(&self, id: &str) -> String {
        self.at(self.of(id), format_args!("task:{id}"))
    }

    pub fn events(&self, id: &str) -> String {
        self.at(self.of(id), format_args!("task:{id}:events"))
    }

    /// The task id of an event stream's key.
    pub fn task_of_events(key: &str) -> Option<&str> {
        key.split_once("}:task:")?.1.strip_suffix(":events")
    }

    pub fn queue(&self, p: usize, queue: &str) -> String {
        self.at(p, format_args!("queue:{queue}"))
    }

    pub fn delayed(&self, p: usize, queue: &str) -> String {
        self.at(p, format_args!("delayed:{queue}"))
    }

    /// Sorted set of a partition's dead task ids, scored by when they died.
    pub fn dead(&self, p: usize) -> String {
        self.at(p, format_args!("dead"))
    }

    /// A stream of the keys of watched streams that just got an entry: what event readers
    /// block on (`hub.rs`).
    pub fn announcements(&self, p: usize) -> String {
        self.at(p, format_args!("events"))
    }

    /// Sorted set of the streams someone subscribes to (score: expiry, Unix ms): only appends
    /// to these are announced. A task's stream is registered in its partition; a user's feed in
    /// every partition (any partition's create script appends to it).
    pub fn watching(&self, p: usize) -> String {
        self.at(p, format_args!("watching"))
    }

    /// The stream of follow-up steps a partition's scripts leave for other slots (`outbox.rs`).
    pub fn outbox(&self, p: usize) -> String {
        self.at(p, format_args!("outbox"))
    }

    /// A batch's hash (`batches/store.rs` has its other keys).
    pub fn batch(&self, id: &str) -> String {
        self.at(self.of(id), format_args!("batch:{id}"))
    }

    /// Ids of a partition's batches whose last item just finished, waiting for their webhook.
    pub fn batches_ended(&self, p: usize) -> String {
        self.at(p, format_args!("batches:ended"))
    }
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
    use super::Partitions;
    use crate::storage::slots::slot;

    #[test]
    fn a_task_and_its_events_share_its_partitions_slot() {
        let parts = Partitions::new(6);
        let id = "0192f3a4-0000-7000-8000-000000000042";
        let p = parts.of(id);
        let task_slot = slot(parts.task(id).as_bytes());
        assert_eq!(slot(parts.events(id).as_bytes()), task_slot);
        assert_eq!(slot(parts.queue(p, "ai_request").as_bytes()), task_slot);
        assert_eq!(slot(parts.outbox(p).as_bytes()), task_slot);
        assert_eq!(Partitions::task_of_events(&parts.events(id)), Some(id));
        assert_eq!(super::user_tasks("u1"), "ai:tasks:user:{u1}");
    }

    #[test]
    fn partitions_spread_evenly_over_slot_ranges() {
        for count in [1, 2, 3, 6, 12, 16] {
            let parts = Partitions::new(count);
            let width = 16384 / count;
            for p in parts.all() {
                let s = slot(parts.dead(p).as_bytes()) as usize;
                assert_eq!(
                    s / width,
                    p,
                    "{count} partitions: partition {p} at slot {s}"
                );
            }
        }
        // Three shards of 5461 slots each take two of six partitions.
        let parts = Partitions::new(6);
        let shards: Vec<usize> = parts
            .all()
            .map(|p| slot(parts.dead(p).as_bytes()) as usize / 5462)
            .collect();
        assert_eq!(shards, [0, 0, 1, 1, 2, 2]);
    }

    #[test]
    fn ids_placed_in_a_partition_land_there() {
        let parts = Partitions::new(6);
        for p in parts.all() {
            assert_eq!(parts.of(&parts.new_id_in(p)), p);
        }
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
