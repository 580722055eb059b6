//! Inline runs: the request is answered in the same HTTP exchange, but it is a task like any
//! other (record, events, history). A lease in the queue's delayed set, kept fresh while the run
//! lasts, makes sure a run whose process dies is queued and finished by a worker. A run that
//! overruns its threshold is not abandoned and not started twice: the caller gets 202 and the
//! same run finishes in the background. A run whose provider has no capacity within the
//! threshold is not answered degraded either: the caller gets 202 and the task waits in the
//! queue for the capacity.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::Instrument as _;

use super::job::{AI_REQUEST, AiRequestJob, Retry, failure_of, job_failure};
use super::{AiService, Completion, ServiceError, Submitted};
use crate::outcome::Outcome;
use crate::tasks::{Delivery, Ending, Finish, NewTask, classify};

impl AiService {
    /// Runs `job` here; answers `Accepted` if it is still running after `limit`.
    pub(super) async fn run_inline(
        &self,
        task: NewTask,
        job: AiRequestJob,
        limit: Option<Duration>,
    ) -> Result<Submitted, ServiceError> {
        let kind = self.engine.store.kinds().kind(AI_REQUEST).clone();
        let lease = kind.visibility_timeout;
        self.engine.store.begin_inline(&task, lease).await?;
        let detached = Arc::new(AtomicBool::new(false));
        // The run keeps the request's span: its log lines carry the request id.
        let mut run = tokio::spawn(
            self.clone()
                .inline_run(job, detached.clone(), kind.clone(), limit)
                .in_current_span(),
        );
        let joined = match limit {
            None => (&mut run).await,
            Some(limit) => match tokio::time::timeout(limit, &mut run).await {
                Ok(joined) => joined,
                Err(_) => {
                    detached.store(true, Ordering::SeqCst);
                    tracing::info!(task_id = %task.facts.task_id, "inline run overran its threshold; answering 202 and finishing in the background");
                    let record = self.record_of(&task.facts.task_id).await?;
                    return Ok(Submitted::Accepted(record));
                }
            },
        };
        match joined {
            Ok(Some(result)) => result.map(Submitted::Done),
            // Cancelled while the caller waited: show the cancelled task.
            Ok(None) | Err(_) => {
                let record = self.record_of(&task.facts.task_id).await?;
                Ok(Submitted::Accepted(record))
            }
        }
    }

    pub(super) async fn record_of(
        &self,
        task_id: &str,
    ) -> Result<crate::tasks::TaskRecord, ServiceError> {
        self.engine
            .store
            .get(task_id)
            .await?
            .ok_or(ServiceError::TaskNotFound)
    }

    /// Starts an inline run whose answer the caller follows as events (`stream: true`).
    pub(super) async fn stream_inline(
        &self,
        task: NewTask,
        job: AiRequestJob,
    ) -> Result<Submitted, ServiceError> {
        let kind = self.engine.store.kinds().kind(AI_REQUEST).clone();
        self.engine
            .store
            .begin_inline(&task, kind.visibility_timeout)
            .await?;
        // Nobody waits on the HTTP answer: failures follow the queue's rules, like an overrun.
        tokio::spawn(
            self.clone()
                .inline_run(job, Arc::new(AtomicBool::new(true)), kind, None)
                .in_current_span(),
        );
        let record = self.record_of(&task.facts.task_id).await?;
        Ok(Submitted::Streaming(record))
    }

    /// The run itself, with its lease kept fresh; records the outcome before returning it.
    /// `None` when the task was cancelled meanwhile, or went to wait in the queue for its
    /// provider's capacity (which it may wait `hold` for here).
    async fn inline_run(
        self,
        job: AiRequestJob,
        detached: Arc<AtomicBool>,
        kind: crate::tasks::JobKind,
        hold: Option<Duration>,
    ) -> Option<Result<Completion, ServiceError>> {
        let task_id = job.task_id.clone();
        let cancel = self.engine.inflight.begin(None, &task_id);
        let lease = kind.visibility_timeout;
        let keep_lease = async {
            loop {
                tokio::time::sleep(lease / 3).await;
                if let Err(err) = self.engine.store.extend_lease(&kind, &task_id, lease).await {
                    tracing::warn!(%err, task_id, "could not extend the inline lease");
                }
            }
        };
        let result = tokio::select! {
            result = self.execute(&job, crate::providers::Patience {
                task_id: task_id.clone(),
                owner: job.owner().to_owned(),
                class: crate::providers::Class::Interactive,
                hold,
            }) => Some(result),
            () = cancel.notified() => None,
            () = keep_lease => unreachable!("the lease loop never ends"),
        };
        let delivery = Delivery::new(None, task_id.clone(), 1, cancel, None);
        let finish = match &result {
            Some(Ok(completion)) => Finish::new(
                None,
                task_id.clone(),
                Ending::Succeeded,
                Outcome::from(completion.clone()),
            ),
            Some(Err(error))
                if !detached.load(Ordering::SeqCst)
                    && !matches!(failure_of(error).1, Retry::Wait(_)) =>
            {
                // The caller is waiting and gets this error: the task ends here.
                let (failure, _) = failure_of(error);
                Finish::new(
                    None,
                    task_id.clone(),
                    Ending::Failed,
                    Outcome::error(failure.kind, failure.message),
                )
            }
            Some(Err(_)) => {
                // Nobody waits any more, or the task waits for capacity: the error is treated
                // like a worker's (wait, retry or give up).
                let Some(Err(error)) = result else {
                    unreachable!()
                };
                let finish = classify(&kind, &delivery, &mut Err(job_failure(error)));
                self.engine.record(&kind, vec![finish]).await;
                return None;
            }
            None => Finish::new(
                None,
                task_id.clone(),
                Ending::Failed,
                Outcome::error("cancelled", "the task was cancelled"),
            ),
        };
        // The caller knows whose task this is: on one server the finish settles the reservation
        // in its own step.
        let finish = Finish {
            settlement_keys: crate::limits::settlement_keys(&job.user_id, job.feature.as_str()),
            ..finish
        };
        self.engine.record(&kind, vec![finish]).await;
        result
    }
}
