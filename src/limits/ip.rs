//! Layer 1: requests per client IP, before authentication. The client is the socket's peer,
//! unless that peer is a trusted proxy: then it is the last address in `X-Forwarded-For` that
//! is not itself a trusted proxy.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;
use crate::app::AppState;

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
    pub fn retry_after_secs(&self) -> u64 {
        (self.retry_after.as_millis() as u64).div_ceil(1000).max(1)
    }
}

/// The client's address: the peer, or what trusted proxies say it is.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

/// Middleware for the `/v1` routes.
pub async fn limit_ip(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limits = &state.limits;
    if !limits.enabled() || !request.uri().path().starts_with("/v1/") {
        return next.run(request).await;
    }
    let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    else {
        return next.run(request).await;
    };
    let ip = client_ip(
        peer.ip(),
        request.headers(),
        &limits.settings().ip.trusted_proxies,
    );
    match limits.ip(ip).await {
        Ok(verdict) if verdict.admitted => next.run(request).await,
        Ok(verdict) => {
            // The platform's own services (role `service`) are held to their own limits, not
            // to the anonymous per-address cap their shared address would hit. Only requests
            // over the cap pay for this check.
            let header = request
                .headers()
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if let Some(principal) = service_principal(&state, header.as_deref()).await {
                let mut request = request;
                request.extensions_mut().insert(principal);
                return next.run(request).await;
            }
            crate::metrics::admission_refused("ip");
            ApiError::IpRateLimited(verdict).into_response()
        }
        Err(err) if limits.settings().fail_open.ip => {
            tracing::warn!(%err, "limit store unavailable; admitting (limits.fail_open.ip)");
            next.run(request).await
        }
        Err(err) => ApiError::StoreUnavailable(err.to_string()).into_response(),
    }
}

/// The caller, when the request's credential is valid and its role is `service`.
async fn service_principal(
    state: &AppState,
    header: Option<&str>,
) -> Option<crate::auth::Principal> {
    header?;
    let principal = crate::api::authenticate(state, header).await.ok()?;
    (principal.role == crate::auth::Role::Service).then_some(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.7, 198.51.100.2, 10.0.0.1".parse().unwrap(),
        );
        // An untrusted peer's header is ignored.
        let stranger: IpAddr = "192.0.2.9".parse().unwrap();
        assert_eq!(client_ip(stranger, &headers, &[proxy]), stranger);
        // Through the trusted proxy: the last address it did not add itself.
        assert_eq!(
            client_ip(proxy, &headers, &[proxy]),
            "198.51.100.2".parse::<IpAddr>().unwrap()
        );
        // Garbage in the header falls back to the peer.
        headers.insert("x-forwarded-for", "not-an-ip".parse().unwrap());
        assert_eq!(client_ip(proxy, &headers, &[proxy]), proxy);
    }
}
