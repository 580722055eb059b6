//! Every job kind tutorq runs, one line each. The workers start a pool per kind from this list,
//! the job-file loader checks `jobs/*.yaml` against it, and the tests read it instead of naming
//! kinds. Adding a kind: its file (the job type and `impl Job`), one line here, and its
//! `jobs/<kind>.yaml`.

use super::AiService;
use super::batch_item::BatchItemJob;
use super::job::AiRequestJob;
use crate::tasks::{JobRegistry, Provides};
use crate::webhooks::{Courier, WebhookJob};

/// The shipped job kinds.
pub fn registry() -> JobRegistry<AiService> {
    JobRegistry::new()
        .with::<AiRequestJob>()
        .with::<BatchItemJob>()
        .with::<WebhookJob>()
}

/// AI requests and batch items run on the service itself.
impl Provides<AiService> for AiService {
    fn provide(&self) -> AiService {
        self.clone()
    }
}

/// Webhook deliveries need the signing secrets and the task store.
impl Provides<Courier> for AiService {
    fn provide(&self) -> Courier {
        Courier {
            webhooks: self.webhooks().clone(),
            store: self.engine().store.clone(),
        }
    }
}
