//! Streamed answers: the provider's chunks become `delta` events on the task's stream,
//! coalesced to at most one event per ~20 ms, before the final `succeeded` event.

use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;

use super::safety::{HeldHint, HintGuard};
use super::{AiService, ServiceError};
use crate::feature::Feature;
use crate::prompts::RenderedPrompt;
use crate::providers::{AiResponse, CompletionOptions};

/// Longest a chunk waits to be sent with the ones after it.
const COALESCE: Duration = Duration::from_millis(20);

impl AiService {
    pub(super) async fn stream_deltas(
        &self,
        task_id: &str,
        feature: Feature,
        prompt: &RenderedPrompt,
        options: &CompletionOptions,
        guard: Option<&HintGuard>,
    ) -> Result<(AiResponse, Option<String>), ServiceError> {
        let (texts, mut received) = mpsc::unbounded_channel::<String>();
        let store = self.engine.store.clone();
        let id = task_id.to_owned();
        let writer = tokio::spawn(tracing::Instrument::in_current_span(async move {
            let mut index = 0u64;
            while let Some(first) = received.recv().await {
                let mut text = first;
                let window = tokio::time::sleep(COALESCE);
                tokio::pin!(window);
                loop {
                    tokio::select! {
                        more = received.recv() => match more {
                            Some(more) => text.push_str(&more),
                            None => break,
                        },
                        () = &mut window => break,
                    }
                }
                if let Err(err) = store
                    .append_event(&id, "delta", json!({ "text": text, "index": index }))
                    .await
                {
                    tracing::warn!(%err, task_id = %id, "could not append a delta event");
                }
                index += 1;
            }
        }));
        // A hint is held back sentence by sentence until the guard has seen it.
        let mut held = guard.map(HeldHint::new);
        let response = self
            .providers
            .stream(feature, prompt, options, |text| {
                let shown = match held.as_mut() {
                    Some(held) => held.push(text),
                    None => Some(text.to_owned()),
                };
                if let Some(shown) = shown {
                    let _ = texts.send(shown);
                }
            })
            .await;
        if let Some(rest) = held.as_mut().and_then(HeldHint::finish) {
            let _ = texts.send(rest);
        }
        drop(texts);
        let _ = writer.await;
        Ok((response?, held.and_then(|h| h.refused)))
    }
}
