//! Provider capacity shared by the fleet (the seed's fourth rate-limit layer): each provider
//! entry's requests and tokens per minute, booked in Redis by every process before a call and
//! settled to the real usage after, so the fleet together stays under what the vendor allows
//! instead of learning it from 429s. The limits come from config (`providers.<name>.rpm`,
//! `tpm`, `itpm`, `otpm`, `max_in_flight`) and from the vendor's own rate-limit headers, which
//! win while fresh; a 429 pauses the entry for every process for its `Retry-After`.
//!
//! Each kind of limit is a GCRA schedule (`lua/reserve.lua`): a call goes once the bucket,
//! `providers.capacity.burst_ms` of the rate deep, holds its cost, so calls are spread at the
//! rate rather than sent in bursts. A call due within its hold is booked and waits for its time;
//! a later one is refused with the time of its turn (behind the others of its class that wait),
//! and its task waits in the queue for it, its attempt not counted. Batch calls leave a few
//! requests of the bucket (`interactive_headroom`) to interactive ones.
//!
//! A provider with no limits configured or reported costs no round trip. When Redis does not
//! answer, calls go unbooked (the vendor's own 429s still pause the chain's retries).

pub mod keys;
mod scripts;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::config::{CapacityLimits, CapacitySettings, ProviderSettings};
use crate::providers::gate::{Booking, Busy, CapacityGate, Demand, Gate, Report};
use crate::providers::{Class, VendorLimits};
use crate::storage::RedisConnection;
use scripts::{ReserveArgs, ReserveKeys, Scripts, SettleArgs, SettleKeys};

/// Pause after a 429 that did not say how long.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Ledger {
    conn: RedisConnection,
    settings: CapacitySettings,
    configured: Arc<BTreeMap<String, CapacityLimits>>,
    /// Providers without configured limits whose vendor reported some: they book from then on.
    learned: Arc<RwLock<BTreeSet<&'static str>>>,
    scripts: Arc<Scripts>,
}

/// One kind of limit of an entry, as `GET /v1/admin/providers` and `/metrics` show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KindStatus {
    /// `requests`, `tokens`, `input_tokens` or `output_tokens`.
    pub kind: &'static str,
    /// Per minute.
    pub limit: u64,
    /// `config`, or `vendor` while the vendor's report is fresh.
    pub source: &'static str,
    /// What could be sent at once now.
    pub left_now: u64,
    /// Settled this minute.
    pub used_this_minute: u64,
}

/// One provider entry's capacity across the fleet.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CapacityStatus {
    pub provider: &'static str,
    pub limits: Vec<KindStatus>,
    /// RFC 3339, while a 429 pauses the entry.
    pub paused_until: Option<String>,
    pub in_flight: u64,
    pub max_in_flight: u64,
    /// Tasks waiting for their turn, by class.
    pub waiting_interactive: u64,
    pub waiting_batch: u64,
    /// 429s the vendor answered since the entry's record began (it lasts a day idle).
    pub rate_limited: u64,
}

impl Ledger {
    pub fn new(conn: RedisConnection, settings: &ProviderSettings) -> Self {
        let configured = crate::config::PROVIDERS
            .iter()
            .map(|name| ((*name).to_owned(), settings.limits(name)))
            .filter(|(_, limits)| !limits.is_unlimited())
            .collect();
        Self {
            conn,
            settings: settings.capacity.clone(),
            configured: Arc::new(configured),
            learned: Arc::default(),
            scripts: Arc::new(Scripts::new()),
        }
    }

    fn limits(&self, provider: &str) -> CapacityLimits {
        self.configured.get(provider).copied().unwrap_or_default()
    }

