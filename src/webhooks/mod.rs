//! Signed webhooks to callback URLs: the SSRF guard at submit time, Standard Webhooks
//! signatures, the follow-up step that queues a final task's webhook, and the `webhook_delivery`
//! job that POSTs, records each attempt in PostgreSQL and tells the queue whether to retry.

mod delivery;
mod finals;
pub mod guard;
mod job;
pub mod signature;

pub use finals::queue_finals;
pub use job::{Courier, WebhookJob};

use std::time::Duration;

use crate::config::{Secret, Settings};

/// Publicly known signing secret for development and tests (`auth.allow_insecure_dev_secret`).
const INSECURE_DEV_SECRET: &str = "whsec_dHV0b3JxLWRldmVsb3BtZW50LXdlYmhvb2stc2VjcmV0";

#[derive(Clone)]
pub struct Webhooks {
    allow_hosts: Vec<String>,
    secret: Option<Secret>,
    client_secrets: std::collections::BTreeMap<String, Secret>,
    timeout: Duration,
    db: Option<sqlx::PgPool>,
}

impl Webhooks {
    pub fn new(settings: &Settings, db: Option<sqlx::PgPool>) -> Self {
        let secret = settings.webhooks.secret.clone().or_else(|| {
            settings
                .auth
                .allow_insecure_dev_secret
                .then(|| Secret::new(INSECURE_DEV_SECRET))
        });
        Self {
            allow_hosts: settings.webhooks.allow_hosts.clone(),
            secret,
            client_secrets: settings.webhooks.client_secrets.clone(),
            timeout: Duration::from_millis(settings.webhooks.timeout_ms),
            db,
        }
    }

    /// The signing secret of a client: its own from the environment, else the newest secret
    /// of its active API keys, else the server's.
    pub async fn secret_for(&self, user_id: &str) -> Option<Secret> {
        if let Some(secret) = self.client_secrets.get(user_id) {
            return Some(secret.clone());
        }
        if let Some(db) = &self.db {
            let own: Result<Option<String>, sqlx::Error> = sqlx::query_scalar(
                "SELECT webhook_secret FROM api_keys WHERE owner = $1 AND revoked_at IS NULL \
                 AND webhook_secret IS NOT NULL ORDER BY created_at DESC LIMIT 1",
            )
            .bind(user_id)
            .fetch_optional(db)
            .await;
            match own {
                Ok(Some(secret)) => return Some(Secret::new(secret)),
                Ok(None) => {}
                Err(err) => tracing::warn!(%err, "could not look up a client's webhook secret"),
            }
        }
        self.secret.clone()
    }

    /// The checks of a callback URL that need no DNS, at submit time before admission (422
    /// when refused).
    pub async fn check_url(&self, user_id: &str, url: &str) -> Result<guard::Parsed, String> {
        if self.secret_for(user_id).await.is_none() {
            return Err(
                "webhooks are not configured on this server (TUTORQ__WEBHOOKS__SECRET)".into(),
            );
        }
        guard::parse(url, &self.allow_hosts)
    }
}

pub use delivery::deliver;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_secret_wins_over_the_server_secret() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let env = [
            (
                "TUTORQ__WEBHOOKS__SECRET".to_owned(),
                "whsec_c2VydmVy".to_owned(),
            ),
            (
                "TUTORQ__WEBHOOKS__CLIENT_SECRETS__PLATFORM".to_owned(),
                "whsec_Y2xpZW50".to_owned(),
            ),
        ];
        let settings = Settings::load_from(&dir, "test", env).unwrap();
        let webhooks = Webhooks::new(&settings, None);
        assert_eq!(
            webhooks.secret_for("platform").await.unwrap().expose(),
            "whsec_Y2xpZW50"
        );
        assert_eq!(
            webhooks.secret_for("someone").await.unwrap().expose(),
            "whsec_c2VydmVy"
        );
    }
}
