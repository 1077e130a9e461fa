//! Administration of a tenant's users: list them, change a role, end every
//! session of one, read the audit log.
//!
//! Served under `/api/admin` for the default tenant and under
//! `/api/tenants/{slug}/admin` for every other one. The caller is a live
//! session whose role, as stored now (not as its token says), is `admin` or
//! `owner` in that tenant, or the tenant's API key.

use super::dto::{AuditPage, UserDto, UserPage};
use super::error::{ApiError, ApiResult};
use super::extract::{checked, page_limit, require_role, ClientMeta, Fields, JsonObject, QueryParams, TenantScope};
use super::tenants::{audit_page, presented_api_key};
use crate::audit::{event, Event};
use crate::state::AppState;
use crate::tokens::unix_now;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::collections::HashMap;
use tessera_core::{Email, Role, SessionId, TenantId, UserId};
use tessera_store::{Conflict, StoreError, User, UserCursor, UserStore};

/// Relative routes, nested under `/api/admin` and `/api/tenants/{slug}/admin`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list_users))
        .route("/users/{id}", get(get_user))
        .route("/users/{id}/role", put(set_role))
        .route("/users/{id}/revoke-sessions", post(revoke_sessions))
        .route("/audit", get(audit))
}

const USERS_DEFAULT_LIMIT: u32 = 50;
const USERS_MAX_LIMIT: u32 = 500;

/// The roles that administer a tenant's users.
pub const ADMIN_ROLES: &[&str] = &[Role::ADMIN, Role::OWNER];

/// Who administers the tenant in this request.
enum Administrator {
    /// The tenant's `X-Api-Key`.
    ApiKey,
    /// A live session of an `admin` or `owner`.
    User {
        user: UserId,
        session: SessionId,
        role: Role,
    },
}

impl Administrator {
    /// Only an owner (or the tenant's API key, which stands for the
    /// customer) may make an owner or unmake one: an admin cannot promote
    /// itself past the people who appointed it.
    fn may_manage_owners(&self) -> bool {
        match self {
            Self::ApiKey => true,
            Self::User { role, .. } => role.is_owner(),
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::User { role, .. } if role.is_owner() => "owner",
            Self::User { .. } => "admin",
        }
    }

    fn event(&self, event: Event) -> Event {
        match self {
            Self::ApiKey => event,
            Self::User { user, session, .. } => event.user(*user).session(*session),
        }
    }
}

async fn administrator(state: &AppState, tenant: &TenantScope, headers: &HeaderMap) -> ApiResult<Administrator> {
    if let Some(checked) = presented_api_key(tenant, headers) {
        return checked.map(|()| Administrator::ApiKey);
    }
    let (caller, role) = require_role(state, headers, tenant, ADMIN_ROLES).await?;
    Ok(Administrator::User {
        user: caller.user,
        session: caller.session,
        role,
    })
}

/// The user `{id}` of the route's tenant; a user of another tenant is as
/// unknown as one that does not exist.
async fn tenant_user(
    state: &AppState,
    tenant: &TenantScope,
    params: Result<Path<HashMap<String, String>>, axum::extract::rejection::PathRejection>,
) -> ApiResult<User> {
    let not_found = || ApiError::NotFound("no such user in this tenant");
    let id = params
        .ok()
        .and_then(|Path(p)| p.get("id").and_then(|id| UserId::parse(id)))
        .ok_or_else(not_found)?;
    match state.users.find_user(id).await? {
        Some(user) if user.tenant == tenant.id() => Ok(user),
        _ => Err(not_found()),
    }
}

/// Up to `limit` of `tenant`'s users, newest first, after `before`; and the
/// cursor of the next page, if there is one.
pub async fn users_page(
    users: &dyn UserStore,
    tenant: TenantId,
    before: Option<UserCursor>,
    limit: u32,
) -> Result<(Vec<User>, Option<String>), StoreError> {
    let mut page = users.list_users(tenant, before, limit + 1).await?;
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    let next = if more {
        page.last().map(|u| encode_cursor(UserCursor::after(u)))
    } else {
        None
    };
    Ok((page, next))
}

