//! One circuit breaker per provider (per process): closed → open after `consecutive_failures`
//! in a row, or a `failure_ratio` of at least `min_calls` calls within `window_secs`; open for
//! `cooldown_secs`, refusing calls at once; then half-open, letting `half_open_probes` calls
//! through: a success closes it, a failure opens it again.
//!
//! Only the provider's own failures count (rate limits, overload, timeouts, 5xx, auth); a
//! refused request (bad request, content filter) shows the provider is up. Time is tokio's, so
//! tests drive it with a paused clock.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::ProviderError;
use crate::config::BreakerSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probes_out: u32 },
}

struct Inner {
    state: State,
    consecutive: u32,
    window: Window,
    opened: u64,
    last_failure: Option<String>,
}

/// Calls and failures of the last `window_secs`, counted per second (oldest first) with running
/// totals: recording a call is O(1) whatever the call rate.
#[derive(Default)]
struct Window {
    /// `(second since the breaker started, calls, failures)`.
    seconds: VecDeque<(u64, u64, u64)>,
    calls: u64,
    failures: u64,
}

impl Window {
    fn record(&mut self, second: u64, failed: bool) {
        match self.seconds.back_mut() {
            Some((at, calls, failures)) if *at == second => {
                *calls += 1;
                *failures += u64::from(failed);
            }
            _ => self.seconds.push_back((second, 1, u64::from(failed))),
        }
        self.calls += 1;
        self.failures += u64::from(failed);
    }

