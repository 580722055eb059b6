//! The ledger's Lua scripts (`lua/`) and their named contracts (`storage::script`).

use redis::Script;

use crate::storage::script::{Contract, script_parts};

script_parts! {
    /// `KEYS` of `lua/reserve.lua` (one entry's slot).
    pub struct ReserveKeys as key {
        state: String,
        inflight: String,
        /// The waiting tasks of the call's class.
        waiting: String,
        /// The next free turn of each user (or tenant) of the call's class that waits.
        users: String,
    }
}

script_parts! {
    /// `ARGV` of `lua/reserve.lua`.
    pub struct ReserveArgs<'a> as arg {
        call_id: &'a str,
        /// "" for a call of no task.
        task_id: &'a str,
        /// Whose turn it is: the user, or the tenant the user's token names.
        fair_key: &'a str,
        class: &'static str,
        hold_ms: u64,
        lease_ms: u64,
        burst_ms: u64,
        fresh_ms: u64,
        headroom: u64,
        rpm: u64,
        tpm: u64,
        itpm: u64,
        otpm: u64,
        max_in_flight: u64,
        input_tokens: u64,
        output_tokens: u64,
    }
}

script_parts! {
    /// `KEYS` of `lua/settle.lua`.
    pub struct SettleKeys as key {
        state: String,
        inflight: String,
    }
}

script_parts! {
    /// `ARGV` of `lua/settle.lua`; -1: not reported.
    pub struct SettleArgs<'a> as arg {
        call_id: &'a str,
        rpm: u64,
        tpm: u64,
        itpm: u64,
        otpm: u64,
        burst_ms: u64,
        fresh_ms: u64,
        booked_input: u64,
        booked_output: u64,
        used_input: i64,
        used_output: i64,
        rate_limited: u8,
        pause_ms: u64,
        requests_limit: i64,
        requests_left: i64,
        tokens_limit: i64,
        tokens_left: i64,
        input_limit: i64,
        input_left: i64,
        output_limit: i64,
        output_left: i64,
    }
}

pub const RESERVE: Contract = Contract {
    keys: ReserveKeys::NAMES,
    args: ReserveArgs::NAMES,
    item_keys: &[],
    item_args: &[],
};

pub const SETTLE: Contract = Contract {
    keys: SettleKeys::NAMES,
    args: SettleArgs::NAMES,
    item_keys: &[],
    item_args: &[],
};

/// Every script of the ledger with its contract and source, for the tests.
pub const ALL: &[(&str, &Contract, &str)] = &[
    ("reserve", &RESERVE, include_str!("lua/reserve.lua")),
    ("settle", &SETTLE, include_str!("lua/settle.lua")),
];

pub struct Scripts {
    pub reserve: Script,
    pub settle: Script,
}

impl Scripts {
    pub fn new() -> Self {
        let [reserve, settle] = [0, 1].map(|i| {
            let (_, contract, source) = ALL[i];
            crate::storage::script::lua(&contract.build("", source))
        });
        Self { reserve, settle }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_script_reads_only_its_named_keys_and_arguments() {
        for (name, contract, source) in super::ALL {
            let wrong = contract.misread(source);
            assert!(wrong.is_empty(), "lua/{name}.lua reads {wrong:?}");
        }
    }
}
