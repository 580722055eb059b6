//! The engine's Lua scripts (`lua/`), loaded once per store, and the named contracts of those
//! whose keys and arguments Rust and Lua share by name (`storage::script`): the script reads
//! `key_task`, `arg_ttl`, never `KEYS[1]` or `ARGV[3]`.

use redis::Script;

use crate::storage::script::{Contract, script_parts};

const FINISH_LUA: &str = include_str!("lua/finish.lua");

/// The shared helpers every task script starts with (after the limits' settlement functions,
/// `FollowUpSteps::settle_lua`).
const PRELUDE: &str = include_str!("lua/prelude.lua");

/// A contract of fixed keys and arguments only.
macro_rules! contract {
    ($keys:ty, $args:ty) => {
        Contract {
            keys: <$keys>::NAMES,
            args: <$args>::NAMES,
            item_keys: &[],
            item_args: &[],
        }
    };
    ($keys:ty, $args:ty, $item_keys:ty, $item_args:ty) => {
        Contract {
            keys: <$keys>::NAMES,
            args: <$args>::NAMES,
            item_keys: <$item_keys>::NAMES,
            item_args: <$item_args>::NAMES,
        }
    };
}

pub(super) const CREATE: Contract = contract!(CreateKeys, CreateArgs);
pub(super) const USER_TASK: Contract = contract!(UserTaskKeys, UserTaskArgs);
pub(super) const START: Contract = contract!(StartKeys, StartArgs, TaskKeys, StartItemArgs<'_>);
pub(super) const FINISH: Contract = contract!(FinishKeys, FinishArgs, TaskKeys, FinishItemArgs<'_>);
/// `lua/finish.lua` built for jobs given their user's settlement keys too ([`SETTLES_HERE`]).
pub(super) const FINISH_SETTLING: Contract =
    contract!(FinishKeys, FinishArgs, FinishItemKeys, FinishItemArgs<'_>);

/// What `lua/finish.lua` starts with in each build: whether its items carry settlement keys
/// (it reads them only then).
const SETTLES_HERE: &str = "local settles_here = true\n";
const SETTLES_BY_FOLLOW_UP: &str = "local settles_here = false\n";
pub(super) const PROMOTE: Contract =
    contract!(PromoteKeys, PromoteArgs, TaskKeys, PromoteItemArgs<'_>);
pub(super) const RECLAIM: Contract = contract!(ReclaimKeys, ReclaimArgs);
pub(super) const CANCEL: Contract = contract!(CancelKeys, CancelArgs);
pub(super) const REPLAY: Contract = contract!(ReplayKeys, ReplayArgs);
pub(super) const APPEND: Contract = contract!(AppendKeys, AppendArgs);

/// Every script of the engine with its contract and source, for the tests.
pub(super) const ALL: &[(&str, &Contract, &str, bool)] = &[
    ("create", &CREATE, include_str!("lua/create.lua"), true),
    (
        "user_task",
        &USER_TASK,
        include_str!("lua/user_task.lua"),
        true,
    ),
    ("start", &START, include_str!("lua/start.lua"), true),
    // The settling build's contract: it names every key the script may read.
    ("finish", &FINISH_SETTLING, FINISH_LUA, true),
    ("promote", &PROMOTE, include_str!("lua/promote.lua"), true),
    ("reclaim", &RECLAIM, include_str!("lua/reclaim.lua"), false),
    ("cancel", &CANCEL, include_str!("lua/cancel.lua"), true),
    ("replay", &REPLAY, include_str!("lua/replay.lua"), true),
    ("append", &APPEND, include_str!("lua/append.lua"), true),
];

pub(super) struct Scripts {
    pub create: Script,
    pub user_task: Script,
    pub start: Script,
    /// `finish.lua` for jobs whose reservation is settled by follow-up (worker finishes, and
    /// every finish on a cluster).
    pub finish: Script,
    /// `finish.lua` for jobs given their user's settlement keys (inline runs on one server).
    pub finish_settling: Script,
    pub promote: Script,
    pub reclaim: Script,
    pub cancel: Script,
    pub replay: Script,
    pub append: Script,
    pub webhook_state: Script,
    pub idempotency_release: Script,
}

impl Scripts {
    /// The scripts, those with the prelude starting with `settle_lua` (Lua that defines
    /// `settle_reservation`, or nothing when no finish settles in its own step).
    pub fn new(settle_lua: &str) -> Self {
        let prelude = format!("{settle_lua}{PRELUDE}");
        let built: Vec<Script> = ALL
            .iter()
            .map(|(name, contract, source, with_prelude)| {
                let prelude = match (*with_prelude, *name) {
                    (false, _) => String::new(),
                    (true, "finish") => format!("{prelude}{SETTLES_HERE}"),
                    (true, _) => prelude.clone(),
                };
                crate::storage::script::lua(&contract.build(&prelude, source))
            })
            .collect();
        let [
            create,
            user_task,
            start,
            finish,
            promote,
            reclaim,
            cancel,
            replay,
            append,
        ] = <[Script; 9]>::try_from(built).unwrap_or_else(|_| unreachable!("nine scripts"));
        Self {
            create,
            user_task,
            start,
            finish: crate::storage::script::lua(
                &FINISH.build(&format!("{prelude}{SETTLES_BY_FOLLOW_UP}"), FINISH_LUA),
            ),
            finish_settling: finish,
            promote,
            reclaim,
            cancel,
            replay,
            append,
            webhook_state: crate::storage::script::lua(include_str!("lua/webhook_state.lua")),
            idempotency_release: crate::storage::script::lua(include_str!(
                "lua/idempotency_release.lua"
            )),
        }
    }
}

script_parts! {
    /// `KEYS` of `lua/create.lua`.
    pub struct CreateKeys as key {
        task: String,
        events: String,
        /// The queue stream; for an inline run, the queue's delayed set (its lease).
        queue: String,
        watching: String,
        announcements: String,
        /// On one server only (`None` on a cluster, where `user_task.lua` writes them).
        user_tasks: Option<String>,
        user_feed: Option<String>,
    }
}

script_parts! {
    /// `ARGV` of `lua/create.lua`.
    pub struct CreateArgs as arg {
        task_id: String,
        job: String,
        ttl_secs: u64,
        max_attempts: u32,
        kind: String,
        user_id: String,
        feature: &'static str,
        request_id: String,
        role: &'static str,
        events_maxlen: usize,
        /// `queue`, `inline` or `hold`.
        mode: &'static str,
        /// The inline lease (0 otherwise).
        lease_ms: u64,
        /// '' = none.
        callback_url: String,
        /// The quota reservation, settled when the task ends ('' = none).
        quota: String,
        /// The batch the task is an item of ('' = none).
        batch: String,
        /// The user's feed's key: announced (its entry was added by `user_task.lua`).
        user_feed: String,
    }
}

script_parts! {
    /// `KEYS` of `lua/user_task.lua` (the user's slot).
    pub struct UserTaskKeys as key {
        /// The user's index of task ids (a zset by creation time).
        user_tasks: String,
        /// The user's feed (a stream of new task ids, for "subscribe to all my tasks").
        user_feed: String,
    }
}

script_parts! {
    /// `ARGV` of `lua/user_task.lua`.
    pub struct UserTaskArgs as arg {
        task_id: String,
        ttl_secs: u64,
    }
}

script_parts! {
    /// The keys of one task in a script that takes several (start, promote).
    pub struct TaskKeys as key {
        task: String,
        events: String,
    }
}

script_parts! {
    /// The keys of one finished job in the settling build of `lua/finish.lua`: its task's, then
    /// its user's settlement keys (`limits::settlement_keys`), so the finish settles the task's
    /// reservation itself (one server, and the caller knew the user).
    pub struct FinishItemKeys as key {
        task: String,
        events: String,
        daily: String,
        monthly: String,
        bucket: String,
        settled: String,
    }
}

script_parts! {
    /// `KEYS` of `lua/finish.lua`, before the jobs' ([`TaskKeys`]).
    pub struct FinishKeys as key {
        queue: String,
        dead: String,
        /// The queue's delayed set (retries, and the leases of inline runs).
        delayed: String,
        watching: String,
        announcements: String,
        outbox: String,
    }
}

script_parts! {
    /// `ARGV` of `lua/finish.lua`, before the jobs' ([`FinishItemArgs`]).
    pub struct FinishArgs as arg {
        group: &'static str,
        events_maxlen: usize,
        ttl_secs: u64,
    }
}

script_parts! {
    /// The arguments of one finished job.
    pub struct FinishItemArgs<'a> as arg {
        /// The queue entry to acknowledge ('' for an inline run: its lease is removed).
        entry: &'a str,
        task_id: &'a str,
        /// succeeded, failed, dead or retrying.
        ending: &'static str,
        /// The outcome's JSON.
        outcome: String,
        /// For a retry, when it runs again.
        delay_ms: u64,
        /// Tokens used, which the quota reservation settles to.
        tokens: u64,
    }
}

script_parts! {
    /// `KEYS` of `lua/start.lua`, before the jobs' ([`TaskKeys`]).
    pub struct StartKeys as key {
        queue: String,
        dead: String,
        watching: String,
        announcements: String,
        outbox: String,
    }
}

script_parts! {
    /// `ARGV` of `lua/start.lua`, before the jobs' ([`StartItemArgs`]).
    pub struct StartArgs<'a> as arg {
        group: &'static str,
        events_maxlen: usize,
        /// The consumer (worker pool) starting the jobs.
        worker: &'a str,
    }
}

script_parts! {
    /// One entry a read took.
    pub struct StartItemArgs<'a> as arg {
        entry: &'a str,
        task_id: &'a str,
    }
}

script_parts! {
    /// `KEYS` of `lua/promote.lua`, before the jobs' ([`TaskKeys`]).
    pub struct PromoteKeys as key {
        delayed: String,
        queue: String,
        watching: String,
        announcements: String,
    }
}

script_parts! {
    /// `ARGV` of `lua/promote.lua`.
    pub struct PromoteArgs as arg {
        events_maxlen: usize,
    }
}

script_parts! {
    /// One due job.
    pub struct PromoteItemArgs<'a> as arg {
        task_id: &'a str,
    }
}

