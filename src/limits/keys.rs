//! Redis key names of the limits (DESIGN.md §6), built here and nowhere else in Rust. Braces
//! are Redis Cluster hash tags: every key of one user shares the user's slot, so a check across
//! them is one atomic script. A task's reservation is settled here by a follow-up of its
//! partition (`settle.rs`).

use crate::feature::Feature;

/// Sorted set of blocked users (score: block end, ms), for `GET /v1/admin/blocks`. Global: it
/// is the one limits key outside a user's slot, so no script writes it together with a user's
/// keys; `Limits::index_block` adds a block after the script made it.
pub const BLOCKED_INDEX: &str = "ai:abuse:blocked";

fn user(user: &str, suffix: &str) -> String {
    format!("ai:{suffix}:user:{{{user}}}")
}

/// The user's sliding request window.
pub fn window(user_id: &str) -> String {
    user(user_id, "rate")
}

/// The cooldown a window breach starts.
pub fn cooldown(user_id: &str) -> String {
    window(user_id) + ":cooldown"
}

/// Set while the user is blocked for abuse (its value: the block's end, ms).
pub fn blocked(user_id: &str) -> String {
    user(user_id, "abuse") + ":blocked"
}

/// The user's recent violations, newest first.
pub fn violations(user_id: &str) -> String {
    user(user_id, "abuse") + ":violations"
}

/// An admin's overrides of the user's caps.
pub fn overrides(user_id: &str) -> String {
    user(user_id, "limits")
}

/// The user's daily quota (requests, tokens, reset_at).
pub fn daily(user_id: &str) -> String {
    user(user_id, "quota") + ":daily"
}

/// The user's monthly quota (requests, tokens, reset_at).
pub fn monthly(user_id: &str) -> String {
    user(user_id, "quota") + ":monthly"
}

/// The user's token bucket for one feature.
pub fn bucket(user_id: &str, feature: Feature) -> String {
    format!("{}:bucket:{feature}", user(user_id, "quota"))
}

/// The user's tasks whose reservation was settled (a zset by time), so a settlement applied
/// twice counts once.
pub fn settled(user_id: &str) -> String {
    user(user_id, "quota") + ":settled"
}

/// One client address's per-minute window.
pub fn ip(address: &str) -> String {
    format!("ai:rate:ip:{{{address}}}")
}

#[cfg(test)]
mod tests {
    use crate::feature::Feature;

    #[test]
    fn a_users_keys_share_the_users_hash_tag() {
        for key in [
            super::window("u1"),
            super::cooldown("u1"),
            super::blocked("u1"),
            super::violations("u1"),
            super::overrides("u1"),
            super::daily("u1"),
            super::monthly("u1"),
            super::bucket("u1", Feature::Hint),
        ] {
            assert!(key.contains(":{u1}"), "{key}");
        }
        assert_eq!(
            super::bucket("u1", Feature::Hint),
            "ai:quota:user:{u1}:bucket:hint"
        );
        assert_eq!(super::daily("u1"), "ai:quota:user:{u1}:daily");
    }
}
