//! Prometheus metrics: the process's recorder, every metric's name, help and buckets, and the
//! small functions the layers record through. Labels stay bounded: routes are templates, kinds,
//! features and providers come from closed sets, and no user or task id is ever a label.

mod usage;

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use usage::UsageMeter;

pub const HTTP_REQUESTS: &str = "tutorq_http_requests_total";
pub const HTTP_DURATION: &str = "tutorq_http_request_duration_seconds";
pub const ADMISSIONS_REFUSED: &str = "tutorq_admissions_refused_total";
pub const TOKENS: &str = "tutorq_tokens_total";
pub const COST: &str = "tutorq_cost_usd_total";
pub const CACHE_REQUESTS: &str = "tutorq_cache_requests_total";
pub const QUEUE_DEPTH: &str = "tutorq_queue_depth";
pub const QUEUE_IN_FLIGHT: &str = "tutorq_queue_in_flight";
pub const QUEUE_RETRYING: &str = "tutorq_queue_retrying";
pub const DEAD_TASKS: &str = "tutorq_dead_tasks";
pub const AUDIT_SPOOL: &str = "tutorq_audit_spool_length";
pub const AUDIT_QUARANTINED: &str = "tutorq_audit_quarantined_total";
pub const JOBS_FINISHED: &str = "tutorq_jobs_finished_total";
pub const JOB_DURATION: &str = "tutorq_job_duration_seconds";
pub const PROVIDER_REQUESTS: &str = "tutorq_provider_requests_total";
pub const PROVIDER_DURATION: &str = "tutorq_provider_duration_seconds";
pub const BREAKER_STATE: &str = "tutorq_provider_breaker_state";
pub const WEBHOOK_ATTEMPTS: &str = "tutorq_webhook_attempts_total";
pub const SSE_CONNECTIONS: &str = "tutorq_sse_connections";
pub const WS_CONNECTIONS: &str = "tutorq_ws_connections";
pub const CAPACITY_BOOKINGS: &str = "tutorq_capacity_bookings_total";
pub const CAPACITY_WAIT: &str = "tutorq_capacity_wait_seconds";
pub const CAPACITY_LIMIT: &str = "tutorq_provider_capacity_limit";
pub const CAPACITY_LEFT: &str = "tutorq_provider_capacity_left";
pub const CAPACITY_USED: &str = "tutorq_provider_capacity_used";
pub const CAPACITY_PAUSED: &str = "tutorq_provider_paused_seconds";
pub const CAPACITY_IN_FLIGHT: &str = "tutorq_provider_in_flight";
pub const CAPACITY_WAITING: &str = "tutorq_provider_waiting_tasks";

