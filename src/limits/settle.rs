//! Settling a task's token reservation when it ends: the part of the estimate it did not use
//! goes back to the user's daily and monthly counts (in the periods it was reserved in) and to
//! the feature's token bucket. It runs in the user's slot as a follow-up of the partition script
//! that recorded the end (`tasks/outbox.rs`), once per task however often it is applied.

use std::sync::LazyLock;

use redis::Script;

use super::keys;
use crate::feature::Feature;
use crate::storage::RedisConnection;

/// The settlement functions (`give_back`, `settle_reservation`), in Lua: prepended to the
/// limits' own scripts, and given to the engine for the task scripts that settle a reservation in
/// the step that ends its task (on one server: `tasks::FollowUpSteps::settle_lua`).
pub const SETTLEMENT_LUA: &str = include_str!("lua/settlement.lua");

static SETTLE: LazyLock<Script> = LazyLock::new(|| {
    crate::storage::script::lua(&format!(
        "{SETTLEMENT_LUA}{}",
        include_str!("lua/settle.lua")
    ))
});

pub(super) fn refund_script() -> Script {
    crate::storage::script::lua(&format!(
        "{SETTLEMENT_LUA}{}",
        include_str!("lua/refund.lua")
    ))
}

/// The keys `settle_reservation` takes for `user_id`'s reservation for `feature`, in its order
/// (daily, monthly, the feature's bucket, the settled set); `None` for an unknown feature.
pub fn settlement_keys(user_id: &str, feature: &str) -> Option<[String; 4]> {
    let feature = feature.parse::<Feature>().ok()?;
    Some([
        keys::daily(user_id),
        keys::monthly(user_id),
        keys::bucket(user_id, feature),
        keys::settled(user_id),
    ])
}

/// Settles task `task_id`'s reservation `quota` (`Reservation::encode`) to `used` tokens. An
/// unreadable reservation or feature settles nothing (it was never ours to give back).
pub async fn settle(
    conn: &mut RedisConnection,
    user_id: &str,
    feature: &str,
    task_id: &str,
    quota: &str,
    used: u64,
) -> redis::RedisResult<()> {
    let Some(keys) = settlement_keys(user_id, feature) else {
        return Ok(());
    };
    let mut invocation = SETTLE.prepare_invoke();
    for key in keys {
        invocation.key(key);
    }
    invocation
        .arg(quota)
        .arg(used)
        .arg(task_id)
        .invoke_async::<i64>(conn)
        .await
        .map(drop)
}
