//! The one error type of the HTTP layer. Every failure a handler can have is a
//! variant here, and each maps to exactly one status and `error` code of the
//! contract, so no client input can turn into an unplanned 500.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::BTreeMap;
use tessera_store::{Conflict, StoreError};

pub type ApiResult<T> = Result<T, ApiError>;

/// Field name → what is wrong with it, for 422 bodies.
pub type FieldErrors = BTreeMap<&'static str, String>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `invalid_request`: malformed JSON, a bad query string or path.
    #[error("{0}")]
    InvalidRequest(String),
    /// 422 `validation_failed`, with the fields at fault.
    #[error("request fields are missing or invalid")]
    Validation(FieldErrors),
    /// 415 `unsupported_media_type`.
    #[error("request body must be uncompressed JSON (Content-Type: application/json, no Content-Encoding)")]
    UnsupportedMediaType,
    /// 413 `payload_too_large`.
    #[error("request body is larger than 64 KiB")]
    PayloadTooLarge,
    /// 401 `invalid_credentials`: wrong email or password, indistinguishably.
    #[error("email or password is incorrect")]
    InvalidCredentials,
    /// 401 `missing_token`.
    #[error("this route needs a bearer token")]
    MissingToken,
    /// 401 `invalid_token`; the description goes to `WWW-Authenticate`.
    #[error("the token is invalid")]
    InvalidToken(&'static str),
    /// 401 `token_expired`.
    #[error("the access token has expired; refresh it")]
    TokenExpired,
    /// 401 `refresh_token_reused`.
    #[error("this refresh token was already used; the session has been revoked, log in again")]
    RefreshTokenReused,
    /// 401 `invalid_api_key`: an `X-Api-Key` that is not the tenant's.
    #[error("the API key is not valid for this tenant")]
    InvalidApiKey,
    /// 403 `forbidden`: authenticated, but the role does not allow it.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 403 `email_not_verified`: the right password, but the account's
    /// email must be verified first (`TESSERA_REQUIRE_EMAIL_VERIFICATION`).
    #[error("verify your email address first: follow the link we mailed you, or ask for a new one at /email/resend")]
    EmailNotVerified,
    /// 404 `not_found`.
    #[error("{0}")]
    NotFound(&'static str),
    /// 405 `method_not_allowed`.
    #[error("this method is not allowed on this route")]
    MethodNotAllowed,
    /// 408 `request_timeout`: the request (headers and body) took too long to arrive.
    #[error("the request took too long to arrive; send it again")]
    RequestTimeout,
    /// 409 `email_taken`.
    #[error("an account with this email already exists")]
    EmailTaken,
    /// 409 `conflict`: the request contradicts the server's state or configuration.
    #[error("{0}")]
    Conflict(&'static str),
    /// 409 `conflict` with `Retry-After`: a graceful rotation that would
    /// sign with a key verifiers may not have fetched yet.
    #[error("{message}")]
    RotationTooSoon { message: String, retry_after: u32 },
    /// 429 `rate_limited`, with `Retry-After` in whole seconds: a rate
    /// limit refused the request.
    #[error("too many requests; retry in {retry_after} s")]
    RateLimited { retry_after: u32 },
    /// 503 `unavailable`, with `Retry-After` in seconds.
    #[error("{message}")]
    Unavailable { message: &'static str, retry_after: u32 },
    /// 500 `internal`: a bug. The cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a FieldErrors>,
}

impl ApiError {
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    pub fn field(name: &'static str, problem: impl Into<String>) -> Self {
        Self::Validation(BTreeMap::from([(name, problem.into())]))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidCredentials
            | Self::MissingToken
            | Self::InvalidToken(_)
            | Self::TokenExpired
            | Self::RefreshTokenReused
            | Self::InvalidApiKey => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::EmailNotVerified => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::EmailTaken | Self::Conflict(_) | Self::RotationTooSoon { .. } => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::Validation(_) => "validation_failed",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::InvalidCredentials => "invalid_credentials",
            Self::MissingToken => "missing_token",
            Self::InvalidToken(_) => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::InvalidApiKey => "invalid_api_key",
            Self::Forbidden(_) => "forbidden",
            Self::EmailNotVerified => "email_not_verified",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout => "request_timeout",
            Self::EmailTaken => "email_taken",
            Self::Conflict(_) | Self::RotationTooSoon { .. } => "conflict",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// RFC 6750 §3 challenge. RFC 9110 requires one on every 401.
    fn challenge(&self) -> Option<String> {
        let described =
            |desc: &str| format!(r#"Bearer realm="tessera", error="invalid_token", error_description="{desc}""#);
        match self {
            Self::MissingToken | Self::InvalidCredentials | Self::InvalidApiKey => {
                Some(r#"Bearer realm="tessera""#.to_owned())
            }
            Self::InvalidToken(desc) => Some(described(desc)),
            Self::TokenExpired => Some(described("the token has expired")),
            Self::RefreshTokenReused => Some(described("the refresh token was already used")),
            _ => None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(Conflict::EmailTaken) => Self::EmailTaken,
            StoreError::Unavailable(source) => {
                tracing::error!(error = %source, "store unavailable");
                Self::Unavailable {
                    message: "the store is unavailable; retry shortly",
                    retry_after: 1,
                }
            }
            other => Self::Internal(other.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(err) = &self {
            tracing::error!(error = format!("{err:#}"), "request failed with an internal error");
        }
        let message = self.to_string();
        let body = ErrorBody {
            error: self.code(),
            message: &message,
            fields: match &self {
                Self::Validation(fields) => Some(fields),
                _ => None,
            },
        };
        let mut response = (self.status(), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(challenge) = self.challenge() {
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        if let Self::Unavailable { retry_after, .. }
        | Self::RotationTooSoon { retry_after, .. }
        | Self::RateLimited { retry_after } = self
        {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

impl From<crate::hashing::HashPoolError> for ApiError {
    fn from(err: crate::hashing::HashPoolError) -> Self {
        match err {
            crate::hashing::HashPoolError::Busy => Self::Unavailable {
                message: "too many password checks in progress; retry shortly",
                retry_after: 1,
            },
            other => Self::Internal(other.into()),
        }
    }
}
