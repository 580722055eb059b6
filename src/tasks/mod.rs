//! Jobs, task records and worker pools.
//!
//! The Redis queue engine and its job kinds (`jobs/*.yaml`) land here with the engine issue;
//! until then a worker process starts, says so, and waits for shutdown.

use crate::app::AppState;
use crate::shutdown::Shutdown;

/// Runs the worker pools for `queues` (all when empty) until shutdown.
pub async fn run_workers(
    state: AppState,
    queues: Vec<String>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let _ = state;
    tracing::info!(
        ?queues,
        "worker started; no job kinds are defined yet, waiting for shutdown"
    );
    shutdown.wait().await;
    tracing::info!("worker stopped");
    Ok(())
}
