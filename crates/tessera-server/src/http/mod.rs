//! The HTTP API. Each resource module exposes its own `router()`; this module
//! merges them and adds what every request gets: a request id, the body
//! limit, JSON 404/405 answers, and a last-resort 500 for a panic.

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
/// `/api/auth/sessions`.
pub mod sessions;

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
        .merge(auth::router())
        .merge(sessions::router())
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
    let mut response = match tokio::time::timeout(deadline, next.run(req).instrument(span.clone())).await {
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
