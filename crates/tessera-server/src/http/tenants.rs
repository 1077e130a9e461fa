//! Tenants: signup, key rotation, the audit log.

use super::auth::start_session;
use super::dto::{AuditEventDto, AuditPage, RotateResponse, SignupResponse, TenantDto, UserDto};
use super::error::{ApiError, ApiResult};
use super::extract::{checked, ClientMeta, Fields, JsonObject, OptionalJsonObject, QueryParams, TenantScope};
use crate::audit::{event, Event};
use crate::keys::{RotateError, RotateOptions};
use crate::state::AppState;
use crate::tenants::hash_api_key;
use crate::tokens::unix_now;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::{Rng as _, RngCore as _};
use std::collections::HashMap;
use tessera_core::{Email, Password, PersonName, Role, TenantId, TenantName, TenantSlug, UserId};
use tessera_store::{Conflict, NewTenant, NewUser, RotationMode, StoreError, Tenant, TenantRecord, User};
use tessera_token::Algorithm;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/signup", post(signup))
        .route("/api/tenants/{slug}/keys/rotate", post(rotate_keys))
        .route("/api/tenants/{slug}/audit", get(audit))
}

static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Slug attempts before giving up: the name's slug, then with random suffixes.
const SLUG_ATTEMPTS: usize = 6;
const AUDIT_DEFAULT_LIMIT: u32 = 50;
const AUDIT_MAX_LIMIT: u32 = 500;

/// Who administers a tenant in this request.
enum Admin {
    ApiKey,
    Owner {
        user: UserId,
        session: tessera_core::SessionId,
    },
}

impl Admin {
    fn describe(&self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Owner { .. } => "owner",
        }
    }

    fn event(&self, event: Event) -> Event {
        match self {
            Self::ApiKey => event,
            Self::Owner { user, session } => event.user(*user).session(*session),
        }
    }
}

/// `None` when the request carries no `X-Api-Key`; otherwise whether it is
/// the tenant's (exactly one header, matching in constant time).
pub(super) fn presented_api_key(tenant: &TenantScope, headers: &HeaderMap) -> Option<ApiResult<()>> {
    let mut keys = headers.get_all(&X_API_KEY).iter();
    let key = keys.next()?;
    if keys.next().is_some() {
        return Some(Err(ApiError::InvalidApiKey));
    }
    let Ok(key) = key.to_str() else {
        return Some(Err(ApiError::InvalidApiKey));
    };
    Some(if tenant.tenant.api_key_matches(key) {
        Ok(())
    } else {
        Err(ApiError::InvalidApiKey)
    })
}

/// The tenant's API key (`X-Api-Key`) or a live session of its owner.
async fn tenant_admin(state: &AppState, tenant: &TenantScope, headers: &HeaderMap) -> ApiResult<Admin> {
    if let Some(checked) = presented_api_key(tenant, headers) {
        return checked.map(|()| Admin::ApiKey);
    }
    // The role as stored now, not as the token says: an owner demoted since
    // the token was issued (or a token signed with a leaked JWT_SECRET)
    // administers nothing.
    let (caller, _) = super::extract::require_role(state, headers, tenant, &[Role::OWNER])
        .await
        .map_err(|err| match err {
            ApiError::Forbidden(_) => ApiError::Forbidden("only the tenant's owner or its API key may do this"),
            other => other,
        })?;
    Ok(Admin::Owner {
        user: caller.user,
        session: caller.session,
    })
}

/// Create a tenant: its keys, its owner (role `owner`), the owner's first
/// session, and the tenant's API key (shown this once).
#[utoipa::path(post, path = "/api/auth/signup", tag = "tenants",
    request_body = super::dto::SignupRequest,
    responses(
        (status = 201, description = "Tenant created, its owner logged in", body = SignupResponse),
        (status = 400, description = "Malformed JSON", body = super::dto::ErrorBody),
        (status = 403, description = "`forbidden`: signup is turned off (`TESSERA_SIGNUP=off`)", body = super::dto::ErrorBody),
        (status = 409, description = "`conflict`: no free slug for this tenant name", body = super::dto::ErrorBody),
        (status = 413, body = super::dto::ErrorBody), (status = 415, body = super::dto::ErrorBody),
        (status = 422, description = "`validation_failed`", body = super::dto::ErrorBody),
        (status = 429, description = "`rate_limited`: too many requests from this client (`TESSERA_IP_RATE_LIMIT`); `Retry-After` says when to retry", body = super::dto::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 503, description = "`unavailable`", body = super::dto::ErrorBody),
    ))]
