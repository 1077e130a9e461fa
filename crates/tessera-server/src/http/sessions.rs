//! A user's sessions (one per login, per device): list them, end one.

use super::dto::{SessionDto, SessionList};
use super::error::{ApiError, ApiResult};
use super::extract::{session_caller, Caller, ClientMeta, TenantScope};
use crate::audit::{event, Event};
use crate::state::AppState;
use crate::tokens::unix_now;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use std::collections::HashMap;
use tessera_core::{SessionId, UserId};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sessions", get(list_sessions))
        .route("/sessions/{id}", delete(delete_session))
}

/// The caller's live sessions, most recently used first.
#[utoipa::path(get, path = "/api/auth/sessions", tag = "sessions", security(("bearer" = [])),
    responses(
        (status = 200, body = SessionList),
        (status = 401, body = super::dto::ErrorBody),
        (status = 503, body = super::dto::ErrorBody),
    ))]
async fn list_sessions(
    State(state): State<AppState>,
    tenant: TenantScope,
    req: Request,
) -> ApiResult<Json<SessionList>> {
    let Caller {
        user, session: current, ..
    } = session_caller(&state, req.headers(), &tenant).await?;
    let sessions = state.sessions.list_sessions(user, unix_now()).await?;
    Ok(Json(SessionList {
        sessions: sessions.iter().map(|s| SessionDto::new(s, s.id == current)).collect(),
    }))
}

/// End one of the caller's sessions (for example a lost device).
#[utoipa::path(delete, path = "/api/auth/sessions/{id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "Session ended"),
        (status = 401, body = super::dto::ErrorBody),
        (status = 404, description = "No such session of the caller's", body = super::dto::ErrorBody),
        (status = 503, body = super::dto::ErrorBody),
    ))]
async fn delete_session(
    State(state): State<AppState>,
    tenant: TenantScope,
    client: ClientMeta,
    params: Result<Path<HashMap<String, String>>, axum::extract::rejection::PathRejection>,
    req: Request,
) -> ApiResult<StatusCode> {
    let Caller { user, session, .. } = session_caller(&state, req.headers(), &tenant).await?;
    let not_found = ApiError::NotFound("no such session");
    let id = params
        .ok()
        .and_then(|Path(p)| p.get("id").and_then(|id| SessionId::parse(id)))
        .ok_or(not_found)?;
    if end_session(&state, user, id).await? {
        tracing::info!(user = %user, session = %id, "session revoked by its owner");
        state.audit.record(
            Event::new(event::SESSION_REVOKED, tenant.id(), unix_now())
                .user(user)
                .session(id)
                .client(&client)
                .detail(serde_json::json!({"by": session.to_string()})),
        );
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("no such session"))
    }
}

/// Ends every session of `user` (password reset, an administrator's
/// revocation); how many stored sessions were removed. The one place such
/// an ending happens, so every consequence of it belongs here: with the
/// revocation check on, their access tokens are refused everywhere before
/// this returns (a 503 when that cannot be recorded; see
/// [`announce_ended`]).
///
/// The clients known to the account (see [`crate::ratelimit`]) are
/// forgotten too: whoever logged in with the old password keeps no failed-
/// login count of their own.
pub(crate) async fn end_all_sessions(state: &AppState, user: &tessera_store::User) -> ApiResult<u64> {
    let ended = end_all_sessions_of(state, user.id).await?;
    state.limits.forget_known_clients(user.tenant, &user.email).await;
    Ok(ended)
}

/// [`end_all_sessions`] by the user's id.
pub(crate) async fn end_all_sessions_of(state: &AppState, user: UserId) -> ApiResult<u64> {
    let ended = state.sessions.revoke_all_sessions(user).await?;
    announce_ended(state, &ended).await?;
    Ok(ended.len() as u64)
}

/// Ends every session of `user` but `keep` (a password change from `keep`),
/// announcing them and forgetting the known clients as [`end_all_sessions`]
/// does.
pub(crate) async fn end_other_sessions(
    state: &AppState,
    user: &tessera_store::User,
    keep: SessionId,
) -> ApiResult<u64> {
    let ended = end_other_sessions_of(state, user.id, keep).await?;
    state.limits.forget_known_clients(user.tenant, &user.email).await;
    Ok(ended)
}

/// [`end_other_sessions`] by the user's id.
pub(crate) async fn end_other_sessions_of(state: &AppState, user: UserId, keep: SessionId) -> ApiResult<u64> {
    let ended = state.sessions.revoke_other_sessions(user, keep).await?;
    announce_ended(state, &ended).await?;
    Ok(ended.len() as u64)
}

/// Ends the session `id` of `user`; false when there is no such session of
/// theirs. Announced as [`end_all_sessions`] does.
pub(crate) async fn end_session(state: &AppState, user: UserId, id: SessionId) -> ApiResult<bool> {
    let ended = state.sessions.revoke_session(user, id).await?;
    if ended {
        announce_ended(state, &[id]).await?;
    }
    Ok(ended)
}

/// With the revocation check on (`TESSERA_REVOCATION_CHECK`), refuses the
/// access tokens of the sessions `ended` on this instance at once and on
/// every other one as soon as they hear of it: recorded and announced
/// before this returns. A store that cannot take the record is a 503 (the
/// sessions have ended; this instance retries the record until it
/// succeeds). With the check off, nothing.
pub(crate) async fn announce_ended(state: &AppState, ended: &[SessionId]) -> ApiResult<()> {
    if let Some(revocations) = &state.revocations {
        revocations.announce(ended, unix_now()).await?;
    }
    Ok(())
}
