//! The spool: audit events PostgreSQL could not take wait in the Redis list `ai:audit:spool`,
//! oldest first, until a drainer moves them over. One process drains at a time (a lock in
//! Redis); it reads a chunk, inserts it (idempotently), and trims the chunk off only while it
//! still holds the lock, so a crash between the two re-inserts rows that are skipped, and two
//! drainers never trim what the other read.

use std::sync::LazyLock;
use std::time::Duration;

use crate::storage::RedisConnection;
use redis::Script;
use sqlx::PgPool;

use super::event::AuditEvent;
use super::{quarantine, writer};

pub const KEY: &str = "ai:audit:spool";
/// The drainers' lock, in the spool's hash slot (`{…}` is the spool's whole name), so the trim
/// script's two keys live on one Redis Cluster node.
pub const LOCK: &str = "{ai:audit:spool}:lock";
const CHUNK: isize = 500;
static TRIM: LazyLock<Script> =
    LazyLock::new(|| crate::storage::script::lua(include_str!("lua/trim.lua")));
static RELEASE: LazyLock<Script> =
    LazyLock::new(|| crate::storage::script::lua(include_str!("lua/release.lua")));
const LOCK_MS: u64 = 30_000;

#[derive(Clone)]
pub struct Spool {
    conn: RedisConnection,
}

impl Spool {
    pub fn new(conn: RedisConnection) -> Self {
        Self { conn }
    }

    /// Appends events, in order, in one command.
    pub async fn push(&self, events: &[AuditEvent]) -> redis::RedisResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let items: Vec<String> = events
            .iter()
            .map(|e| serde_json::to_string(e).expect("an audit event serializes"))
            .collect();
        redis::cmd("RPUSH")
            .arg(KEY)
            .arg(items)
            .query_async::<()>(&mut self.conn.clone())
            .await
    }

    pub async fn len(&self) -> redis::RedisResult<u64> {
        redis::cmd("LLEN")
            .arg(KEY)
            .query_async(&mut self.conn.clone())
            .await
    }

    /// Moves everything spooled into PostgreSQL; returns how many events moved. An event
    /// PostgreSQL refuses for its content (or an entry that is not an event) is quarantined
    /// and the drain goes on past it. Stops when PostgreSQL is away (the rest waits for the
    /// next round) or when another process drains.
    pub async fn drain(&self, pool: &PgPool) -> anyhow::Result<u64> {
        let mut conn = self.conn.clone();
        let token = uuid::Uuid::now_v7().to_string();
        let locked: Option<String> = redis::cmd("SET")
            .arg(LOCK)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(LOCK_MS)
            .query_async(&mut conn)
            .await?;
        if locked.is_none() {
            return Ok(0);
        }
        let mut moved = 0u64;
        let result = async {
            loop {
                let items: Vec<String> = redis::cmd("LRANGE")
                    .arg(KEY)
                    .arg(0)
                    .arg(CHUNK - 1)
                    .query_async(&mut conn)
                    .await?;
                if items.is_empty() {
                    return Ok::<_, anyhow::Error>(());
                }
                let mut events = Vec::with_capacity(items.len());
                for item in &items {
                    match serde_json::from_str::<AuditEvent>(item) {
                        Ok(event) => events.push(event),
                        Err(err) => {
                            tracing::error!(%err, "an unreadable audit event in the spool; quarantined it");
                            quarantine::keep_unreadable(pool, item, &err.to_string()).await?;
                        }
                    }
                }
                writer::write_isolating(pool, &events).await?;
                let trimmed: i64 = TRIM
                    .key(KEY)
                    .key(LOCK)
                    .arg(&token)
                    .arg(items.len())
                    .arg(LOCK_MS)
                    .invoke_async(&mut conn)
                    .await?;
                if trimmed == 0 {
                    anyhow::bail!("lost the spool lock while draining");
                }
                moved += items.len() as u64;
            }
        }
        .await;
        let _: redis::RedisResult<i64> =
            RELEASE.key(LOCK).arg(&token).invoke_async(&mut conn).await;
        result.map(|()| moved)
    }

    /// Drains every `every` while the process lives.
    pub fn spawn_drainer(&self, pool: PgPool, every: Duration) {
        let spool = self.clone();
        tokio::spawn(async move {
            let mut timer = tokio::time::interval(every);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                timer.tick().await;
                if !matches!(spool.len().await, Ok(n) if n > 0) {
                    continue;
                }
                match spool.drain(&pool).await {
                    Ok(0) => {}
                    Ok(moved) => tracing::info!(
                        moved,
                        "audit events moved from the Redis spool to PostgreSQL"
                    ),
                    Err(err) => {
                        tracing::debug!(%err, "draining the audit spool failed; will retry")
                    }
                }
            }
        });
    }
}
