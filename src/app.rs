//! Application start-up: builds the shared state, binds the listener and serves until shutdown.
//! Production (`tutorq serve`) and the tests start the app through this same path.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::limits::Limits;
use crate::prompts::PromptRegistry;
use crate::providers::ProviderChains;
use crate::service::AiService;
use crate::storage::{self, Stores};
use crate::tasks::{Engine, JobKinds, JobRegistry};

pub use crate::api::{AppState, Shared};

/// How the state is built: every store, engine and service of the process, once. (The type is
/// the HTTP layer's; its construction, which names every layer, is the composition root's.)
impl AppState {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_jobs(settings, &crate::service::jobs::registry()).await
    }

    /// Like [`build`](Self::build), for the job kinds of `jobs` (the tests add one of their own).
    pub async fn build_with_jobs(
        settings: Settings,
        jobs: &JobRegistry<AiService>,
    ) -> anyhow::Result<Self> {
        if settings.metrics.enabled {
            crate::metrics::install();
        }
        let prompts =
            PromptRegistry::load(&settings.prompts.dir, settings.prompts.ignore_diacritics)
                .map_err(|err| anyhow::anyhow!("the prompt files are invalid:\n{err}"))?;
        let stores = Stores::connect(&settings).await?;
        if settings.database.migrate_on_start {
            storage::migrate(&stores.db).await?;
        }
        for (name, probe) in [
            ("Redis", stores.ping_redis().await),
            ("PostgreSQL", stores.ping_postgres().await),
        ] {
            if let Err(err) = probe {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "{name} is not reachable yet; /readyz will say so until it is"
                );
            }
        }
        let kinds = JobKinds::load(&settings.jobs.dir, &jobs.kinds())
            .map_err(|err| anyhow::anyhow!("the job kind files are invalid: {err}"))?;
        let audit =
            crate::audit::AuditLog::start(&settings.audit, stores.db.clone(), stores.redis.clone());
        let engine = Engine::start(
            stores.redis.clone(),
            stores.redis_servers.clone(),
            stores.db.clone(),
            kinds,
            crate::tasks::keys::Partitions::configured(
                settings.redis.partitions,
                stores.redis_servers.is_cluster(),
            ),
            crate::tasks::FollowUpSteps {
                settle: Arc::new(|mut conn, settlement: crate::tasks::Settlement| {
                    Box::pin(async move {
                        let s = settlement;
                        crate::limits::settle(
                            &mut conn, &s.user_id, &s.feature, &s.task_id, &s.quota, s.used,
                        )
                        .await
                    })
                }),
                settle_lua: crate::limits::SETTLEMENT_LUA,
                webhook: Arc::new(crate::webhooks::queue_finals),
            },
            crate::tasks::Durability {
                replicas: settings.redis.wait_replicas,
                // Under the response timeout, so a slow replica delays a 202, never fails it.
                timeout: Duration::from_millis(
                    settings
                        .redis
                        .wait_timeout_ms
                        .min(settings.redis.response_timeout_ms * 3 / 4),
                ),
            },
        );
        let usage = crate::metrics::UsageMeter::new(&settings.audit);
        let engine = crate::service::hooks::install(engine, &audit, usage);
        let capacity = crate::capacity::Ledger::new(stores.redis.clone(), &settings.providers);
        let providers = ProviderChains::from_settings(&settings.providers)
            .with_gate(Arc::new(capacity.clone()));
        providers.spawn_health_checks(Duration::from_secs(settings.providers.health_interval_secs));
        let limits = Limits::new(stores.redis.clone(), &settings.limits);
        let settings = Arc::new(settings);
        let api_keys = crate::auth::ApiKeys::new(stores.db.clone());
        // The term lists are the guard's: it says whether they are valid.
        let moderation = crate::guard::Moderation::from_config(&settings.safety.moderation)
            .map_err(|err| {
                anyhow::anyhow!("invalid configuration at `safety.moderation`: {err}")
            })?;
        Ok(Self::new(Shared {
            auth: crate::auth::Auth {
                tokens: Authenticator::new(&settings.auth),
                keys: api_keys.clone(),
            },
            service: AiService::new(
                moderation,
                stores.clone(),
                api_keys,
                Arc::new(prompts),
                providers,
                engine,
                audit,
                settings.clone(),
                crate::webhooks::Webhooks::new(&settings, Some(stores.db.clone())),
                limits,
                crate::cache::ResponseCache::new(stores.redis.clone(), &settings.cache),
                capacity,
            ),
            open: crate::api::OpenSlots::new(&settings.server.open),
            settings,
        }))
    }
}

