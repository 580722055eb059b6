//! Reports over the audit trail for admins: usage and cost, latency, audit events and
//! moderation flags, and the events PostgreSQL refused. The report routes ask for them here;
//! the queries live with the audit trail that owns the rows.

pub use crate::audit::quarantine::Quarantined;
pub use crate::audit::reports::{AuditFilter, AuditRow, GroupBy, LatencyRow, Range, UsageRow};

use super::{AiService, ServiceError};

impl AiService {
    /// Requests, tokens, cost, cache hits, degraded answers and errors per group in `range`.
    pub async fn usage_report(
        &self,
        range: &Range,
        group: GroupBy,
    ) -> Result<Vec<UsageRow>, ServiceError> {
        Ok(crate::audit::reports::usage(&self.stores.db, range, group).await?)
    }

    /// p50/p95/p99 of successful requests per feature in `range`.
    pub async fn latency_report(
        &self,
        range: &Range,
        feature: Option<&str>,
    ) -> Result<Vec<LatencyRow>, ServiceError> {
        Ok(crate::audit::reports::latency(&self.stores.db, range, feature).await?)
    }

    /// One page of audit events, newest first.
    pub async fn audit_events(
        &self,
        range: &Range,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditRow>, ServiceError> {
        Ok(crate::audit::reports::audit_page(&self.stores.db, range, filter).await?)
    }

    /// The newest quarantined audit events (at most `limit`) and how many there are.
    pub async fn quarantined(&self, limit: i64) -> Result<(i64, Vec<Quarantined>), ServiceError> {
        Ok(crate::audit::quarantine::list(&self.stores.db, limit).await?)
    }
}
