//! tutorq's apalis `Backend`: jobs arrive from the Redis fetcher over a channel, and the
//! backend's middleware reports each attempt's result to the completer, which records it in
//! Redis in batches.
//!
//! Why Redis Streams with a consumer group (not apalis-redis, not lists): `XREADGROUP ... BLOCK`
//! wakes an idle worker the moment a job is added (no polling, sub-millisecond pickup); the
//! pending-entries list remembers what each consumer took, so a dead worker's jobs are found with
//! `XAUTOCLAIM` and re-queued after the visibility timeout; `XACK` + `XDEL` in the same Lua step
//! as the task's final state keep the stream small and finishing idempotent. A list with
//! `BLMOVE` into per-worker lists gives the same blocking fetch but needs one list per worker to
//! scan for orphans and cannot tell how long an item has been held.

use std::task::{Context, Poll};

use apalis::prelude::{Backend, BoxDynError, Layer, Service, Task, WorkerContext};
use apalis_core::backend::BackendConfig;
use apalis_core::backend::finalize::Ephemeral;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use super::delivery::{Delivery, classify};
use super::kinds::JobKind;
use super::store::Finish;
use crate::outcome::Outcome;

#[derive(Debug, thiserror::Error)]
#[error("the job channel closed")]
pub struct ChannelClosed;

/// The consumer side handed to `WorkerBuilder::backend`.
pub struct StreamBackend<J> {
    jobs: mpsc::Receiver<Task<J>>,
    finished: mpsc::UnboundedSender<Finish>,
    kind: JobKind,
}

impl<J> StreamBackend<J> {
    pub fn new(
        jobs: mpsc::Receiver<Task<J>>,
        finished: mpsc::UnboundedSender<Finish>,
        kind: JobKind,
    ) -> Self {
        Self {
            jobs,
            finished,
            kind,
        }
    }
}

impl<J> Backend for StreamBackend<J> {
    type Task = Task<J>;
    type Error = ChannelClosed;

    fn poll_ready(
        &mut self,
        _cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        self.jobs.poll_recv(cx).map(|job| job.map(Ok))
    }

    fn poll_close(
        &mut self,
        _cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        // Jobs still in the channel were fetched but never started: their entries stay pending
        // and are re-queued by the reclaimer after the visibility timeout.
        self.jobs.close();
        Poll::Ready(Ok(()))
    }
}

impl<J> BackendConfig for StreamBackend<J> {
    type Args = J;
    type Id = String;
    type Kind = Ephemeral;
    type Config = JobKind;
    type Layer = AckLayer;

    fn config(&self) -> &Self::Config {
        &self.kind
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> Self::Layer {
        AckLayer {
            finished: self.finished.clone(),
            kind: self.kind.clone(),
        }
    }
}

/// Sees every attempt's final result (after any user layers) and sends its outcome to the
/// completer; the queue entry is acknowledged there, together with the task's new state.
#[derive(Clone)]
pub struct AckLayer {
    finished: mpsc::UnboundedSender<Finish>,
    kind: JobKind,
}

impl<S> Layer<S> for AckLayer {
    type Service = AckService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AckService {
            inner,
            finished: self.finished.clone(),
            kind: self.kind.clone(),
        }
    }
}

pub struct AckService<S> {
    inner: S,
    finished: mpsc::UnboundedSender<Finish>,
    kind: JobKind,
}

impl<S, J> Service<Task<J>> for AckService<S>
where
    S: Service<Task<J>, Response = Outcome>,
    S::Error: Into<BoxDynError>,
    S::Future: Send + 'static,
{
    type Response = Outcome;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<Outcome, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<J>) -> Self::Future {
        let delivery = task.data().get::<Delivery>().cloned();
        let future = self.inner.call(task);
        let finished = self.finished.clone();
        let kind = self.kind.clone();
        Box::pin(async move {
            let mut result = future.await.map_err(Into::into);
            match delivery {
                Some(delivery) => {
                    // The completer outlives every worker; a closed channel means the process
                    // is going down and the entry will be re-run after the visibility timeout.
                    let _ = finished.send(classify(&kind, &delivery, &mut result));
                }
                None => tracing::error!("a job arrived without its delivery; it will be reclaimed"),
            }
            result
        })
    }
}
