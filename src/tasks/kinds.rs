//! Job kinds' settings (`jobs/*.yaml`): each kind's queue, concurrency, timeouts, attempts,
//! backoff and result TTL, checked at start against the kinds the process registered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use serde::Deserialize;

use crate::config::duration;

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
    /// Reads `dir/*.yaml`, one file per kind of `registered` (the job registry's names): a
    /// malformed file, a file whose kind is not registered and a registered kind without a file
    /// are each refused with the path and the reason.
    pub fn load(dir: &Path, registered: &[&str]) -> Result<Self, String> {
        let listed = std::fs::read_dir(dir).map_err(|err| format!("{}: {err}", dir.display()))?;
        let mut files: Vec<PathBuf> = listed
            .filter_map(|entry| Some(entry.ok()?.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
            .collect();
        files.sort();
        let mut kinds = BTreeMap::new();
        for path in files {
            let name = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .unwrap_or_default()
                .to_owned();
            if !registered.contains(&name.as_str()) {
                return Err(format!(
                    "{}: no job kind `{name}` is registered (registered: {})",
                    path.display(),
                    registered.join(", ")
                ));
            }
            let text = std::fs::read_to_string(&path)
                .map_err(|err| format!("{}: {err}", path.display()))?;
            let kind: JobKind = serde_norway::from_str(&text)
                .map_err(|err| format!("{}: {err}", path.display()))?;
            if kind.name != name {
                return Err(format!(
                    "{}: `name` must be `{name}` to match the file name",
                    path.display()
                ));
            }
            kind.check()
                .map_err(|reason| format!("{}: {reason}", path.display()))?;
            kinds.insert(name, kind);
        }
        if let Some(missing) = registered.iter().find(|name| !kinds.contains_key(**name)) {
            return Err(format!(
                "{}: missing: the job kind `{missing}` is registered but has no file",
                dir.join(format!("{missing}.yaml")).display()
            ));
        }
        Ok(Self(kinds))
    }

    pub fn get(&self, name: &str) -> Option<&JobKind> {
        self.0.get(name)
    }

    /// A kind the set must have: every registered kind is loaded.
    pub fn kind(&self, name: &str) -> &JobKind {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("job kind `{name}` is registered and loaded"))
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

    /// The kinds the shipped files name (the registry's check against them is the service's
    /// test: `tasks` knows no job kind). The names are the files' stems, kept for the run.
    fn registered() -> Vec<&'static str> {
        static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        let names = NAMES.get_or_init(|| {
            let mut names: Vec<String> = std::fs::read_dir(shipped_dir())
                .unwrap()
                .filter_map(|entry| {
                    let name = entry.ok()?.file_name().into_string().ok()?;
                    Some(name.strip_suffix(".yaml")?.to_owned())
                })
                .collect();
            names.sort_unstable();
            names
        });
        names.iter().map(String::as_str).collect()
    }

    fn shipped_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs")
    }

    fn shipped() -> JobKinds {
        JobKinds::load(&shipped_dir(), &registered()).unwrap()
    }

    /// A copy of the shipped files.
    fn copy() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for name in registered() {
            std::fs::copy(
                shipped_dir().join(format!("{name}.yaml")),
                dir.path().join(format!("{name}.yaml")),
            )
            .unwrap();
        }
        dir
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
        let dir = copy();
        let path = dir.path().join("batch_item.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("concurrency: 32", "concurrency: many");
        std::fs::write(&path, text).unwrap();
        let err = JobKinds::load(dir.path(), &registered()).unwrap_err();
        assert!(
            err.starts_with(&path.display().to_string()) && err.contains("concurrency"),
            "{err}"
        );
    }

    #[test]
    fn a_file_of_an_unregistered_kind_is_refused() {
        let dir = copy();
        let path = dir.path().join("horoscope.yaml");
        let text = std::fs::read_to_string(dir.path().join("ai_request.yaml"))
            .unwrap()
            .replace("name: ai_request", "name: horoscope");
        std::fs::write(&path, text).unwrap();
        let err = JobKinds::load(dir.path(), &registered()).unwrap_err();
        assert!(
            err.starts_with(&path.display().to_string())
                && err.contains("no job kind `horoscope` is registered"),
            "{err}"
        );
    }

    #[test]
    fn a_registered_kind_without_a_file_is_refused() {
        let dir = copy();
        let path = dir.path().join("webhook_delivery.yaml");
        std::fs::remove_file(&path).unwrap();
        let err = JobKinds::load(dir.path(), &registered()).unwrap_err();
        assert!(
            err.starts_with(&path.display().to_string())
                && err.contains("`webhook_delivery` is registered but has no file"),
            "{err}"
        );
    }
}
