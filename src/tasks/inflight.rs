//! What this process is working on: queue entries to heart-beat, and a cancel signal per task
//! (fired when `ai:cancel` announces that a running task was cancelled elsewhere).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt as _;
use tokio::sync::Notify;

use super::keys;

#[derive(Clone, Default)]
pub struct InFlight {
    /// `(task id, entry id)`: entry ids are unique per partition's stream only.
    entries: Arc<Mutex<HashSet<(String, String)>>>,
    cancels: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl InFlight {
    /// Starts tracking a fetched entry of `task_id`; returns its cancel signal.
    pub fn begin(&self, entry_id: Option<&str>, task_id: &str) -> Arc<Notify> {
        if let Some(entry_id) = entry_id {
            self.lock_entries()
                .insert((task_id.to_owned(), entry_id.to_owned()));
        }
        let notify = Arc::new(Notify::new());
        self.lock_cancels()
            .insert(task_id.to_owned(), notify.clone());
        notify
    }

    pub fn end(&self, entry_id: Option<&str>, task_id: &str) {
        if let Some(entry_id) = entry_id {
            self.lock_entries()
                .remove(&(task_id.to_owned(), entry_id.to_owned()));
        }
        self.lock_cancels().remove(task_id);
    }

    /// `(task id, entry id)` of the entries currently being worked on.
    pub fn entries(&self) -> Vec<(String, String)> {
        self.lock_entries().iter().cloned().collect()
    }

    /// Fires the cancel signal of `task_id` if it runs here.
    pub fn cancel(&self, task_id: &str) -> bool {
        match self.lock_cancels().get(task_id) {
            Some(notify) => {
                notify.notify_one();
                true
            }
            None => false,
        }
    }

    fn lock_entries(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_cancels(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        self.cancels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Listens on `ai:cancel` for as long as the runtime lives, reconnecting after errors.
    pub async fn listen_for_cancels(self, servers: crate::storage::RedisServers) {
        let mut pause = std::time::Duration::from_millis(100);
        loop {
            let session = async {
                let mut pubsub = servers.pubsub().await?;
                pubsub.subscribe(keys::CANCEL_CHANNEL).await?;
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    if let Ok(task_id) = message.get_payload::<String>()
                        && self.cancel(&task_id)
                    {
                        tracing::info!(task_id, "cancel signal delivered to the running task");
                    }
                }
                Ok::<(), redis::RedisError>(())
            };
            if let Err(err) = session.await {
                tracing::debug!(%err, "cancel listener lost Redis; reconnecting");
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(2));
        }
    }
}
