//! The verified claims, owned.

use serde::Serialize;
use tessera_token::{AccessClaims, Uuid};

/// What a verified access token says, owned (no borrow of the token).
///
/// The issuer and audience are not repeated here: the [`crate::Verifier`]
/// checked them. `tid` is the tenant the token belongs to (the nil uuid,
/// [`tessera_token::DEFAULT_TENANT`], for the default tenant).
///
/// Serializes with the claim names of the token (`sub`, `sid`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Claims {
    /// The user's id.
    pub sub: Uuid,
    /// The session's id.
    pub sid: Uuid,
    /// The tenant's id.
    pub tid: Uuid,
    /// The user's email address, as tessera stores it (trimmed, lowercased).
    pub email: String,
    /// The user's role in its tenant (`user`, `admin`, `owner`, ...).
    pub role: String,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expires at, unix seconds.
    pub exp: i64,
    /// The token's unique id.
    pub jti: Uuid,
}

impl Claims {
    /// Whether the token's role is exactly `role` (case-sensitive).
    pub fn has_role(&self, role: &str) -> bool {
        self.role == role
    }
}

impl From<AccessClaims<'_>> for Claims {
    fn from(claims: AccessClaims<'_>) -> Self {
        Self {
            sub: claims.sub,
            sid: claims.sid,
            tid: claims.tid,
            email: claims.email.into_owned(),
            role: claims.role.into_owned(),
            iat: claims.iat,
            exp: claims.exp,
            jti: claims.jti,
        }
    }
}
