//! Signed webhooks to callback URLs: the SSRF guard at submit time, Standard Webhooks
//! signatures, and the `webhook_delivery` job that POSTs, records each attempt in PostgreSQL and
//! tells the queue whether to retry.

mod delivery;
pub mod guard;
pub mod signature;

use std::time::Duration;

use crate::config::{Secret, Settings};

/// Publicly known signing secret for development and tests (`auth.allow_insecure_dev_secret`).
const INSECURE_DEV_SECRET: &str = "whsec_dHV0b3JxLWRldmVsb3BtZW50LXdlYmhvb2stc2VjcmV0";

#[derive(Clone)]
pub struct Webhooks {
    allow_hosts: Vec<String>,
    secret: Option<Secret>,
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
            timeout: Duration::from_millis(settings.webhooks.timeout_ms),
            db,
        }
    }

    /// Checks a callback URL at submit time (422 when refused).
    pub async fn check_url(&self, url: &str) -> Result<guard::Checked, String> {
        if self.secret.is_none() {
            return Err(
                "webhooks are not configured on this server (TUTORQ__WEBHOOKS__SECRET)".into(),
            );
        }
        guard::check(url, &self.allow_hosts).await
    }
}

pub use delivery::deliver;
