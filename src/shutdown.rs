//! Process signals: SIGINT/SIGTERM start a graceful shutdown; SIGHUP reloads the prompts.

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::prompts::PromptRegistry;

/// A shutdown notice every part of the process can wait on.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Fires on the first SIGINT or SIGTERM.
    pub fn on_signals() -> std::io::Result<Self> {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            };
            tracing::info!(signal = name, "shutting down");
            let _ = tx.send(true);
        });
        Ok(Self(rx))
    }

    /// A watch receiver that turns `true` on shutdown.
    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.0.clone()
    }

    /// A notice that never fires (tests, tools).
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(false);
        std::mem::forget(tx);
        Self(rx)
    }

    /// A notice and the switch that fires it.
    pub fn manual() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }
}

/// Reloads the prompt files on every SIGHUP; a bad file is logged and the running set kept.
pub fn reload_prompts_on_sighup(registry: Arc<PromptRegistry>) -> std::io::Result<()> {
    let mut hangup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match registry.reload() {
                Ok(set) => tracing::info!(prompts = ?set, "prompts reloaded on SIGHUP"),
                Err(err) => {
                    tracing::error!(errors = %err, "prompt reload refused; keeping the running prompts")
                }
            }
        }
    });
    Ok(())
}

/// Resolves once `receiver` turns `true` (or its sender is gone).
pub async fn stopped(receiver: &mut watch::Receiver<bool>) {
    let _ = receiver.wait_for(|stop| *stop).await;
}
