//! Job kinds (`jobs/*.yaml`): each kind's queue, concurrency, timeouts, attempts, backoff and
//! result TTL, checked at start.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use serde::Deserialize;

use crate::config::duration;

/// The kinds the engine knows; a file for any other name is refused.
pub const KNOWN: &[&str] = &["ai_request", "batch_item", "webhook_delivery"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobKind {
    /// Stable name carried by every job of this kind; never a Rust type name.
    pub name: String,
    /// The Redis stream (`ai:queue:<queue>`).
    pub queue: String,
    /// Higher first when one process starts several pools.
    pub priority: u32,
    /// Jobs in flight per worker process.
    pub concurrency: usize,
    #[serde(deserialize_with = "duration::deserialize")]
    pub timeout: Duration,
    #[serde(deserialize_with = "duration::deserialize")]
    pub visibility_timeout: Duration,
    pub max_attempts: u32,
    pub backoff: Backoff,
    #[serde(deserialize_with = "duration::deserialize")]
    pub result_ttl: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    #[serde(deserialize_with = "duration::deserialize")]
    pub initial: Duration,
    pub multiplier: f32,
    #[serde(deserialize_with = "duration::deserialize")]
    pub max: Duration,
    pub jitter: bool,
}

impl JobKind {
    /// The delay before attempt `attempt + 1`, after `attempt` failed (1-based), computed with
    /// backon's exponential backoff (with jitter when configured).
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let mut builder = ExponentialBuilder::default()
            .with_min_delay(self.backoff.initial)
            .with_factor(self.backoff.multiplier)
            .with_max_delay(self.backoff.max)
            .with_max_times(attempt.max(1) as usize);
        if self.backoff.jitter {
            builder = builder.with_jitter();
        }
        builder.build().last().unwrap_or(self.backoff.initial)
    }

    fn check(&self) -> Result<(), String> {
        if !KNOWN.contains(&self.name.as_str()) {
            return Err(format!(
                "unknown job kind `{}` (known: {})",
                self.name,
                KNOWN.join(", ")
            ));
        }
        if self.concurrency == 0 {
            return Err("concurrency must be at least 1".into());
        }
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1".into());
        }
        if self.visibility_timeout < Duration::from_secs(1) {
            return Err("visibility_timeout must be at least 1s".into());
        }
        if self.timeout.is_zero() || self.result_ttl < Duration::from_secs(1) {
            return Err("timeout and result_ttl must be positive".into());
        }
        if self.backoff.multiplier < 1.0 || self.backoff.initial > self.backoff.max {
            return Err("backoff needs multiplier >= 1 and initial <= max".into());
        }
        if self.queue.is_empty()
            || !self
                .queue
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err("queue must be letters, digits and underscores".into());
        }
        Ok(())
    }
}

/// Every job kind, by name.
#[derive(Debug, Clone)]
pub struct JobKinds(BTreeMap<String, JobKind>);

impl JobKinds {
    /// Reads `dir/*.yaml`; a malformed or missing file is refused with its path and reason.
    pub fn load(dir: &Path) -> Result<Self, String> {
        let mut kinds = BTreeMap::new();
        for name in KNOWN {
            let path = dir.join(format!("{name}.yaml"));
            let text = std::fs::read_to_string(&path)
                .map_err(|err| format!("{}: {err}", path.display()))?;
            let kind: JobKind = serde_norway::from_str(&text)
                .map_err(|err| format!("{}: {err}", path.display()))?;
            if kind.name != *name {
                return Err(format!(
                    "{}: `name` must be `{name}` to match the file name",
                    path.display()
                ));
            }
            kind.check()
                .map_err(|reason| format!("{}: {reason}", path.display()))?;
            kinds.insert(kind.name.clone(), kind);
        }
        Ok(Self(kinds))
    }

    pub fn get(&self, name: &str) -> Option<&JobKind> {
        self.0.get(name)
    }

    /// The kind, which every loaded set has for each of [`KNOWN`].
    pub fn kind(&self, name: &str) -> &JobKind {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("job kind `{name}` is always loaded"))
    }

    /// Kinds by descending priority.
    pub fn by_priority(&self) -> Vec<&JobKind> {
        let mut kinds: Vec<&JobKind> = self.0.values().collect();
        kinds.sort_by_key(|k| std::cmp::Reverse(k.priority));
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> JobKinds {
        JobKinds::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs")).unwrap()
    }

    #[test]
    fn shipped_kinds_load_in_priority_order() {
        let kinds = shipped();
        let names: Vec<&str> = kinds
            .by_priority()
            .iter()
            .map(|k| k.name.as_str())
            .collect();
        assert_eq!(names, ["ai_request", "webhook_delivery", "batch_item"]);
    }

    #[test]
    fn retry_delays_grow_and_stay_capped() {
        let kinds = shipped();
        let kind = kinds.kind("ai_request");
        for attempt in 1..=8 {
            let delay = kind.retry_delay(attempt);
            let base = (kind.backoff.initial.as_secs_f32()
                * kind.backoff.multiplier.powi(attempt as i32 - 1))
            .min(kind.backoff.max.as_secs_f32());
            assert!(
                delay.as_secs_f32() >= base * 0.999 && delay.as_secs_f32() <= base * 2.001,
                "attempt {attempt}: {delay:?} vs {base}"
            );
        }
    }

    #[test]
    fn a_bad_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        for name in KNOWN {
            std::fs::copy(
                Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("jobs/{name}.yaml")),
                dir.path().join(format!("{name}.yaml")),
            )
            .unwrap();
        }
        let path = dir.path().join("batch_item.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("concurrency: 32", "concurrency: many");
        std::fs::write(&path, text).unwrap();
        let err = JobKinds::load(dir.path()).unwrap_err();
        assert!(
            err.starts_with(&path.display().to_string()) && err.contains("concurrency"),
            "{err}"
        );
    }
}
