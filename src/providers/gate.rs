//! The capacity gate a chain asks before each provider call: a provider's requests and tokens
//! per minute are shared by the fleet (the `capacity` module keeps them in Redis), so a call
//! books its share first, waits for it when it is due soon, and settles to the real usage after.
//! Providers without configured or reported limits pass at once.

use std::time::Duration;

use futures_util::future::BoxFuture;

use super::{Usage, VendorLimits};

/// Which calls get capacity first when it is short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Class {
    /// Inline requests and queued `ai_request` jobs.
    #[default]
    Interactive,
    /// Batch items: they share what interactive calls leave.
    Batch,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interactive => "interactive",
            Self::Batch => "batch",
        }
    }
}

/// How long a call may wait for capacity, and for which task it is made.
#[derive(Debug, Clone, Default)]
pub struct Patience {
    /// The task the call is for ("" for none): the ledger counts it among the waiting while it
    /// waits.
    pub task_id: String,
    /// Whose turn the call takes when capacity is short: the task's user, or the tenant (a
    /// school) its token names. Calls of no one share one turn.
    pub owner: String,
    pub class: Class,
    /// Longest the call waits here for capacity it booked; `None`: the configured
    /// `providers.capacity.hold_ms`.
    pub hold: Option<Duration>,
}

impl Patience {
    /// The key turns are shared by.
    pub fn fair_key(&self) -> &str {
        &self.owner
    }
}

/// What one call asks of a provider's capacity.
#[derive(Debug, Clone, Copy)]
pub struct Demand<'a> {
    pub patience: &'a Patience,
    pub hold: Duration,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Capacity booked for one call; settle it when the call is over.
#[derive(Debug, Clone)]
pub struct Booking {
    pub provider: &'static str,
    /// How long until the booked capacity is due (never more than the call's hold).
    pub wait: Duration,
    pub call_id: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// No capacity within the call's hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Busy {
    /// When capacity is expected, from now.
    pub ready_in: Duration,
    /// `paused` (a 429), `requests`, `tokens`, `input_tokens`, `output_tokens`, `in_flight`.
    pub reason: &'static str,
}

/// What the gate decided for one call.
#[derive(Debug)]
pub enum Gate {
    /// No limit applies (none configured or reported, or the ledger is unreachable).
    Open,
    Booked(Booking),
    Busy(Busy),
}

/// How a booked call went.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Real usage, when the call answered.
    pub usage: Option<Usage>,
    /// The vendor answered 429, with its `Retry-After` if any.
    pub rate_limited: Option<Option<Duration>>,
    pub vendor: Option<VendorLimits>,
}

/// A provider's capacity shared by the fleet.
pub trait CapacityGate: Send + Sync {
    /// Whether calls to `provider` book capacity (it has configured limits, or its vendor
    /// reported some); when not, a call costs no round trip.
    fn applies(&self, provider: &str) -> bool;
    /// A call that booked nothing carried the vendor's limits: from now on `provider` books.
    fn observed(&self, provider: &'static str, vendor: VendorLimits);
    /// Books one request and the demand's tokens at `provider`, due within the demand's hold.
    fn reserve<'a>(&'a self, provider: &'static str, demand: Demand<'a>) -> BoxFuture<'a, Gate>;
    /// Gives back what the call did not use, takes over what the vendor reported, and pauses
    /// the provider for every process after a 429.
    fn settle(&self, booking: Booking, report: Report) -> BoxFuture<'_, ()>;
}

/// The gate of a service without capacity limits: every call passes.
pub struct Unlimited;

impl CapacityGate for Unlimited {
    fn applies(&self, _: &str) -> bool {
        false
    }

    fn observed(&self, _: &'static str, _: VendorLimits) {}

    fn reserve<'a>(&'a self, _: &'static str, _: Demand<'a>) -> BoxFuture<'a, Gate> {
        Box::pin(async { Gate::Open })
    }

    fn settle(&self, _: Booking, _: Report) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