pub struct Application {
    listener: TcpListener,
    port: u16,
    state: AppState,
}

impl Application {
    /// Builds the state and binds `server.host:server.port` (port 0 picks a free one).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_jobs(settings, &crate::service::jobs::registry()).await
    }

    /// Like [`build`](Self::build), for the job kinds of `jobs`.
    pub async fn build_with_jobs(
        settings: Settings,
        jobs: &JobRegistry<AiService>,
    ) -> anyhow::Result<Self> {
        let address = format!("{}:{}", settings.server.host, settings.server.port);
        let state = AppState::build_with_jobs(settings, jobs).await?;
        let listener = TcpListener::bind(&address)
            .await
            .with_context(|| format!("binding {address}"))?;
        let port = listener.local_addr()?.port();
        Ok(Self {
            listener,
            port,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish for at most
    /// `server.shutdown_grace_secs`.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let grace = Duration::from_secs(self.state.settings.server.shutdown_grace_secs);
        let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
        let engine = self.state.service.engine().clone();
        let audit = self.state.service.audit().clone();
        let limits = crate::http_server::Limits::from(&self.state.settings.server);
        let router = crate::api::router(self.state);
        let server = crate::http_server::serve(self.listener, router, limits, async move {
            shutdown.await;
            let _ = stopping_tx.send(true);
        });
        let deadline = async move {
            let _ = stopping_rx.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            () = server => {}
            () = deadline => tracing::warn!(grace_secs = grace.as_secs(), "grace period over; closing the remaining connections"),
        }
        // What answered requests wrote goes out before the process ends.
        engine.history.flush(Duration::from_secs(5)).await;
        audit.flush(Duration::from_secs(5)).await;
        Ok(())
    }
}

/// `tutorq worker`'s admin listener: `/healthz`, `/readyz` and `/metrics` on
/// `server.host:worker.admin_port`.
pub struct AdminListener {
    listener: TcpListener,
    state: AppState,
}

impl AdminListener {
    /// Binds the port, or `None` when `worker.admin_port` is 0.
    pub async fn bind(state: &AppState) -> anyhow::Result<Option<Self>> {
        let port = state.settings.worker.admin_port;
        if port == 0 {
            return Ok(None);
        }
        let address = format!("{}:{port}", state.settings.server.host);
        let listener = match TcpListener::bind(&address).await {
            Ok(listener) => listener,
            // Another worker on this machine has it: this one works on without the admin
            // listener rather than stopping the formation (give each a port: `PORT`).
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
                tracing::warn!(%address, "the worker admin port is taken; this worker runs without /healthz, /readyz and /metrics (set PORT or TUTORQ__WORKER__ADMIN_PORT per worker)");
                return Ok(None);
            }
            Err(err) => {
                return Err(err).with_context(|| {
                    format!("binding the worker admin port {address} (worker.admin_port; 0 turns it off)")
                });
            }
        };
        tracing::info!(address = %format!("http://{address}"), "worker admin listener (healthz, readyz, metrics)");
        Ok(Some(Self {
            listener,
            state: state.clone(),
        }))
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let limits = crate::http_server::Limits::from(&self.state.settings.server);
        let router = crate::api::admin_router(self.state);
        crate::http_server::serve(self.listener, router, limits, shutdown).await;
        Ok(())
    }
}
