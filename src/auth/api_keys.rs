//! API keys for services and teachers' tools: `Authorization: Bearer tq_…`. A key is 32 random
//! bytes shown once at creation; PostgreSQL keeps only its SHA-256 (the key has full entropy,
//! so a fast hash is enough) and an 8-character prefix to tell keys apart. The key authenticates
//! as its owner with its role. Each web process remembers a lookup for 2 seconds, so a revoked
//! key stops working everywhere within about 2 seconds without a database query per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::{AuthError, Principal, Role};

pub const KEY_PREFIX: &str = "tq_";
/// How long a lookup (found, revoked or unknown) is reused by one process.
const REMEMBER: Duration = Duration::from_secs(2);
/// `last_used_at` is written at most this often per key.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

type Lookup = (Option<(Uuid, Principal)>, Instant);

#[derive(Clone)]
pub struct ApiKeys {
    db: PgPool,
    /// Lookups by key hash: the key's id and principal (`None`: unknown or revoked), and when.
    seen: Arc<Mutex<HashMap<String, Lookup>>>,
    touched: Arc<Mutex<HashMap<Uuid, Instant>>>,
}

/// The listed columns, timestamps as RFC 3339 text.
const COLUMNS: &str = "id, prefix, name, owner, role, quota, \
    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created_at, \
    to_char(last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS last_used_at, \
    to_char(revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS revoked_at";

/// A key as listed (never the key itself).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct KeyInfo {
    #[schema(value_type = String)]
    pub id: Uuid,
    pub prefix: String,
    pub name: String,
    pub owner: String,
    pub role: String,
    #[schema(value_type = Option<Object>)]
    pub quota: Option<serde_json::Value>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// 32 bytes from the operating system's CSPRNG (two v4 UUIDs' random bits).
fn random_bytes() -> Vec<u8> {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes
}

/// A new Standard Webhooks signing secret: `whsec_` and 32 random bytes in base64.
pub fn new_webhook_secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(random_bytes())
    )
}

pub fn is_api_key(token: &str) -> bool {
    token.starts_with(KEY_PREFIX)
}

fn digest(key: &str) -> String {
    format!("{:x}", Sha256::digest(key.as_bytes()))
}

impl ApiKeys {
    pub fn new(db: PgPool) -> Self {
        Self {
            db,
            seen: Arc::default(),
            touched: Arc::default(),
        }
    }

    /// The principal a key stands for; unknown and revoked keys are refused alike.
    pub async fn authenticate(&self, key: &str) -> Result<Principal, AuthError> {
        let hash = digest(key);
        let remembered = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hash)
            .filter(|(_, at)| at.elapsed() < REMEMBER)
            .map(|(found, _)| found.clone());
        let found = match remembered {
            Some(found) => found,
            None => {
                let row: Option<(Uuid, String, String)> = sqlx::query_as(
                    "SELECT id, owner, role FROM api_keys WHERE hash = $1 AND revoked_at IS NULL",
                )
                .bind(&hash)
                .fetch_optional(&self.db)
                .await
                .map_err(|err| {
                    tracing::warn!(%err, "API keys cannot be checked: PostgreSQL did not answer");
                    AuthError::Invalid(
                        "API keys cannot be checked right now; try again shortly".into(),
                    )
                })?;
                // A key whose owner breaks the identity policy (made before it existed) is
                // refused like an unknown one.
                let found = row.and_then(|(id, owner, role)| {
                    super::check_id(&owner).ok()?;
                    Some((id, Principal::new(owner, role.parse::<Role>().ok()?)))
                });
                self.seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(hash, (found.clone(), Instant::now()));
                found
            }
        };
        let (id, principal) =
            found.ok_or_else(|| AuthError::Invalid("unknown or revoked API key".into()))?;
        self.touch(id);
        Ok(principal)
    }

    /// Notes the key's use (at most once a minute per key, off the request path).
    fn touch(&self, id: Uuid) {
        {
            let mut touched = self.touched.lock().unwrap_or_else(|e| e.into_inner());
            if touched
                .get(&id)
                .is_some_and(|at| at.elapsed() < TOUCH_EVERY)
            {
                return;
            }
            touched.insert(id, Instant::now());
        }
        let db = self.db.clone();
        tokio::spawn(async move {
            let _ = sqlx::query("UPDATE api_keys SET last_used_at = now() WHERE id = $1")
                .bind(id)
                .execute(&db)
                .await;
        });
    }

    /// Creates a key; returns it (the only time it is seen) with its listing.
    pub async fn create(
        &self,
        name: &str,
        owner: &str,
        role: Role,
        quota: Option<&serde_json::Value>,
        webhook_secret: Option<&str>,
    ) -> sqlx::Result<(String, KeyInfo)> {
        let key = format!(
            "{KEY_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes())
        );
        let prefix: String = key.chars().take(KEY_PREFIX.len() + 8).collect();
        let info: KeyInfo = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO api_keys (id, prefix, hash, name, owner, role, quota, webhook_secret) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             RETURNING {COLUMNS}"
        )))
        .bind(Uuid::now_v7())
        .bind(&prefix)
        .bind(digest(&key))
        .bind(name)
        .bind(owner)
        .bind(role.as_str())
        .bind(quota)
        .bind(webhook_secret)
        .fetch_one(&self.db)
        .await?;
        Ok((key, info))
    }

    pub async fn list(&self) -> sqlx::Result<Vec<KeyInfo>> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys ORDER BY created_at DESC"
        )))
        .fetch_all(&self.db)
        .await
    }

    /// Revokes a key; false when there is no such active key.
    pub async fn revoke(&self, id: Uuid) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(&self.db)
        .await?;
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clear();
        Ok(done.rows_affected() == 1)
    }
}
