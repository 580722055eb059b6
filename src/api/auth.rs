//! Authentication at the edge: a middleware that puts the [`Principal`] into request
//! extensions, and an extractor that takes it out.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use super::problem::ApiError;
use crate::api::AppState;
use crate::auth::{AuthError, Principal, Role};

pub async fn require_auth(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().map_err(|_| AuthError::Malformed))
        .transpose()?;
    // Already authenticated by the per-IP layer (a service over the address's cap).
    if request.extensions().get::<Principal>().is_none() {
        let principal = authenticate(&state, header).await?;
        request.extensions_mut().insert(principal);
    }
    Ok(next.run(request).await)
}

/// The caller of an `Authorization` header value: an API key (`Bearer tq_…`) as its owner, or
/// a JWT. Every route that authenticates, streams and sockets included, goes through here.
pub async fn authenticate(state: &AppState, header: Option<&str>) -> Result<Principal, AuthError> {
    state.auth.authenticate(header).await
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or(ApiError::Unauthorized(AuthError::Missing))
    }
}

/// Refuses the request with 403 unless the caller has one of `roles`.
pub fn require_role(principal: &Principal, roles: &[Role]) -> Result<(), ApiError> {
    if roles.contains(&principal.role) {
        return Ok(());
    }
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    Err(ApiError::Forbidden(format!(
        "this endpoint needs the {} role; the token has `{}`",
        names.join(" or "),
        principal.role
    )))
}
