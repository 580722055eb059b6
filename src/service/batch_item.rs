//! The `batch_item` job: one item of a batch, an AI request on its own low-priority queue and
//! pool (so bulk work never takes interactive slots). Its pool's upkeep queues the webhook of
//! every batch that ended.

use apalis::prelude::BoxDynError;
use serde::{Deserialize, Serialize};

use super::AiService;
use super::job::AiRequestJob;
use crate::outcome::Outcome;
use crate::tasks::{Delivery, Job};

/// An item's job: an [`AiRequestJob`] under its own kind, with the same wire format.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BatchItemJob(pub AiRequestJob);

impl Job for BatchItemJob {
    const KIND: &'static str = "batch_item";
    type Context = AiService;

    fn request_id(&self) -> &str {
        &self.0.request_id
    }

    async fn run(self, service: AiService, _delivery: Delivery) -> Result<Outcome, BoxDynError> {
        service
            .run_job(self.0, crate::providers::Class::Batch)
            .await
    }

    async fn upkeep(service: &AiService) {
        if let Err(err) = service.batch_store().announce_ended().await {
            tracing::warn!(%err, "queueing the webhooks of ended batches failed");
        }
    }
}
