//! Tokens and their cost per feature and provider, counted when a task's success is recorded
//! (queued or inline), priced with `audit.prices`.
//!
//! The `metrics` facade's counters are integers, and a cost is a fraction of a dollar: the cost
//! counter is kept here and rendered next to the recorder's output, as a real counter.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use super::{COST, TOKENS};
use crate::config::AuditSettings;
use crate::feature::Feature;
use crate::outcome::Answer;
use metrics::counter;

#[derive(Clone)]
pub struct UsageMeter(Arc<AuditSettings>);

impl UsageMeter {
    pub fn new(prices: &AuditSettings) -> Self {
        Self(Arc::new(prices.clone()))
    }

    /// Counts the tokens of a succeeded task's answer and what they cost.
    pub fn record(&self, feature: Option<Feature>, answer: &Answer) {
        let prompt = u64::from(answer.usage.prompt_tokens);
        let completion = u64::from(answer.usage.completion_tokens);
        let feature = feature.map_or("other", Feature::as_str);
        let provider = answer.provider.as_str();
        let cost = self.0.cost(provider, &answer.model, prompt, completion);
        let provider = bounded_provider(provider);
        counter!(TOKENS, "feature" => feature, "provider" => provider, "kind" => "prompt")
            .increment(prompt);
        counter!(TOKENS, "feature" => feature, "provider" => provider, "kind" => "completion")
            .increment(completion);
        *COSTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((feature, provider))
            .or_default() += cost;
    }
}

/// Dollars per (feature, provider) since the process started.
static COSTS: Mutex<BTreeMap<(&'static str, &'static str), f64>> = Mutex::new(BTreeMap::new());

/// Appends the cost counter in the Prometheus text format.
pub(super) fn render_costs(out: &mut String) {
    let costs = COSTS.lock().unwrap_or_else(|e| e.into_inner());
    if costs.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP {COST} Cost of finished tasks in US dollars (audit.prices), by feature and provider"
    );
    let _ = writeln!(out, "# TYPE {COST} counter");
    for ((feature, provider), dollars) in costs.iter() {
        let _ = writeln!(
            out,
            "{COST}{{feature=\"{feature}\",provider=\"{provider}\"}} {dollars}"
        );
    }
    out.push('\n');
}

/// A provider name from a closed set (`cache` is the response cache).
fn bounded_provider(provider: &str) -> &'static str {
    crate::config::PROVIDERS
        .iter()
        .chain(&["cache"])
        .find(|known| **known == provider)
        .copied()
        .unwrap_or("other")
}
