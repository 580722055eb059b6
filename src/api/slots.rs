//! What one caller may hold open in this web process: long-polls, event streams and
//! WebSockets each have a cap per user and a cap for the process. A slot is taken before the
//! resource is opened and given back when its guard drops, however the request ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::problem::ApiError;
use crate::config::{OpenLimit, OpenLimits};

/// The three kinds of open resource, each with its own caps.
#[derive(Clone)]
pub struct OpenSlots {
    pub long_polls: Slots,
    pub event_streams: Slots,
    pub websockets: Slots,
}

impl OpenSlots {
    pub fn new(limits: &OpenLimits) -> Self {
        Self {
            long_polls: Slots::new("long-polls", limits.long_polls),
            event_streams: Slots::new("event streams", limits.event_streams),
            websockets: Slots::new("WebSockets", limits.websockets),
        }
    }
}

#[derive(Clone)]
pub struct Slots(Arc<Inner>);

struct Inner {
    what: &'static str,
    limit: OpenLimit,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    total: usize,
    by_user: HashMap<String, usize>,
}

/// One held slot; dropping it gives the slot back.
pub struct Slot {
    slots: Slots,
    user: String,
}

impl Slots {
    fn new(what: &'static str, limit: OpenLimit) -> Self {
        Self(Arc::new(Inner {
            what,
            limit,
            held: Mutex::default(),
        }))
    }

    /// A slot for `user`, or 429 `too-many-open` when the user or the process holds all it may.
    pub fn take(&self, user: &str) -> Result<Slot, ApiError> {
        let inner = &self.0;
        let mut held = inner.held.lock().unwrap_or_else(|e| e.into_inner());
        let mine = held.by_user.get(user).copied().unwrap_or(0);
        if mine >= inner.limit.per_user {
            return Err(ApiError::TooManyOpen(format!(
                "you have {mine} {} open here, the most one caller may hold; close one first",
                inner.what
            )));
        }
        if held.total >= inner.limit.per_process {
            return Err(ApiError::TooManyOpen(format!(
                "this server holds as many {} as it allows ({}); retry shortly",
                inner.what, inner.limit.per_process
            )));
        }
        held.total += 1;
        *held.by_user.entry(user.to_owned()).or_default() += 1;
        Ok(Slot {
            slots: self.clone(),
            user: user.to_owned(),
        })
    }

    /// Slots held now, by everyone.
    pub fn held(&self) -> usize {
        self.0.held.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.0.held.lock().unwrap_or_else(|e| e.into_inner());
        held.total = held.total.saturating_sub(1);
        if let Some(count) = held.by_user.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                held.by_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_user_and_per_process_and_come_back() {
        let slots = Slots::new(
            "long-polls",
            OpenLimit {
                per_user: 2,
                per_process: 3,
            },
        );
        let a1 = slots.take("a").unwrap();
        let _a2 = slots.take("a").unwrap();
        assert!(slots.take("a").is_err(), "a third for one user");
        let _b1 = slots.take("b").unwrap();
        assert!(slots.take("c").is_err(), "a fourth for the process");
        drop(a1);
        let _a3 = slots.take("a").expect("a slot given back is free again");
        assert_eq!(slots.held(), 3);
    }
}