const HTTP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const JOB_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
const PROVIDER_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0];
const WAIT_BUCKETS: &[f64] = &[0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0];
/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed by the first call. The recorder is global (the `metrics`
/// macros write to it from every layer), so tests that build many apps in one process share
/// it: later calls return the same handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let mut builder = PrometheusBuilder::new();
        for (name, buckets) in [
            (HTTP_DURATION, HTTP_BUCKETS),
            (JOB_DURATION, JOB_BUCKETS),
            (PROVIDER_DURATION, PROVIDER_BUCKETS),
            (CAPACITY_WAIT, WAIT_BUCKETS),
        ] {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
                .expect("the bucket lists are not empty");
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will be empty");
        }
        describe();
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(err) = spawned {
            tracing::warn!(%err, "no metrics upkeep thread; histograms fold in at scrape time only");
        }
        handle
    })
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request (to the first byte of a streamed answer)"
    );
    describe_counter!(
        ADMISSIONS_REFUSED,
        "Requests refused by the admission limits, by the layer that refused"
    );
    describe_counter!(
        TOKENS,
        "Tokens of finished tasks, by feature, provider and kind (prompt or completion)"
    );
    describe_counter!(
        CACHE_REQUESTS,
        "Response cache lookups, by feature and result (hit or miss)"
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Entries in a job kind's queue stream (waiting or taken), at scrape time"
    );
    describe_gauge!(
        QUEUE_IN_FLIGHT,
        "Entries of a job kind's queue held by a worker, at scrape time"
    );
    describe_gauge!(
        QUEUE_RETRYING,
        "Tasks of a job kind waiting for a retry (and inline runs' leases), at scrape time"
    );
    describe_gauge!(DEAD_TASKS, "Dead tasks listed in ai:dead, at scrape time");
    describe_gauge!(
        AUDIT_SPOOL,
        "Audit events waiting in the Redis spool for PostgreSQL, at scrape time"
    );
    describe_counter!(
        AUDIT_QUARANTINED,
        "Audit events PostgreSQL refused for their content, kept in audit_quarantine"
    );
    describe_counter!(
        JOBS_FINISHED,
        "Job attempts recorded, by kind and outcome (succeeded, failed, dead, retrying)"
    );
    describe_histogram!(
        JOB_DURATION,
        Unit::Seconds,
        "Time from an attempt's start to its recorded outcome, by job kind"
    );
    describe_counter!(
        PROVIDER_REQUESTS,
        "Provider calls, by provider and outcome (ok or the error kind; circuit_open: skipped)"
    );
    describe_histogram!(
        PROVIDER_DURATION,
        Unit::Seconds,
        "Time of one provider call (to the first chunk when streaming), by provider"
    );
    describe_gauge!(
        BREAKER_STATE,
        "Circuit breaker of a provider in this process: 0 closed, 1 half-open, 2 open"
    );
    describe_counter!(
        WEBHOOK_ATTEMPTS,
        "Webhook delivery attempts, by outcome (delivered or the failure kind)"
    );
    describe_gauge!(SSE_CONNECTIONS, "Open Server-Sent Events streams");
    describe_counter!(
        CAPACITY_BOOKINGS,
        "Bookings of a provider's capacity, by class and outcome (booked, or busy: the task waits)"
    );
    describe_histogram!(
        CAPACITY_WAIT,
        Unit::Seconds,
        "How long a booked call waited for its time"
    );
    describe_gauge!(
        CAPACITY_LIMIT,
        "A provider's limit per minute, by kind (requests, tokens...), across the fleet"
    );
    describe_gauge!(
        CAPACITY_LEFT,
        "What could be sent to a provider at once now, by kind, across the fleet"
    );
    describe_gauge!(
        CAPACITY_USED,
        "Settled this minute at a provider, by kind, across the fleet"
    );
    describe_gauge!(
        CAPACITY_PAUSED,
        "Seconds a provider stays paused after a 429 (0: not paused)"
    );
    describe_gauge!(CAPACITY_IN_FLIGHT, "Booked calls in flight at a provider");
    describe_gauge!(
        CAPACITY_WAITING,
        "Tasks waiting in the queue for a provider's capacity, by class"
    );
    describe_gauge!(WS_CONNECTIONS, "Open WebSocket connections");
}

/// What lives outside this process's counters, sampled when `/metrics` is scraped: the queues
/// (read from Redis; `None` when Redis did not answer, and the gauges keep their last values)
/// and this process's circuit breakers.
#[derive(Debug, Default)]
pub struct Sampled {
    pub queues: Option<QueuesSample>,
    /// `(provider, breaker state)`: `closed`, `half_open` or `open`.
    pub breakers: Vec<(&'static str, &'static str)>,
    /// Each provider entry's capacity across the fleet (`None`: Redis did not answer).
    pub capacity: Option<Vec<CapacitySample>>,
}

