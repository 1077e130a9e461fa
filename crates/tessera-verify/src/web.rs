//! axum integration: the [`Authenticated`] extractor, [`VerifyLayer`] and
//! [`RequireRole`], answering as tessera does.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tower::{Layer, Service};

use crate::{Claims, Verifier, VerifyError};

/// Why a request was refused: answers with tessera's status, error body
/// `{"error": "<code>", "message": "..."}` and, for a 401, the RFC 6750
/// `WWW-Authenticate` challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthRejection {
    /// 401 `missing_token`, `WWW-Authenticate: Bearer realm="tessera"`: no
    /// bearer token was sent.
    MissingToken,
    /// 401 `invalid_token` with the description in the challenge.
    InvalidToken(&'static str),
    /// 401 `token_expired`: the client should refresh its token.
    TokenExpired,
    /// 503 `unavailable`: the token names a key that could not be fetched.
    KeysUnavailable,
    /// 403 `forbidden`: a valid token whose role does not allow this.
    Forbidden,
}

impl AuthRejection {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken(_) | Self::TokenExpired => StatusCode::UNAUTHORIZED,
            Self::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Forbidden => StatusCode::FORBIDDEN,
        }
    }

    /// The `error` code of the body, one of tessera's.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidToken(_) => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::KeysUnavailable => "unavailable",
            Self::Forbidden => "forbidden",
        }
    }

    /// The `message` of the body.
    pub fn message(&self) -> &'static str {
        match self {
            Self::MissingToken => "this route needs a bearer token",
            Self::InvalidToken(_) => "the token is invalid",
            Self::TokenExpired => "the access token has expired; refresh it",
            Self::KeysUnavailable => "the token's signing key cannot be checked right now; retry shortly",
            Self::Forbidden => "your role does not allow this",
        }
    }

    fn challenge(&self) -> Option<String> {
        let described =
            |desc: &str| format!(r#"Bearer realm="tessera", error="invalid_token", error_description="{desc}""#);
        match self {
            Self::MissingToken => Some(r#"Bearer realm="tessera""#.to_owned()),
            Self::InvalidToken(desc) => Some(described(desc)),
            Self::TokenExpired => Some(described("the token has expired")),
            Self::KeysUnavailable | Self::Forbidden => None,
        }
    }
}

impl From<VerifyError> for AuthRejection {
    fn from(err: VerifyError) -> Self {
        match err {
            VerifyError::Expired => Self::TokenExpired,
            VerifyError::KeysUnavailable => Self::KeysUnavailable,
            other => Self::InvalidToken(other.description()),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
    message: &'static str,
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code(),
            message: self.message(),
        };
        let mut response = (self.status(), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(value) = self.challenge().and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if self == Self::KeysUnavailable {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

/// The bearer token of a request (RFC 6750 §2.1: `Authorization: Bearer
/// <token>`, scheme case-insensitive), as tessera reads it: no
/// `Authorization` header, or another scheme, is
/// [`AuthRejection::MissingToken`]; two headers, a non-ASCII value, or a
/// `Bearer` without exactly one token is [`AuthRejection::InvalidToken`].
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthRejection> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthRejection::MissingToken);
    };
    if values.next().is_some() {
        return Err(AuthRejection::InvalidToken("send exactly one Authorization header"));
    }
    let value = value
        .to_str()
        .map_err(|_| AuthRejection::InvalidToken("the Authorization header is not valid"))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthRejection::MissingToken);
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() || token.contains(' ') {
        return Err(AuthRejection::InvalidToken(
            "the Authorization header must be `Bearer <token>`",
        ));
    }
    Ok(token)
}

/// Verifies the bearer token of `headers`.
async fn authenticate(verifier: &Verifier, headers: &HeaderMap) -> Result<Claims, AuthRejection> {
    let token = bearer_token(headers)?;
    verifier.verify(token).await.map_err(|err| {
        tracing::debug!(reason = %err, "bearer token refused");
        AuthRejection::from(err)
    })
}

/// Extractor: the claims of the request's valid bearer token, or a 401 (see
/// [`AuthRejection`]).
///
/// It verifies with the [`Verifier`] of the router's state (the state is
/// the `Verifier`, or implements [`FromRef`] for it). When a
/// [`VerifyLayer`] already verified the request, it takes the layer's
/// [`Claims`] instead of verifying again.
///
/// Behind a `VerifyLayer`, on a router whose state has no `Verifier`,
/// extract [`Claims`] itself: it reads what the layer put in the request
/// extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated(pub Claims);

impl Authenticated {
    /// The claims.
    pub fn into_inner(self) -> Claims {
        self.0
    }
}

impl Deref for Authenticated {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.0
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(claims) = parts.extensions.get::<Claims>() {
            return Ok(Self(claims.clone()));
        }
        let verifier = Verifier::from_ref(state);
        authenticate(&verifier, &parts.headers).await.map(Self)
    }
}

