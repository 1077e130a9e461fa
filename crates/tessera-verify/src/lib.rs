//! Verify tessera's access tokens in your
//! own service, without calling tessera for each request.
//!
//! A [`Verifier`] checks a token the way tessera itself does (the rules of
//! [`tessera_token`]: the key decides the algorithm, `typ` must be
//! `at+jwt`, `iss`, `aud`, `exp`, `nbf`, `iat` are checked, with a leeway
//! of at most 30 s) and hands back its owned [`Claims`]. It gets its keys
//! in one of two ways:
//!
//! - **Shared secret** ([`VerifierBuilder::secret`]): tessera signs with
//!   HS256 by default, keyed with `JWT_SECRET`. Give the service the same
//!   secret (never `REFRESH_TOKEN_SECRET`). This verifies the default
//!   tenant's tokens.
//! - **JWKS** ([`VerifierBuilder::jwks_url`]): when tessera signs with
//!   EdDSA, ES256 or RS256 (`TESSERA_SIGNING_ALG`, or a tenant's
//!   `signingAlg`) it publishes the public keys at `/.well-known/jwks.json`
//!   (default tenant) and `/api/tenants/{slug}/.well-known/jwks.json`. The
//!   service needs no secret at all.
//!
//! In JWKS mode the key set is fetched once when the verifier is built (a
//! failure there fails [`VerifierBuilder::build`], with a message saying
//! what to check) and then kept in memory:
//!
//! - Every verification is done from memory: a hash lookup of the token's
//!   `kid` in an `Arc<KeySet>` swapped atomically on refresh, no allocation
//!   but the returned [`Claims`].
//! - When the cached set is older than its `Cache-Control: max-age`
//!   (capped by [`VerifierBuilder::max_cache_age`], 1 h by default; 5 min
//!   when tessera sends none), the next verification starts a refresh in
//!   the background, conditional on the `ETag` (`If-None-Match`, so an
//!   unchanged set costs a 304), and goes on with the cached keys.
//! - A token whose `kid` is unknown triggers a refetch (tessera may have
//!   rotated), then is verified again. Concurrent callers share one fetch,
//!   and fetches start at most once per
//!   [`VerifierBuilder::min_refetch_interval`] (30 s by default), whatever
//!   triggers them: a flood of tokens with made-up kids costs tessera at
//!   most one request per interval. (On a graceful rotation tessera
//!   publishes a tenant's next key a max-age before signing with it, so a
//!   verifier normally knows a key before it meets a token of it; after a
//!   `revoke` rotation or a change of algorithm a new key signs at once, and
//!   a verifier that fetched within the last interval refuses its tokens
//!   until the interval has passed.)
//! - If tessera is unreachable, slow (see [`VerifierBuilder::http_timeout`])
//!   or answers an error, an oversized body ([`MAX_JWKS_BYTES`]) or
//!   something that is not a JWK set, the cached keys keep serving and a
//!   warning is logged with `tracing`. A JWK this crate cannot use
//!   (unsupported `kty` or `alg`, invalid key) is skipped with a warning. A
//!   token with an unknown kid while the last fetch failed is
//!   [`VerifyError::KeysUnavailable`] (a 503, not a 401: the token may be
//!   good).
//!
//! Restrict a verifier to one tenant's tokens with
//! [`VerifierBuilder::tenant`].
//!
//! # Shared secret, end to end
//!
//! Here tessera's side is played by [`tessera_token`], signing the way
//! tessera does with `JWT_SECRET`:
//!
//! ```
//! use std::borrow::Cow;
//! use std::time::{SystemTime, UNIX_EPOCH};
//!
//! use tessera_token::{AccessClaims, Key, Keyring, TokenKind, Uuid, DEFAULT_TENANT};
//! use tessera_verify::{Verifier, VerifyError};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let jwt_secret = "a JWT_SECRET of at least 32 bytes, shared with tessera";
//!
//! // tessera signs a token for Ada...
//! let tessera = Keyring::new(
//!     Key::from_secret(TokenKind::Access, jwt_secret.as_bytes())?,
//!     Key::from_secret(TokenKind::Refresh, b"tessera's REFRESH_TOKEN_SECRET, kept to itself")?,
//! )?;
//! let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
//! let ada = Uuid::new_v4();
//! let token = tessera.sign_access(&AccessClaims {
//!     iss: Cow::Borrowed("http://127.0.0.1:8080"),
//!     aud: Cow::Borrowed("tessera"),
//!     sub: ada,
//!     sid: Uuid::new_v4(),
//!     tid: DEFAULT_TENANT,
//!     email: Cow::Borrowed("ada@example.com"),
//!     role: Cow::Borrowed("user"),
//!     iat: now,
//!     nbf: now,
//!     exp: now + 900,
//!     jti: Uuid::new_v4(),
//! });
//!
//! // ...and your service verifies it with the same secret.
//! let verifier = Verifier::builder("http://127.0.0.1:8080", "tessera")
//!     .secret(jwt_secret)
//!     .build()
//!     .await?;
//! let claims = verifier.verify(&token).await?;
//! assert_eq!(claims.sub, ada);
//! assert_eq!(claims.email, "ada@example.com");
//! assert!(claims.has_role("user"));
//!
//! // A forged or altered token is refused; only an expired one says so.
//! let mut tampered = token.clone();
//! tampered.pop();
//! tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
//! let err = verifier.verify(&tampered).await.unwrap_err();
//! assert!(matches!(err, VerifyError::Invalid(_)) && !err.is_expired());
//!
//! // A verifier expecting another issuer refuses it too.
//! let elsewhere = Verifier::builder("https://auth.example.com", "tessera")
//!     .secret(jwt_secret)
//!     .build()
//!     .await?;
//! assert!(elsewhere.verify(&token).await.is_err());
//! # Ok(())
//! # }
//! ```
//!
//! # JWKS
//!
//! ```no_run
//! use std::time::Duration;
//! use tessera_verify::Verifier;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tessera_verify::BuildError> {
//! let verifier = Verifier::builder("http://127.0.0.1:8080", "tessera")
//!     .jwks_url("http://127.0.0.1:8080/.well-known/jwks.json")
//!     .min_refetch_interval(Duration::from_secs(30))
//!     .build()
//!     .await?; // fails, saying why, when tessera cannot be reached
//! # let _ = verifier;
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `rustls` (default): https JWKS URLs, with rustls and the webpki roots.
//! - `axum` (default): [`Authenticated`], [`VerifyLayer`], [`RequireRole`],
//!   answering refusals with tessera's error bodies.
#![cfg_attr(
    feature = "axum",
    doc = r##"
