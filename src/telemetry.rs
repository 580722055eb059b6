//! Logging: human-readable in development, one JSON object per line in production. A request's
//! lines carry its `request_id` (the `request` span, `api/request_context.rs`); a job's carry
//! its `kind`, `task_id`, `attempt` and the `request_id` that created it (the `job` span,
//! `tasks/pool.rs`). In JSON the fields of every enclosing span are in `spans`.

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber, writing to stderr; `RUST_LOG` overrides `log.level`.
pub fn init(settings: &LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    // A second init (tests start many apps in one process) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber(
        settings.format,
        filter,
        std::io::stderr,
    ));
}

/// The subscriber `init` installs, writing to `writer` (tests capture lines with it).
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(true)
                .finish(),
        ),
        LogFormat::Pretty => Box::new(builder.finish()),
    }
}
