//! Settings: typed, layered (`config/default.yaml` → `config/{TUTORQ_ENV}.yaml` → `TUTORQ__*`
//! env vars) and checked once at start, so a bad value stops the process with its key.

mod audit;
pub mod duration;
mod layers;
mod limits;
mod metrics;
mod providers;
mod safety;
mod secret;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use audit::{AuditSettings, Price};
pub use limits::{
    AbuseSettings, CacheSettings, FailOpen, IpLimits, LimitSettings, RoleLimits, RoleTable,
};
pub use metrics::{MetricsSettings, WorkerSettings};
pub use providers::{
    AnthropicSettings, AzureSettings, BreakerSettings, CapacityLimits, CapacitySettings,
    LatencySetting, MockSettings, OpenAiSettings, ProviderSettings, RetrySettings,
};
pub use safety::SafetySettings;

/// Provider names a chain may use.
pub const PROVIDERS: &[&str] = &["mock", "openai", "azure", "anthropic"];
pub use secret::Secret;

/// Publicly known signing secret for development and tests only (see `auth.allow_insecure_dev_secret`).
const INSECURE_DEV_SECRET: &str = "tutorq-development-secret-do-not-use-in-production";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("invalid configuration at `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Which overlay was applied (`TUTORQ_ENV`); not read from the files.
    #[serde(skip)]
    pub environment: String,
    pub server: ServerSettings,
    pub redis: RedisSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub jobs: JobSettings,
    pub webhooks: WebhookSettings,
    pub intake: IntakeSettings,
    pub prompts: PromptSettings,
    pub providers: ProviderSettings,
    pub limits: LimitSettings,
    pub cache: CacheSettings,
    pub audit: AuditSettings,
    pub safety: SafetySettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub worker: WorkerSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub body_limit_bytes: usize,
    /// Largest `POST /v1/batches` body (10,000 items).
    pub batch_body_limit_bytes: usize,
    pub shutdown_grace_secs: u64,
    /// Serve the development pages under `/demo/`.
    pub demo_pages: bool,
    /// A connection must send a whole request head within this long of connecting or of its
    /// previous response; it is also how long an idle keep-alive connection stays open.
    pub header_read_timeout_secs: u64,
    /// A request body must arrive whole within this long of its head (408 beyond).
    pub body_read_timeout_secs: u64,
    /// Open connections one web process accepts; beyond it a new one gets 503 and is closed.
    pub max_connections: usize,
    /// What one caller may hold open in one web process, and the process in all.
    pub open: OpenLimits,
    /// Largest WebSocket message (and frame) a client may send, in bytes.
    pub websocket_max_message_bytes: usize,
    /// Task subscriptions one WebSocket may hold.
    pub websocket_max_subscriptions: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenLimits {
    /// `GET /v1/tasks/{id}?wait=` long-polls.
    pub long_polls: OpenLimit,
    /// `GET /v1/tasks/{id}/events` and `/v1/batches/{id}/events` streams.
    pub event_streams: OpenLimit,
    /// `GET /v1/ws` sockets.
    pub websockets: OpenLimit,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenLimit {
    pub per_user: usize,
    pub per_process: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: Secret,
    /// Seed nodes of a Redis Cluster; when given, `url` is not used.
    #[serde(default)]
    pub cluster: Vec<Secret>,
    /// Partitions of every queue (`tasks/keys.rs`); by default 1 on one server, 6 on a cluster.
    /// Fixed for a deployment: changing it strands the tasks of the partitions that go.
    #[serde(default)]
    pub partitions: Option<usize>,
    /// Replicas a new task must reach before it is accepted (`WAIT`; 0 = don't wait): with 1,
    /// a 202 survives its master's failover.
    #[serde(default)]
    pub wait_replicas: u32,
    /// Longest wait for them (the task is accepted anyway, with a warning, after it); at most
    /// three quarters of `response_timeout_ms`.
    #[serde(default = "default_wait_timeout_ms")]
    pub wait_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub response_timeout_ms: u64,
}

fn default_wait_timeout_ms() -> u64 {
    1000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: Secret,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    pub migrate_on_start: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    #[serde(default)]
    pub jwt_secret: Option<Secret>,
    pub leeway_secs: u64,
    pub allow_insecure_dev_secret: bool,
    /// When set, tokens must carry this `iss`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// When set, tokens must carry this `aud`.
    #[serde(default)]
    pub audience: Option<String>,
    /// Longest `exp - iat` a token may have (0: no limit; when set, `iat` is required).
    #[serde(default)]
    pub max_token_lifetime_secs: u64,
}

impl AuthSettings {
    /// The HS256 key: the configured secret, or the development one where that is allowed.
    pub fn signing_secret(&self) -> Secret {
        match &self.jwt_secret {
            Some(secret) => secret.clone(),
            None => Secret::new(INSECURE_DEV_SECRET),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Per client (user id) signing secrets, over `secret`: `TUTORQ__WEBHOOKS__CLIENT_SECRETS__<USER>`.
    #[serde(default)]
    pub client_secrets: BTreeMap<String, Secret>,
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    pub dir: PathBuf,
    /// Items of one batch that run at once (a batch may ask for fewer): several batches share
    /// the `batch_item` pool instead of the first one taking it all.
    pub batch_concurrency: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeSettings {
    pub sync_threshold_ms: u64,
    pub expected_latency_ms: u64,
    #[serde(default)]
    pub features: BTreeMap<String, FeatureIntake>,
    pub long_poll_max_secs: u64,
    pub idempotency_ttl_secs: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureIntake {
    #[serde(default)]
    pub sync_threshold_ms: Option<u64>,
    #[serde(default)]
    pub expected_latency_ms: Option<u64>,
}

impl IntakeSettings {
    /// `(threshold, seed estimate)` for a feature.
    pub fn for_feature(&self, feature: &str) -> (Duration, Duration) {
        let own = self.features.get(feature).cloned().unwrap_or_default();
        (
            Duration::from_millis(own.sync_threshold_ms.unwrap_or(self.sync_threshold_ms)),
            Duration::from_millis(own.expected_latency_ms.unwrap_or(self.expected_latency_ms)),
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSettings {
    pub dir: PathBuf,
    pub ignore_diacritics: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

impl Settings {
    /// Loads from `TUTORQ_CONFIG_DIR` (default `./config`), overlay `TUTORQ_ENV` (default
    /// `development`), and the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        let dir = std::env::var_os("TUTORQ_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config"));
        let environment = std::env::var("TUTORQ_ENV").unwrap_or_else(|_| "development".into());
        Self::load_from(&dir, &environment, std::env::vars())
    }

    /// The same as [`Settings::load`] with every input explicit, for tests and tools.
    pub fn load_from(
        dir: &Path,
        environment: &str,
        env_vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        if !matches!(environment, "development" | "test" | "production") {
            return Err(ConfigError::Invalid {
                key: "TUTORQ_ENV".into(),
                reason: format!("`{environment}` is not one of development, test, production"),
            });
        }
        let env_vars: Vec<(String, String)> = env_vars.into_iter().collect();
        let tree = layers::merged_tree(dir, environment, env_vars.iter().cloned())?;
        let mut settings: Settings =
            serde_path_to_error::deserialize(tree).map_err(|err| ConfigError::Invalid {
                key: display_path(&err.path().to_string()),
                reason: err.into_inner().to_string(),
            })?;
        settings.environment = environment.to_owned();
        settings.apply_procfile_port(&env_vars)?;
        settings.validate()?;
        Ok(settings)
    }

    /// `PORT`, as Procfile runners (honcho, foreman, Heroku) hand each process its own: the
    /// port `serve` and `all` listen on, and `worker`'s admin port, unless
    /// `TUTORQ__SERVER__PORT` / `TUTORQ__WORKER__ADMIN_PORT` say otherwise.
    fn apply_procfile_port(&mut self, env_vars: &[(String, String)]) -> Result<(), ConfigError> {
        let get = |name: &str| env_vars.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        let Some(port) = get("PORT") else {
            return Ok(());
        };
        let port: u16 = port.trim().parse().map_err(|_| ConfigError::Invalid {
            key: "PORT".into(),
            reason: format!("`{port}` is not a port number"),
        })?;
        if get("TUTORQ__SERVER__PORT").is_none() {
            self.server.port = port;
        }
        if get("TUTORQ__WORKER__ADMIN_PORT").is_none() {
            self.worker.admin_port = port;
        }
        Ok(())
    }

    /// The resilience figures make sense, and every provider a chain names is configured.
    fn validate_providers(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            key: key.to_owned(),
            reason: reason.to_owned(),
        };
        let p = &self.providers;
        if p.retry.max_attempts == 0 {
            return Err(invalid(
                "providers.retry.max_attempts",
                "must be at least 1",
            ));
        }
        if p.retry.multiplier < 1.0 {
            return Err(invalid("providers.retry.multiplier", "must be 1 or more"));
        }
        if p.deadline_ms == 0 {
            return Err(invalid("providers.deadline_ms", "must be greater than 0"));
        }
        if p.capacity.burst_ms == 0 {
            return Err(invalid(
                "providers.capacity.burst_ms",
                "must be greater than 0 (the bucket holds this many milliseconds of the rate)",
            ));
        }
        if p.capacity.lease_secs == 0 {
            return Err(invalid(
                "providers.capacity.lease_secs",
                "must be greater than 0",
            ));
        }
        let b = &p.breaker;
        if b.consecutive_failures == 0 || b.half_open_probes == 0 {
            return Err(invalid(
                "providers.breaker",
                "consecutive_failures and half_open_probes must be at least 1",
            ));
        }
        if !(b.failure_ratio > 0.0 && b.failure_ratio <= 1.0) {
            return Err(invalid(
                "providers.breaker.failure_ratio",
                "must be in (0, 1]",
            ));
        }
        let used: std::collections::BTreeSet<&str> = p
            .chains
            .values()
            .chain(std::iter::once(&p.default_chain))
            .flatten()
            .map(String::as_str)
            .collect();
        if used.contains("azure") {
            if p.azure.endpoint.is_empty() || p.azure.deployment.is_empty() {
                return Err(invalid(
                    "providers.azure.endpoint",
                    "azure is in a provider chain: set providers.azure.endpoint and providers.azure.deployment",
                ));
            }
            if p.azure.api_key.is_none() && p.azure.bearer_token.is_none() {
                return Err(invalid(
                    "providers.azure.api_key",
                    "azure is in a provider chain: set TUTORQ__PROVIDERS__AZURE__API_KEY (or __BEARER_TOKEN)",
                ));
            }
        }
        if used.contains("anthropic") && p.anthropic.api_key.is_none() {
            return Err(invalid(
                "providers.anthropic.api_key",
                "anthropic is in a provider chain: set TUTORQ__PROVIDERS__ANTHROPIC__API_KEY",
            ));
        }
        if used.contains("openai") && p.openai.base_url.is_empty() {
            return Err(invalid("providers.openai.base_url", "must not be empty"));
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            key: key.to_owned(),
            reason,
        };
        if self.server.body_limit_bytes == 0 {
            return Err(invalid(
                "server.body_limit_bytes",
                "must be greater than 0".into(),
            ));
        }
        match &self.auth.jwt_secret {
            Some(secret) if secret.expose().len() < 32 => {
                return Err(invalid(
                    "auth.jwt_secret",
                    "must be at least 32 bytes long for HS256".into(),
                ));
            }
            None if !self.auth.allow_insecure_dev_secret => {
                return Err(invalid(
                    "auth.jwt_secret",
                    "is required: set TUTORQ__AUTH__JWT_SECRET (32+ random bytes)".into(),
                ));
            }
            _ => {}
        }
        if self.environment == "production"
            && !self.audit.hash_fields.is_empty()
            && self
                .audit
                .hash_key
                .as_ref()
                .is_none_or(|k| k.expose().len() < 32)
        {
            // An unkeyed SHA-256 of a short solution ("x = 4", "C") is undone by trying values.
            return Err(invalid(
                "audit.hash_key",
                format!(
                    "is required in production while audit.hash_fields is set ({}): set TUTORQ__AUDIT__HASH_KEY (32+ random bytes), or empty audit.hash_fields",
                    self.audit.hash_fields.join(", ")
                ),
            ));
        }
        if self.environment == "production" && self.auth.allow_insecure_dev_secret {
            return Err(invalid(
                "auth.allow_insecure_dev_secret",
                "must be false in production".into(),
            ));
        }
        if self.limits.window_secs == 0 {
            return Err(invalid("limits.window_secs", "must be at least 1".into()));
        }
        if jiff::tz::TimeZone::get(&self.limits.timezone).is_err() {
            return Err(invalid(
                "limits.timezone",
                format!(
                    "`{}` is not an IANA time zone name (e.g. Europe/Istanbul)",
                    self.limits.timezone
                ),
            ));
        }
        for feature in self.cache.ttl_secs.keys() {
            if feature.parse::<crate::feature::Feature>().is_err() {
                return Err(invalid(
                    &format!("cache.ttl_secs.{feature}"),
                    "is not a feature (hint, explanation, study_plan, evaluation, question_gen)"
                        .into(),
                ));
            }
        }
        let mock = &self.providers.mock;
        if !(0.0..=1.0).contains(&mock.failure_rate) {
            return Err(invalid(
                "providers.mock.failure_rate",
                format!("must be between 0 and 1, got {}", mock.failure_rate),
            ));
        }
        if let LatencySetting::Range { min, max } = mock.latency_ms
            && min > max
        {
            return Err(invalid(
                "providers.mock.latency_ms",
                format!("min ({min}) is greater than max ({max})"),
            ));
        }
        if mock.stream_chunk_chars == 0 {
            return Err(invalid(
                "providers.mock.stream_chunk_chars",
                "must be greater than 0".into(),
            ));
        }
        let chains = std::iter::once((
            "providers.default_chain".to_owned(),
            &self.providers.default_chain,
        ))
        .chain(
            self.providers
                .chains
                .iter()
                .map(|(feature, chain)| (format!("providers.chains.{feature}"), chain)),
        );
        for (key, chain) in chains {
            if chain.is_empty() {
                return Err(invalid(&key, "must name at least one provider".into()));
            }
            if let Some(unknown) = chain
                .iter()
                .find(|name| !PROVIDERS.contains(&name.as_str()))
            {
                return Err(invalid(
                    &key,
                    format!(
                        "unknown provider `{unknown}` (known: {})",
                        PROVIDERS.join(", ")
                    ),
                ));
            }
        }
        self.validate_providers()?;
        for feature in self.intake.features.keys() {
            if feature.parse::<crate::feature::Feature>().is_err() {
                return Err(invalid(
                    &format!("intake.features.{feature}"),
                    "unknown feature".into(),
                ));
            }
        }
        for feature in self.providers.chains.keys() {
            if feature.parse::<crate::feature::Feature>().is_err() {
                return Err(invalid(
                    &format!("providers.chains.{feature}"),
                    format!(
                        "unknown feature (known: {})",
                        crate::feature::Feature::names().join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn is_production(&self) -> bool {
        self.environment == "production"
    }
}

/// serde_path_to_error writes `.` for the root; keep the dotted path otherwise.
fn display_path(path: &str) -> String {
    if path == "." {
        "(root)".into()
    } else {
        path.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_config() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config")
    }

    fn load(env: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::load_from(&repo_config(), env, vars)
    }

    #[test]
    fn every_shipped_environment_loads() {
        for env in ["development", "test"] {
            load(env, &[]).unwrap_or_else(|err| panic!("{env}: {err}"));
        }
        let secret = "x".repeat(40);
        let prod = load(
            "production",
            &[
                ("TUTORQ__AUTH__JWT_SECRET", &secret),
                ("TUTORQ__AUDIT__HASH_KEY", &secret),
            ],
        )
        .unwrap();
        assert_eq!(prod.log.format, LogFormat::Json);
        assert_eq!(prod.server.host, "0.0.0.0");
    }

    #[test]
    fn production_refuses_to_start_without_the_audit_hash_key() {
        let secret = "x".repeat(40);
        let err = load("production", &[("TUTORQ__AUTH__JWT_SECRET", &secret)]).unwrap_err();
        assert!(err.to_string().contains("TUTORQ__AUDIT__HASH_KEY"), "{err}");
        let short = load(
            "production",
            &[
                ("TUTORQ__AUTH__JWT_SECRET", &secret),
                ("TUTORQ__AUDIT__HASH_KEY", "short"),
            ],
        );
        assert!(short.is_err(), "a short key is refused too");
        // Development keeps working without one.
        assert!(load("development", &[]).is_ok());
    }

    #[test]
    fn procfile_port_is_the_listening_and_the_admin_port() {
        let settings = load("development", &[("PORT", "5100")]).unwrap();
        assert_eq!(
            (settings.server.port, settings.worker.admin_port),
            (5100, 5100)
        );
        let explicit = load(
            "development",
            &[
                ("PORT", "5100"),
                ("TUTORQ__SERVER__PORT", "9000"),
                ("TUTORQ__WORKER__ADMIN_PORT", "9001"),
            ],
        )
        .unwrap();
        assert_eq!(
            (explicit.server.port, explicit.worker.admin_port),
            (9000, 9001)
        );
        assert!(load("development", &[("PORT", "http")]).is_err());
    }

    #[test]
    fn env_overrides_files() {
        let settings = load("development", &[("TUTORQ__SERVER__PORT", "9123")]).unwrap();
        assert_eq!(settings.server.port, 9123);
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = load("development", &[("TUTORQ__SERVER__PORT", "eighty")]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("server.port"), "{text}");
        let err = load("development", &[("TUTORQ__SERVER__PROT", "1")]).unwrap_err();
        assert!(err.to_string().contains("unknown field `prot`"), "{err}");
        let err = load(
            "development",
            &[("TUTORQ__PROVIDERS__MOCK__FAILURE_RATE", "2")],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("providers.mock.failure_rate"),
            "{err}"
        );
    }

    #[test]
    fn production_requires_a_real_secret_and_never_prints_it() {
        let err = load("production", &[]).unwrap_err();
        assert!(err.to_string().contains("auth.jwt_secret"), "{err}");
        let err = load("production", &[("TUTORQ__AUTH__JWT_SECRET", "short")]).unwrap_err();
        assert!(err.to_string().contains("at least 32 bytes"), "{err}");
        let secret = "s3cr3t-".repeat(6);
        let hash_key = "h4sh-k3y-".repeat(5);
        let settings = load(
            "production",
            &[
                ("TUTORQ__AUTH__JWT_SECRET", &secret),
                ("TUTORQ__AUDIT__HASH_KEY", &hash_key),
            ],
        )
        .unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains(&secret), "secret leaked into Debug output");
        assert!(
            !debug.contains(&hash_key),
            "hash key leaked into Debug output"
        );
        assert!(
            !debug.contains("postgres://"),
            "database URL leaked into Debug output"
        );
    }

    #[test]
    fn unknown_environment_is_refused() {
        let err = load("staging", &[]).unwrap_err();
        assert!(err.to_string().contains("TUTORQ_ENV"), "{err}");
    }

    #[test]
    fn chains_name_known_providers_and_features() {
        let err = load(
            "development",
            &[("TUTORQ__PROVIDERS__DEFAULT_CHAIN", "[openia]")],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown provider `openia`"),
            "{err}"
        );
        let err = load(
            "development",
            &[("TUTORQ__PROVIDERS__CHAINS__HINTS", "[mock]")],
        )
        .unwrap_err();
        assert!(err.to_string().contains("providers.chains.hints"), "{err}");
    }
}
