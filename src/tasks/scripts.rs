//! The engine's Lua scripts (`lua/`), loaded once per store, and the named contracts of those
//! whose keys and arguments Rust and Lua share by name (`storage::script`): the script reads
//! `key_task`, `arg_ttl`, never `KEYS[1]` or `ARGV[3]`.

use redis::Script;

use crate::storage::script::{locals, script_parts};

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
            create: Script::new(&create_script()),
            start: task_script!("start"),
            finish: task_script!("finish"),
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

/// The helpers, the named keys and arguments, then `lua/create.lua`.
fn create_script() -> String {
    let mut lua = String::from(PRELUDE);
    lua.push_str("-- Built by src/tasks/scripts.rs.\n");
    locals(&mut lua, "key_", "KEYS", CreateKeys::NAMES, 0);
    locals(&mut lua, "arg_", "ARGV", CreateArgs::NAMES, 0);
    lua.push_str(include_str!("lua/create.lua"));
    lua
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::script::reads_only;

    #[test]
    fn create_reads_only_the_names_its_contract_defines() {
        let script = include_str!("lua/create.lua");
        assert_eq!(
            reads_only(script, "key_", CreateKeys::NAMES),
            Vec::<String>::new()
        );
        assert_eq!(
            reads_only(script, "arg_", CreateArgs::NAMES),
            Vec::<String>::new()
        );
        assert!(
            !script.contains("KEYS[") && !script.contains("ARGV["),
            "create.lua reads a position instead of a name"
        );
        let built = create_script();
        assert!(built.contains("local key_task = KEYS[1]\n"));
        assert!(built.contains("local arg_batch = ARGV[15]\n"));
    }
}
