//! The list of job kinds a process knows: each kind's stable name and how to serve its queue
//! with the context the process provides. The job-file loader checks `jobs/*.yaml` against it,
//! the workers start one pool per entry, and the tests read it instead of naming kinds.

use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::watch;

use super::engine::Engine;
use super::job::{Job, Provides};
use super::kinds::JobKind;
use super::pool::run_pool;

/// Starts the pool of one kind: the provider of contexts, the engine, the kind's settings,
/// the shutdown signal and the grace period.
type Serve<S> = fn(
    &S,
    Engine,
    JobKind,
    watch::Receiver<bool>,
    Duration,
) -> BoxFuture<'static, anyhow::Result<()>>;

struct Entry<S> {
    kind: &'static str,
    serve: Serve<S>,
}

/// Job kinds served with contexts from `S` (the service), in registration order.
pub struct JobRegistry<S> {
    entries: Vec<Entry<S>>,
}

impl<S> Clone for JobRegistry<S> {
    fn clone(&self) -> Self {
        Self {
            entries: self
                .entries
                .iter()
                .map(|e| Entry {
                    kind: e.kind,
                    serve: e.serve,
                })
                .collect(),
        }
    }
}

impl<S> Default for JobRegistry<S> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<S: 'static> JobRegistry<S> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the kind `J`; `S` must provide what its runs need. Two kinds with one name are a
    /// programming error, caught at start.
    pub fn with<J: Job>(mut self) -> Self
    where
        S: Provides<J::Context>,
    {
        assert!(
            self.get(J::KIND).is_none(),
            "job kind `{}` registered twice",
            J::KIND
        );
        self.entries.push(Entry {
            kind: J::KIND,
            serve: serve::<S, J>,
        });
        self
    }

    /// The names of the registered kinds, in registration order.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.kind).collect()
    }

    /// The pool of `kind` (until `shutdown`), if a kind of its name is registered.
    pub fn serve(
        &self,
        provider: &S,
        engine: Engine,
        kind: JobKind,
        shutdown: watch::Receiver<bool>,
        grace: Duration,
    ) -> Option<BoxFuture<'static, anyhow::Result<()>>> {
        let entry = self.get(&kind.name)?;
        Some((entry.serve)(provider, engine, kind, shutdown, grace))
    }

    fn get(&self, name: &str) -> Option<&Entry<S>> {
        self.entries.iter().find(|e| e.kind == name)
    }
}

fn serve<S, J>(
    provider: &S,
    engine: Engine,
    kind: JobKind,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
) -> BoxFuture<'static, anyhow::Result<()>>
where
    J: Job,
    S: Provides<J::Context>,
{
    Box::pin(run_pool::<J>(
        engine,
        kind,
        provider.provide(),
        shutdown,
        grace,
    ))
}
