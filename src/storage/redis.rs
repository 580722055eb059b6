//! The Redis connection of every process: one Redis server (`redis.url`, a multiplexed,
//! self-reconnecting connection) or a Redis Cluster (`redis.cluster`, seed node URLs: the redis
//! crate's cluster client, which follows `MOVED`/`ASK` redirections, re-reads the slot map after
//! a resharding or a failover, and reconnects). Every module talks to [`RedisConnection`] and
//! never knows which one it is; what differs (a pipeline may span slots on one server only,
//! blocking reads need a connection of their own, pub/sub) is answered here.

use std::time::Duration;

use anyhow::Context as _;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

use super::slots;
use crate::config::RedisSettings;

/// The shared connection (or a dedicated one): cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisConnection(Conn);

#[derive(Clone)]
enum Conn {
    Managed(ConnectionManager),
    Direct(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Conn::Managed(conn) => conn.req_packed_command(cmd),
            Conn::Direct(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Conn::Managed(conn) => conn.req_packed_commands(cmd, offset, count),
            Conn::Direct(conn) => conn.req_packed_commands(cmd, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Conn::Managed(conn) => conn.get_db(),
            Conn::Direct(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}

impl RedisConnection {
    pub fn is_cluster(&self) -> bool {
        matches!(self.0, Conn::Cluster(_))
    }

    /// Runs `commands` and answers their replies in order: one pipeline on one server; on a
    /// cluster, one pipeline per slot (a pipeline may not span slots there), sent at once.
    pub async fn query_each(&mut self, commands: Vec<Cmd>) -> RedisResult<Vec<Value>> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        if !self.is_cluster() {
            let mut pipe = redis::pipe();
            for command in commands {
                pipe.add_command(command);
            }
            return pipe.query_async(self).await;
        }
        let mut groups: Vec<(u16, Vec<usize>, Pipeline)> = Vec::new();
        for (index, command) in commands.into_iter().enumerate() {
            let slot = command_slot(&command);
            let group = match groups.iter().position(|(s, _, _)| *s == slot) {
                Some(group) => group,
                None => {
                    groups.push((slot, Vec::new(), redis::pipe()));
                    groups.len() - 1
                }
            };
            groups[group].1.push(index);
            groups[group].2.add_command(command);
        }
        let total = groups.iter().map(|(_, indices, _)| indices.len()).sum();
        let replies = futures_util::future::try_join_all(groups.iter().map(|(_, _, pipe)| {
            let mut conn = self.clone();
            async move { pipe.query_async::<Vec<Value>>(&mut conn).await }
        }))
        .await?;
        let mut ordered = vec![Value::Nil; total];
        for ((_, indices, _), values) in groups.iter().zip(replies) {
            for (index, value) in indices.iter().zip(values) {
                ordered[*index] = value;
            }
        }
        Ok(ordered)
    }
}

impl RedisConnection {
    /// Waits until the writes so far of this connection to the node that serves `key` reach
    /// `replicas` of its replicas (`WAIT`), at most `timeout`; how many they reached.
    pub async fn wait_for_replicas(
        &mut self,
        key: &str,
        replicas: u32,
        timeout: Duration,
    ) -> RedisResult<u32> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(timeout.as_millis() as u64);
        match &mut self.0 {
            Conn::Cluster(conn) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                let route = Route::new(slots::slot(key.as_bytes()), SlotAddr::Master);
                let reached = conn
                    .route_command(
                        wait,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                redis::from_redis_value(reached).map_err(Into::into)
            }
            _ => wait.query_async(self).await,
        }
    }
}

/// The slot of a command's first key (its first argument after the name; the scripts' first
/// `KEYS` entry for `EVALSHA`), 0 when it has none.
fn command_slot(command: &Cmd) -> u16 {
    let mut args = command.args_iter().filter_map(|arg| match arg {
        redis::Arg::Simple(bytes) => Some(bytes),
        _ => None,
    });
    let name = args.next().unwrap_or_default().to_ascii_uppercase();
    let key = match name.as_slice() {
        // Script, key count, then the keys.
        b"EVALSHA" | b"EVAL" => args.nth(2),
        b"XREAD" | b"XREADGROUP" => args
            .skip_while(|a| !a.eq_ignore_ascii_case(b"STREAMS"))
            .nth(1),
        _ => args.next(),
    };
    key.map_or(0, slots::slot)
}

/// Where the Redis of this deployment is: what [`connect`] opened, for connections of their own.
#[derive(Clone)]
pub struct RedisServers(std::sync::Arc<Servers>);

/// Built once per process and shared (one is much larger than the other, which costs nothing
/// behind the `Arc`).
#[allow(clippy::large_enum_variant)]
enum Servers {
    Single(redis::Client),
    Cluster {
        /// For connections of their own (blocking reads): no overall deadline beyond each
        /// connection's response timeout.
        blocking: ClusterClient,
        /// Every seed node, for pub/sub (a cluster forwards a `PUBLISH` to every node).
        seeds: Vec<redis::Client>,
        connect_timeout: Duration,
    },
}

impl RedisServers {
    pub fn is_cluster(&self) -> bool {
        matches!(*self.0, Servers::Cluster { .. })
    }

    /// A connection of its own, for blocking reads that must not stall shared traffic; it waits
    /// up to `blocking` plus a margin for an answer.
    pub async fn dedicated(&self, blocking: Duration) -> RedisResult<RedisConnection> {
        let response = blocking + Duration::from_secs(2);
        match &*self.0 {
            Servers::Single(client) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(1)))
                    .set_response_timeout(Some(response));
                let conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(RedisConnection(Conn::Direct(conn)))
            }
            Servers::Cluster {
                blocking,
                connect_timeout,
                ..
            } => {
                let config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(*connect_timeout)
                    .set_response_timeout(response);
                let conn = blocking.get_async_connection_with_config(config).await?;
                Ok(RedisConnection(Conn::Cluster(conn)))
            }
        }
    }

    /// A pub/sub connection: to the server, or to the first cluster node that answers.
    pub async fn pubsub(&self) -> RedisResult<redis::aio::PubSub> {
        match &*self.0 {
            Servers::Single(client) => client.get_async_pubsub().await,
            Servers::Cluster { seeds, .. } => {
                let mut last = None;
                for seed in seeds {
                    match seed.get_async_pubsub().await {
                        Ok(pubsub) => return Ok(pubsub),
                        Err(err) => last = Some(err),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    redis::RedisError::from((redis::ErrorKind::Client, "no cluster seed nodes"))
                }))
            }
        }
    }
}