/// One provider entry's capacity gauges.
#[derive(Debug, Default)]
pub struct CapacitySample {
    pub provider: &'static str,
    /// `(kind, limit per minute, left now, used this minute)`.
    pub kinds: Vec<(&'static str, u64, u64, u64)>,
    pub paused_secs: f64,
    pub in_flight: u64,
    pub waiting_interactive: u64,
    pub waiting_batch: u64,
}

/// The queue gauges' values.
#[derive(Debug, Default)]
pub struct QueuesSample {
    /// `(kind, depth, in flight, retrying)` per job kind.
    pub kinds: Vec<(String, u64, u64, u64)>,
    pub dead: u64,
    pub audit_spool: u64,
}

/// Sets the sampled gauges, then renders every metric in the Prometheus text format.
pub fn render(sampled: Sampled) -> String {
    if let Some(queues) = sampled.queues {
        for (kind, depth, in_flight, retrying) in queues.kinds {
            gauge!(QUEUE_DEPTH, "kind" => kind.clone()).set(depth as f64);
            gauge!(QUEUE_IN_FLIGHT, "kind" => kind.clone()).set(in_flight as f64);
            gauge!(QUEUE_RETRYING, "kind" => kind).set(retrying as f64);
        }
        gauge!(DEAD_TASKS).set(queues.dead as f64);
        gauge!(AUDIT_SPOOL).set(queues.audit_spool as f64);
    }
    for entry in sampled.capacity.into_iter().flatten() {
        let provider = entry.provider;
        for (kind, limit, left, used) in entry.kinds {
            gauge!(CAPACITY_LIMIT, "provider" => provider, "kind" => kind).set(limit as f64);
            gauge!(CAPACITY_LEFT, "provider" => provider, "kind" => kind).set(left as f64);
            gauge!(CAPACITY_USED, "provider" => provider, "kind" => kind).set(used as f64);
        }
        gauge!(CAPACITY_PAUSED, "provider" => provider).set(entry.paused_secs);
        gauge!(CAPACITY_IN_FLIGHT, "provider" => provider).set(entry.in_flight as f64);
        gauge!(CAPACITY_WAITING, "provider" => provider, "class" => "interactive")
            .set(entry.waiting_interactive as f64);
        gauge!(CAPACITY_WAITING, "provider" => provider, "class" => "batch")
            .set(entry.waiting_batch as f64);
    }
    for (provider, state) in sampled.breakers {
        let state = match state {
            "closed" => 0.0,
            "half_open" => 1.0,
            _ => 2.0,
        };
        gauge!(BREAKER_STATE, "provider" => provider).set(state);
    }
    let mut text = install().render();
    usage::render_costs(&mut text);
    text
}

/// One answered HTTP request. `route` is the matched route template or `unmatched`.
pub fn http_request(method: &'static str, route: String, status: u16, elapsed: Duration) {
    counter!(HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "method" => method, "route" => route)
        .record(elapsed.as_secs_f64());
}

/// A request refused by an admission limit; `layer` is the limit's name (`Limit::name`, a
/// closed set).
pub fn admission_refused(layer: &'static str) {
    counter!(ADMISSIONS_REFUSED, "layer" => layer).increment(1);
}

/// A response cache lookup that found an answer (`hit`) or not.
pub fn cache_lookup(feature: &'static str, hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    counter!(CACHE_REQUESTS, "feature" => feature, "result" => result).increment(1);
}

/// One provider call: `ok` or the error's kind; `elapsed` is `None` for a call the breaker
/// refused without trying.
pub fn provider_call(provider: &'static str, outcome: &'static str, elapsed: Option<Duration>) {
    counter!(PROVIDER_REQUESTS, "provider" => provider, "outcome" => outcome).increment(1);
    if let Some(elapsed) = elapsed {
        metrics::histogram!(PROVIDER_DURATION, "provider" => provider)
            .record(elapsed.as_secs_f64());
    }
}

/// One booking of a provider's capacity: `booked` (with how long the call waits for its time)
/// or `busy` (the task waits in the queue for its turn).
pub fn capacity_booking(
    provider: &'static str,
    class: &'static str,
    outcome: &'static str,
    wait: Option<Duration>,
) {
    counter!(CAPACITY_BOOKINGS, "provider" => provider, "class" => class, "outcome" => outcome)
        .increment(1);
    if let Some(wait) = wait {
        metrics::histogram!(CAPACITY_WAIT, "provider" => provider, "class" => class)
            .record(wait.as_secs_f64());
    }
}

/// One audit event put in quarantine.
pub fn audit_quarantined() {
    counter!(AUDIT_QUARANTINED).increment(1);
}

/// One webhook delivery attempt: `delivered` or the failure's kind.
pub fn webhook_attempt(outcome: &'static str) {
    counter!(WEBHOOK_ATTEMPTS, "outcome" => outcome).increment(1);
}

/// One recorded job attempt, with how long it ran when known.
pub fn job_finished(kind: &str, outcome: &'static str, ran: Option<Duration>) {
    counter!(JOBS_FINISHED, "kind" => kind.to_owned(), "outcome" => outcome).increment(1);
    if let Some(ran) = ran {
        metrics::histogram!(JOB_DURATION, "kind" => kind.to_owned()).record(ran.as_secs_f64());
    }
}

/// Counts one open SSE stream or WebSocket while it lives.
pub struct OpenConnection(&'static str);

impl OpenConnection {
    pub fn sse() -> Self {
        Self::open(SSE_CONNECTIONS)
    }

    pub fn ws() -> Self {
        Self::open(WS_CONNECTIONS)
    }

    fn open(name: &'static str) -> Self {
        gauge!(name).increment(1.0);
        Self(name)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        gauge!(self.0).decrement(1.0);
    }
}