/// A `next` cursor: the last user's creation time and id, base64url.
pub fn encode_cursor(cursor: UserCursor) -> String {
    let mut raw = [0u8; 24];
    raw[..8].copy_from_slice(&cursor.created_at.to_be_bytes());
    raw[8..].copy_from_slice(cursor.id.as_uuid().as_bytes());
    URL_SAFE_NO_PAD.encode(raw)
}

pub fn decode_cursor(raw: &str) -> Option<UserCursor> {
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    // 24 bytes are 32 characters with no spare bits: one spelling each.
    let bytes: [u8; 24] = bytes.try_into().ok()?;
    let mut created = [0u8; 8];
    created.copy_from_slice(&bytes[..8]);
    let mut id = [0u8; 16];
    id.copy_from_slice(&bytes[8..]);
    Some(UserCursor {
        created_at: i64::from_be_bytes(created),
        id: UserId::from_uuid(uuid::Uuid::from_bytes(id)),
    })
}

/// The tenant's users, newest first. `email` finds one account.
#[utoipa::path(get, path = "/api/admin/users", tag = "admin",
    params(
        ("limit" = Option<u32>, Query, description = "Users per page, 1 to 500 (default 50)"),
        ("before" = Option<String>, Query, description = "Cursor: the `next` of the previous page"),
        ("email" = Option<String>, Query, description = "Only the account with this email (at most one)"),
    ),
    security(("bearer" = []), ("apiKey" = [])),
    responses(
        (status = 200, body = UserPage),
        (status = 400, description = "`invalid_request`: a bad `limit`, `before` or `email`", body = super::dto::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `invalid_api_key`", body = super::dto::ErrorBody),
        (status = 403, description = "`forbidden`: the caller's role is not `admin` or `owner`", body = super::dto::ErrorBody),
        (status = 503, body = super::dto::ErrorBody),
    ))]
async fn list_users(
    State(state): State<AppState>,
    tenant: TenantScope,
    query: Result<QueryParams, ApiError>,
    headers: HeaderMap,
) -> ApiResult<Json<UserPage>> {
    administrator(&state, &tenant, &headers).await?;
    // After the caller is known: a stranger learns nothing from a 400.
    let QueryParams(query) = query?;
    if let Some(raw) = query.get("email") {
        let email = Email::parse_existing(raw)
            .map_err(|_| ApiError::InvalidRequest("email must be an email address".to_owned()))?;
        let found = state.users.find_user_by_email(tenant.id(), &email).await?;
        return Ok(Json(UserPage {
            users: found.iter().map(|r| UserDto::from(&r.user)).collect(),
            next: None,
        }));
    }
    let limit = page_limit(&query, USERS_DEFAULT_LIMIT, USERS_MAX_LIMIT)?;
    let before = match query.get("before") {
        None => None,
        Some(raw) => Some(
            decode_cursor(raw)
                .ok_or_else(|| ApiError::InvalidRequest("before must be a cursor from a previous page".to_owned()))?,
        ),
    };
    let (users, next) = users_page(state.users.as_ref(), tenant.id(), before, limit).await?;
    Ok(Json(UserPage {
        users: users.iter().map(UserDto::from).collect(),
        next,
    }))
}

/// One user of the tenant.
#[utoipa::path(get, path = "/api/admin/users/{id}", tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "User id")),
    security(("bearer" = []), ("apiKey" = [])),
    responses(
        (status = 200, body = UserDto),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `invalid_api_key`", body = super::dto::ErrorBody),
        (status = 403, description = "`forbidden`: the caller's role is not `admin` or `owner`", body = super::dto::ErrorBody),
        (status = 404, description = "No such user in this tenant", body = super::dto::ErrorBody),
        (status = 503, body = super::dto::ErrorBody),
    ))]
async fn get_user(
    State(state): State<AppState>,
    tenant: TenantScope,
    params: Result<Path<HashMap<String, String>>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
) -> ApiResult<Json<UserDto>> {
    administrator(&state, &tenant, &headers).await?;
    let user = tenant_user(&state, &tenant, params).await?;
    Ok(Json(UserDto::from(&user)))
}