script_parts! {
    /// `KEYS` of `lua/reclaim.lua`.
    pub struct ReclaimKeys as key {
        queue: String,
    }
}

script_parts! {
    /// `ARGV` of `lua/reclaim.lua`.
    pub struct ReclaimArgs as arg {
        group: &'static str,
        /// The visibility timeout.
        min_idle_ms: u64,
        limit: usize,
    }
}

script_parts! {
    /// `KEYS` of `lua/cancel.lua`.
    pub struct CancelKeys as key {
        task: String,
        events: String,
        delayed: String,
        watching: String,
        announcements: String,
        outbox: String,
    }
}

script_parts! {
    /// `ARGV` of `lua/cancel.lua`.
    pub struct CancelArgs<'a> as arg {
        task_id: &'a str,
        /// Only this user's task ('' = anyone's).
        owner: &'a str,
        events_maxlen: usize,
        cancel_channel: &'static str,
    }
}

script_parts! {
    /// `KEYS` of `lua/replay.lua`.
    pub struct ReplayKeys as key {
        task: String,
        events: String,
        dead: String,
        queue: String,
        watching: String,
        announcements: String,
    }
}

script_parts! {
    /// `ARGV` of `lua/replay.lua`.
    pub struct ReplayArgs<'a> as arg {
        task_id: &'a str,
        events_maxlen: usize,
        ttl_secs: u64,
    }
}

