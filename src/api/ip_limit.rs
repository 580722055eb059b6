//! Layer 1 as middleware: every `/v1` request counts against its client address's cap
//! (`limits.ip.per_minute`) before authentication.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::client_ip::ClientIp;
use super::problem::ApiError;
use crate::api::AppState;
use crate::auth::{Principal, Role};
use crate::service::limits::Limit;

/// Middleware for the `/v1` routes.
pub(super) async fn limit_ip(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let settings = &state.settings.limits;
    if !settings.enabled || !request.uri().path().starts_with("/v1/") {
        return next.run(request).await;
    }
    let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    else {
        return next.run(request).await;
    };
    let ClientIp(ip) =
        ClientIp::resolve(peer.ip(), request.headers(), &settings.ip.trusted_proxies);
    match state.service.admit_ip(ip).await {
        Ok(verdict) if verdict.admitted => next.run(request).await,
        Ok(verdict) => {
            // The platform's own services (role `service`) are held to their own limits, not
            // to the anonymous per-address cap their shared address would hit. Only requests
            // over the cap pay for this check.
            let credential = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if let Some(principal) = service_principal(&state, credential.as_deref()).await {
                let mut request = request;
                request.extensions_mut().insert(principal);
                return next.run(request).await;
            }
            crate::metrics::admission_refused(Limit::Ip.name());
            ApiError::IpRateLimited(verdict).into_response()
        }
        Err(err) => ApiError::from(err).into_response(),
    }
}

/// The caller, when the request's credential is valid and its role is `service`.
async fn service_principal(state: &AppState, credential: Option<&str>) -> Option<Principal> {
    credential?;
    let principal = super::auth::authenticate(state, credential).await.ok()?;
    (principal.role == Role::Service).then_some(principal)
}
