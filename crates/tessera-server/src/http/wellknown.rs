//! `/.well-known/jwks.json` and `/.well-known/openid-configuration`, for
//! the default tenant and (under `/api/tenants/{slug}`) for every other.
//!
//! Both are public and cacheable: `Cache-Control: public, max-age` of the
//! configured JWKS max-age, which the rotation schedule respects (a next key
//! is published at least that long before it signs), and a strong `ETag`, so
//! a verifier revalidating with `If-None-Match` gets a 304 without a body.
//! The JWKS is built when a tenant's keys change, never per request.

use super::error::ApiError;
use super::extract::TenantScope;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/api/tenants/{slug}/.well-known/jwks.json", get(tenant_jwks))
        .route(
            "/api/tenants/{slug}/.well-known/openid-configuration",
            get(tenant_discovery),
        )
}

/// The tenant's public signing keys (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys",
    params(("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer")),
    responses(
        (status = 200, description = "The public keys of the default tenant: the next key before it signs, the active one, retired ones until their last token expires. `{\"keys\":[]}` for HS256. `Cache-Control: public, max-age=...`, `ETag`.", body = super::dto::JwkSetDto),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
    ))]
async fn jwks(State(state): State<AppState>, tenant: TenantScope, headers: HeaderMap) -> Result<Response, ApiError> {
    let document = state.tokens.keys().jwks(tenant.id());
    let (body, etag) = match &document {
        Some(jwks) => (jwks.body.as_str(), jwks.etag.as_str()),
        // Keys this instance cannot open (logged when they failed): nothing
        // to publish, and nothing it signs either.
        None => (r#"{"keys":[]}"#, r#""empty""#),
    };
    Ok(cacheable(&state, &headers, etag, body.to_owned()))
}

/// Per-tenant documentation path of the same handler.
#[utoipa::path(get, path = "/api/tenants/{slug}/.well-known/jwks.json", tag = "keys",
    params(("slug" = String, Path, description = "The tenant's slug"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer")),
    responses(
        (status = 200, description = "The tenant's public keys, as `/.well-known/jwks.json`", body = super::dto::JwkSetDto),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 404, description = "No such tenant", body = super::dto::ErrorBody),
    ))]
async fn tenant_jwks(state: State<AppState>, tenant: TenantScope, headers: HeaderMap) -> Result<Response, ApiError> {
    jwks(state, tenant, headers).await
}

/// A tenant's discovery document.
#[utoipa::path(get, path = "/api/tenants/{slug}/.well-known/openid-configuration", tag = "keys",
    params(("slug" = String, Path, description = "The tenant's slug")),
    responses((status = 200, description = "Issuer, JWKS URL and algorithms of the tenant", body = Discovery),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag"),
        (status = 404, description = "No such tenant", body = super::dto::ErrorBody)))]
async fn tenant_discovery(
    state: State<AppState>,
    tenant: TenantScope,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    discovery(state, tenant, headers).await
}

/// Discovery metadata for verifiers (OpenID Connect Discovery 1.0 names).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Discovery {
    /// The `iss` of every token.
    issuer: String,
    /// Where the tenant's JWKS is.
    jwks_uri: String,
    /// What the tenant signs access tokens with (and will, after its next rotation).
    id_token_signing_alg_values_supported: Vec<&'static str>,
    subject_types_supported: [&'static str; 1],
    /// The claims of access tokens.
    claims_supported: [&'static str; 11],
    /// The `aud` of access tokens.
    audience: String,
    /// The tenant these keys are for (tessera's own member).
    tenant_id: uuid::Uuid,
    tenant_slug: String,
}

/// Where verifiers find the tenant's keys.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "keys",
    responses((status = 200, description = "Issuer, JWKS URL and algorithms of the default tenant; the same under `/api/tenants/{slug}/.well-known/openid-configuration` for a tenant", body = Discovery),
        (status = 304, description = "Unchanged since the `If-None-Match` ETag")))]
async fn discovery(
    State(state): State<AppState>,
    tenant: TenantScope,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let base = state.public_base.as_str();
    let jwks_uri = if tenant.named {
        format!("{base}/api/tenants/{}/.well-known/jwks.json", tenant.tenant.slug)
    } else {
        format!("{base}/.well-known/jwks.json")
    };
    let algs = state
        .tokens
        .keys()
        .jwks(tenant.id())
        .map(|jwks| jwks.algs.iter().map(|a| a.name()).collect())
        .unwrap_or_default();
    let document = Discovery {
        issuer: state.tokens.issuer().to_owned(),
        jwks_uri,
        id_token_signing_alg_values_supported: algs,
        subject_types_supported: ["public"],
        claims_supported: [
            "iss", "aud", "sub", "sid", "tid", "email", "role", "iat", "nbf", "exp", "jti",
        ],
        audience: state.tokens.audience().to_owned(),
        tenant_id: tenant.id().as_uuid(),
        tenant_slug: tenant.tenant.slug.as_str().to_owned(),
    };
    let body = serde_json::to_string(&document).map_err(ApiError::internal)?;
    let etag = crate::keys::strong_etag(&body);
    Ok(cacheable(&state, &headers, &etag, body))
}

/// A 200 with `body`, or a 304 when `If-None-Match` names `etag`; both with
/// the cache headers.
fn cacheable(state: &AppState, headers: &HeaderMap, etag: &str, body: String) -> Response {
    let max_age = state.tokens.keys().policy().jwks_max_age.as_secs();
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        // RFC 9110 §13.1.2: If-None-Match compares weakly.
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag);
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    response
}
