//! Who is calling: verifies `Authorization: Bearer <JWT>` or `Bearer tq_…` (an API key) and
//! yields a [`Principal`].

mod api_keys;
mod jwt;

pub use crate::facts::Role;
pub use api_keys::{ApiKeys, KeyInfo, is_api_key, new_webhook_secret};
pub use jwt::{Authenticator, Claims};

/// Both kinds of credential a caller may present: JWTs (and the short-lived stream tokens) and
/// API keys. What the HTTP layer holds to authenticate anyone.
#[derive(Clone)]
pub struct Auth {
    pub tokens: Authenticator,
    pub keys: ApiKeys,
}

impl Auth {
    /// The caller of an `Authorization` header value: an API key (`Bearer tq_…`) as its owner,
    /// or a JWT.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let key = header.and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            let token = token.trim();
            (scheme.eq_ignore_ascii_case("bearer") && is_api_key(token)).then_some(token)
        });
        match key {
            Some(key) => self.keys.authenticate(key).await,
            None => self.tokens.authenticate(header),
        }
    }
}

/// The authenticated caller; travels in request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub role: Role,
    /// When the credential stops being valid (Unix seconds): a token's `exp`; `None` for an
    /// API key, valid until revoked. Open streams and sockets end then.
    pub expires_at: Option<u64>,
    /// The tenant (e.g. a school) a token's `tenant` claim names: its users share their turns
    /// when a provider's capacity is short.
    pub tenant: Option<String>,
}

impl Principal {
    /// A caller whose credential does not expire (an API key, a test, a bench).
    pub fn new(user_id: impl Into<String>, role: Role) -> Self {
        Self {
            user_id: user_id.into(),
            role,
            expires_at: None,
            tenant: None,
        }
    }
}

/// The longest principal id (JWT `sub`, API-key owner) accepted.
pub const MAX_ID_LEN: usize = 128;

/// The one policy for principal ids: 1 to [`MAX_ID_LEN`] ASCII letters, digits and `- _ . @ + :
/// |`. Ids become Redis key parts (inside `{…}` hash tags), space-separated lists in Lua, log
/// fields and PostgreSQL text: no braces, spaces, control characters or NUL can reach them.
pub fn check_id(id: &str) -> Result<(), String> {
    const RULE: &str =
        "must be 1 to 128 characters, each an ASCII letter or digit or one of - _ . @ + : |";
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.@+:|".contains(c);
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(format!("{RULE} (it has {})", id.len()));
    }
    match id.chars().find(|c| !allowed(*c)) {
        Some(c) if c.is_ascii_graphic() => Err(format!("{RULE} (it holds `{c}`)")),
        Some(c) => Err(format!("{RULE} (it holds U+{:04X})", c as u32)),
        None => Ok(()),
    }
}

/// Why a request is not authenticated; each maps to a 401 with `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the request has no Authorization header; send `Authorization: Bearer <token>`")]
    Missing,
    #[error("the Authorization header must be `Bearer <token>`")]
    Malformed,
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid: {0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::check_id;

    #[test]
    fn principal_ids_follow_one_policy() {
        for good in [
            "u1",
            "auth0|5f7c",
            "ayse.yilmaz@okul.k12.tr",
            "svc:grader",
            "a-b_c+d",
        ] {
            assert_eq!(check_id(good), Ok(()), "{good}");
        }
        let long = "x".repeat(129);
        for bad in ["", "a b", "a\nb", "a\0b", "a}:b", "{u}", "ö", long.as_str()] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_id(&"x".repeat(128)).is_ok());
    }
}
