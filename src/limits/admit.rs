//! Admission (layers 2 and 3, and the abuse block): one call of `lua/admit.lua` per request.
//! The script's contract with Rust is written once: its keys, its arguments and its reply are
//! named here, and the script reads them by those names (`key_window`, `arg_estimate`,
//! `lim.per_minute`, `reply{…}`) from a prelude built from these same lists. A position is
//! never written twice, so the two sides cannot drift apart.

use std::fmt::Write as _;
use std::time::Duration;

use crate::storage::RedisConnection;
use redis::{RedisError, Script};

use super::figures::Figures;
use super::keys;
use super::limit::Limit;
use super::overrides::Overridable;
use super::refusal::Refusal;
use super::{Admission, LimitError, Limits, Reservation};
use crate::auth::Principal;
use crate::config::RoleLimits;
use crate::feature::Feature;
use crate::storage::script::{locals, script_parts};

script_parts! {
    /// `KEYS`: all one user's (one hash tag). A block's entry in the global index of blocked
    /// users is the follow-up step [`Limits::index_block`].
    struct Keys as key {
        blocked: String,
        /// The sliding window (zset of request members).
        window: String,
        cooldown: String,
        daily: String,
        monthly: String,
        /// This feature's token bucket.
        bucket: String,
        overrides: String,
        violations: String,
    }
}

script_parts! {
    /// `ARGV`, before the role's limits (which follow in [`Overridable::ALL`]'s order).
    struct Args<'a> as arg {
        /// Unique per request (the task id).
        member: &'a str,
        estimate: u64,
        daily_reset_at: i64,
        monthly_reset_at: i64,
        /// Violations within `violation_window_ms` that block for `block_ms`.
        violations: u64,
        violation_window_ms: u64,
        block_ms: u64,
        window_ms: u64,
        /// 1, or a batch's item count: one entry in the window, that many against the daily
        /// and monthly caps, and no token bucket (a batch is paced by its concurrency cap).
        requests: u64,
    }
}

/// Declares the reply and how to read it: values in the order of its fields.
macro_rules! reply {
    ($(#[$doc:meta])* struct $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        pub(super) struct $name {
            $(pub $field: $ty),*
        }

        impl $name {
            const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

            fn read(values: &[redis::Value]) -> Result<Self, RedisError> {
                if values.len() != Self::NAMES.len() {
                    return Err(RedisError::from((
                        redis::ErrorKind::UnexpectedReturnType,
                        "the admission script's reply has the wrong length",
                        format!("{} values, expected {}", values.len(), Self::NAMES.len()),
                    )));
                }
                let mut values = values.iter();
                Ok(Self {
                    $($field: redis::from_redis_value_ref(
                        values.next().expect("the length was checked"),
                    )?),*
                })
            }
        }
    };
}

reply! {
    /// What the script answers: `verdict` is `ok` or the refusing [`Limit`]'s name; then the
    /// caller's caps (after overrides), usage and resets, refused or not.
    struct Reply {
        verdict: String,
        retry_ms: i64,
        per_minute: i64,
        window_used: i64,
        window_reset_ms: i64,
        daily_requests: i64,
        daily_requests_used: i64,
        daily_tokens: i64,
        daily_tokens_used: i64,
        daily_reset_at: i64,
        monthly_requests: i64,
        monthly_requests_used: i64,
        monthly_tokens: i64,
        monthly_tokens_used: i64,
        monthly_reset_at: i64,
        blocked_until: i64,
    }
}

impl Reply {
    /// `None` when admitted, else the limit that refused.
    fn refused_by(&self) -> Result<Option<Limit>, RedisError> {
        if self.verdict == "ok" {
            return Ok(None);
        }
        Limit::parse(&self.verdict).map(Some).ok_or_else(|| {
            RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "the admission script answered a limit Rust does not know",
                self.verdict.clone(),
            ))
        })
    }
}

/// The script: the violation helpers, the prelude naming every key and argument, then
/// `lua/admit.lua`.
pub(super) fn script() -> Script {
    crate::storage::script::lua(&format!(
        "{}{}{}",
        include_str!("lua/violations.lua"),
        prelude(),
        include_str!("lua/admit.lua")
    ))
}

/// Keys and arguments become locals (`key_window`, `arg_estimate`): a table of them would cost
/// the script about a microsecond per call to build.
fn prelude() -> String {
    let mut lua = String::from("-- Built by src/limits/admit.rs.\n");
    locals(&mut lua, "key_", "KEYS", Keys::NAMES, 0);
    locals(&mut lua, "arg_", "ARGV", Args::NAMES, 0);
    lua.push_str("local lim = {");
    for (i, figure) in Overridable::ALL.iter().enumerate() {
        let _ = write!(
            lua,
            "{} = tonumber(ARGV[{}]), ",
            figure.key(),
            Args::NAMES.len() + i + 1
        );
    }
    lua.push_str("}\nlocal function reply(r)\n  return {");
    let fields: Vec<String> = Reply::NAMES.iter().map(|n| format!("r.{n}")).collect();
    lua.push_str(&fields.join(", "));
    lua.push_str("}\nend\n");
    lua
}

