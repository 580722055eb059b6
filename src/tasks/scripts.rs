//! The engine's Lua scripts (`lua/`), loaded once per store, and the named contracts of those
//! whose keys and arguments Rust and Lua share by name (`storage::script`): the script reads
//! `key_task`, `arg_ttl`, never `KEYS[1]` or `ARGV[3]`.

use redis::Script;

use crate::storage::script::{Contract, script_parts};

/// The shared helpers every task script starts with.
const PRELUDE: &str = include_str!("lua/prelude.lua");

/// A task script with the shared helpers (`lua/prelude.lua`) in front.
macro_rules! task_script {
    ($name:literal) => {
        Script::new(concat!(
            include_str!("lua/prelude.lua"),
            include_str!(concat!("lua/", $name, ".lua"))
        ))
    };
}

const CREATE: Contract = Contract {
    keys: CreateKeys::NAMES,
    args: CreateArgs::NAMES,
    item_keys: &[],
    item_args: &[],
};

const START: Contract = Contract {
    keys: StartKeys::NAMES,
    args: StartArgs::NAMES,
    item_keys: &[],
    item_args: StartItemArgs::NAMES,
};

const FINISH: Contract = Contract {
    keys: FinishKeys::NAMES,
    args: FinishArgs::NAMES,
    item_keys: FinishItemKeys::NAMES,
    item_args: FinishItemArgs::NAMES,
};

pub(super) struct Scripts {
    pub create: Script,
    pub start: Script,
    pub finish: Script,
    pub promote: Script,
    pub reclaim: Script,
    pub cancel: Script,
    pub replay: Script,
    pub append: Script,
    pub webhook_state: Script,
    pub idempotency_release: Script,
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            create: Script::new(&CREATE.build(PRELUDE, include_str!("lua/create.lua"))),
            start: Script::new(&START.build(PRELUDE, include_str!("lua/start.lua"))),
            finish: Script::new(&FINISH.build(PRELUDE, include_str!("lua/finish.lua"))),
            promote: task_script!("promote"),
            reclaim: Script::new(include_str!("lua/reclaim.lua")),
            cancel: task_script!("cancel"),
            replay: task_script!("replay"),
            append: task_script!("append"),
            webhook_state: Script::new(include_str!("lua/webhook_state.lua")),
            idempotency_release: Script::new(include_str!("lua/idempotency_release.lua")),
        }
    }
}

script_parts! {
    /// `KEYS` of `lua/create.lua`.
    pub struct CreateKeys as key {
        task: String,
        events: String,
        /// The user's index of task ids (a zset by creation time).
        user_tasks: String,
        /// The queue stream; for an inline run, the queue's delayed set (its lease).
        queue: String,
        /// The user's feed (a stream of new task ids, for "subscribe to all my tasks").
        user_feed: String,
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
    }
}

script_parts! {
    /// `KEYS` of `lua/finish.lua`, before the jobs' ([`FinishItemKeys`]).
    pub struct FinishKeys as key {
        queue: String,
        dead: &'static str,
        /// The queue's delayed set (retries, and the leases of inline runs).
        delayed: String,
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
    /// The keys of one finished job.
    pub struct FinishItemKeys as key {
        task: String,
        events: String,
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
    /// `KEYS` of `lua/start.lua`.
    pub struct StartKeys as key {
        queue: String,
        dead: &'static str,
    }
}

script_parts! {
    /// `ARGV` of `lua/start.lua`, before the jobs a blocking read took ([`StartItemArgs`]).
    pub struct StartArgs<'a> as arg {
        group: &'static str,
        events_maxlen: usize,
        /// The consumer (worker pool) starting the jobs.
        worker: &'a str,
        /// How many new entries the script reads itself (0: it starts the items given).
        read_count: usize,
    }
}

script_parts! {
    /// One entry a blocking read took.
    pub struct StartItemArgs<'a> as arg {
        entry: &'a str,
        task_id: &'a str,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_start_and_finish_read_only_the_names_their_contracts_define() {
        for (name, contract, source) in [
            ("create", &CREATE, include_str!("lua/create.lua")),
            ("start", &START, include_str!("lua/start.lua")),
            ("finish", &FINISH, include_str!("lua/finish.lua")),
        ] {
            assert_eq!(contract.misread(source), Vec::<String>::new(), "{name}.lua");
        }
        let create = CREATE.build("", include_str!("lua/create.lua"));
        assert!(create.contains("local key_task = KEYS[1]\n"));
        assert!(create.contains("local arg_batch = ARGV[15]\n"));
        let start = START.build("", include_str!("lua/start.lua"));
        assert!(start.contains("local items = (#ARGV - 4) / 2\n"));
        assert!(start.contains("  local arg_task_id = ARGV[4 + 2 * (i - 1) + 2]\n"));
        let finish = FINISH.build("", include_str!("lua/finish.lua"));
        assert!(finish.contains("local items = (#KEYS - 3) / 2\n"));
        assert!(finish.contains("  local arg_tokens = ARGV[3 + 6 * (i - 1) + 6]\n"));
    }
}