script_parts! {
    /// `KEYS` of `lua/append.lua`.
    pub struct AppendKeys as key {
        events: String,
        watching: String,
        announcements: String,
    }
}

script_parts! {
    /// `ARGV` of `lua/append.lua`.
    pub struct AppendArgs<'a> as arg {
        name: &'a str,
        data: String,
        events_maxlen: usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_reads_only_the_names_its_contract_defines() {
        for (name, contract, source, _) in ALL {
            assert_eq!(contract.misread(source), Vec::<String>::new(), "{name}.lua");
        }
        let create = CREATE.build("", include_str!("lua/create.lua"));
        assert!(create.contains("local key_task = KEYS[1]\n"));
        assert!(create.contains("local arg_batch = ARGV[15]\n"));
        let start = START.build("", include_str!("lua/start.lua"));
        assert!(start.contains("local items = (#KEYS - 5) / 2\n"));
        assert!(start.contains("  local arg_task_id = ARGV[3 + 2 * (i - 1) + 2]\n"));
        let finish = FINISH.build("", FINISH_LUA);
        assert!(finish.contains("local items = (#KEYS - 6) / 2\n"));
        assert!(finish.contains("  local arg_tokens = ARGV[3 + 6 * (i - 1) + 6]\n"));
        let settling = FINISH_SETTLING.build("", FINISH_LUA);
        assert!(settling.contains("local items = (#KEYS - 6) / 6\n"));
        assert!(settling.contains("  local key_settled = KEYS[6 + 6 * (i - 1) + 6]\n"));
    }
}