    /// Forgets the seconds that ended more than `span` seconds before `second`.
    fn expire(&mut self, second: u64, span: u64) {
        while let Some(&(at, calls, failures)) = self.seconds.front() {
            if at + span >= second {
                break;
            }
            self.seconds.pop_front();
            self.calls -= calls;
            self.failures -= failures;
        }
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

pub struct Breaker {
    settings: BreakerSettings,
    inner: Mutex<Inner>,
    /// Where the window's seconds count from.
    started: Instant,
}

/// Permission for one call; report how it went with [`Ticket::record`]. A probe dropped without
/// a report (its request was cancelled) frees its place.
pub struct Ticket {
    breaker: Arc<Breaker>,
    probe: bool,
    recorded: bool,
}

/// What `GET /v1/admin/providers` shows of a breaker.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Snapshot {
    /// `closed`, `open` or `half_open`.
    pub state: &'static str,
    pub consecutive_failures: u32,
    pub window_calls: usize,
    pub window_failures: usize,
    /// Seconds until an open breaker lets a probe through.
    pub retry_in_secs: Option<f64>,
    /// How many times it has opened since the process started.
    pub times_opened: u64,
    pub last_failure: Option<String>,
}

/// Whether a failure is the provider's (counts against it) or the request's.
pub fn counts(error: &ProviderError) -> bool {
    error.is_transient() || matches!(error, ProviderError::Auth(_))
}

impl Breaker {
    pub fn new(settings: &BreakerSettings) -> Arc<Self> {
        Arc::new(Self {
            settings: settings.clone(),
            inner: Mutex::new(Inner {
                state: State::Closed,
                consecutive: 0,
                window: Window::default(),
                opened: 0,
                last_failure: None,
            }),
            started: Instant::now(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A ticket for one call, or `Err(wait)` while the breaker is open (or its probes are out).
    pub fn admit(self: &Arc<Self>) -> Result<Ticket, Duration> {
        let now = Instant::now();
        let mut inner = self.lock();
        if let State::Open { until } = inner.state {
            if now < until {
                return Err(until - now);
            }
            inner.state = State::HalfOpen { probes_out: 0 };
        }
        let probe = match &mut inner.state {
            State::HalfOpen { probes_out } if *probes_out >= self.settings.half_open_probes => {
                return Err(Duration::ZERO);
            }
            State::HalfOpen { probes_out } => {
                *probes_out += 1;
                true
            }
            _ => false,
        };
        Ok(Ticket {
            breaker: self.clone(),
            probe,
            recorded: false,
        })
    }

    fn on_result(&self, probe: bool, failure: Option<&ProviderError>) {
        let now = Instant::now();
        let mut inner = self.lock();
        let failed = failure.is_some_and(counts);
        if let Some(error) = failure.filter(|e| counts(e)) {
            inner.last_failure = Some(error.to_string());
        }
        match (inner.state, probe) {
            (State::HalfOpen { .. }, true) if failed => self.open(&mut inner, now),
            (State::HalfOpen { .. }, true) => {
                inner.state = State::Closed;
                inner.consecutive = 0;
                inner.window.clear();
            }
            // A call admitted before the breaker opened: it only adds to the record.
            (State::Open { .. } | State::HalfOpen { .. }, _) => {}
            (State::Closed, _) => {
                inner.consecutive = if failed { inner.consecutive + 1 } else { 0 };
                let second = now.duration_since(self.started).as_secs();
                inner.window.record(second, failed);
                inner.window.expire(second, self.settings.window_secs);
                let (calls, failures) = (inner.window.calls, inner.window.failures);
                let ratio_trips = calls >= u64::from(self.settings.min_calls)
                    && failures as f64 >= self.settings.failure_ratio * calls as f64;
                if failed
                    && (inner.consecutive >= self.settings.consecutive_failures || ratio_trips)
                {
                    self.open(&mut inner, now);
                }
            }
        }
    }

    fn open(&self, inner: &mut Inner, now: Instant) {
        inner.state = State::Open {
            until: now + Duration::from_secs(self.settings.cooldown_secs),
        };
        inner.opened += 1;
        inner.consecutive = 0;
        inner.window.clear();
    }

    fn release_probe(&self) {
        let mut inner = self.lock();
        if let State::HalfOpen { probes_out } = &mut inner.state {
            *probes_out = probes_out.saturating_sub(1);
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let now = Instant::now();
        let inner = self.lock();
        let (state, retry_in_secs) = match inner.state {
            State::Closed => ("closed", None),
            State::Open { until } if now < until => ("open", Some((until - now).as_secs_f64())),
            State::Open { .. } | State::HalfOpen { .. } => ("half_open", None),
        };
        Snapshot {
            state,
            consecutive_failures: inner.consecutive,
            window_calls: inner.window.calls as usize,
            window_failures: inner.window.failures as usize,
            retry_in_secs,
            times_opened: inner.opened,
            last_failure: inner.last_failure.clone(),
        }
    }
}

impl Ticket {
    /// Reports the call's result (an error the request caused counts as the provider being up).
    pub fn record(mut self, failure: Option<&ProviderError>) {
        self.recorded = true;
        self.breaker.on_result(self.probe, failure);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.probe && !self.recorded {
            self.breaker.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            consecutive_failures: 3,
            failure_ratio: 0.5,
            min_calls: 10,
            window_secs: 60,
            cooldown_secs: 30,
            half_open_probes: 1,
        }
    }

    fn server_error() -> ProviderError {
        ProviderError::Server("HTTP 500".into())
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_then_probes_after_the_cooldown() {
        let breaker = Breaker::new(&settings());
        for _ in 0..3 {
            breaker.admit().unwrap().record(Some(&server_error()));
        }
        assert_eq!(breaker.snapshot().state, "open");
        assert_eq!(breaker.admit().err(), Some(Duration::from_secs(30)));
        tokio::time::advance(Duration::from_secs(30)).await;
        let probe = breaker.admit().expect("one probe after the cooldown");
        assert!(breaker.admit().is_err(), "only one probe at a time");
        probe.record(Some(&server_error()));
        assert_eq!(breaker.snapshot().state, "open", "a failed probe re-opens");
        assert_eq!(breaker.snapshot().times_opened, 2);
        tokio::time::advance(Duration::from_secs(30)).await;
        breaker.admit().unwrap().record(None);
        assert_eq!(breaker.snapshot().state, "closed", "a good probe closes");
        breaker.admit().unwrap().record(None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_ratio_opens_it_and_request_errors_do_not_count() {
        let breaker = Breaker::new(&settings());
        for i in 0..10 {
            let failure = (i % 2 == 1).then(server_error);
            breaker.admit().unwrap().record(failure.as_ref());
        }
        assert_eq!(breaker.snapshot().state, "open", "5 of 10 failed");

        let breaker = Breaker::new(&settings());
        for _ in 0..20 {
            breaker
                .admit()
                .unwrap()
                .record(Some(&ProviderError::BadRequest("too long".into())));
        }
        assert_eq!(breaker.snapshot().state, "closed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_frees_its_place() {
        let breaker = Breaker::new(&settings());
        for _ in 0..3 {
            breaker.admit().unwrap().record(Some(&server_error()));
        }
        tokio::time::advance(Duration::from_secs(31)).await;
        drop(breaker.admit().unwrap());
        assert!(breaker.admit().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn calls_older_than_the_window_stop_counting() {
        let breaker = Breaker::new(&BreakerSettings {
            consecutive_failures: 1000,
            ..settings()
        });
        for _ in 0..4 {
            breaker.admit().unwrap().record(Some(&server_error()));
        }
        for _ in 0..6 {
            breaker.admit().unwrap().record(None);
        }
        let snapshot = breaker.snapshot();
        assert_eq!((snapshot.window_calls, snapshot.window_failures), (10, 4));
        tokio::time::advance(Duration::from_secs(62)).await;
        breaker.admit().unwrap().record(None);
        let snapshot = breaker.snapshot();
        assert_eq!((snapshot.window_calls, snapshot.window_failures), (1, 0));
        assert_eq!(snapshot.state, "closed");
    }
}
