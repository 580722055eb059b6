//! `ApiJson<T>`: a JSON body extractor whose failures are precise problem answers
//! (415 wrong or missing content type, 413 too large, 400 malformed, 422 wrong shape).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::problem::ApiError;
use crate::api::AppState;

pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        check_content_type(
            request
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap_or("(not text)")),
        )?;
        let limit = state.settings.server.body_limit_bytes;
        let bytes = read_body(request, state, limit).await?;
        parse(&bytes).map(ApiJson)
    }
}

/// The whole body, up to `limit` bytes (413 beyond), arriving within
/// `server.body_read_timeout_secs` (408 beyond: a client trickling a body holds a connection
/// and a task, so it gets a deadline, not patience).
pub(super) async fn read_body(
    request: Request,
    state: &AppState,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let deadline = std::time::Duration::from_secs(state.settings.server.body_read_timeout_secs);
    let read = Bytes::from_request(request, state);
    match tokio::time::timeout(deadline, read).await {
        Err(_elapsed) => Err(ApiError::BodyTimeout {
            secs: deadline.as_secs(),
        }),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(rejection)) if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            Err(ApiError::PayloadTooLarge { limit })
        }
        Ok(Err(rejection)) => Err(ApiError::MalformedJson(rejection.body_text())),
    }
}

fn check_content_type(value: Option<&str>) -> Result<(), ApiError> {
    let Some(value) = value else {
        return Err(ApiError::UnsupportedMediaType(
            "the request has no Content-Type; send the body as `Content-Type: application/json`"
                .into(),
        ));
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "expected `Content-Type: application/json`, got `{value}`"
        )))
    }
}

pub(super) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|err| classify(err.path().to_string(), err.into_inner(), bytes))?;
    deserializer
        .end()
        .map_err(|err| classify(".".into(), err, bytes))?;
    Ok(value)
}

fn classify(path: String, err: serde_json::Error, bytes: &[u8]) -> ApiError {
    match err.classify() {
        Category::Data => {
            let field = if path == "." { "body".to_owned() } else { path };
            let message = strip_position(&err.to_string());
            ApiError::InvalidInput {
                detail: format!("`{field}`: {message}"),
                errors: [(field, message)].into(),
            }
        }
        Category::Syntax | Category::Eof | Category::Io => {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                ApiError::MalformedJson("the body is empty".into())
            } else {
                ApiError::MalformedJson(err.to_string())
            }
        }
    }
}

/// serde_json appends " at line 1 column 12" to data errors; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        input: serde_json::Value,
        #[serde(default)]
        prompt_version: Option<String>,
    }

    #[test]
    fn content_types() {
        assert!(check_content_type(Some("application/json")).is_ok());
        assert!(check_content_type(Some("application/json; charset=utf-8")).is_ok());
        assert!(check_content_type(Some("application/merge-patch+json")).is_ok());
        assert!(check_content_type(Some("text/plain")).is_err());
        assert!(check_content_type(None).is_err());
    }

    #[test]
    fn syntax_vs_shape() {
        assert!(matches!(
            parse::<Body>(b"{\"input\": "),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            parse::<Body>(br#"{"input": 1} x"#),
            Err(ApiError::MalformedJson(_))
        ));
        match parse::<Body>(br#"{"input": {}, "prompt_version": 3}"#) {
            Err(ApiError::InvalidInput { errors, .. }) => {
                assert!(errors.contains_key("prompt_version"), "{errors:?}")
            }
            other => panic!("{other:?}"),
        }
        match parse::<Body>(br#"{"input": {}, "mode": "x"}"#) {
            Err(ApiError::InvalidInput { errors, .. }) => {
                let message = errors.values().next().unwrap();
                assert!(message.contains("unknown field `mode`"), "{errors:?}");
            }
            other => panic!("{other:?}"),
        }
    }
}
