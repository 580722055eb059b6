//! Handles to the two stores every process shares: Redis (hot state) and PostgreSQL (history).

mod error;
mod postgres;
mod redis;
pub mod script;
pub mod slots;

use std::time::Duration;

use anyhow::Context as _;

pub use error::{StoreError, refuses_content};
pub use postgres::{connect as connect_postgres, migrate};
pub use redis::{RedisConnection, RedisServers, connect as connect_redis};

use crate::config::Settings;

/// Both stores, cloned cheaply into every handler and worker.
#[derive(Clone)]
pub struct Stores {
    pub redis: RedisConnection,
    /// For connections of their own (blocking reads, pub/sub).
    pub redis_servers: RedisServers,
    pub db: sqlx::PgPool,
    probe_timeout: Duration,
}

impl Stores {
    /// Connects lazily: the process starts even when a store is briefly down, and `/readyz`
    /// says which one.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let (redis, redis_servers) = connect_redis(&settings.redis)
            .await
            .context("configuring Redis")?;
        let db = connect_postgres(&settings.database).context("configuring PostgreSQL")?;
        Ok(Self {
            redis,
            redis_servers,
            db,
            probe_timeout: Duration::from_millis(settings.redis.response_timeout_ms.max(500)),
        })
    }

    pub async fn ping_redis(&self) -> anyhow::Result<()> {
        let mut conn = self.redis.clone();
        let pong: String = tokio::time::timeout(
            self.probe_timeout,
            ::redis::cmd("PING").query_async(&mut conn),
        )
        .await
        .context("Redis did not answer PING in time")?
        .context("Redis PING failed")?;
        anyhow::ensure!(pong == "PONG", "Redis answered PING with {pong:?}");
        Ok(())
    }

    pub async fn ping_postgres(&self) -> anyhow::Result<()> {
        tokio::time::timeout(
            self.probe_timeout,
            sqlx::query("SELECT 1").execute(&self.db),
        )
        .await
        .context("PostgreSQL did not answer in time")?
        .context("PostgreSQL query failed")?;
        Ok(())
    }
}
