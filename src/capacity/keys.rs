//! Redis key names of the provider capacity ledger (DESIGN.md §6), built here and nowhere
//! else. One hash tag per provider entry: its schedule, its calls in flight and its waiting
//! tasks share a slot, so a booking is one atomic script on a cluster too.

use crate::providers::Class;

fn entry(provider: &str) -> String {
    format!("ai:capacity:{{{provider}}}")
}

/// The entry's schedule (`tat_*`), vendor report (`v_*`), pause and this minute's counts.
pub fn state(provider: &str) -> String {
    entry(provider)
}

/// Calls in flight (a zset: call id by lease end, ms), for `max_in_flight`.
pub fn inflight(provider: &str) -> String {
    entry(provider) + ":inflight"
}

/// Tasks of `class` waiting for their turn (a zset: task id by due time, ms).
pub fn waiting(provider: &str, class: Class) -> String {
    format!("{}:waiting:{}", entry(provider), class.as_str())
}

/// The next free turn (ms) of each user or tenant of `class` with calls waiting, so turns are
/// shared fairly (a zset by turn).
pub fn users(provider: &str, class: Class) -> String {
    format!("{}:users:{}", entry(provider), class.as_str())
}

#[cfg(test)]
mod tests {
    use crate::providers::Class;

    #[test]
    fn an_entrys_keys_share_its_hash_tag() {
        for key in [
            super::state("openai"),
            super::inflight("openai"),
            super::waiting("openai", Class::Interactive),
            super::waiting("openai", Class::Batch),
            super::users("openai", Class::Batch),
        ] {
            assert!(key.contains("{openai}"), "{key}");
        }
    }
}
