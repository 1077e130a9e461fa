//! Minting and checking the token pair of a session, on top of the keyring.

use crate::http::error::ApiError;
use crate::keys::KeyManager;
use std::borrow::Cow;
use std::sync::Arc;
use tessera_core::{SessionId, TenantId, UserId};
use tessera_store::RefreshState;
use tessera_token::{AccessClaims, RefreshClaims, TokenBuf, TokenError, Validation};
use uuid::Uuid;

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub struct TokenIssuer {
    keys: Arc<KeyManager>,
    validation: Validation,
    access_ttl: i64,
    refresh_ttl: i64,
    /// With the revocation check on, the sessions whose tokens are refused.
    revocations: Option<Arc<crate::revocation::Revocations>>,
}

/// Why an access token of an ended (revoked) session is refused.
pub const SESSION_ENDED: &str = "the session of this token has ended";

/// An access and refresh token minted together.
pub struct IssuedPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// The user facts an access token carries.
pub struct Subject<'a> {
    pub tenant: TenantId,
    pub user: UserId,
    pub session: SessionId,
    pub email: &'a str,
    pub role: &'a str,
}

/// Whose tokens a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One tenant's only (its routes).
    Tenant(TenantId),
    /// Any tenant's (`/api/auth/verify`, which reports `tid`).
    Any,
}

impl Scope {
    fn tenant(self) -> Option<TenantId> {
        match self {
            Self::Tenant(t) => Some(t),
            Self::Any => None,
        }
    }
}

impl TokenIssuer {
    pub fn new(keys: Arc<KeyManager>, validation: Validation, access_ttl: i64, refresh_ttl: i64) -> Self {
        Self {
            keys,
            validation,
            access_ttl,
            refresh_ttl,
            revocations: None,
        }
    }

    /// Refuses access tokens of the sessions `revocations` holds
    /// (`TESSERA_REVOCATION_CHECK=on`); `None` checks nothing, at no cost.
    pub fn with_revocations(mut self, revocations: Option<Arc<crate::revocation::Revocations>>) -> Self {
        self.revocations = revocations;
        self
    }

    pub fn issuer(&self) -> &str {
        &self.validation.issuer
    }

    pub fn audience(&self) -> &str {
        &self.validation.audience
    }

    pub fn keys(&self) -> &Arc<KeyManager> {
        &self.keys
    }

    /// The refresh state of a newly minted pair: fresh ids, a full lifetime.
    pub fn next_refresh_state(&self, now: i64) -> RefreshState {
        RefreshState {
            jti: Uuid::new_v4(),
            access_jti: Uuid::new_v4(),
            issued_at: now,
            expires_at: now.saturating_add(self.refresh_ttl),
        }
    }

    /// Signs the pair described by `state` with the tenant's current keys.
    /// Signing is deterministic, so the same state and keys always yield the
    /// same two strings: that is how the refresh grace window hands back
    /// "the same current pair".
    pub fn pair(&self, subject: &Subject<'_>, state: &RefreshState, now: i64) -> Result<IssuedPair, ApiError> {
        let signer = self.keys.signer(subject.tenant).ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "tenant {} has no signing keys in memory",
                subject.tenant
            ))
        })?;
        let access_exp = state.issued_at.saturating_add(self.access_ttl).min(state.expires_at);
        let access = AccessClaims {
            iss: Cow::Borrowed(&self.validation.issuer),
            aud: Cow::Borrowed(&self.validation.audience),
            sub: subject.user.as_uuid(),
            sid: subject.session.as_uuid(),
            tid: subject.tenant.as_uuid(),
            email: Cow::Borrowed(subject.email),
            role: Cow::Borrowed(subject.role),
            iat: state.issued_at,
            nbf: state.issued_at,
            exp: access_exp,
            jti: state.access_jti,
        };
        let refresh = RefreshClaims {
            iss: Cow::Borrowed(&self.validation.issuer),
            sub: subject.user.as_uuid(),
            sid: subject.session.as_uuid(),
            tid: subject.tenant.as_uuid(),
            jti: state.jti,
            iat: state.issued_at,
            exp: state.expires_at,
        };
        Ok(IssuedPair {
            access_token: signer.sign_access(&access),
            refresh_token: signer.sign_refresh(&refresh),
            expires_in: (access_exp - now).max(0),
        })
    }

    /// Verifies an access token from memory alone (the forward-auth path
    /// never waits for a store unless the kid is new to this instance). With
    /// the revocation check on, a token of a session that has ended is
    /// refused too, from memory.
    pub async fn verify_access<'b>(
        &self,
        token: &str,
        scope: Scope,
        now: i64,
        buf: &'b mut TokenBuf,
    ) -> Result<AccessClaims<'b>, ApiError> {
        let claims = self.verify_access_of_any_session(token, scope, now, buf).await?;
        if let Some(revocations) = &self.revocations {
            if revocations.is_revoked(&claims.sid) {
                tracing::debug!("access token of an ended session rejected");
                return Err(ApiError::InvalidToken(SESSION_ENDED));
            }
        }
        Ok(claims)
    }

    /// [`Self::verify_access`] without the revocation check: for logging
    /// out, where ending a session that has already ended is no error.
    pub async fn verify_access_of_any_session<'b>(
        &self,
        token: &str,
        scope: Scope,
        now: i64,
        buf: &'b mut TokenBuf,
    ) -> Result<AccessClaims<'b>, ApiError> {
        self.keys
            .verify_access(token, scope.tenant(), &self.validation, now, buf)
            .await
            .map_err(access_error)
    }

    pub async fn verify_refresh<'b>(
        &self,
        token: &str,
        scope: Scope,
        now: i64,
        buf: &'b mut TokenBuf,
    ) -> Result<RefreshClaims<'b>, ApiError> {
        self.keys
            .verify_refresh(token, scope.tenant(), &self.validation, now, buf)
            .await
            .map_err(|err| {
                tracing::debug!(reason = %err, "refresh token rejected");
                match err {
                    // Refreshing cannot cure an expired refresh token: the session is over.
                    TokenError::Expired => ApiError::InvalidToken("the refresh token has expired; log in again"),
                    other => ApiError::InvalidToken(other.client_description()),
                }
            })
    }
}

fn access_error(err: TokenError) -> ApiError {
    tracing::debug!(reason = %err, "access token rejected");
    if err.is_expired() {
        ApiError::TokenExpired
    } else {
        ApiError::InvalidToken(err.client_description())
    }
}
