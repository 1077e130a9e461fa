//! The HTTP API. Each resource module exposes its own `router()`; this module
//! merges them and adds what every request gets: a request id, the body
//! limit, JSON 404/405 answers, and a last-resort 500 for a panic.

/// Administration of a tenant's users.
pub mod admin;
/// Accounts and tokens.
pub mod auth;
/// JSON shapes of the API.
pub mod dto;
/// The one error type and its mapping to the error body.
pub mod error;
/// Body, bearer and client extractors.
pub mod extract;
/// `/healthz`, `/readyz`.
pub mod health;
/// `/api/openapi.json`.
pub mod openapi;
/// Password forgot/reset/change, email verification.
pub mod password;
/// `/api/auth/sessions`.
pub mod sessions;
/// Tenants: signup, key rotation, audit log.
pub mod tenants;
/// JWKS and discovery documents.
pub mod wellknown;

use crate::state::AppState;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use error::ApiError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;
use tracing::Instrument as _;

pub fn router(state: AppState) -> Router {
    Router::new()
        // One set of account routes, served for the default tenant and,
        // scoped by `{slug}`, for every other one.
        .nest("/api/auth", account_routes())
        .nest("/api/tenants/{slug}/auth", account_routes())
        .nest("/api/admin", admin::router())
        .nest("/api/tenants/{slug}/admin", admin::router())
        .merge(tenants::router())
        .merge(wellknown::router())
        .merge(health::router())
        .merge(openapi::router())
        .fallback(|| async { ApiError::NotFound("no such route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::internal(anyhow::anyhow!("a request handler panicked")).into_response()
            },
        ))
        .layer(axum::middleware::from_fn_with_state(state.request_timeout, request_id))
        .with_state(state)
}

/// The account routes, relative, served once per tenant prefix.
fn account_routes() -> Router<AppState> {
    auth::router().merge(sessions::router()).merge(password::router())
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Keeps a caller's `X-Request-Id` when it is short and plain, else makes one,
/// and puts it on the response and on every log line of the request.
async fn request_id(State(deadline): State<Duration>, req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .filter(|v| {
            let b = v.as_bytes();
            !b.is_empty() && b.len() <= 64 && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
        })
        .cloned()
        .unwrap_or_else(new_request_id);
    let span = tracing::info_span!(
        "request",
        id = %String::from_utf8_lossy(id.as_bytes()),
        method = %req.method(),
        path = %truncated(req.uri().path(), 256)
    );
    // hyper bounds slow headers; this bounds the rest (a body trickled in a
    // byte at a time, a handler stuck behind a store). Dropping the handler
    // is safe: a password hash in flight keeps its slot until it finishes.
    let handled = async move {
        match buffer_body(req).await {
            Ok(req) => next.run(req).await,
            Err(refused) => refused,
        }
    };
    let mut response = match tokio::time::timeout(deadline, handled.instrument(span.clone())).await {
        Ok(response) => response,
        Err(_) => {
            span.in_scope(|| tracing::warn!("request deadline exceeded"));
            ApiError::RequestTimeout.into_response()
        }
    };
    span.in_scope(|| tracing::debug!(status = response.status().as_u16(), "response"));
    let headers = response.headers_mut();
    headers.insert(X_REQUEST_ID.clone(), id);
    // Everything this API answers is about an account or a token: no cache,
    // shared or private, may keep it.
    headers
        .entry(axum::http::header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Reads the whole request body (at most [`extract::BODY_LIMIT`]) before any
/// handler runs. A handler that answers early (401, 404, 415) would
/// otherwise leave unread bytes on the connection, and hyper would then
/// close a keep-alive connection without a word, failing the client's next
/// request. A body that cannot be taken whole is refused here, with
/// `Connection: close`, since its rest is still on the wire.
async fn buffer_body(req: Request) -> Result<Request, Response> {
    use axum::http::header;
    use http_body_util::BodyExt as _;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let has_body = declared.is_some_and(|n| n > 0) || req.headers().contains_key(header::TRANSFER_ENCODING);
    if !has_body {
        return Ok(req);
    }
    let close = |err: ApiError| {
        let mut response = err.into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    };
    // Refused before a byte is read (and before `100 Continue` invites it).
    if declared.is_some_and(|n| n > extract::BODY_LIMIT as u64) {
        return Err(close(ApiError::PayloadTooLarge));
    }
    let (parts, body) = req.into_parts();
    match http_body_util::Limited::new(body, extract::BODY_LIMIT).collect().await {
        Ok(collected) => Ok(Request::from_parts(parts, axum::body::Body::from(collected.to_bytes()))),
        Err(err) if err.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(close(ApiError::PayloadTooLarge))
        }
        Err(_) => Err(close(ApiError::InvalidRequest(
            "the request body could not be read".to_owned(),
        ))),
    }
}

/// At most `max` bytes of `s`, cut at a character boundary, so a hostile
/// path cannot flood the log.
fn truncated(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A per-process random prefix and a counter: unique, and no syscall per request.
fn new_request_id() -> HeaderValue {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(rand::random::<u32>);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("{prefix:08x}-{n:012x}")).unwrap_or(HeaderValue::from_static("0"))
}
