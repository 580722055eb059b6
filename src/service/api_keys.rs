//! API keys for services and teachers' tools, as admins manage them: a key is created in
//! PostgreSQL with the owner's limit overrides set in Redis, listed, and revoked.

pub use crate::auth::KeyInfo;

use super::{AiService, ServiceError};
use crate::auth::Role;
use crate::prompts::{FieldErrors, InputError};

/// What an admin asks for.
pub struct NewApiKey {
    pub name: String,
    pub owner: String,
    pub role: Role,
    /// Limits for the owner, overriding the role's.
    pub quota: Option<serde_json::Map<String, serde_json::Value>>,
    /// Give the key its own webhook signing secret.
    pub webhook_secret: bool,
}

/// A key as created: the key itself (shown this once), its listing and its signing secret.
pub struct CreatedApiKey {
    pub key: String,
    pub info: KeyInfo,
    pub webhook_secret: Option<String>,
}

fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::Input(InputError::Invalid(FieldErrors::from([(
        field.to_owned(),
        message.into(),
    )])))
}

impl AiService {
    /// Checks the request, creates the key, then sets the owner's overrides.
    pub async fn create_api_key(&self, new: NewApiKey) -> Result<CreatedApiKey, ServiceError> {
        let name = new.name.trim();
        let owner = new.owner.trim();
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(invalid(
                "name",
                "must be 1 to 200 characters, without control characters",
            ));
        }
        crate::auth::check_id(owner).map_err(|rule| invalid("owner", rule))?;
        if !matches!(new.role, Role::Service | Role::Teacher) {
            return Err(invalid("role", "must be `service` or `teacher`"));
        }
        let overrides = match &new.quota {
            Some(quota) => Some(crate::limits::parse_overrides(quota).map_err(|errors| {
                ServiceError::Input(InputError::Invalid(
                    errors
                        .into_iter()
                        .map(|(k, v)| (format!("quota.{k}"), v))
                        .collect(),
                ))
            })?),
            None => None,
        };
        let quota = new.quota.clone().map(serde_json::Value::Object);
        let webhook_secret = new.webhook_secret.then(crate::auth::new_webhook_secret);
        let (key, info) = self
            .api_keys
            .create(
                name,
                owner,
                new.role,
                quota.as_ref(),
                webhook_secret.as_deref(),
            )
            .await?;
        if let Some(overrides) = overrides {
            self.limits.set_overrides(owner, &overrides).await?;
        }
        Ok(CreatedApiKey {
            key,
            info,
            webhook_secret,
        })
    }

    /// Every key, newest first (never the keys themselves).
    pub async fn api_keys(&self) -> Result<Vec<KeyInfo>, ServiceError> {
        Ok(self.api_keys.list().await?)
    }

    /// Revokes a key; false when there is no such active key.
    pub async fn revoke_api_key(&self, id: uuid::Uuid) -> Result<bool, ServiceError> {
        Ok(self.api_keys.revoke(id).await?)
    }
}
