//! `metrics` and `worker`: the Prometheus endpoint and the worker's admin listener.

use serde::Deserialize;

use super::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Off: `/metrics` answers 404 (the counters still cost next to nothing).
    pub enabled: bool,
    /// When set, `/metrics` wants `Authorization: Bearer <token>`; environment only
    /// (`TUTORQ__METRICS__TOKEN`).
    #[serde(default)]
    pub token: Option<Secret>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// `tutorq worker` serves `/healthz`, `/readyz` and `/metrics` on `server.host` at this
    /// port; 0 turns the listener off.
    pub admin_port: u16,
}
