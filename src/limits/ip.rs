//! Layer 1: requests per client address, before authentication (`lua/ip.lua`). Which address
//! a request comes from is the API's to say; this is the check and its verdict.

use std::net::IpAddr;
use std::time::Duration;

use super::Limits;

/// What the per-IP layer decided.
#[derive(Debug, Clone, Copy)]
pub struct IpVerdict {
    pub admitted: bool,
    pub limit: u64,
    pub remaining: u64,
    pub retry_after: Duration,
    pub reset: Duration,
}

impl std::fmt::Display for IpVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "more than {} requests per minute from this address; try again in {} s",
            self.limit,
            self.retry_after_secs()
        )
    }
}

impl IpVerdict {
    /// The length of the per-IP window, in seconds.
    pub const WINDOW_SECS: u64 = 60;

    /// Admitted without asking Redis (it could not be asked, and the layer fails open).
    pub fn admitted_without_check() -> Self {
        Self {
            admitted: true,
            limit: 0,
            remaining: 0,
            retry_after: Duration::ZERO,
            reset: Duration::ZERO,
        }
    }

    pub fn retry_after_secs(&self) -> u64 {
        (self.retry_after.as_millis() as u64).div_ceil(1000).max(1)
    }

    /// Seconds until the address's minute starts again.
    pub fn reset_secs(&self) -> u64 {
        (self.reset.as_millis() as u64).div_ceil(1000)
    }
}

impl Limits {
    /// Counts one request from `ip` against `limits.ip.per_minute`, or refuses it.
    pub async fn ip(&self, ip: IpAddr) -> Result<IpVerdict, redis::RedisError> {
        let limit = self.settings.ip.per_minute;
        let (admitted, remaining, retry_ms, reset_ms): (i64, i64, i64, i64) = self
            .scripts
            .ip
            .key(super::keys::ip(&ip.to_string()))
            .arg(limit)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(IpVerdict {
            admitted: admitted == 1,
            limit,
            remaining: remaining.max(0) as u64,
            retry_after: Duration::from_millis(retry_ms.max(0) as u64),
            reset: Duration::from_millis(reset_ms.max(0) as u64),
        })
    }
}