/// The built-in order of privilege: `user` (and any custom role) below
/// `admin` below `owner`.
fn rank(role: &Role) -> u8 {
    match role.as_str() {
        Role::OWNER => 2,
        Role::ADMIN => 1,
        _ => 0,
    }
}

/// Whether a change from `from` to `to` only adds privilege, so tokens
/// carrying `from` may run out on their own. Any other change ends the
/// user's sessions: a token must not keep a role its user has lost, and a
/// custom role means something only the services that check it know.
pub fn is_promotion(from: &Role, to: &Role) -> bool {
    rank(to) > rank(from) && (rank(from) > 0 || from.as_str() == Role::USER)
}

/// Give a user of the tenant another role.
#[utoipa::path(put, path = "/api/admin/users/{id}/role", tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "User id")),
    request_body = super::dto::SetRoleRequest,
    security(("bearer" = []), ("apiKey" = [])),
    responses(
        (status = 200, description = "The user with its new role. Unless the change only adds privilege (`user` to `admin` or `owner`, `admin` to `owner`), every session of the user has ended, so no token keeps the old role", body = UserDto),
        (status = 400, body = super::dto::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `invalid_api_key`", body = super::dto::ErrorBody),
        (status = 403, description = "`forbidden`: the caller is not `admin` or `owner`, or an admin tried to make or unmake an owner", body = super::dto::ErrorBody),
        (status = 404, description = "No such user in this tenant", body = super::dto::ErrorBody),
        (status = 409, description = "`conflict`: the user is the tenant's last owner", body = super::dto::ErrorBody),
        (status = 413, body = super::dto::ErrorBody), (status = 415, body = super::dto::ErrorBody),
        (status = 422, description = "`validation_failed`: `role` is not 1 to 32 of `a-z 0-9 _ -`", body = super::dto::ErrorBody),
        (status = 503, body = super::dto::ErrorBody),
    ))]
async fn set_role(
    State(state): State<AppState>,
    tenant: TenantScope,
    client: ClientMeta,
    params: Result<Path<HashMap<String, String>>, axum::extract::rejection::PathRejection>,
    req: Request,
) -> ApiResult<Json<UserDto>> {
    let admin = administrator(&state, &tenant, req.headers()).await?;
    let JsonObject(body) = JsonObject::from_request(req, &state).await?;
    let mut f = Fields::new(body);
    let role = f.required("role", |s| Role::parse(&s));
    f.finish()?;
    let role = checked(role)?;
    let target = tenant_user(&state, &tenant, params).await?;

    if (role.is_owner() || target.role.is_owner()) && role != target.role && !admin.may_manage_owners() {
        return Err(ApiError::Forbidden("only an owner may make or unmake an owner"));
    }
    let change = match state.users.set_role(target.id, &role).await {
        Ok(Some(change)) => change,
        Ok(None) => return Err(ApiError::NotFound("no such user in this tenant")),
        Err(StoreError::Conflict(Conflict::LastOwner)) => {
            return Err(ApiError::Conflict(
                "this user is the tenant's last owner; make another user owner first",
            ))
        }
        Err(err) => return Err(err.into()),
    };
    if change.previous == role {
        return Ok(Json(UserDto::from(&change.user)));
    }
    let ended = if is_promotion(&change.previous, &role) {
        0
    } else {
        super::sessions::end_all_sessions(&state, &change.user).await?
    };
    tracing::info!(
        tenant = %tenant.id(), user = %change.user.id, by = admin.describe(), sessions_ended = ended,
        "role changed"
    );
    state.audit.record(
        admin
            .event(Event::new(event::ROLE_CHANGED, tenant.id(), unix_now()))
            .client(&client)
            .detail(serde_json::json!({
                "target": change.user.id.to_string(),
                "from": change.previous.as_str(),
                "to": role.as_str(),
                "by": admin.describe(),
                "sessionsEnded": ended,
            })),
    );
    Ok(Json(UserDto::from(&change.user)))
}

