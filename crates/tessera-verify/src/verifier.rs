//! [`Verifier`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tessera_token::{Key, KeyError, KeySet, TokenBuf, TokenError, TokenKind, Uuid, Validation};

use crate::claims::Claims;
use crate::error::{BuildError, VerifyError};
use crate::jwks::{Jwks, JwksSettings};

/// Default [`VerifierBuilder::min_refetch_interval`].
pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Default [`VerifierBuilder::max_cache_age`].
pub const DEFAULT_MAX_CACHE_AGE: Duration = Duration::from_secs(3600);
/// Default [`VerifierBuilder::http_timeout`].
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Verifies tessera's access tokens.
///
/// Cheap to clone (one `Arc`): build one at start-up and share it. Every
/// verification is done from memory; in JWKS mode the only HTTP requests
/// are the key-set fetches described in the crate docs.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    validation: Validation,
    tenant: Option<Uuid>,
    source: Source,
    /// Tokens whose public-key signature verified: one presented again
    /// skips the curve or RSA arithmetic (see tessera-token's
    /// `VerifiedSignatures`).
    verified: tessera_token::VerifiedSignatures,
}

enum Source {
    /// HS256 with `JWT_SECRET`: one key, fixed.
    Secret(KeySet),
    /// Public keys from tessera's JWKS.
    Jwks(Arc<Jwks>),
}

impl Verifier {
    /// Starts a verifier for tokens whose `iss` is `issuer` (tessera's
    /// `TESSERA_ISSUER`) and whose `aud` is `audience` (its
    /// `TESSERA_AUDIENCE`, `tessera` by default). Then give it
    /// [`VerifierBuilder::secret`] or [`VerifierBuilder::jwks_url`].
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            audience: audience.into(),
            secret: None,
            jwks_url: None,
            tenant: None,
            leeway: None,
            min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL,
            max_cache_age: DEFAULT_MAX_CACHE_AGE,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
        }
    }

    /// Verifies an access token (the part after `Bearer `) and returns its
    /// claims.
    ///
    /// In JWKS mode, a token whose kid is not among the cached keys makes
    /// the verifier refetch the key set (at most once per
    /// `min_refetch_interval`, shared by all concurrent callers) and try
    /// again; and stale keys are refreshed in the background while this
    /// call verifies with them.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let jwks = match &self.inner.source {
            Source::Secret(keys) => return self.check(keys, token),
            Source::Jwks(jwks) => jwks,
        };
        match self.check(&jwks.keys(), token) {
            Err(VerifyError::Invalid(TokenError::UnknownKey)) => {}
            verified => return verified,
        }
        jwks.refetch_for_unknown_kid().await;
        match self.check(&jwks.current(), token) {
            Err(VerifyError::Invalid(TokenError::UnknownKey)) if jwks.last_fetch_failed() => {
                Err(VerifyError::KeysUnavailable)
            }
            Err(VerifyError::Invalid(TokenError::UnknownKey)) if self.expired_under_withdrawn_key(jwks, token) => {
                Err(VerifyError::Expired)
            }
            verified => verified,
        }
    }

    /// tessera withdraws a retired key once every token it signed has
    /// expired. A token of such a key is reported expired, so that its
    /// client refreshes instead of sending its user to log in again. The
    /// signature cannot be checked any more, so this reads the token's
    /// `exp` unverified: it only chooses between two refusals, and a
    /// token whose `exp` has not passed (a revoked key's) stays invalid.
    fn expired_under_withdrawn_key(&self, jwks: &Jwks, token: &str) -> bool {
        let mut buf = TokenBuf::new();
        let Ok(kid) = tessera_token::header_kid(token, &mut buf) else {
            return false;
        };
        if !jwks.was_withdrawn(kid) {
            return false;
        }
        let exp = token.split('.').nth(1).and_then(|payload| {
            use base64::Engine as _;
            let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
            serde_json::from_slice::<serde_json::Value>(&json)
                .ok()?
                .get("exp")?
                .as_i64()
        });
        let leeway = i64::try_from(self.inner.validation.leeway_secs).unwrap_or(0);
        exp.is_some_and(|exp| exp.saturating_add(leeway) < unix_now())
    }

    /// How many keys it verifies with now (1 in secret mode).
    pub fn key_count(&self) -> usize {
        match &self.inner.source {
            Source::Secret(keys) => keys.len(),
            Source::Jwks(jwks) => jwks.key_count(),
        }
    }

    /// Synchronous, allocation-free apart from the returned claims; the
    /// 3 KiB token buffer lives on this stack frame, never in a future.
    fn check(&self, keys: &KeySet, token: &str) -> Result<Claims, VerifyError> {
        let mut buf = TokenBuf::new();
        let now = unix_now();
        let validation = &self.inner.validation;
        let claims = keys.verify_access_cached(
            token,
            self.inner.tenant,
            validation,
            now,
            &mut buf,
            &self.inner.verified,
        )?;
        Ok(Claims::from(claims))
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Verifier");
        out.field("issuer", &self.inner.validation.issuer)
            .field("audience", &self.inner.validation.audience)
            .field("tenant", &self.inner.tenant);
        match &self.inner.source {
            Source::Secret(_) => out.field("mode", &"secret"),
            Source::Jwks(jwks) => out.field("mode", &"jwks").field("jwks_url", &jwks.shown_url()),
        };
        out.field("keys", &self.key_count()).finish()
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
}

