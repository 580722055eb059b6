//! The limits a request can be refused by, each described once: the name its script answers
//! (also the metric label and the audit's refusal kind), its problem type, the `layer` the
//! problem names, the figure that sets it, its `RateLimit` policy and the refusal's message.
//!
//! Every other place (the admission call, `/problems`, the metrics, the audit, the headers)
//! reads these facts, so a new limit is its check in a script plus one entry below.

use super::figures::Period;
use super::overrides::Overridable;
use super::refusal::{Refusal, iso};

/// An RFC 9457 problem type a refusal answers with (`/problems/<slug>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemType {
    pub slug: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub meaning: &'static str,
}

/// The layer that refused, as the problem's `layer` extension says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Ip,
    User,
    Quota,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::User => "user",
            Self::Quota => "quota",
        }
    }
}

/// What one limit is, wherever it shows.
struct Facts {
    /// What the script answers when this limit refuses; also the `layer` label of
    /// `tutorq_admissions_refused_total` and the kind of the audit's refusal event.
    name: &'static str,
    problem: ProblemType,
    layer: Layer,
    /// The per-user override that sets this limit; its period is the one whose reset the
    /// problem's `resets_at` gives.
    figure: Option<Overridable>,
    /// The limit's name in the `RateLimit-Policy`/`RateLimit` lists, when it is one of them.
    policy: Option<&'static str>,
    /// The problem's `detail`.
    detail: fn(&Refusal) -> String,
}

/// The per-IP and per-user rate limits share one problem type; `layer` tells them apart.
const RATE_LIMITED: ProblemType = ProblemType {
    slug: "rate-limited",
    title: "Too Many Requests",
    status: 429,
    meaning: "Too many requests in a short time; `layer` says which limit (`ip`: per client address, `user`: per user, with a cooldown after a breach). `Retry-After` says when to try again.",
};

