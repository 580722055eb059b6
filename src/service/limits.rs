//! The limits as the HTTP layer asks for them: the per-address check in front of every `/v1`
//! request, a caller's own quota, and the admin side (blocks, unblocking, per-user overrides).

pub use crate::limits::{Figures, IpVerdict, Limit, LimitError, QuotaStatus, Refusal, Violation};

use super::{AiService, ServiceError};
use crate::auth::Principal;
use crate::prompts::InputError;

/// A user's overrides of their role's limits (`daily_tokens`, `per_minute`, …).
pub type Overrides = serde_json::Map<String, serde_json::Value>;

impl AiService {
    /// Layer 1: one request from `ip` against its address's cap. When Redis cannot be asked
    /// and `limits.fail_open.ip` says so, the request is admitted (and the failure logged).
    pub async fn admit_ip(&self, ip: std::net::IpAddr) -> Result<IpVerdict, ServiceError> {
        match self.limits.ip(ip).await {
            Ok(verdict) => Ok(verdict),
            Err(err) if self.settings.limits.fail_open.ip => {
                tracing::warn!(%err, "limit store unavailable; admitting (limits.fail_open.ip)");
                Ok(IpVerdict::admitted_without_check())
            }
            Err(err) => Err(err.into()),
        }
    }

    /// The caller's limits (their role's, then their overrides), use and reset times.
    pub async fn quota(&self, principal: &Principal) -> Result<QuotaStatus, ServiceError> {
        Ok(self.limits.status(principal).await?)
    }

    /// Users blocked now, and until when.
    pub async fn blocks(&self) -> Result<Vec<(String, jiff::Timestamp)>, ServiceError> {
        Ok(self.limits.blocks().await?)
    }

    /// Lifts a user's block and forgets their violations; whether they were blocked.
    pub async fn unblock(&self, user: &str) -> Result<bool, ServiceError> {
        Ok(self.limits.unblock(user).await?)
    }

    pub async fn limit_overrides(&self, user: &str) -> Result<Overrides, ServiceError> {
        Ok(self.limits.overrides(user).await?)
    }

    /// Replaces a user's overrides with `body` (checked: known figures, in range); the
    /// overrides now.
    pub async fn set_limit_overrides(
        &self,
        user: &str,
        body: &Overrides,
    ) -> Result<Overrides, ServiceError> {
        let values = crate::limits::parse_overrides(body)
            .map_err(|errors| ServiceError::Input(InputError::Invalid(errors)))?;
        self.limits.set_overrides(user, &values).await?;
        self.limit_overrides(user).await
    }

    pub async fn clear_limit_overrides(&self, user: &str) -> Result<(), ServiceError> {
        Ok(self.limits.set_overrides(user, &[]).await?)
    }
}
