//! The Redis connection: one multiplexed, self-reconnecting connection per process.

use std::time::Duration;

use anyhow::Context as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::RedisSettings;

pub async fn connect(
    settings: &RedisSettings,
) -> anyhow::Result<(ConnectionManager, redis::Client)> {
    let client = redis::Client::open(settings.url.expose()).context("invalid redis.url")?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(settings.connect_timeout_ms)))
        .set_response_timeout(Some(Duration::from_millis(settings.response_timeout_ms)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    Ok((
        ConnectionManager::new_lazy_with_config(client.clone(), config)?,
        client,
    ))
}
