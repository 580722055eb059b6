//! `ApiQuery<T>`: a query-string extractor whose failures are problem answers (422 naming the
//! parameter that does not parse), like every other client mistake; and [`check_uri`], which
//! refuses a path or query parameter no handler should see (not UTF-8, or holding NUL or another
//! control character) before routing.

use axum::extract::{FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use serde::de::DeserializeOwned;

use super::problem::ApiError;

pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::invalid_field("query", rejection.body_text()))
    }
}

/// Middleware: a percent-decoded path that is not UTF-8 or holds a control character is 400
/// `bad-path`; such a query parameter (name or value) is 422 naming it. Handlers and stores
/// never see NUL (PostgreSQL refuses it in text) or a broken string.
pub async fn check_uri(request: Request, next: Next) -> Response {
    let uri = request.uri();
    match decoded(uri.path(), false) {
        Some(path) if !has_control(&path) => {}
        Some(_) => return ApiError::BadPath("it holds a control character".into()).into_response(),
        None => {
            return ApiError::BadPath("it is not UTF-8 once percent-decoded".into())
                .into_response();
        }
    }
    if let Some(query) = uri.query() {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let Some(name) = decoded(name, true) else {
                return ApiError::invalid_field("query", "a parameter name is not UTF-8")
                    .into_response();
            };
            let shown = if name.len() <= 64 && !has_control(&name) {
                name.clone()
            } else {
                "query".to_owned()
            };
            match decoded(value, true) {
                Some(value) if !has_control(&name) && !has_control(&value) => {}
                Some(_) => {
                    return ApiError::invalid_field(
                        &shown,
                        "must not hold NUL or another control character",
                    )
                    .into_response();
                }
                None => {
                    return ApiError::invalid_field(&shown, "is not UTF-8 once percent-decoded")
                        .into_response();
                }
            }
        }
    }
    next.run(request).await
}

fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// `%XX`-decoded text (and `+` as a space in a query), or `None` when it is not UTF-8.
fn decoded(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::decoded;

    #[test]
    fn percent_decoding() {
        assert_eq!(decoded("a%20b", false).as_deref(), Some("a b"));
        assert_eq!(decoded("a+b", true).as_deref(), Some("a b"));
        assert_eq!(decoded("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(decoded("%00", false).as_deref(), Some("\0"));
        assert_eq!(decoded("%C4%B0", false).as_deref(), Some("İ"));
        assert_eq!(decoded("%FF", false), None);
        assert_eq!(decoded("100%", false).as_deref(), Some("100%"));
        assert_eq!(decoded("%4", false).as_deref(), Some("%4"));
    }
}