/// Declares [`Limit`] and its facts in one list, so a variant cannot exist without them.
macro_rules! limits {
    ($($(#[$doc:meta])* $variant:ident $facts:tt),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Limit {
            $($(#[$doc])* $variant),*
        }

        impl Limit {
            /// Every limit, in the order of the `RateLimit` lists.
            pub const ALL: &'static [Limit] = &[$(Limit::$variant),*];

            fn facts(self) -> Facts {
                match self {
                    $(Limit::$variant => Facts $facts),*
                }
            }
        }
    };
}

limits! {
    /// Layer 1: requests per client address (`ip.lua`, before authentication).
    Ip {
        name: "ip",
        problem: RATE_LIMITED,
        layer: Layer::Ip,
        figure: None,
        policy: None,
        // An IP refusal answers with its verdict's own message (it has no user figures).
        detail: |r| format!("refused by the `ip` limit; try again in {} s", r.retry_after_secs()),
    },
    /// Repeated violations blocked the user.
    Blocked {
        name: "blocked",
        problem: ProblemType {
            slug: "blocked",
            title: "Blocked",
            status: 403,
            meaning: "Repeated violations (rate-limit breaches, forbidden topics, oversized or invalid requests) blocked this user until `blocked_until`.",
        },
        layer: Layer::User,
        figure: None,
        policy: None,
        detail: |r| format!(
            "you are blocked until {} after repeated violations (rate-limit breaches, forbidden topics, invalid requests)",
            r.blocked_until().unwrap_or_else(|| "later".into())
        ),
    },
    /// The per-user sliding window, or the cooldown after breaching it.
    UserRate {
        name: "user-rate",
        problem: RATE_LIMITED,
        layer: Layer::User,
        figure: Some(Overridable::PerMinute),
        policy: Some("minute"),
        detail: |r| {
            let f = r.figures.unwrap_or_default();
            format!(
                "more than {} requests within {} seconds; try again in {} s",
                f.per_minute, f.window_secs, r.retry_after_secs()
            )
        },
    },
    DailyRequests {
        name: "daily-requests",
        problem: ProblemType {
            slug: "daily-requests",
            title: "Daily Request Quota Used Up",
            status: 429,
            meaning: "The user's daily request quota is used up; it resets at local midnight (`resets_at`).",
        },
        layer: Layer::Quota,
        figure: Some(Overridable::DailyRequests),
        policy: Some("daily-requests"),
        detail: |r| {
            let f = r.figures.unwrap_or_default();
            format!(
                "the daily quota of {} requests is used up; it resets at {}",
                f.daily_requests, iso(f.daily_reset_at)
            )
        },
    },
    DailyTokens {
        name: "daily-tokens",
        problem: ProblemType {
            slug: "daily-tokens",
            title: "Daily Token Quota Used Up",
            status: 429,
            meaning: "This request's estimated tokens would pass the user's daily token quota; it resets at local midnight (`resets_at`).",
        },
        layer: Layer::Quota,
        figure: Some(Overridable::DailyTokens),
        policy: Some("daily-tokens"),
        detail: |r| {
            let f = r.figures.unwrap_or_default();
            format!(
                "this request would pass the daily quota of {} tokens ({} used); it resets at {}",
                f.daily_tokens, f.daily_tokens_used, iso(f.daily_reset_at)
            )
        },
    },
    MonthlyRequests {
        name: "monthly-requests",
        problem: ProblemType {
            slug: "monthly-requests",
            title: "Monthly Request Quota Used Up",
            status: 429,
            meaning: "The user's monthly request quota is used up; it resets on the 1st (`resets_at`).",
        },
        layer: Layer::Quota,
        figure: Some(Overridable::MonthlyRequests),
        policy: Some("monthly-requests"),
        detail: |r| {
            let f = r.figures.unwrap_or_default();
            format!(
                "the monthly quota of {} requests is used up; it resets at {}",
                f.monthly_requests, iso(f.monthly_reset_at)
            )
        },
    },
    MonthlyTokens {
        name: "monthly-tokens",
        problem: ProblemType {
            slug: "monthly-tokens",
            title: "Monthly Token Quota Used Up",
            status: 429,
            meaning: "This request's estimated tokens would pass the user's monthly token quota; it resets on the 1st (`resets_at`).",
        },
        layer: Layer::Quota,
        figure: Some(Overridable::MonthlyTokens),
        policy: Some("monthly-tokens"),
        detail: |r| {
            let f = r.figures.unwrap_or_default();
            format!(
                "this request would pass the monthly quota of {} tokens ({} used); it resets at {}",
                f.monthly_tokens, f.monthly_tokens_used, iso(f.monthly_reset_at)
            )
        },
    },
    /// The token bucket of one user and feature.
    FeatureTokens {
        name: "feature-tokens",
        problem: ProblemType {
            slug: "feature-tokens",
            title: "Feature Token Bucket Empty",
            status: 429,
            meaning: "The user's token bucket for this feature is empty; it refills over time (`Retry-After`).",
        },
        layer: Layer::Quota,
        figure: Some(Overridable::BucketTokens),
        policy: None,
        detail: |r| format!(
            "this feature's token bucket is empty for now; try again in {} s",
            r.retry_after_secs()
        ),
    },
}

impl Limit {
    /// The limit a script's answer names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|l| l.name() == name)
    }

    /// What the script answers, the metric label and the audit's refusal kind.
    pub fn name(self) -> &'static str {
        self.facts().name
    }

    pub fn problem(self) -> ProblemType {
        self.facts().problem
    }

    pub fn layer(self) -> Layer {
        self.facts().layer
    }

    /// The per-user override (and role figure) that sets this limit.
    pub fn figure(self) -> Option<Overridable> {
        self.facts().figure
    }

    /// The period this limit counts in; a day's or a month's reset is the problem's `resets_at`.
    pub fn period(self) -> Option<Period> {
        self.figure()?.period()
    }

    /// The limit's name in the `RateLimit` lists, when it is listed.
    pub fn policy(self) -> Option<&'static str> {
        self.facts().policy
    }

    /// The problem types the limits answer with, each once.
    pub fn problem_types() -> impl Iterator<Item = ProblemType> {
        Self::ALL
            .iter()
            .enumerate()
            .filter(|(i, l)| {
                !Self::ALL[..*i]
                    .iter()
                    .any(|e| e.problem().slug == l.problem().slug)
            })
            .map(|(_, l)| l.problem())
    }

    pub(super) fn detail(self, refusal: &Refusal) -> String {
        (self.facts().detail)(refusal)
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verdicts `admit.lua` answers with (`answer('…'`), besides `ok`.
    fn script_verdicts() -> Vec<&'static str> {
        let script = include_str!("lua/admit.lua");
        script
            .split("answer('")
            .skip(1)
            .filter_map(|rest| rest.split('\'').next())
            .filter(|v| *v != "ok")
            .collect()
    }

    #[test]
    fn every_verdict_of_the_admission_script_is_a_limit_and_every_user_limit_is_answered() {
        let verdicts = script_verdicts();
        for verdict in &verdicts {
            assert!(
                Limit::parse(verdict).is_some(),
                "admit.lua answers `{verdict}`"
            );
        }
        for limit in Limit::ALL.iter().filter(|l| **l != Limit::Ip) {
            assert!(
                verdicts.contains(&limit.name()),
                "admit.lua never answers `{limit}`"
            );
        }
    }

    #[test]
    fn names_and_problem_slugs_are_unique_and_shared_slugs_agree() {
        for (i, a) in Limit::ALL.iter().enumerate() {
            for b in &Limit::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
                if a.problem().slug == b.problem().slug {
                    assert_eq!(a.problem(), b.problem());
                }
            }
        }
        let slugs: Vec<_> = Limit::problem_types().map(|p| p.slug).collect();
        assert_eq!(
            slugs,
            [
                "rate-limited",
                "blocked",
                "daily-requests",
                "daily-tokens",
                "monthly-requests",
                "monthly-tokens",
                "feature-tokens"
            ]
        );
    }

    #[test]
    fn quotas_reset_with_their_period_and_rates_do_not() {
        assert_eq!(Limit::DailyTokens.period(), Some(Period::Day));
        assert_eq!(Limit::MonthlyRequests.period(), Some(Period::Month));
        assert_eq!(Limit::UserRate.period(), Some(Period::Window));
        assert_eq!(Limit::FeatureTokens.period(), None);
        assert_eq!(Limit::Blocked.period(), None);
    }
}