async fn signup(
    State(state): State<AppState>,
    client: ClientMeta,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    if !state.signup_open {
        return Err(ApiError::Forbidden("tenant signup is turned off on this server"));
    }
    let mut f = Fields::new(body);
    let email = f.required("email", |s| Email::parse(&s));
    let password = f.required("password", Password::parse);
    let first_name = f.required("firstName", |s| PersonName::parse(&s));
    let last_name = f.required("lastName", |s| PersonName::parse_optional(&s));
    let tenant_name = f.required("tenantName", |s| TenantName::parse(&s));
    let alg = f.optional("signingAlg", parse_alg);
    f.finish()?;
    let alg = checked(alg)?.unwrap_or(Algorithm::HS256);
    let (email, password, first_name, last_name, tenant_name) = (
        checked(email)?,
        checked(password)?,
        checked(first_name)?,
        checked(last_name)?,
        checked(tenant_name)?,
    );

    state
        .limits
        .client(client.addr, crate::ratelimit::Outage::Allow)
        .await?;
    let password_hash = state.hasher.hash(password).await?;
    let now = unix_now();
    let tenant_id = TenantId::random();
    let api_key = new_api_key();
    let api_key_hash = hash_api_key(&api_key).to_vec();
    let owner = User {
        id: UserId::random(),
        tenant: tenant_id,
        email,
        email_verified: false,
        first_name: first_name.as_str().to_owned(),
        last_name: last_name.as_str().to_owned(),
        role: Role::owner(),
        created_at: now,
    };
    // Made once, whatever the slug attempts: an RSA key takes a while.
    let keys = state
        .tokens
        .keys()
        .new_tenant_keys_off_runtime(tenant_id, alg, now)
        .await
        .map_err(ApiError::internal)?;
    let base_slug = TenantSlug::from_name(tenant_name.as_str());
    let mut created: Option<Tenant> = None;
    for attempt in 0..SLUG_ATTEMPTS {
        let slug = if attempt == 0 {
            base_slug.clone()
        } else {
            base_slug.with_suffix(&random_suffix()).map_err(ApiError::internal)?
        };
        let result = state
            .tenant_store
            .create_tenant(
                NewTenant {
                    id: tenant_id,
                    slug,
                    name: tenant_name.clone(),
                    api_key_hash: Some(api_key_hash.clone()),
                    created_at: now,
                },
                keys.clone(),
                Some(NewUser {
                    id: owner.id,
                    tenant: tenant_id,
                    email: owner.email.clone(),
                    password_hash: password_hash.clone(),
                    first_name: first_name.clone(),
                    last_name: last_name.clone(),
                    role: Role::owner(),
                    created_at: now,
                }),
            )
            .await;
        match result {
            Ok(tenant) => {
                created = Some(tenant);
                break;
            }
            Err(StoreError::Conflict(Conflict::SlugTaken)) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    let Some(tenant) = created else {
        return Err(ApiError::Conflict(
            "could not find a free slug for this tenant name; try a more distinctive name",
        ));
    };
    state.tokens.keys().reload_tenant(tenant.id, now).await?;
    let info = state.tenants.remember(TenantRecord {
        tenant: tenant.clone(),
        api_key_hash: Some(api_key_hash),
    });
    let (session, pair, _) = start_session(&state, &owner, &client, None).await?;
    tracing::info!(tenant = %tenant.id, slug = %tenant.slug, owner = %owner.id, "tenant created");
    state.audit.record(
        Event::new(event::TENANT_CREATED, tenant.id, now)
            .user(owner.id)
            .client(&client)
            .detail(serde_json::json!({"slug": tenant.slug.as_str()})),
    );
    state.audit.record(
        Event::new(event::USER_REGISTERED, tenant.id, now)
            .user(owner.id)
            .session(session)
            .client(&client)
            .detail(serde_json::json!({"role": Role::OWNER})),
    );
    super::password::mail_token(
        &state,
        owner.clone(),
        info,
        tessera_store::AccountTokenPurpose::EmailVerification,
    );
    let body = SignupResponse {
        tenant: TenantDto {
            id: tenant.id.as_uuid(),
            slug: tenant.slug.as_str().to_owned(),
            name: tenant.name.clone(),
        },
        user: UserDto::from(&owner),
        tokens: pair.into(),
        api_key,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `tsk_` and 256 random bits, url-safe.
pub fn new_api_key() -> String {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    format!("tsk_{}", URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// Rotate the tenant's signing keys.
#[utoipa::path(post, path = "/api/tenants/{slug}/keys/rotate", tag = "tenants",
    params(("slug" = String, Path, description = "The tenant's slug")),
    request_body(content = Option<super::dto::RotateRequest>, description = "Optional: an empty body means mode `graceful`"),
    security(("bearer" = []), ("apiKey" = [])),
    responses(
        (status = 200, description = "The kids that sign from now on", body = RotateResponse),
        (status = 400, body = super::dto::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `invalid_api_key`", body = super::dto::ErrorBody),
        (status = 403, description = "`forbidden`: the token is not the owner's", body = super::dto::ErrorBody),
        (status = 404, description = "No such tenant", body = super::dto::ErrorBody),
        (status = 409, description = "`conflict`: a graceful rotation of a public-key tenant whose next key has not been published for the JWKS max-age yet (`Retry-After` says when to retry)", body = super::dto::ErrorBody),
        (status = 413, body = super::dto::ErrorBody), (status = 415, body = super::dto::ErrorBody),
        (status = 422, body = super::dto::ErrorBody),
        (status = 503, body = super::dto::ErrorBody),
    ))]
async fn rotate_keys(
    State(state): State<AppState>,
    tenant: TenantScope,
    client: ClientMeta,
    req: Request,
) -> ApiResult<Json<RotateResponse>> {
    let headers = req.headers().clone();
    let admin = tenant_admin(&state, &tenant, &headers).await?;
    let OptionalJsonObject(body) = OptionalJsonObject::from_request(req, &state).await?;
    let mut f = Fields::new(body.unwrap_or_default());
    let mode = f.optional("mode", |s| match s.as_str() {
        "graceful" => Ok(RotationMode::Graceful),
        "revoke" => Ok(RotationMode::Revoke),
        _ => Err("must be graceful or revoke"),
    });
    let alg = f.optional("signingAlg", parse_alg);
    f.finish()?;
    let mode = checked(mode)?.unwrap_or(RotationMode::Graceful);
    let alg = checked(alg)?;

    let now = unix_now();
    let rotated = rotate(&state, tenant.id(), mode, alg, now).await?;
    let mode_name = mode_name(mode);
    tracing::info!(tenant = %tenant.id(), mode = mode_name, by = admin.describe(), "keys rotated");
    state.audit.record(
        admin
            .event(Event::new(event::KEYS_ROTATED, tenant.id(), now))
            .client(&client)
            .detail(serde_json::json!({
                "mode": mode_name,
                "by": admin.describe(),
                "signingAlg": alg.map(Algorithm::name),
                "accessKid": rotated.access_kid,
                "refreshKid": rotated.refresh_kid,
            })),
    );
    Ok(Json(RotateResponse {
        access_kid: rotated.access_kid,
        refresh_kid: rotated.refresh_kid,
    }))
}

/// A `signingAlg` field.
fn parse_alg(name: String) -> Result<Algorithm, &'static str> {
    Algorithm::from_name(&name).ok_or("must be HS256, EdDSA, ES256 or RS256")
}

pub fn mode_name(mode: RotationMode) -> &'static str {
    match mode {
        RotationMode::Graceful => "graceful",
        RotationMode::Revoke => "revoke",
    }
}

/// Rotates in the store and in memory; a revocation also ends every session
/// of the tenant (its refresh tokens no longer verify anyway, but the
/// sessions must not linger in lists).
pub async fn rotate(
    state: &AppState,
    tenant: TenantId,
    mode: RotationMode,
    alg: Option<Algorithm>,
    now: i64,
) -> ApiResult<tessera_store::RotatedKeys> {
    let options = RotateOptions {
        alg,
        expect_active: None,
        wait_for_publication: true,
    };
    let rotated = state
        .tokens
        .keys()
        .rotate(tenant, mode, now, options)
        .await
        .map_err(|e| match e {
            RotateError::DefaultFromEnv => ApiError::Conflict(
                "the default tenant's keys come from JWT_SECRET and REFRESH_TOKEN_SECRET; rotate them there",
            ),
            err @ RotateError::TooSoon { retry_after, .. } => ApiError::RotationTooSoon {
                message: err.to_string(),
                retry_after: u32::try_from(retry_after).unwrap_or(u32::MAX),
            },
            err @ RotateError::Damaged(_) => ApiError::internal(err),
            RotateError::DefaultAlgFromConfig { .. } => ApiError::Conflict(
                "the default tenant signs with TESSERA_SIGNING_ALG; change it on every instance and restart them",
            ),
            RotateError::Store(err) => err.into(),
        })?;
    if mode == RotationMode::Revoke {
        let ended = state.sessions.revoke_tenant_sessions(tenant).await?;
        tracing::info!(tenant = %tenant, sessions = ended, "every session of the tenant ended");
    }
    Ok(rotated)
}

/// The tenant's audit log, newest first.
#[utoipa::path(get, path = "/api/tenants/{slug}/audit", tag = "tenants",
    params(
        ("slug" = String, Path, description = "The tenant's slug"),
        ("limit" = Option<u32>, Query, description = "Events per page, 1 to 500 (default 50)"),
        ("before" = Option<String>, Query, description = "Cursor: the `next` of the previous page"),
    ),
    security(("bearer" = []), ("apiKey" = [])),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, description = "`invalid_request`: a bad `limit` or `before`", body = super::dto::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `invalid_api_key`", body = super::dto::ErrorBody),
        (status = 403, description = "`forbidden`: the token is not the owner's", body = super::dto::ErrorBody),
        (status = 404, description = "No such tenant", body = super::dto::ErrorBody),
        (status = 503, body = super::dto::ErrorBody),
    ))]