# axum

[`Authenticated`] is an extractor that verifies the request's
`Authorization: Bearer <token>` with the router state's [`Verifier`].
[`VerifyLayer`] does the same for every route it wraps and puts the
[`Claims`] in the request; [`RequireRole`] after it lets only some roles
through. Refusals are tessera's: 401 `missing_token`, `invalid_token` or
`token_expired` with a `WWW-Authenticate: Bearer ...` challenge, 403
`forbidden`.

```
use axum::{body::Body, http::{Request, StatusCode}, routing::get, Json, Router};
use tessera_verify::{Authenticated, Claims, RequireRole, Verifier, VerifyLayer};
use tower::ServiceExt as _;

// Any valid token: the extractor verifies it.
async fn me(Authenticated(claims): Authenticated) -> Json<Claims> {
    Json(claims)
}

// A check inside the handler...
async fn reports(user: Authenticated) -> Result<&'static str, tessera_verify::AuthRejection> {
    RequireRole::any(["admin", "owner"]).check(&user)?;
    Ok("the reports")
}

// ...or layers for a whole router: VerifyLayer first, then RequireRole.
async fn admin_stats(claims: Claims) -> String {
    format!("hello, admin {}", claims.email)
}

fn app(verifier: Verifier) -> Router {
    let admin = Router::new()
        .route("/api/admin/stats", get(admin_stats))
        .route_layer(RequireRole::new("admin")) // runs second
        .route_layer(VerifyLayer::new(verifier.clone())); // runs first
    Router::new()
        .route("/api/me", get(me))
        .route("/api/reports", get(reports))
        .merge(admin)
        .with_state(verifier)
}

# #[tokio::main(flavor = "current_thread")]
# async fn main() -> Result<(), Box<dyn std::error::Error>> {
let verifier = Verifier::builder("http://127.0.0.1:8080", "tessera")
    .secret("a JWT_SECRET of at least 32 bytes, shared with tessera")
    .build()
    .await?;
let app = app(verifier);

let response = app
    .clone()
    .oneshot(Request::get("/api/me").body(Body::empty())?)
    .await?;
assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
assert_eq!(response.headers()["www-authenticate"], r#"Bearer realm="tessera""#);

let response = app
    .oneshot(
        Request::get("/api/admin/stats")
            .header("authorization", "Bearer not.a.token")
            .body(Body::empty())?,
    )
    .await?;
assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
let challenge = response.headers()["www-authenticate"].to_str()?;
assert!(challenge.contains(r#"error="invalid_token""#));
# Ok(())
# }
```
"##
)]
#![forbid(unsafe_code)]

/// The owned claims.
mod claims;
/// Verify, build and fetch errors.
mod error;
/// The JWKS cache.
mod jwks;
/// `Verifier` and its builder.
mod verifier;
/// axum extractor and layers.
#[cfg(feature = "axum")]
mod web;

pub use claims::Claims;
pub use error::{BuildError, FetchError, VerifyError};
pub use jwks::{DEFAULT_CACHE_AGE, MAX_JWKS_BYTES};
pub use verifier::{
    Verifier, VerifierBuilder, DEFAULT_HTTP_TIMEOUT, DEFAULT_MAX_CACHE_AGE, DEFAULT_MIN_REFETCH_INTERVAL,
};
#[cfg(feature = "axum")]
pub use web::{
    bearer_token, AuthRejection, Authenticated, RequireRole, RequireRoleService, VerifyLayer, VerifyService,
};

/// The token crate this one verifies with (its `Uuid`, `TokenError`, ...).
pub use tessera_token;
