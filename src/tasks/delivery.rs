//! What travels with each fetched job into its handler and back to the completer.

use std::sync::Arc;

use apalis::prelude::{AbortError, BoxDynError, RetryAfterError};
use tokio::sync::{Notify, OwnedSemaphorePermit};

use super::kinds::JobKind;
use super::store::{Ending, Finish};
use crate::outcome::Outcome;

/// One delivery of one job: which queue entry, which task, which attempt. Holds the worker
/// slot until the job is done and its finish recorded (the finish keeps a share of it), so
/// finished-but-unrecorded jobs count against the pool's concurrency: a slow Redis slows
/// fetching instead of piling finishes up in memory.
#[derive(Clone)]
pub struct Delivery {
    pub entry_id: Option<String>,
    pub task_id: String,
    pub attempt: u32,
    pub cancel: Arc<Notify>,
    slot: Option<Arc<OwnedSemaphorePermit>>,
}

impl Delivery {
    pub fn new(
        entry_id: Option<String>,
        task_id: String,
        attempt: u32,
        cancel: Arc<Notify>,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Self {
        Self {
            entry_id,
            task_id,
            attempt,
            cancel,
            slot: slot.map(Arc::new),
        }
    }
}

/// A job failure with a stable kind for the task record; wrap it in apalis' `AbortError` (give
/// up) or `RetryAfterError` (retry after a delay), or return it bare (retry with backoff).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct JobFailure {
    pub kind: &'static str,
    pub message: String,
}

impl JobFailure {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn give_up(self) -> BoxDynError {
        AbortError::new(self).into()
    }

    pub fn retry_after(self, delay: std::time::Duration) -> BoxDynError {
        RetryAfterError::new(self, delay).into()
    }

    pub fn retry(self) -> BoxDynError {
        self.into()
    }

    /// Run again after `delay` without counting the attempt (a provider's capacity is due).
    pub fn wait(self, delay: std::time::Duration) -> BoxDynError {
        Box::new(WaitFor {
            failure: self,
            delay,
        })
    }
}

/// A job that could not run yet: it waits `delay` in the queue, its attempt not counted.
#[derive(Debug, thiserror::Error)]
#[error("{failure}")]
pub struct WaitFor {
    #[source]
    failure: JobFailure,
    delay: std::time::Duration,
}

/// The `{kind, message}` of an error, from the first `JobFailure` in its chain.
fn error_outcome(error: &BoxDynError) -> Outcome {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error.as_ref());
    while let Some(current) = source {
        if let Some(failure) = current.downcast_ref::<JobFailure>() {
            return Outcome::error(failure.kind, failure.message.clone());
        }
        source = current.source();
    }
    let kind = if error.to_string().contains("timed out") || error.to_string().contains("elapsed") {
        "timeout"
    } else {
        "error"
    };
    Outcome::error(kind, error.to_string())
}

/// Decides what the queue does with an attempt's result: record success, retry (after the
/// error's delay or the kind's backoff), give up, or declare the task dead. A success's value
/// moves into the finish (nothing reads it after the worker).
pub fn classify(
    kind: &JobKind,
    delivery: &Delivery,
    result: &mut Result<Outcome, BoxDynError>,
) -> Finish {
    let (ending, outcome) = match result {
        Ok(outcome) => (Ending::Succeeded, std::mem::take(outcome)),
        Err(error) => {
            let outcome = error_outcome(error);
            let ending = if error.downcast_ref::<AbortError>().is_some() {
                Ending::Failed
            } else if let Some(wait) = error.downcast_ref::<WaitFor>() {
                Ending::Waiting(wait.delay)
            } else if delivery.attempt >= kind.max_attempts {
                Ending::Dead
            } else if let Some(retry) = error.downcast_ref::<RetryAfterError>() {
                Ending::Retrying(retry.get_duration().max(kind.retry_delay(delivery.attempt)))
            } else {
                Ending::Retrying(kind.retry_delay(delivery.attempt))
            };
            (ending, outcome)
        }
    };
    Finish {
        entry_id: delivery.entry_id.clone(),
        task_id: delivery.task_id.clone(),
        ending,
        outcome,
        slot: delivery.slot.clone(),
        settlement_keys: None,
    }
}