    /// Every entry that books capacity, as the fleet shares it.
    pub async fn status(
        &self,
        providers: &[&'static str],
    ) -> redis::RedisResult<Vec<CapacityStatus>> {
        let mut out = Vec::new();
        for provider in providers.iter().copied().filter(|p| self.applies(p)) {
            out.push(self.entry_status(provider).await?);
        }
        Ok(out)
    }

    async fn entry_status(&self, provider: &'static str) -> redis::RedisResult<CapacityStatus> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("HGETALL")
            .arg(keys::state(provider))
            .cmd("ZCARD")
            .arg(keys::inflight(provider))
            .cmd("ZCARD")
            .arg(keys::waiting(provider, Class::Interactive))
            .cmd("ZCARD")
            .arg(keys::waiting(provider, Class::Batch));
        let (state, in_flight, interactive, batch): (BTreeMap<String, String>, u64, u64, u64) =
            if conn.is_cluster() {
                // One slot, but a cluster pipeline goes command by command anyway.
                (
                    redis::cmd("HGETALL")
                        .arg(keys::state(provider))
                        .query_async(&mut conn)
                        .await?,
                    redis::cmd("ZCARD")
                        .arg(keys::inflight(provider))
                        .query_async(&mut conn)
                        .await?,
                    redis::cmd("ZCARD")
                        .arg(keys::waiting(provider, Class::Interactive))
                        .query_async(&mut conn)
                        .await?,
                    redis::cmd("ZCARD")
                        .arg(keys::waiting(provider, Class::Batch))
                        .query_async(&mut conn)
                        .await?,
                )
            } else {
                pipe.query_async(&mut conn).await?
            };
        let number = |field: &str| {
            state
                .get(field)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let now = jiff::Timestamp::now().as_millisecond() as f64;
        let fresh = state.contains_key("v_at")
            && now - number("v_at") <= self.settings.vendor_fresh_secs as f64 * 1000.0;
        let configured = self.limits(provider);
        let this_minute = state.get("minute").map(String::as_str)
            == Some((now as i64 / 60_000).to_string().as_str());
        let mut limits = Vec::new();
        for (kind, tat, vendor, config) in [
            ("requests", "tat_req", "v_req", configured.rpm),
            ("tokens", "tat_tok", "v_tok", configured.tpm),
            ("input_tokens", "tat_in", "v_in", configured.itpm),
            ("output_tokens", "tat_out", "v_out", configured.otpm),
        ] {
            let (limit, source) = match number(vendor) as u64 {
                reported if fresh && reported > 0 => (reported, "vendor"),
                _ => (config, "config"),
            };
            if limit == 0 {
                continue;
            }
            let interval = 60_000.0 / limit as f64;
            let tau = (self.settings.burst_ms as f64).max(interval);
            let left = ((now + tau - number(tat).max(now)) / interval)
                .floor()
                .max(0.0) as u64;
            let used = match (this_minute, kind) {
                (true, "requests") => number("minute_requests") as u64,
                (true, "tokens") => number("minute_tokens") as u64,
                _ => 0,
            };
            limits.push(KindStatus {
                kind,
                limit,
                source,
                left_now: left,
                used_this_minute: used,
            });
        }
        let paused = number("paused_until");
        Ok(CapacityStatus {
            provider,
            limits,
            paused_until: (paused > now)
                .then(|| jiff::Timestamp::from_millisecond(paused as i64).ok())
                .flatten()
                .map(|t| t.to_string()),
            in_flight,
            max_in_flight: configured.max_in_flight,
            waiting_interactive: interactive,
            waiting_batch: batch,
            rate_limited: number("rate_limited") as u64,
        })
    }

    async fn book(&self, provider: &'static str, demand: Demand<'_>) -> redis::RedisResult<Gate> {
        let limits = self.limits(provider);
        let settings = &self.settings;
        let call_id = format!("{:016x}", fastrand::u64(..));
        let class = demand.patience.class;
        let keys = ReserveKeys {
            state: keys::state(provider),
            inflight: keys::inflight(provider),
            waiting: keys::waiting(provider, class),
            users: keys::users(provider, class),
        };
        let args = ReserveArgs {
            call_id: &call_id,
            task_id: &demand.patience.task_id,
            fair_key: demand.patience.fair_key(),
            class: class.as_str(),
            hold_ms: demand.hold.as_millis() as u64,
            lease_ms: settings.lease_secs * 1000,
            burst_ms: settings.burst_ms,
            fresh_ms: settings.vendor_fresh_secs * 1000,
            headroom: settings.interactive_headroom,
            rpm: limits.rpm,
            tpm: limits.tpm,
            itpm: limits.itpm,
            otpm: limits.otpm,
            max_in_flight: limits.max_in_flight,
            input_tokens: demand.input_tokens,
            output_tokens: demand.output_tokens,
        };
        let mut invocation = self.scripts.reserve.prepare_invoke();
        keys.push(&mut invocation);
        args.push(&mut invocation);
        let (booked, ms, reason): (i64, i64, String) =
            invocation.invoke_async(&mut self.conn.clone()).await?;
        let wait = Duration::from_millis(ms.max(0) as u64);
        if booked == 1 {
            crate::metrics::capacity_booking(provider, class.as_str(), "booked", Some(wait));
            return Ok(Gate::Booked(Booking {
                provider,
                wait,
                call_id,
                input_tokens: demand.input_tokens,
                output_tokens: demand.output_tokens,
            }));
        }
        crate::metrics::capacity_booking(provider, class.as_str(), "busy", None);
        Ok(Gate::Busy(Busy {
            ready_in: wait,
            reason: reason_name(&reason),
        }))
    }

    async fn settle_call(&self, booking: Booking, report: Report) -> redis::RedisResult<()> {
        let provider = booking.provider;
        let limits = self.limits(provider);
        let settings = &self.settings;
        let vendor = report.vendor.unwrap_or_default();
        let figure = |value: Option<u64>| value.map_or(-1, |v| v.min(i64::MAX as u64) as i64);
        let (used_input, used_output) = report.usage.map_or((-1, -1), |usage| {
            (
                i64::from(usage.prompt_tokens),
                i64::from(usage.completion_tokens),
            )
        });
        let pause = match report.rate_limited {
            Some(retry_after) => retry_after.unwrap_or(DEFAULT_PAUSE),
            None => Duration::ZERO,
        };
        let args = SettleArgs {
            call_id: &booking.call_id,
            rpm: limits.rpm,
            tpm: limits.tpm,
            itpm: limits.itpm,
            otpm: limits.otpm,
            burst_ms: settings.burst_ms,
            fresh_ms: settings.vendor_fresh_secs * 1000,
            booked_input: booking.input_tokens,
            booked_output: booking.output_tokens,
            used_input,
            used_output,
            rate_limited: u8::from(report.rate_limited.is_some()),
            pause_ms: pause.as_millis() as u64,
            requests_limit: figure(vendor.requests.limit),
            requests_left: figure(vendor.requests.remaining),
            tokens_limit: figure(vendor.tokens.limit),
            tokens_left: figure(vendor.tokens.remaining),
            input_limit: figure(vendor.input_tokens.limit),
            input_left: figure(vendor.input_tokens.remaining),
            output_limit: figure(vendor.output_tokens.limit),
            output_left: figure(vendor.output_tokens.remaining),
        };
        let keys = SettleKeys {
            state: keys::state(provider),
            inflight: keys::inflight(provider),
        };
        let mut invocation = self.scripts.settle.prepare_invoke();
        keys.push(&mut invocation);
        args.push(&mut invocation);
        invocation
            .invoke_async::<i64>(&mut self.conn.clone())
            .await
            .map(drop)
    }
}

fn reason_name(reason: &str) -> &'static str {
    match reason {
        "paused" => "paused",
        "tokens" => "tokens",
        "input_tokens" => "input_tokens",
        "output_tokens" => "output_tokens",
        "in_flight" => "in_flight",
        _ => "requests",
    }
}

impl CapacityGate for Ledger {
    fn applies(&self, provider: &str) -> bool {
        if !self.settings.enabled {
            return false;
        }
        self.configured.contains_key(provider)
            || self
                .learned
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(provider)
    }

    fn observed(&self, provider: &'static str, _vendor: VendorLimits) {
        let mut learned = self.learned.write().unwrap_or_else(|e| e.into_inner());
        if learned.insert(provider) {
            tracing::info!(
                provider,
                "the vendor reports rate limits: its calls book capacity from now on"
            );
        }
    }

    fn reserve<'a>(&'a self, provider: &'static str, demand: Demand<'a>) -> BoxFuture<'a, Gate> {
        Box::pin(async move {
            match self.book(provider, demand).await {
                Ok(gate) => gate,
                Err(err) => {
                    tracing::warn!(provider, %err, "capacity cannot be booked (Redis); calling unbooked");
                    Gate::Open
                }
            }
        })
    }

    fn settle(&self, booking: Booking, report: Report) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let provider = booking.provider;
            if let Err(err) = self.settle_call(booking, report).await {
                tracing::warn!(provider, %err, "a call's capacity could not be settled (Redis)");
            }
        })
    }
}
