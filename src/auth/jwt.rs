//! HS256 JSON Web Tokens: verification for every request and minting for `tutorq token`.

use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{AuthError, Principal, Role};
use crate::config::AuthSettings;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// The caller's tenant (a school), if the platform groups its users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// What a presented token may hold: every field optional so that a missing one gets its own
/// message instead of a generic decoding error.
#[derive(Debug, Deserialize)]
struct PresentedClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    role: Option<String>,
    /// Set only on stream tokens: the one task whose events the token may read.
    #[serde(default)]
    stream_task: Option<String>,
    /// Required (the validation checks it); optional here so that its absence gets its own
    /// message.
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    tenant: Option<String>,
}

#[derive(Serialize)]
struct StreamClaims<'a> {
    sub: &'a str,
    role: Role,
    exp: u64,
    iat: u64,
    stream_task: &'a str,
}

#[derive(Clone)]
pub struct Authenticator {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Longest `exp - iat` accepted (`auth.max_token_lifetime_secs`; 0: any).
    max_lifetime_secs: u64,
    leeway_secs: u64,
}

impl Authenticator {
    pub fn new(settings: &AuthSettings) -> Self {
        let secret = settings.signing_secret();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = settings.leeway_secs;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &settings.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &settings.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if settings.max_token_lifetime_secs > 0 {
            required.push("iat");
        }
        validation.set_required_spec_claims(&required);
        Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
            max_lifetime_secs: settings.max_token_lifetime_secs,
            leeway_secs: settings.leeway_secs,
        }
    }

    /// Verifies the value of an `Authorization` header.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Malformed)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(AuthError::Malformed);
        }
        self.verify(token)
    }

    /// Verifies a bearer token; stream tokens are refused here.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let (principal, stream_task) = self.decode(token)?;
        if stream_task.is_some() {
            return Err(AuthError::Invalid(
                "a stream token only opens the event stream it was issued for".into(),
            ));
        }
        Ok(principal)
    }

    /// Verifies a short-lived stream token for the events of `task_id`.
    pub fn verify_stream(&self, token: &str, task_id: &str) -> Result<Principal, AuthError> {
        match self.decode(token)? {
            (principal, Some(task)) if task == task_id => Ok(principal),
            (_, Some(_)) => Err(AuthError::Invalid(
                "this stream token is for another task".into(),
            )),
            (_, None) => Err(AuthError::Invalid(
                "only a stream token may be sent in the URL".into(),
            )),
        }
    }

    /// A token that opens only the event stream of `task_id`, for `ttl` (never past the
    /// caller's own credential).
    pub fn mint_stream(&self, principal: &Principal, task_id: &str, ttl: Duration) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let mut exp = now + ttl.as_secs();
        if let Some(limit) = principal.expires_at {
            exp = exp.min(limit);
        }
        let claims = StreamClaims {
            sub: &principal.user_id,
            role: principal.role,
            exp,
            iat: now,
            stream_task: task_id,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with a byte key cannot fail")
    }

    fn decode(&self, token: &str) -> Result<(Principal, Option<String>), AuthError> {
        let data = jsonwebtoken::decode::<PresentedClaims>(token, &self.decoding, &self.validation)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => {
                    AuthError::Invalid("the token is not valid yet (`nbf` is in the future)".into())
                }
                ErrorKind::InvalidIssuer => {
                    AuthError::Invalid("the `iss` claim names another issuer".into())
                }
                ErrorKind::InvalidAudience => {
                    AuthError::Invalid("the `aud` claim names another audience".into())
                }
                ErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
                ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidAlgorithmName
                | ErrorKind::UnsupportedAlgorithm => {
                    AuthError::Invalid("only HS256 tokens are accepted".into())
                }
                ErrorKind::MissingRequiredClaim(claim) => {
                    AuthError::Invalid(format!("the `{claim}` claim is required"))
                }
                ErrorKind::Json(err) => {
                    AuthError::Invalid(format!("malformed header or claims ({err})"))
                }
                _ => AuthError::Invalid("not a well-formed JWT".into()),
            })?;
        let user_id = data.claims.sub.filter(|sub| !sub.trim().is_empty());
        let user_id =
            user_id.ok_or_else(|| AuthError::Invalid("the `sub` claim is empty".into()))?;
        super::check_id(&user_id)
            .map_err(|rule| AuthError::Invalid(format!("the `sub` claim {rule}")))?;
        if self.max_lifetime_secs > 0 {
            let iat = data.claims.iat.unwrap_or(0);
            if iat > jsonwebtoken::get_current_timestamp() + self.leeway_secs {
                return Err(AuthError::Invalid(
                    "the `iat` claim is in the future".into(),
                ));
            }
            if data.claims.exp.unwrap_or(u64::MAX).saturating_sub(iat) > self.max_lifetime_secs {
                return Err(AuthError::Invalid(format!(
                    "the token lives longer than the {} s this server accepts (`exp` - `iat`)",
                    self.max_lifetime_secs
                )));
            }
        }
        let role = data
            .claims
            .role
            .ok_or_else(|| AuthError::Invalid("the `role` claim is required".into()))?;
        let role = role
            .parse()
            .map_err(|reason| AuthError::Invalid(format!("the `role` claim is wrong: {reason}")))?;
        let tenant = data.claims.tenant;
        if let Some(tenant) = &tenant {
            super::check_id(tenant).map_err(|reason| {
                AuthError::Invalid(format!("the `tenant` claim is wrong: it {reason}"))
            })?;
        }
        let principal = Principal {
            user_id,
            role,
            expires_at: data.claims.exp,
            tenant,
        };
        Ok((principal, data.claims.stream_task))
    }

    /// Signs a token for `sub` with `role`, valid for `ttl` (a development convenience).
    pub fn mint(&self, sub: &str, role: Role, ttl: Duration) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: sub.to_owned(),
            role,
            exp: now + ttl.as_secs(),
            iat: Some(now),
            tenant: None,
        };
        self.mint_claims(&claims)
    }

    pub fn mint_claims(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing with a byte key cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn authenticator(secret: &str) -> Authenticator {
        Authenticator::new(&AuthSettings {
            jwt_secret: Some(Secret::new(secret)),
            leeway_secs: 0,
            allow_insecure_dev_secret: false,
            issuer: None,
            audience: None,
            max_token_lifetime_secs: 0,
        })
    }

    #[test]
    fn a_minted_token_verifies() {
        let auth = authenticator(&"k".repeat(32));
        let token = auth.mint("u1", Role::Teacher, Duration::from_secs(60));
        let principal = auth.authenticate(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(
            (principal.user_id.as_str(), principal.role),
            ("u1", Role::Teacher)
        );
        assert!(principal.expires_at.is_some());
    }

    #[test]
    fn every_bad_token_is_refused_with_its_reason() {
        let auth = authenticator(&"k".repeat(32));
        let other = authenticator(&"z".repeat(32));
        assert_eq!(auth.authenticate(None), Err(AuthError::Missing));
        assert_eq!(
            auth.authenticate(Some("Basic dTpw")),
            Err(AuthError::Malformed)
        );
        assert_eq!(auth.authenticate(Some("Bearer")), Err(AuthError::Malformed));
        let foreign = other.mint("u1", Role::Admin, Duration::from_secs(60));
        assert_eq!(
            auth.verify(&foreign),
            Err(AuthError::Invalid("bad signature".into()))
        );
        let expired = auth.mint_claims(&Claims {
            sub: "u1".into(),
            role: Role::Student,
            exp: 1_000,
            iat: None,
            tenant: None,
        });
        assert_eq!(auth.verify(&expired), Err(AuthError::Expired));
        assert!(matches!(
            auth.verify("not.a.jwt"),
            Err(AuthError::Invalid(_))
        ));
    }
}
