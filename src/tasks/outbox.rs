//! Follow-up steps across slots. A partition's script cannot touch another slot (on a Redis
//! Cluster it may live on another node), so what a state change needs elsewhere (settling the
//! user's token reservation when a task ends, and queueing the webhook of a task that ended with
//! a callback URL) is appended to the partition's outbox stream
//! in the same atomic step, and the script returns it. The caller applies it at once and deletes
//! the entry (in one `XDEL` per partition every [`DELETE_EVERY`], off the request's path); if it
//! dies in between, the entry stays, and the sweeper of any process applies it again a few
//! seconds later. Every step is idempotent (a settlement is remembered in the user's slot, a
//! webhook's task id comes from the task it announces), so a step applied twice counts once, and
//! none is lost.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::Value;

use super::store::TaskStore;
use crate::storage::RedisConnection;

/// What settles a reservation in the user's slot: the limits' (`limits::settle`), installed by
/// the composition root (the engine knows no limits).
pub type Settler = Arc<
    dyn Fn(RedisConnection, Settlement) -> BoxFuture<'static, redis::RedisResult<()>> + Send + Sync,
>;

/// What queues the webhooks of tasks that ended (`webhooks::queue_finals`), installed by the
/// composition root like the [`Settler`]. Given every due webhook of one script's answer.
pub type WebhookQueuer = Arc<
    dyn Fn(TaskStore, Vec<WebhookDue>) -> BoxFuture<'static, redis::RedisResult<()>> + Send + Sync,
>;

/// How each kind of follow-up step is applied.
#[derive(Clone)]
pub struct FollowUpSteps {
    pub settle: Settler,
    /// The same settlement in Lua (`limits::SETTLEMENT_LUA`: it defines `settle_reservation`),
    /// for finishes that settle in their own step on one server; empty: every settlement is a
    /// follow-up.
    pub settle_lua: &'static str,
    pub webhook: WebhookQueuer,
}

/// Task `task_id` ended in `state` and has a callback URL: its webhook is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDue {
    pub task_id: String,
    pub state: String,
}

/// Settle task `task_id`'s reservation `quota` to `used` tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub task_id: String,
    pub user_id: String,
    pub feature: String,
    pub quota: String,
    pub used: u64,
}

/// Entries younger than this are left to the process that wrote them.
const SWEEP_AFTER: Duration = Duration::from_secs(5);
/// How often every process looks for left-over entries.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often applied entries are deleted.
const DELETE_EVERY: Duration = Duration::from_millis(100);
/// Entries applied per partition per sweep.
const SWEEP_BATCH: usize = 200;

/// One entry of a partition's outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUp {
    pub partition: usize,
    pub entry_id: String,
    pub step: Step,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Settle a reservation ([`Settler`]).
    Settle(Settlement),
    /// Queue a final task's webhook ([`WebhookQueuer`]).
    Webhook(WebhookDue),
    /// A step this build does not know (written by a newer one): left for it.
    Unknown,
}

impl FollowUp {
    /// An outbox entry as a script returns it, or as `XRANGE` does: `[id, [field, value, …]]`.
    fn parse(partition: usize, entry: &Value) -> Option<Self> {
        let Value::Array(parts) = entry else {
            return None;
        };
        let entry_id: String = redis::from_redis_value_ref(parts.first()?).ok()?;
        let fields: Vec<String> = redis::from_redis_value_ref(parts.get(1)?).ok()?;
        let field = |name: &str| {
            fields
                .chunks_exact(2)
                .find(|pair| pair[0] == name)
                .map(|pair| pair[1].clone())
                .unwrap_or_default()
        };
        let step = match field("op").as_str() {
            "settle" => Step::Settle(Settlement {
                task_id: field("task"),
                user_id: field("user"),
                feature: field("feature"),
                quota: field("quota"),
                used: field("used").parse().unwrap_or(0),
            }),
            "webhook" => Step::Webhook(WebhookDue {
                task_id: field("task"),
                state: field("state"),
            }),
            _ => Step::Unknown,
        };
        Some(Self {
            partition,
            entry_id,
            step,
        })
    }