impl Limits {
    /// Admits one request of `principal` for `feature`, reserving `estimate` tokens, or says
    /// which limit refuses it. `member` must be unique per request (the task id).
    pub async fn admit(
        &self,
        principal: &Principal,
        feature: Feature,
        estimate: u64,
        member: &str,
    ) -> Result<Admission, LimitError> {
        self.admit_many(principal, feature, 1, estimate, member)
            .await
    }

    /// Admits a batch of `requests` items as one step: one entry in the user's window, all of
    /// them against the daily and monthly request caps, and `estimate` (all items' tokens)
    /// reserved at once; the items settle their shares as they end.
    pub async fn admit_many(
        &self,
        principal: &Principal,
        feature: Feature,
        requests: u64,
        estimate: u64,
        member: &str,
    ) -> Result<Admission, LimitError> {
        if !self.settings.enabled {
            return Ok(Admission::default());
        }
        let user = principal.user_id.as_str();
        let role = super::role_limits(&self.settings.roles, principal.role);
        let (daily_reset_at, monthly_reset_at) = self.next_resets();
        let abuse = &self.settings.abuse;
        let keys = Keys {
            blocked: keys::blocked(user),
            window: keys::window(user),
            cooldown: keys::cooldown(user),
            daily: keys::daily(user),
            monthly: keys::monthly(user),
            bucket: keys::bucket(user, feature),
            overrides: keys::overrides(user),
            violations: keys::violations(user),
        };
        let args = Args {
            member,
            estimate,
            daily_reset_at,
            monthly_reset_at,
            violations: abuse.violations,
            violation_window_ms: abuse.window_secs * 1000,
            block_ms: abuse.block_secs * 1000,
            window_ms: self.settings.window_secs * 1000,
            requests,
        };
        let reply = call(&self.scripts.admit, &self.conn, &keys, &args, role)
            .await
            .and_then(|reply| reply.refused_by().map(|limit| (reply, limit)));
        let (reply, refused_by) = match reply {
            Ok(reply) => reply,
            Err(err) if self.settings.fail_open.user => {
                tracing::warn!(%err, "limit store unavailable; admitting (limits.fail_open.user)");
                return Ok(Admission::default());
            }
            Err(err) => return Err(err.into()),
        };
        if reply.blocked_until > 0 {
            self.index_block(user, reply.blocked_until).await;
        }
        let figures = Figures::from_reply(&reply, self.settings.window_secs);
        if let Some(limit) = refused_by {
            crate::metrics::admission_refused(limit.name());
            return Err(LimitError::Refused(Box::new(Refusal::new(
                limit,
                Duration::from_millis(reply.retry_ms.max(0) as u64),
                figures,
            ))));
        }
        Ok(Admission {
            reservation: Some(Reservation {
                tokens: estimate,
                daily_reset_at: figures.daily_reset_at,
                monthly_reset_at: figures.monthly_reset_at,
            }),
            figures: Some(figures),
        })
    }
}

/// Runs the admission script once.
async fn call(
    script: &Script,
    conn: &RedisConnection,
    keys: &Keys,
    args: &Args<'_>,
    role: &RoleLimits,
) -> Result<Reply, RedisError> {
    let mut invocation = script.prepare_invoke();
    keys.push(&mut invocation);
    args.push(&mut invocation);
    for figure in Overridable::ALL {
        invocation.arg(figure.of(role));
    }
    let values: Vec<redis::Value> = invocation.invoke_async(&mut conn.clone()).await?;
    Reply::read(&values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prelude_names_every_key_argument_figure_and_reply_field_once() {
        let lua = prelude();
        assert!(lua.contains("local key_blocked = KEYS[1]\nlocal key_window = KEYS[2]\n"));
        assert!(lua.contains("local key_violations = KEYS[8]\n"));
        assert!(lua.contains("local arg_requests = ARGV[9]\n"));
        assert!(lua.contains("per_minute = tonumber(ARGV[10]), "));
        assert!(lua.contains("bucket_refill_per_sec = tonumber(ARGV[17]), }"));
        assert!(lua.contains("return {r.verdict, r.retry_ms, r.per_minute, "));
    }

    /// Every `key_x`, `arg_x` and `lim.x` the script reads is one the prelude defines.
    #[test]
    fn the_script_reads_only_names_the_prelude_defines() {
        let script = include_str!("lua/admit.lua");
        let figures: Vec<&str> = Overridable::ALL.iter().map(|f| f.key()).collect();
        for (table, names) in [
            ("key_", Keys::NAMES),
            ("arg_", Args::NAMES),
            ("lim.", figures.as_slice()),
        ] {
            let unknown = crate::storage::script::reads_only(script, table, names);
            assert!(unknown.is_empty(), "admit.lua reads {unknown:?}");
        }
        for field in Reply::NAMES {
            assert!(
                script.contains(&format!("{field} = ")),
                "admit.lua never sets `{field}` in its reply"
            );
        }
    }
}