/// Opens the shared connection. One server: lazily (the process starts while Redis is briefly
/// down; `/readyz` says so). A cluster: its slot map is read now, so a wrong seed list fails the
/// start with the reason.
pub async fn connect(settings: &RedisSettings) -> anyhow::Result<(RedisConnection, RedisServers)> {
    let connect_timeout = Duration::from_millis(settings.connect_timeout_ms);
    let response_timeout = Duration::from_millis(settings.response_timeout_ms);
    if settings.cluster.is_empty() {
        let client = redis::Client::open(settings.url.expose()).context("invalid redis.url")?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(response_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        return Ok((
            RedisConnection(Conn::Managed(conn)),
            RedisServers(std::sync::Arc::new(Servers::Single(client))),
        ));
    }
    let urls: Vec<&str> = settings.cluster.iter().map(|url| url.expose()).collect();
    let seeds = urls
        .iter()
        .map(|url| redis::Client::open(*url))
        .collect::<RedisResult<Vec<_>>>()
        .context("invalid URL in redis.cluster")?;
    // A request may be retried (a redirection, a node that went away) within twice the
    // response timeout; after that it fails, and the API answers 503 rather than hang.
    let client = ClusterClient::builder(urls.clone())
        .connection_timeout(connect_timeout)
        .response_timeout(response_timeout)
        .overall_response_timeout(Some(response_timeout * 2))
        .retries(6)
        .max_retry_wait(500)
        .build()
        .context("invalid redis.cluster")?;
    let blocking = ClusterClient::builder(urls.clone())
        .connection_timeout(connect_timeout)
        .overall_response_timeout(None)
        .retries(6)
        .max_retry_wait(500)
        .build()
        .context("invalid redis.cluster")?;
    let conn = first_connection(&client)
        .await
        .context("cannot reach the Redis Cluster at redis.cluster")?;
    Ok((
        RedisConnection(Conn::Cluster(conn)),
        RedisServers(std::sync::Arc::new(Servers::Cluster {
            blocking,
            seeds,
            connect_timeout,
        })),
    ))
}

/// The cluster's first connection, with a few tries: a cluster that was just created may still
/// be agreeing on its slots.
async fn first_connection(client: &ClusterClient) -> RedisResult<ClusterConnection> {
    let mut tries = 0;
    loop {
        match client.get_async_connection().await {
            Ok(conn) => return Ok(conn),
            Err(err) if tries >= 10 => return Err(err),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::command_slot;
    use crate::storage::slots::slot;

    #[test]
    fn a_command_is_grouped_by_the_slot_of_its_first_key() {
        let mut eval = redis::cmd("EVALSHA");
        eval.arg("abc123").arg(2).arg("ai:{p1}:task:x").arg("other");
        assert_eq!(command_slot(&eval), slot(b"p1"));
        let mut hget = redis::cmd("HGET");
        hget.arg("ai:{u1}:k").arg("field");
        assert_eq!(command_slot(&hget), slot(b"u1"));
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP")
            .arg("g")
            .arg("c")
            .arg("STREAMS")
            .arg("ai:{p2}:queue:q")
            .arg(">");
        assert_eq!(command_slot(&read), slot(b"p2"));
    }
}
