//! `audit`: the audit trail's writer, redaction and the price table (DESIGN.md §9).

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Off: no audit events at all (benchmarks compare with it).
    pub enabled: bool,
    /// Events waiting in memory before new ones go straight to the Redis spool.
    pub channel_capacity: usize,
    /// Rows per INSERT, and the longest an event waits for its batch.
    pub batch_size: usize,
    pub flush_ms: u64,
    /// JSON keys whose values are replaced by `[redacted]` anywhere in inputs and answers.
    pub redact_fields: Vec<String>,
    /// JSON keys whose values are stored as a keyed hash (`hmac-sha256:<hex>`) instead.
    #[serde(default)]
    pub hash_fields: Vec<String>,
    /// The key of those hashes: environment only (`TUTORQ__AUDIT__HASH_KEY`). Without it the
    /// hash is unkeyed, and a short value (a choice letter) could be guessed from it.
    #[serde(default)]
    pub hash_key: Option<super::Secret>,
    /// Longer strings are cut to this many bytes (with a marker).
    pub max_field_bytes: usize,
    /// Events older than this many days are deleted (in small batches, hourly); 0 keeps all.
    pub retention_days: u32,
    /// Price per million tokens, by `provider/model` (or `provider/*`).
    pub prices: BTreeMap<String, Price>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_million: f64,
    pub output_per_million: f64,
}

impl AuditSettings {
    /// The cost in US dollars of a completion.
    pub fn cost(&self, provider: &str, model: &str, input: u64, output: u64) -> f64 {
        let price = self
            .prices
            .get(&format!("{provider}/{model}"))
            .or_else(|| self.prices.get(&format!("{provider}/*")));
        price.map_or(0.0, |p| {
            (input as f64 * p.input_per_million + output as f64 * p.output_per_million) / 1e6
        })
    }
}
