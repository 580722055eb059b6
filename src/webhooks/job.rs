//! The `webhook_delivery` job: one signed POST of a finished task's final event (or a batch's
//! end) to its callback URL. Queued by the engine's `webhook` follow-up step when a task ends
//! ([`super::queue_finals`]), and by the `batch_item` pool's upkeep when a batch with a callback
//! ends.

use apalis::prelude::BoxDynError;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Webhooks;
use crate::facts::TaskFacts;
use crate::outcome::Outcome;
use crate::tasks::{Delivery, Job, NewTask, TaskStore};

/// Wire format of a queued webhook; rename fields only with `#[serde(rename)]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookJob {
    /// `webhook-id`: the same on every attempt, so receivers can drop duplicates.
    pub message_id: String,
    /// The task whose end is announced.
    pub task_id: String,
    pub url: String,
    /// The JSON body, signed as sent.
    pub body: String,
    /// Whose task it is: picks the client's signing secret.
    #[serde(default)]
    pub user_id: String,
    /// Set when the webhook announces a batch's end (`task_id` is then the batch id).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub batch: bool,
    /// The request that created the announced task, for the delivery's logs.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_id: String,
}

/// What a delivery needs: the signing secrets and guard settings, and the task store (to mark
/// the announced task or batch delivered, and to know the kind's last attempt).
#[derive(Clone)]
pub struct Courier {
    pub webhooks: Webhooks,
    pub store: TaskStore,
}

impl Job for WebhookJob {
    const KIND: &'static str = "webhook_delivery";
    type Context = Courier;

    fn request_id(&self) -> &str {
        &self.request_id
    }

    async fn run(self, courier: Courier, delivery: Delivery) -> Result<Outcome, BoxDynError> {
        let kind = courier.store.kinds().kind(Self::KIND);
        super::deliver(&courier.webhooks, &courier.store, kind, self, &delivery).await
    }
}

impl WebhookJob {
    /// The webhook announcing that `task_id` reached `state` at `ended_us`, with its final event
    /// payload. The message id comes from the task and that moment: any second queueing carries
    /// the same `webhook-id`.
    pub fn for_final(
        task_id: &str,
        user_id: &str,
        state: &str,
        url: &str,
        outcome: &Outcome,
        ended_us: i64,
    ) -> Self {
        let body = json!({
            "type": format!("task.{state}"),
            "timestamp": jiff::Timestamp::now().to_string(),
            "data": { "task_id": task_id, "status": state, "outcome": outcome },
        });
        Self {
            message_id: format!(
                "msg_{}",
                derived_id(&format!("task-webhook/{task_id}/{ended_us}")).simple()
            ),
            task_id: task_id.to_owned(),
            url: url.to_owned(),
            body: body.to_string(),
            user_id: user_id.to_owned(),
            batch: false,
            request_id: String::new(),
        }
    }

    /// The webhook announcing that a batch ended in `state` (`batch.completed`,
    /// `batch.cancelled`, ...), with its final counts as `data`. The message id comes from the
    /// batch id: every attempt and any second queueing carry the same `webhook-id`.
    pub fn for_batch(
        batch_id: &str,
        user_id: &str,
        url: &str,
        state: &str,
        data: &impl Serialize,
    ) -> Self {
        let body = json!({
            "type": format!("batch.{state}"),
            "timestamp": jiff::Timestamp::now().to_string(),
            "data": data,
        });
        Self {
            message_id: format!("msg_batch_{}", batch_id.replace('-', "")),
            task_id: batch_id.to_owned(),
            url: url.to_owned(),
            body: body.to_string(),
            user_id: user_id.to_owned(),
            batch: true,
            request_id: String::new(),
        }
    }

    /// The delivery as a task of its own, owned by whoever owns what it announces. Its id comes
    /// from the message id: queueing the same message twice creates one task.
    pub fn into_task(mut self, owner: &TaskFacts) -> NewTask {
        owner.request_id.clone_into(&mut self.request_id);
        NewTask {
            facts: TaskFacts {
                task_id: derived_id(&format!("webhook-task/{}", self.message_id)).to_string(),
                request_id: owner.request_id.clone(),
                user_id: owner.user_id.clone(),
                role: owner.role,
                feature: None,
            },
            kind: Self::KIND.to_owned(),
            job: serde_json::to_string(&self).expect("a webhook job serializes"),
            callback_url: None,
            quota: None,
            batch: None,
        }
    }
}

/// A UUID (version 8) that is a function of `name`.
fn derived_id(name: &str) -> uuid::Uuid {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(name.as_bytes());
    uuid::Uuid::new_v8(digest[..16].try_into().expect("16 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_announcement_makes_the_same_delivery_task() {
        let owner = TaskFacts::from_stored("t1".into(), "r1".into(), "u1".into(), "student", "");
        let outcome = Outcome::error("cancelled", "the task was cancelled");
        let task = |ended_us| {
            WebhookJob::for_final(
                "t1",
                "u1",
                "cancelled",
                "https://x.test/h",
                &outcome,
                ended_us,
            )
            .into_task(&owner)
        };
        assert_eq!(task(5).facts.task_id, task(5).facts.task_id);
        assert_ne!(task(5).facts.task_id, task(6).facts.task_id);
        let batch = WebhookJob::for_batch("t1", "u1", "https://x.test/h", "completed", &1)
            .into_task(&owner);
        assert_ne!(batch.facts.task_id, task(5).facts.task_id);
    }
}