/// Configures a [`Verifier`]; made by [`Verifier::builder`]. `Debug` never
/// shows the secret.
#[must_use = "call .build().await to get the Verifier"]
pub struct VerifierBuilder {
    issuer: String,
    audience: String,
    /// The key is made at once, so the builder never holds the secret.
    secret: Option<Result<Key, KeyError>>,
    jwks_url: Option<String>,
    tenant: Option<Uuid>,
    leeway: Option<Duration>,
    min_refetch_interval: Duration,
    max_cache_age: Duration,
    http_timeout: Duration,
}

impl VerifierBuilder {
    /// HS256 shared-secret mode: the bytes of tessera's `JWT_SECRET` (at
    /// least 32). Verifies tokens of the default tenant signed with it.
    /// Keep `REFRESH_TOKEN_SECRET` to tessera: services never need it.
    pub fn secret(mut self, jwt_secret: impl AsRef<[u8]>) -> Self {
        self.secret = Some(Key::from_secret(TokenKind::Access, jwt_secret.as_ref()));
        self
    }

    /// JWKS mode: tessera's key set, `http(s)://<tessera>/.well-known/jwks.json`
    /// for the default tenant or `.../api/tenants/<slug>/.well-known/jwks.json`
    /// for a tenant. Fetched once by [`VerifierBuilder::build`], then cached.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// Accepts only tokens of `tenant` (its uuid: the `tid` of its
    /// tokens); a genuine token of another tenant is invalid.
    pub fn tenant(mut self, tenant: Uuid) -> Self {
        self.tenant = Some(tenant);
        self
    }

    /// Clock leeway on `exp`, `nbf` and `iat`, whole seconds, at most 30 s
    /// (more counts as 30 s). Default 5 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }

    /// JWKS mode: fetches (after the first) start at most once per
    /// `interval`, whatever triggers them: an unknown kid, or stale keys.
    /// Default 30 s.
    pub fn min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// JWKS mode: the longest a fetched key set is used without asking
    /// tessera again, whatever its `Cache-Control: max-age` says. Default 1 h.
    pub fn max_cache_age(mut self, age: Duration) -> Self {
        self.max_cache_age = age;
        self
    }

    /// JWKS mode: timeout of a whole key-set request, connection included.
    /// Default 5 s.
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// Builds the verifier. In JWKS mode this fetches the key set, and
    /// fails if it cannot, or if it has no usable key.
    pub async fn build(self) -> Result<Verifier, BuildError> {
        if self.issuer.trim().is_empty() {
            return Err(BuildError::EmptyIssuer);
        }
        if self.audience.trim().is_empty() {
            return Err(BuildError::EmptyAudience);
        }
        let mut validation = Validation::new(self.issuer, self.audience);
        if let Some(leeway) = self.leeway {
            validation.leeway_secs = leeway.as_secs();
        }
        let source = match (self.secret, self.jwks_url) {
            (Some(_), Some(_)) => return Err(BuildError::ConflictingKeySources),
            (None, None) => return Err(BuildError::NoKeySource),
            (Some(key), None) => {
                let mut keys = KeySet::with_capacity(1);
                keys.insert(key.map_err(BuildError::InvalidSecret)?)
                    .map_err(BuildError::InvalidSecret)?;
                Source::Secret(keys)
            }
            (None, Some(url)) => Source::Jwks(
                Jwks::connect(JwksSettings {
                    url,
                    http_timeout: self.http_timeout,
                    min_refetch: self.min_refetch_interval,
                    max_cache_age: self.max_cache_age,
                })
                .await?,
            ),
        };
        Ok(Verifier {
            inner: Arc::new(Inner {
                validation,
                tenant: self.tenant,
                source,
                verified: tessera_token::VerifiedSignatures::default(),
            }),
        })
    }
}

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("jwks_url", &self.jwks_url.as_deref().map(|_| "<set>"))
            .field("tenant", &self.tenant)
            .field("leeway", &self.leeway)
            .field("min_refetch_interval", &self.min_refetch_interval)
            .field("max_cache_age", &self.max_cache_age)
            .field("http_timeout", &self.http_timeout)
            .finish()
    }
}
