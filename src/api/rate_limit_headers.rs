//! The `RateLimit-*` headers (IETF draft-ietf-httpapi-ratelimit-headers): the
//! `RateLimit-Limit`/`-Remaining`/`-Reset` trio for the deciding limit, and the
//! `RateLimit-Policy`/`RateLimit` lists of every limit; refusals add `Retry-After`.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::service::limits::{Figures, IpVerdict, Limit, Refusal};

/// An admitted request: the trio describes the per-user window.
pub(super) fn admitted(headers: &mut HeaderMap, figures: &Figures) {
    write(headers, figures, None);
}

/// A request the admission refused: the trio describes the refusing limit when it is listed,
/// else the per-user window.
pub(super) fn refused(headers: &mut HeaderMap, refusal: &Refusal) {
    headers.insert(header::RETRY_AFTER, refusal.retry_after_secs().into());
    if let Some(figures) = refusal.figures {
        write(headers, &figures, refusal.limit.policy());
    }
}

/// A request over its address's cap.
pub(super) fn ip_refused(headers: &mut HeaderMap, verdict: &IpVerdict) {
    headers.insert(header::RETRY_AFTER, verdict.retry_after_secs().into());
    headers.insert("ratelimit-limit", verdict.limit.into());
    headers.insert("ratelimit-remaining", 0.into());
    headers.insert("ratelimit-reset", verdict.reset_secs().into());
    put(
        headers,
        "ratelimit-policy",
        format!(
            "\"{}\";q={};w={}",
            Limit::Ip.name(),
            verdict.limit,
            IpVerdict::WINDOW_SECS
        ),
    );
}

fn write(headers: &mut HeaderMap, figures: &Figures, focus: Option<&str>) {
    let policies = figures.policies();
    let Some(chosen) = policies
        .iter()
        .find(|p| Some(p.name) == focus)
        .or(policies.first())
    else {
        return;
    };
    put(headers, "ratelimit-limit", chosen.limit.to_string());
    put(headers, "ratelimit-remaining", chosen.remaining.to_string());
    put(headers, "ratelimit-reset", chosen.reset_secs.to_string());
    let policy: Vec<String> = policies
        .iter()
        .map(|p| format!("\"{}\";q={};w={}", p.name, p.limit, p.window_secs))
        .collect();
    let state: Vec<String> = policies
        .iter()
        .map(|p| format!("\"{}\";r={};t={}", p.name, p.remaining, p.reset_secs))
        .collect();
    put(headers, "ratelimit-policy", policy.join(", "));
    put(headers, "ratelimit", state.join(", "));
}

fn put(headers: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}
