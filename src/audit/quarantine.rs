//! Audit events PostgreSQL refuses for what they hold (a NUL byte, an index row too large): each
//! is isolated from its batch, kept in `audit_quarantine` with the reason, counted, and listed
//! for admins, so one bad row never holds back the others or the spool drain.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::event::AuditEvent;

/// Whether `err` is PostgreSQL refusing a row for its content (it would refuse it again), as
/// opposed to PostgreSQL being away or busy (worth waiting for).
pub use crate::storage::refuses_content as refuses_row;

/// Keeps `event` with the reason PostgreSQL gave; a second quarantine of it is a no-op.
pub async fn keep(pool: &PgPool, event: &AuditEvent, err: &sqlx::Error) -> sqlx::Result<()> {
    let bytes = serde_json::to_vec(event).expect("an audit event serializes");
    let sqlstate = match err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    insert(
        pool,
        event.id,
        &err.to_string(),
        sqlstate.as_deref(),
        &bytes,
    )
    .await
}

/// Keeps a spool entry that is not an audit event at all, byte for byte.
pub async fn keep_unreadable(pool: &PgPool, item: &str, reason: &str) -> sqlx::Result<()> {
    let digest = Sha256::digest(item.as_bytes());
    let id = Uuid::new_v8(digest[..16].try_into().expect("16 bytes"));
    insert(
        pool,
        id,
        &format!("unreadable in the audit spool: {reason}"),
        None,
        item.as_bytes(),
    )
    .await
}

async fn insert(
    pool: &PgPool,
    id: Uuid,
    reason: &str,
    sqlstate: Option<&str>,
    event: &[u8],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_quarantine (id, reason, sqlstate, event) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(reason.replace('\0', "\\0"))
    .bind(sqlstate)
    .bind(event)
    .execute(pool)
    .await?;
    crate::metrics::audit_quarantined();
    Ok(())
}

/// One quarantined event as an admin sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Quarantined {
    #[schema(value_type = String)]
    pub id: Uuid,
    /// RFC 3339.
    pub quarantined_at: String,
    /// Why PostgreSQL refused it.
    pub reason: String,
    /// PostgreSQL's SQLSTATE, when it gave one.
    pub sqlstate: Option<String>,
    /// The event as it was refused (JSON text; bytes that are not UTF-8 are replaced).
    pub event: String,
}

/// `audit_quarantine` as read: id, time, reason, SQLSTATE, the event's bytes.
type QuarantineRow = (Uuid, String, String, Option<String>, Vec<u8>);

/// The newest quarantined events (at most `limit`) and how many there are in all.
pub async fn list(pool: &PgPool, limit: i64) -> sqlx::Result<(i64, Vec<Quarantined>)> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_quarantine")
        .fetch_one(pool)
        .await?;
    let rows: Vec<QuarantineRow> = sqlx::query_as(
        "SELECT id, to_char(quarantined_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
         reason, sqlstate, event FROM audit_quarantine ORDER BY quarantined_at DESC, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let events = rows
        .into_iter()
        .map(
            |(id, quarantined_at, reason, sqlstate, event)| Quarantined {
                id,
                quarantined_at,
                reason,
                sqlstate,
                event: String::from_utf8_lossy(&event).into_owned(),
            },
        )
        .collect();
    Ok((total, events))
}