/// Extractor for routes behind a [`VerifyLayer`]: the claims it verified.
/// Without the layer, every request is refused with 401 `missing_token`
/// (and an error is logged): it never lets a request through unverified.
impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Claims>() {
            Some(claims) => Ok(claims.clone()),
            None => {
                tracing::error!(
                    "`Claims` extracted on a route without VerifyLayer: add the layer, or extract `Authenticated`"
                );
                Err(AuthRejection::MissingToken)
            }
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A tower [`Layer`] that verifies every request's bearer token with a
/// [`Verifier`]: a request without a valid one is answered as
/// [`Authenticated`] would (401, tessera's body and challenge) and never
/// reaches the inner service; a valid one goes on with the [`Claims`] in
/// its extensions.
#[derive(Debug, Clone)]
pub struct VerifyLayer {
    verifier: Verifier,
}

impl VerifyLayer {
    /// Verifies with `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The service of a [`VerifyLayer`].
#[derive(Debug, Clone)]
pub struct VerifyService<S> {
    inner: S,
    verifier: Verifier,
}

impl<S, B> Service<Request<B>> for VerifyService<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone may not be ready; the original, which is, serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        Box::pin(async move {
            match authenticate(&verifier, request.headers()).await {
                Ok(claims) => {
                    request.extensions_mut().insert(claims);
                    inner.call(request).await
                }
                Err(rejection) => Ok(rejection.into_response()),
            }
        })
    }
}

/// Only for tokens of given roles: a tower [`Layer`] placed behind a
/// [`VerifyLayer`] (it reads the [`Claims`] the latter puts in the
/// request), and a check on claims ([`RequireRole::check`]).
///
/// A request whose role is not one of them gets 403 `forbidden`; one with
/// no `Claims` at all (no `VerifyLayer` in front) 401 `missing_token`.
/// Roles are compared exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequireRole {
    roles: Arc<[String]>,
}

impl RequireRole {
    /// Only `role`.
    pub fn new(role: impl Into<String>) -> Self {
        Self {
            roles: Arc::from([role.into()]),
        }
    }

    /// Any one of `roles`. An empty list allows no one.
    pub fn any<I>(roles: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self {
            roles: roles.into_iter().map(Into::into).collect(),
        }
    }

    /// The roles allowed.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// Whether `claims` has one of the roles.
    pub fn allows(&self, claims: &Claims) -> bool {
        self.roles.iter().any(|role| claims.has_role(role))
    }

    /// `Ok` if `claims` has one of the roles, else [`AuthRejection::Forbidden`]
    /// (for a handler: `RequireRole::new("admin").check(&auth)?`).
    pub fn check(&self, claims: &Claims) -> Result<(), AuthRejection> {
        if self.allows(claims) {
            Ok(())
        } else {
            Err(AuthRejection::Forbidden)
        }
    }
}

impl<S> Layer<S> for RequireRole {
    type Service = RequireRoleService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireRoleService {
            inner,
            roles: self.clone(),
        }
    }
}

/// The service of a [`RequireRole`] layer.
#[derive(Debug, Clone)]
pub struct RequireRoleService<S> {
    inner: S,
    roles: RequireRole,
}

impl<S, B> Service<Request<B>> for RequireRoleService<S>
where
    S: Service<Request<B>, Response = Response>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let verdict = match request.extensions().get::<Claims>() {
            None => {
                tracing::error!("RequireRole without VerifyLayer in front of it: every request is refused");
                Err(AuthRejection::MissingToken)
            }
            Some(claims) => self.roles.check(claims),
        };
        match verdict {
            Ok(()) => Box::pin(self.inner.call(request)),
            Err(rejection) => Box::pin(std::future::ready(Ok(rejection.into_response()))),
        }
    }
}
