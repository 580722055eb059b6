//! Settling a task's token reservation when it ends: the part of the estimate it did not use
//! goes back to the user's daily and monthly counts (in the periods it was reserved in) and to
//! the feature's token bucket. It runs in the user's slot as a follow-up of the partition script
//! that recorded the end (`tasks/outbox.rs`), once per task however often it is applied.

use std::sync::LazyLock;

use redis::Script;

use super::keys;
use crate::feature::Feature;
use crate::storage::RedisConnection;

static REFUND: LazyLock<Script> = LazyLock::new(refund_script);

pub(super) fn refund_script() -> Script {
    crate::storage::script::lua(include_str!("lua/refund.lua"))
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
    let mut parts = quota.split(':').map(str::parse::<i64>);
    let (Some(Ok(reserved)), Some(Ok(day)), Some(Ok(month)), Ok(feature)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        feature.parse::<Feature>(),
    ) else {
        return Ok(());
    };
    let back = reserved.max(0) as u64 - used.min(reserved.max(0) as u64);
    REFUND
        .key(keys::daily(user_id))
        .key(keys::monthly(user_id))
        .key(keys::bucket(user_id, feature))
        .key(keys::settled(user_id))
        .arg(back)
        .arg(day)
        .arg(month)
        .arg(task_id)
        .invoke_async::<i64>(conn)
        .await
        .map(drop)
}
