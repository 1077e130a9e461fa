//! A user's sessions (one per login, per device): list them, end one.

use super::dto::{SessionDto, SessionList};
use super::error::{ApiError, ApiResult};
use super::extract::bearer_token;
use crate::state::AppState;
use crate::tokens::unix_now;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use tessera_core::{SessionId, UserId};
use tessera_token::TokenBuf;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/sessions", get(list_sessions))
        .route("/api/auth/sessions/{id}", delete(delete_session))
}

fn caller(state: &AppState, req: &Request) -> ApiResult<(UserId, SessionId)> {
    let token = bearer_token(req.headers())?;
    let mut buf = TokenBuf::new();
    let claims = state.tokens.verify_access(token, unix_now(), &mut buf)?;
    Ok((UserId::from_uuid(claims.sub), SessionId::from_uuid(claims.sid)))
}

/// The caller's live sessions, most recently used first.
#[utoipa::path(get, path = "/api/auth/sessions", tag = "sessions", security(("bearer" = [])),
    responses(
        (status = 200, body = SessionList),
        (status = 401, body = super::dto::ErrorBody),
        (status = 503, body = super::dto::ErrorBody),
    ))]
async fn list_sessions(State(state): State<AppState>, req: Request) -> ApiResult<Json<SessionList>> {
    let (user, current) = caller(&state, &req)?;
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
async fn delete_session(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> ApiResult<StatusCode> {
    let (user, _) = caller(&state, &req)?;
    let not_found = ApiError::NotFound("no such session");
    let id = SessionId::parse(&id).ok_or(not_found)?;
    if state.sessions.revoke_session(user, id).await? {
        tracing::info!(user = %user, session = %id, "session revoked by its owner");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("no such session"))
    }
}
