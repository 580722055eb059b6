//! The `Job` trait: a job kind that describes itself — its stable name, the facts the engine
//! needs from each job, how one runs, and what its pool does beside running jobs (river's
//! `JobArgs.Kind()` plus its worker, apalis' typed handler).

use std::future::Future;

use apalis::prelude::BoxDynError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::delivery::Delivery;
use crate::outcome::Outcome;

/// One job kind. The job's serde form is its wire format in Redis: jobs already waiting must
/// still decode after a change, so rename fields only with `#[serde(rename)]`.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stable name: the `name` of `jobs/<KIND>.yaml`, stored with every task of the kind.
    /// Never derived from a Rust type name, so a rename in code cannot strand waiting jobs.
    const KIND: &'static str;

    /// What every run needs besides the job (the service, a webhook sender, ...), provided
    /// once per pool by the process that serves the kind (see [`Provides`]) and cloned into
    /// each run, so keep it one reference count to clone.
    type Context: Clone + Send + Sync + 'static;

    /// The id of the HTTP request that created the task (empty when unknown): every log line
    /// of the job's run carries it.
    fn request_id(&self) -> &str;

    /// Runs one attempt: the outcome the task stores ([`Outcome::value`] for a plain result),
    /// or an error that says what the
    /// queue does next (give up, retry, retry after; see [`super::JobFailure`]).
    fn run(
        self,
        context: Self::Context,
        delivery: Delivery,
    ) -> impl Future<Output = Result<Outcome, BoxDynError>> + Send;

    /// Work the kind's pool does beside its jobs, every time it promotes due retries (a few
    /// times a second); errors are the kind's to log. Most kinds have none.
    fn upkeep(context: &Self::Context) -> impl Future<Output = ()> + Send {
        let _ = context;
        async {}
    }
}

/// What a process hands the kinds it serves: `S` (the service) provides the context `C` a
/// kind's runs need. A kind whose runs need nothing asks for `()`, which anything provides.
pub trait Provides<C> {
    fn provide(&self) -> C;
}

impl<S> Provides<()> for S {
    fn provide(&self) {}
}