    /// The follow-ups of one script's answer (its list of entries).
    pub fn parse_all(partition: usize, entries: &Value) -> Vec<Self> {
        match entries {
            Value::Array(entries) => entries
                .iter()
                .filter_map(|entry| Self::parse(partition, entry))
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl TaskStore {
    /// Applies follow-ups, then deletes their entries. On an error the entries stay for the
    /// sweeper; the error is logged, not returned: the change they follow is already recorded.
    pub async fn follow_up(&self, followups: Vec<FollowUp>) {
        if followups.is_empty() {
            return;
        }
        if let Err(err) = self.apply(&followups).await {
            tracing::warn!(%err, "a follow-up step failed; the outbox sweeper will apply it");
        }
    }

    async fn apply(&self, followups: &[FollowUp]) -> redis::RedisResult<()> {
        let mut webhooks = Vec::new();
        let mut done = Vec::with_capacity(followups.len());
        for followup in followups {
            match &followup.step {
                Step::Settle(settlement) => {
                    (self.steps().settle)(self.conn.clone(), settlement.clone()).await?;
                }
                Step::Webhook(due) => webhooks.push(due.clone()),
                Step::Unknown => continue,
            }
            done.push((followup.partition, followup.entry_id.clone()));
        }
        if !webhooks.is_empty() {
            (self.steps().webhook)(self.clone(), webhooks).await?;
        }
        self.applied().extend(done);
        Ok(())
    }

    /// Deletes the entries applied since the last call, one `XDEL` per partition.
    async fn delete_applied(&self) -> redis::RedisResult<()> {
        let done = std::mem::take(&mut *self.applied());
        if done.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        for p in self.partitions().all() {
            let ids: Vec<&str> = done
                .iter()
                .filter(|(partition, _)| *partition == p)
                .map(|(_, id)| id.as_str())
                .collect();
            if !ids.is_empty() {
                redis::cmd("XDEL")
                    .arg(self.partitions().outbox(p))
                    .arg(ids)
                    .query_async::<()>(&mut conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// Applies the entries older than [`SWEEP_AFTER`] of every partition's outbox; returns how
    /// many it applied.
    pub async fn sweep_outbox(&self) -> redis::RedisResult<usize> {
        let before_ms = jiff::Timestamp::now().as_millisecond() - SWEEP_AFTER.as_millis() as i64;
        let mut applied = 0;
        for p in self.partitions().all() {
            let entries: Value = redis::cmd("XRANGE")
                .arg(self.partitions().outbox(p))
                .arg("-")
                .arg(format!("{}", before_ms.max(0)))
                .arg("COUNT")
                .arg(SWEEP_BATCH)
                .query_async(&mut self.conn.clone())
                .await?;
            let followups = FollowUp::parse_all(p, &entries);
            applied += followups.len();
            self.apply(&followups).await?;
        }
        Ok(applied)
    }

    /// Deletes applied entries every [`DELETE_EVERY`] and sweeps every outbox every
    /// [`SWEEP_EVERY`], for as long as the runtime lives.
    pub async fn sweep_forever(self) {
        let mut every = tokio::time::interval(DELETE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut swept = std::time::Instant::now();
        loop {
            every.tick().await;
            if let Err(err) = self.delete_applied().await {
                tracing::debug!(%err, "deleting applied follow-ups failed; the sweeper will");
            }
            if swept.elapsed() < SWEEP_EVERY {
                continue;
            }
            swept = std::time::Instant::now();
            match self.sweep_outbox().await {
                Ok(0) => {}
                Ok(applied) => tracing::info!(applied, "applied follow-ups a process left behind"),
                Err(err) => tracing::debug!(%err, "sweeping the outboxes failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn an_entry_parses_into_its_step() {
        let entry = Value::Array(vec![
            bulk("1-0"),
            Value::Array(
                [
                    "op", "settle", "task", "t1", "user", "u1", "feature", "hint", "quota",
                    "90:1:2", "used", "30",
                ]
                .into_iter()
                .map(bulk)
                .collect(),
            ),
        ]);
        let parsed = FollowUp::parse_all(2, &Value::Array(vec![entry]));
        assert_eq!(
            parsed,
            [FollowUp {
                partition: 2,
                entry_id: "1-0".into(),
                step: Step::Settle(Settlement {
                    task_id: "t1".into(),
                    user_id: "u1".into(),
                    feature: "hint".into(),
                    quota: "90:1:2".into(),
                    used: 30,
                }),
            }]
        );
        let strange = Value::Array(vec![
            bulk("2-0"),
            Value::Array(vec![bulk("op"), bulk("later")]),
        ]);
        assert_eq!(
            FollowUp::parse_all(0, &Value::Array(vec![strange]))[0].step,
            Step::Unknown
        );
        let webhook = Value::Array(vec![
            bulk("3-0"),
            Value::Array(
                ["op", "webhook", "task", "t2", "state", "dead"]
                    .into_iter()
                    .map(bulk)
                    .collect(),
            ),
        ]);
        assert_eq!(
            FollowUp::parse_all(1, &Value::Array(vec![webhook]))[0].step,
            Step::Webhook(WebhookDue {
                task_id: "t2".into(),
                state: "dead".into(),
            })
        );
    }
}