async fn audit(
    State(state): State<AppState>,
    tenant: TenantScope,
    query: Result<QueryParams, ApiError>,
    headers: HeaderMap,
) -> ApiResult<Json<AuditPage>> {
    tenant_admin(&state, &tenant, &headers).await?;
    let QueryParams(query) = query?;
    audit_page(&state, &tenant, query).await
}

/// A page of the tenant's audit log for `query` (`limit`, `before`); the
/// caller has been authorized.
pub(super) async fn audit_page(
    state: &AppState,
    tenant: &TenantScope,
    query: HashMap<String, String>,
) -> ApiResult<Json<AuditPage>> {
    let limit = super::extract::page_limit(&query, AUDIT_DEFAULT_LIMIT, AUDIT_MAX_LIMIT)?;
    let before = match query.get("before") {
        None => None,
        Some(raw) => Some(
            raw.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ApiError::InvalidRequest("before must be a cursor from a previous page".to_owned()))?,
        ),
    };
    // Read your writes: events this instance has queued are stored first
    // (bounded: with the store down the read below answers 503 quickly).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), state.audit.flush()).await;
    let mut events = state.audit_store.audit_events(tenant.id(), before, limit + 1).await?;
    let more = events.len() > limit as usize;
    events.truncate(limit as usize);
    let next = if more {
        events.last().map(|e| e.id.to_string())
    } else {
        None
    };
    Ok(Json(AuditPage {
        events: events.iter().map(AuditEventDto::from).collect(),
        next,
    }))
}