/// End every session of a user of the tenant.
#[utoipa::path(post, path = "/api/admin/users/{id}/revoke-sessions", tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "User id")),
    security(("bearer" = []), ("apiKey" = [])),
    responses(
        (status = 204, description = "Every session of the user has ended"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `invalid_api_key`", body = super::dto::ErrorBody),
        (status = 403, description = "`forbidden`: the caller's role is not `admin` or `owner`, or an admin tried to end an owner's sessions", body = super::dto::ErrorBody),
        (status = 404, description = "No such user in this tenant", body = super::dto::ErrorBody),
        (status = 503, body = super::dto::ErrorBody),
    ))]
async fn revoke_sessions(
    State(state): State<AppState>,
    tenant: TenantScope,
    client: ClientMeta,
    params: Result<Path<HashMap<String, String>>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let admin = administrator(&state, &tenant, &headers).await?;
    let target = tenant_user(&state, &tenant, params).await?;
    if target.role.is_owner() && !admin.may_manage_owners() {
        return Err(ApiError::Forbidden("only an owner may end an owner's sessions"));
    }
    let ended = super::sessions::end_all_sessions(&state, &target).await?;
    tracing::info!(
        tenant = %tenant.id(), user = %target.id, by = admin.describe(), sessions_ended = ended,
        "sessions revoked by an administrator"
    );
    state.audit.record(
        admin
            .event(Event::new(event::SESSION_REVOKED, tenant.id(), unix_now()))
            .client(&client)
            .detail(serde_json::json!({
                "target": target.id.to_string(),
                "by": admin.describe(),
                "sessionsEnded": ended,
            })),
    );
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's audit log, newest first (as `/api/tenants/{slug}/audit`).
#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", operation_id = "admin_audit",
    params(
        ("limit" = Option<u32>, Query, description = "Events per page, 1 to 500 (default 50)"),
        ("before" = Option<String>, Query, description = "Cursor: the `next` of the previous page"),
    ),
    security(("bearer" = []), ("apiKey" = [])),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, description = "`invalid_request`: a bad `limit` or `before`", body = super::dto::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `invalid_api_key`", body = super::dto::ErrorBody),
        (status = 403, description = "`forbidden`: the caller's role is not `admin` or `owner`", body = super::dto::ErrorBody),
        (status = 503, body = super::dto::ErrorBody),
    ))]
async fn audit(
    State(state): State<AppState>,
    tenant: TenantScope,
    query: Result<QueryParams, ApiError>,
    headers: HeaderMap,
) -> ApiResult<Json<AuditPage>> {
    administrator(&state, &tenant, &headers).await?;
    let QueryParams(query) = query?;
    audit_page(&state, &tenant, query).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(s: &str) -> Role {
        Role::parse(s).unwrap()
    }

    #[test]
    fn only_built_in_gains_are_promotions() {
        assert!(is_promotion(&role("user"), &role("admin")));
        assert!(is_promotion(&role("user"), &role("owner")));
        assert!(is_promotion(&role("admin"), &role("owner")));
        assert!(!is_promotion(&role("owner"), &role("admin")));
        assert!(!is_promotion(&role("admin"), &role("user")));
        assert!(!is_promotion(&role("user"), &role("editor")));
        assert!(!is_promotion(&role("editor"), &role("user")));
        // A custom role may carry privileges tessera does not know of.
        assert!(!is_promotion(&role("editor"), &role("admin")));
        assert!(!is_promotion(&role("admin"), &role("admin")));
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_no_cursor() {
        let cursor = UserCursor {
            created_at: 1_700_000_000,
            id: UserId::random(),
        };
        let raw = encode_cursor(cursor);
        assert_eq!(raw.len(), 32);
        assert_eq!(decode_cursor(&raw), Some(cursor));
        for bad in [
            "",
            "x",
            "AAAA",
            &raw[1..],
            &format!("{raw}A"),
            &format!("{raw}="),
            "!!!!",
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad:?}");
        }
    }
}
