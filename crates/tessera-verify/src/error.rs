//! Why a token was refused, why a verifier could not be built, and why a
//! JWKS fetch failed.

use tessera_token::{KeyError, TokenError};

/// Why [`crate::Verifier::verify`] refused a token.
///
/// The messages name the reason (for logs); they never contain the token
/// or a secret. What a client may be told is [`VerifyError::description`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A genuine token, valid in every other way, whose `exp` has passed
    /// (beyond the leeway): the client should refresh it.
    #[error("the token has expired")]
    Expired,
    /// Anything else: malformed, bad signature, unknown key, wrong issuer,
    /// audience, kind or tenant, not yet valid...
    #[error("the token is invalid: {0}")]
    Invalid(TokenError),
    /// The token names a key this service does not have, and tessera's key
    /// set could not be fetched the last time it was tried, so whether the
    /// key exists is unknown. Answer 503 and let the client retry.
    #[error("the token names an unknown key and tessera's key set could not be fetched")]
    KeysUnavailable,
}

impl VerifyError {
    /// True only for [`VerifyError::Expired`]: the one case where a client
    /// should refresh its token rather than be told it is invalid.
    pub fn is_expired(&self) -> bool {
        matches!(self, Self::Expired)
    }

    /// True for [`VerifyError::Invalid`].
    pub fn is_invalid(&self) -> bool {
        matches!(self, Self::Invalid(_))
    }

    /// The precise reason of an invalid token (for logs and tests).
    pub fn token_error(&self) -> Option<&TokenError> {
        match self {
            Self::Invalid(err) => Some(err),
            _ => None,
        }
    }

    /// A sentence safe to show to the client, as tessera words it in its
    /// own `WWW-Authenticate` `error_description`s.
    pub fn description(&self) -> &'static str {
        match self {
            Self::Expired => "the token has expired",
            Self::KeysUnavailable => "the token's key cannot be checked right now; retry shortly",
            Self::Invalid(err) => err.client_description(),
        }
    }
}

impl From<TokenError> for VerifyError {
    fn from(err: TokenError) -> Self {
        if err.is_expired() {
            Self::Expired
        } else {
            Self::Invalid(err)
        }
    }
}

/// Why [`crate::VerifierBuilder::build`] failed. Each message says what is
/// wrong and what to do about it; none contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Neither `.secret()` nor `.jwks_url()` was called.
    #[error(
        "no key source: call .secret(JWT_SECRET) if tessera signs with HS256 (its default), \
         or .jwks_url(\"<tessera>/.well-known/jwks.json\") if it signs with EdDSA, ES256 or RS256"
    )]
    NoKeySource,
    /// Both `.secret()` and `.jwks_url()` were called.
    #[error(
        "both a secret and a JWKS URL were given: use .secret(JWT_SECRET) for HS256 tokens \
         or .jwks_url(..) for EdDSA, ES256 or RS256 tokens, not both"
    )]
    ConflictingKeySources,
    /// The issuer is empty.
    #[error("the issuer is empty: pass tessera's TESSERA_ISSUER (the `iss` of its tokens)")]
    EmptyIssuer,
    /// The audience is empty.
    #[error("the audience is empty: pass tessera's TESSERA_AUDIENCE (`tessera` unless set)")]
    EmptyAudience,
    /// The secret cannot be an HS256 key (too short).
    #[error("the JWT secret is not usable: {0}; pass the very JWT_SECRET tessera signs with")]
    InvalidSecret(KeyError),
    /// The JWKS URL does not parse, or is not http(s).
    #[error("the JWKS URL {url:?} is not valid: {reason}")]
    InvalidUrl {
        /// The URL as given (any password in it replaced by `***`).
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An https JWKS URL, and the crate was built without its `rustls` feature.
    #[error("the JWKS URL {url} is https, and tessera-verify was built without its `rustls` feature: enable it")]
    TlsUnavailable {
        /// The URL as given (any password in it replaced by `***`).
        url: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
    /// The first fetch of the JWKS failed.
    #[error(
        "could not fetch tessera's JWKS from {url}: {source}; check that tessera is running and \
         that the URL is its key set (/.well-known/jwks.json for the default tenant, \
         /api/tenants/<slug>/.well-known/jwks.json for a tenant)"
    )]
    Fetch {
        /// The URL (any password in it replaced by `***`).
        url: String,
        /// What went wrong.
        source: FetchError,
    },
    /// The JWKS has no key at all: tessera signs that tenant's tokens with
    /// HS256, whose key it never publishes.
    #[error(
        "the JWKS at {url} has no keys: tessera signs these tokens with HS256, whose key is secret; \
         verify them with .secret(JWT_SECRET), or have tessera sign with a public-key algorithm \
         (TESSERA_SIGNING_ALG=EdDSA)"
    )]
    NoKeys {
        /// The URL (any password in it replaced by `***`).
        url: String,
    },
}

/// Why one fetch of the JWKS failed. After the first, a failed fetch is
/// logged and the cached keys keep serving.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The request did not complete (connection refused, DNS, TLS, reset...).
    #[error("the request failed: {0}")]
    Request(String),
    /// No complete answer within the HTTP timeout.
    #[error("no answer within the HTTP timeout")]
    Timeout,
    /// A status other than 200 (or 304 to a conditional request).
    #[error("tessera answered HTTP {status}{}", status_hint(*.status))]
    Status {
        /// The HTTP status code.
        status: u16,
    },
    /// The body is larger than [`crate::MAX_JWKS_BYTES`].
    #[error("the response is larger than {} bytes", crate::MAX_JWKS_BYTES)]
    TooLarge,
    /// The body is not JSON.
    #[error("the response is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not `{"keys": [...]}`.
    #[error("the response is not a JWK set (no \"keys\" array)")]
    NotAJwkSet,
    /// A JWK set that lists keys, none of which is usable (each is logged).
    #[error("the JWK set lists {listed} keys and none is usable (unsupported or invalid; see the warnings)")]
    NoUsableKeys {
        /// How many keys the document listed.
        listed: usize,
    },
}

fn status_hint(status: u16) -> &'static str {
    match status {
        300..=399 => " (a redirect: use the final URL)",
        404 => " (no key set at this path: check the URL and the tenant's slug)",
        500..=599 => " (tessera failed; it may be starting or overloaded)",
        _ => "",
    }
}
