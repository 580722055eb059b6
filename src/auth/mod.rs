//! Who is calling: verifies `Authorization: Bearer <JWT>` or `Bearer tq_…` (an API key) and
//! yields a [`Principal`].

mod api_keys;
mod jwt;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use api_keys::{ApiKeys, KeyInfo, is_api_key, new_webhook_secret};
pub use jwt::{Authenticator, Claims};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Student,
    Teacher,
    Admin,
    Service,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Student, Role::Teacher, Role::Admin, Role::Service];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Teacher => "teacher",
            Role::Admin => "admin",
            Role::Service => "service",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("`{s}` is not a role (expected student, teacher, admin or service)")
            })
    }
}

/// The authenticated caller; travels in request extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub role: Role,
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
