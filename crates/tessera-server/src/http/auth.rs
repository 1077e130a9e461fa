//! Accounts and tokens: register, login, refresh, logout, me, verify.

use super::dto::{AuthResponse, PendingVerificationResponse, TokenResponse, UserDto, VerifyResponse};
use super::error::{ApiError, ApiResult};
use super::extract::{
    bearer_token, checked, session_caller, token_caller_of_any_session, ClientMeta, Fields, JsonObject,
    OptionalJsonObject, TenantScope,
};
use super::sessions::{announce_ended, end_all_sessions_of, end_other_sessions_of, end_session};
use crate::audit::{event, Event};
use crate::ratelimit::{whole_seconds, Outage};
use crate::state::AppState;
use crate::tokens::{unix_now, IssuedPair, Scope, Subject};
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tessera_core::{Email, Password, PasswordVerdict, PersonName, Role, SessionId, UserId};
use tessera_store::{AccountTokenPurpose, NewSession, NewUser, Rotation, RotationOutcome, User};
use tessera_token::TokenBuf;

/// The account routes, relative: served under `/api/auth` for the default
/// tenant and under `/api/tenants/{slug}/auth` for every other one.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/register", post(register))
        .route("/login", post(login))
        .route("/refresh", post(refresh))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/verify", get(verify))
}

/// A new session of `user`: stored, and its first pair signed; and the
/// user with its role and email as they are now.
pub(super) async fn start_session(
    state: &AppState,
    user: &User,
    client: &ClientMeta,
    proof: Option<PasswordProof>,
) -> ApiResult<(SessionId, IssuedPair, User)> {
    let now = unix_now();
    let session = SessionId::random();
    let refresh = state.tokens.next_refresh_state(now);
    state
        .sessions
        .create_session(NewSession {
            id: session,
            user_id: user.id,
            created_at: now,
            user_agent: client.user_agent.clone(),
            ip: client.ip.clone(),
            refresh,
        })
        .await?;
    // The role and email are read back once the session exists, not taken
    // from when the password was checked: a demotion that lands while this
    // login waited for its hash either ends this session (it existed) or is
    // what this read sees (it did not), so no token carries a lost role.
    let Some(opened) = state.sessions.session(user.id, session, now).await? else {
        return Err(ApiError::Conflict(
            "the account changed while the session was being opened; log in again",
        ));
    };
    if let Some(proof) = proof {
        if !proof.still_holds(state, user).await? {
            // A reset or change replaced the password after it was checked
            // and before this session existed, so the sessions it ended did
            // not include this one: end it here.
            end_session(state, user.id, session).await?;
            tracing::info!(user = %user.id, "login raced a password change; its session ended");
            return Err(ApiError::InvalidCredentials);
        }
    }
    let subject = Subject {
        tenant: user.tenant,
        user: user.id,
        session,
        email: opened.email.as_str(),
        role: opened.role.as_str(),
    };
    let pair = state.tokens.pair(&subject, &refresh, now)?;
    tracing::info!(tenant = %user.tenant, user = %user.id, session = %session, "session opened");
    let user = User {
        email: opened.email.clone(),
        role: opened.role.clone(),
        ..user.clone()
    };
    Ok((session, pair, user))
}

/// The password a login checked and the stored hash it matched, to check
/// again once the session exists.
pub(super) struct PasswordProof {
    pub password: Password,
    pub hash: String,
}

impl PasswordProof {
    /// Whether the password still opens the account: the stored hash is the
    /// one it matched, or (rehashed meanwhile by a concurrent login, or
    /// reset to the same password) the password matches the new one.
    async fn still_holds(self, state: &AppState, user: &User) -> ApiResult<bool> {
        let Some(record) = state.users.find_user_by_email(user.tenant, &user.email).await? else {
            return Ok(false);
        };
        if record.password_hash == self.hash {
            return Ok(true);
        }
        let verdict = state.hasher.verify(self.password, Some(record.password_hash)).await?;
        Ok(matches!(verdict, PasswordVerdict::Valid { .. }))
    }
}

/// Creates a session for `user` and answers with the user and its first pair.
async fn open_session(
    state: &AppState,
    user: &User,
    client: &ClientMeta,
    status: StatusCode,
    kind: &'static str,
    proof: Option<PasswordProof>,
) -> ApiResult<Response> {
    let (session, pair, user) = start_session(state, user, client, proof).await?;
    let user = &user;
    state.audit.record(
        Event::new(kind, user.tenant, unix_now())
            .user(user.id)
            .session(session)
            .client(client),
    );
    let body = AuthResponse {
        user: UserDto::from(user),
        tokens: pair.into(),
    };
    Ok((status, Json(body)).into_response())
}

fn token_response(pair: IssuedPair) -> Response {
    Json(TokenResponse::from(pair)).into_response()
}

/// Create an account and log it in.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth",
    request_body = super::dto::RegisterRequest,
    responses(
        (status = 201, description = "Account created, session opened, verification link mailed. With `TESSERA_REQUIRE_EMAIL_VERIFICATION=on`, no session: the body is `PendingVerificationResponse`", body = AuthResponse),
        (status = 400, description = "Malformed JSON", body = super::dto::ErrorBody),
        (status = 409, description = "`email_taken`", body = super::dto::ErrorBody),
        (status = 413, body = super::dto::ErrorBody), (status = 415, body = super::dto::ErrorBody),
        (status = 422, description = "`validation_failed`", body = super::dto::ErrorBody),
        (status = 429, description = "`rate_limited`: too many requests from this client (`TESSERA_IP_RATE_LIMIT`); `Retry-After` says when to retry", body = super::dto::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 503, description = "`unavailable`", body = super::dto::ErrorBody),
    ))]
async fn register(
    State(state): State<AppState>,
    tenant: TenantScope,
    client: ClientMeta,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let mut f = Fields::new(body);
    let email = f.required("email", |s| Email::parse(&s));
    let password = f.required("password", Password::parse);
    let first_name = f.required("firstName", |s| PersonName::parse(&s));
    let last_name = f.required("lastName", |s| PersonName::parse_optional(&s));
    f.finish()?;
    let (email, password, first_name, last_name) = (
        checked(email)?,
        checked(password)?,
        checked(first_name)?,
        checked(last_name)?,
    );

    state.limits.client(client.addr, Outage::Allow).await?;
    let password_hash = state.hasher.hash(password).await?;
    let user = state
        .users
        .create_user(NewUser {
            id: UserId::random(),
            tenant: tenant.id(),
            email,
            password_hash,
            first_name,
            last_name,
            role: Role::user(),
            created_at: unix_now(),
        })
        .await?;
    if state.require_email_verification {
        // No session until the mailed link is followed: an account whose
        // address nobody has shown to own cannot act yet.
        tracing::info!(user = %user.id, "user registered; email verification pending");
        state.audit.record(
            Event::new(event::USER_REGISTERED, user.tenant, unix_now())
                .user(user.id)
                .client(&client),
        );
        super::password::mail_token(
            &state,
            user.clone(),
            tenant.tenant.clone(),
            AccountTokenPurpose::EmailVerification,
        );
        let body = PendingVerificationResponse {
            user: UserDto::from(&user),
            email_verification_required: true,
        };
        return Ok((StatusCode::CREATED, Json(body)).into_response());
    }
    match open_session(
        &state,
        &user,
        &client,
        StatusCode::CREATED,
        event::USER_REGISTERED,
        None,
    )
    .await
    {
        Ok(response) => {
            tracing::info!(user = %user.id, "user registered");
            super::password::mail_token(
                &state,
                user,
                tenant.tenant.clone(),
                AccountTokenPurpose::EmailVerification,
            );
            Ok(response)
        }
        Err(err) => {
            // The account exists but its first session does not (sessions
            // may live in another store, Redis): undo the account, so the
            // client's retry registers it instead of meeting `email_taken`.
            if let Err(undo) = state.users.delete_user(user.id).await {
                tracing::error!(user = %user.id, error = %undo, "could not undo a registration whose session failed");
            }
            Err(err)
        }
    }
}

/// Log in with email and password; opens a new session (one per device).
#[utoipa::path(post, path = "/api/auth/login", tag = "auth",
    request_body = super::dto::LoginRequest,
    responses(
        (status = 200, description = "Session opened", body = AuthResponse),
        (status = 400, body = super::dto::ErrorBody),
        (status = 401, description = "`invalid_credentials`, the same for an unknown email and a wrong password", body = super::dto::ErrorBody),
        (status = 403, description = "`email_not_verified`: the right password, but `TESSERA_REQUIRE_EMAIL_VERIFICATION` is on and the email is not verified yet", body = super::dto::ErrorBody),
        (status = 413, body = super::dto::ErrorBody), (status = 415, body = super::dto::ErrorBody),
        (status = 422, body = super::dto::ErrorBody),
        (status = 429, description = "`rate_limited`: too many failed logins of this account (it is locked for a while, the right password included) or too many requests from this client; unknown emails are limited exactly like known ones; `Retry-After` says when to retry", body = super::dto::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 503, description = "`unavailable`: store down, password hashing saturated, or the rate limits cannot be checked", body = super::dto::ErrorBody),
    ))]
async fn login(
    State(state): State<AppState>,
    tenant: TenantScope,
    client: ClientMeta,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let mut f = Fields::new(body);
    let email = f.required("email", Ok::<String, std::convert::Infallible>);
    let password = f.required("password", Password::parse_candidate);
    f.finish()?;
    let (email, password) = (checked(email)?, checked(password)?);

    // A hashing slot is held before the attempt is counted: refused for load
    // (503, at once or after waiting), it costs the account nothing, so a
    // user retrying through an overload does not lock themselves out.
    let ticket = state.hasher.ticket()?.ready().await?;
    // Counted before any lookup or hashing, alike for every email: a locked
    // account costs no Argon2 work and tells nothing about existing.
    let attempt = state.limits.password_attempt(tenant.id(), &email, client.addr).await?;

    // A malformed email cannot match an account, but it gets the same answer
    // and the same hashing work as a wrong password.
    let record = match Email::parse_existing(&email) {
        Ok(email) => state.users.find_user_by_email(tenant.id(), &email).await?,
        Err(_) => None,
    };
    let stored = record.as_ref().map(|r| r.password_hash.clone());
    let user_id = record.as_ref().map(|r| r.user.id);
    let verdict = ticket.verify(password.clone(), stored).await?;
    if let (PasswordVerdict::Refused, Some(user)) = (&verdict, user_id) {
        tracing::warn!(
            user = %user,
            "stored password hash not run (over the Argon2/bcrypt limits, or malformed): a wrong password until it is reset"
        );
    }
    let (PasswordVerdict::Valid { needs_rehash }, Some(record)) = (verdict, record) else {
        tracing::info!(tenant = %tenant.id(), "login failed");
        // The attempted email is not recorded: people type passwords into
        // the email field. Whether the account exists is.
        let mut failed = Event::new(event::LOGIN_FAILED, tenant.id(), unix_now()).client(&client);
        failed = match user_id {
            Some(user) => failed
                .user(user)
                .detail(serde_json::json!({"reason": "wrong_password"})),
            None => failed.detail(serde_json::json!({"reason": "unknown_email"})),
        };
        state.audit.record(failed);
        if !attempt.locks_for.is_zero() {
            let mut locked = Event::new(event::LOGIN_LOCKED, tenant.id(), unix_now())
                .client(&client)
                .detail(serde_json::json!({"lockedForSecs": whole_seconds(attempt.locks_for)}));
            if let Some(user) = user_id {
                locked = locked.user(user);
            }
            state.audit.record(locked);
        }
        return Err(ApiError::InvalidCredentials);
    };
    state.limits.password_correct(&attempt).await;
    let mut checked_hash = record.password_hash.clone();
    if needs_rehash {
        match state.hasher.hash(password.clone()).await {
            Ok(hash) => {
                // Only over the hash this login checked: never over a reset.
                if state
                    .users
                    .upgrade_password_hash(record.user.id, &record.password_hash, &hash)
                    .await?
                {
                    checked_hash = hash;
                }
            }
            Err(err) => tracing::warn!(user = %record.user.id, error = %err, "could not upgrade a password hash"),
        }
    }
    if state.require_email_verification && !record.user.email_verified {
        // Only after the right password, so this says nothing to a guesser.
        tracing::info!(user = %record.user.id, "login refused: email not verified");
        return Err(ApiError::EmailNotVerified);
    }
    let proof = PasswordProof {
        password,
        hash: checked_hash,
    };
    open_session(
        &state,
        &record.user,
        &client,
        StatusCode::OK,
        event::LOGIN_SUCCEEDED,
        Some(proof),
    )
    .await
}

/// Exchange a refresh token for a new pair. The presented token is retired;
/// presenting it again revokes the session (theft detection), except within
/// the grace window, which returns the same current pair.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth",
    request_body = super::dto::RefreshRequest,
    responses(
        (status = 200, description = "Rotated pair", body = TokenResponse),
        (status = 400, body = super::dto::ErrorBody),
        (status = 401, description = "`invalid_token` (also for an expired refresh token: log in again) or `refresh_token_reused`", body = super::dto::ErrorBody),
        (status = 413, body = super::dto::ErrorBody), (status = 415, body = super::dto::ErrorBody),
        (status = 422, body = super::dto::ErrorBody),
        (status = 503, body = super::dto::ErrorBody),
    ))]
async fn refresh(
    State(state): State<AppState>,
    tenant: TenantScope,
    client: ClientMeta,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let mut f = Fields::new(body);
    let token = f.required("refreshToken", Ok::<String, std::convert::Infallible>);
    f.finish()?;
    let token = checked(token)?;

    let now = unix_now();
    let (user, session, presented) = {
        let mut buf = TokenBuf::new();
        let claims = state
            .tokens
            .verify_refresh(&token, tenant.scope(), now, &mut buf)
            .await?;
        (
            UserId::from_uuid(claims.sub),
            SessionId::from_uuid(claims.sid),
            claims.jti,
        )
    };
    let outcome = state
        .sessions
        .rotate(Rotation {
            user,
            session,
            presented_jti: presented,
            next: state.tokens.next_refresh_state(now),
            now,
            grace_secs: state.refresh_grace_secs,
        })
        .await?;
    let session = match outcome {
        RotationOutcome::Rotated(s) => s,
        RotationOutcome::Grace(s) => {
            tracing::info!(session = %s.id, "refresh within the grace window; returning the current pair");
            s
        }
        RotationOutcome::Reused => {
            // The store ended the session; its access tokens go with it.
            announce_ended(&state, &[session]).await?;
            tracing::warn!(user = %user, session = %session, "refresh token reuse detected; session revoked");
            state.audit.record(
                Event::new(event::REFRESH_REUSED, tenant.id(), now)
                    .user(user)
                    .session(session)
                    .client(&client),
            );
            return Err(ApiError::RefreshTokenReused);
        }
        RotationOutcome::Unknown => return Err(ApiError::InvalidToken("the session has ended; log in again")),
    };
    if session.user_id != user || session.tenant != tenant.id() {
        return Err(ApiError::InvalidToken("the token does not match its session"));
    }
    let subject = Subject {
        tenant: session.tenant,
        user,
        session: session.id,
        email: session.email.as_str(),
        role: session.role.as_str(),
    };
    let pair = state.tokens.pair(&subject, &session.current, now)?;
    state.audit.record(
        Event::new(event::TOKEN_REFRESHED, tenant.id(), now)
            .user(user)
            .session(session.id)
            .client(&client),
    );
    Ok(token_response(pair))
}

#[derive(Clone, Copy)]
enum LogoutScope {
    Local,
    Others,
    Global,
}

/// End sessions. Authenticated by a bearer access token, or by the refresh
/// token in the body.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth",
    request_body(content = Option<super::dto::LogoutRequest>, description = "Optional: an empty body means scope `local`"),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 400, description = "Malformed JSON", body = super::dto::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token` (also: `others`/`global` with a token of an ended session), `token_expired` or `refresh_token_reused`", body = super::dto::ErrorBody),
        (status = 413, body = super::dto::ErrorBody),
        (status = 415, body = super::dto::ErrorBody), (status = 422, body = super::dto::ErrorBody),
        (status = 503, body = super::dto::ErrorBody),
    ))]
async fn logout(
    State(state): State<AppState>,
    tenant: TenantScope,
    client: ClientMeta,
    req: Request,
) -> ApiResult<StatusCode> {
    let has_bearer = req.headers().contains_key(header::AUTHORIZATION);
    if has_bearer {
        // A malformed Authorization header fails before the body is read.
        bearer_token(req.headers())?;
    }
    let headers = req.headers().clone();
    let OptionalJsonObject(body) = OptionalJsonObject::from_request(req, &state).await?;
    let mut f = Fields::new(body.unwrap_or_default());
    let scope = f.optional("scope", |s| match s.as_str() {
        "local" => Ok(LogoutScope::Local),
        "others" => Ok(LogoutScope::Others),
        "global" => Ok(LogoutScope::Global),
        _ => Err("must be one of local, others, global"),
    });
    let refresh_token = f.optional("refreshToken", Ok::<String, std::convert::Infallible>);
    f.finish()?;
    let scope = checked(scope)?.unwrap_or(LogoutScope::Local);
    let refresh_token = checked(refresh_token)?;

    let now = unix_now();
    let mut buf = TokenBuf::new();
    let (user, session) = if has_bearer {
        // Ending this session is idempotent; reaching into the user's other
        // sessions needs a session that is still live.
        let caller = match scope {
            LogoutScope::Local => token_caller_of_any_session(&state, &headers, &tenant).await?,
            LogoutScope::Others | LogoutScope::Global => session_caller(&state, &headers, &tenant).await?,
        };
        (caller.user, caller.session)
    } else if let Some(token) = refresh_token.as_deref() {
        let claims = state
            .tokens
            .verify_refresh(token, tenant.scope(), now, &mut buf)
            .await?;
        let (user, session) = (UserId::from_uuid(claims.sub), SessionId::from_uuid(claims.sid));
        match state.sessions.session(user, session, now).await? {
            Some(live) if live.user_id == user && live.current.jti == claims.jti => {}
            Some(_) => {
                // An old refresh token of a live session is a replay, here as on /refresh.
                end_session(&state, user, session).await?;
                tracing::warn!(user = %user, session = %session, "logout with a rotated refresh token; session revoked");
                state.audit.record(
                    Event::new(event::REFRESH_REUSED, tenant.id(), now)
                        .user(user)
                        .session(session)
                        .client(&client),
                );
                return Err(ApiError::RefreshTokenReused);
            }
            None => return Err(ApiError::InvalidToken("the session has ended")),
        }
        (user, session)
    } else {
        return Err(ApiError::MissingToken);
    };
    let ended = match scope {
        LogoutScope::Local => {
            let ended = state.sessions.revoke_session(user, session).await?;
            // Announced even when the session had already ended, so that a
            // client retrying a logout that answered 503 completes it.
            announce_ended(&state, &[session]).await?;
            u64::from(ended)
        }
        LogoutScope::Others => end_other_sessions_of(&state, user, session).await?,
        LogoutScope::Global => end_all_sessions_of(&state, user).await?,
    };
    tracing::info!(user = %user, session = %session, ended, "logout");
    let scope_name = match scope {
        LogoutScope::Local => "local",
        LogoutScope::Others => "others",
        LogoutScope::Global => "global",
    };
    state.audit.record(
        Event::new(event::LOGOUT, tenant.id(), now)
            .user(user)
            .session(session)
            .client(&client)
            .detail(serde_json::json!({"scope": scope_name, "sessionsEnded": ended})),
    );
    Ok(StatusCode::NO_CONTENT)
}

/// The account of the bearer.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, body = UserDto),
        (status = 401, description = "`missing_token`, `invalid_token` or `token_expired`", body = super::dto::ErrorBody),
        (status = 503, body = super::dto::ErrorBody),
    ))]
async fn me(State(state): State<AppState>, tenant: TenantScope, req: Request) -> ApiResult<Json<UserDto>> {
    let caller = session_caller(&state, req.headers(), &tenant).await?;
    let user = state
        .users
        .find_user(caller.user)
        .await?
        .ok_or(ApiError::InvalidToken("the account no longer exists"))?;
    Ok(Json(UserDto::from(&user)))
}

/// Forward-auth endpoint for reverse proxies (nginx `auth_request`, Traefik
/// `forwardAuth`): checks the bearer access token without touching storage
/// (with `TESSERA_REVOCATION_CHECK=on`, also against the in-memory set of
/// ended sessions).
#[utoipa::path(method(get, head), path = "/api/auth/verify", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, body = VerifyResponse,
            headers(
                ("X-Auth-User-Id" = String, description = "`sub`"),
                ("X-Auth-User-Email" = String, description = "`email`"),
                ("X-Auth-User-Role" = String, description = "`role`"),
                ("X-Auth-Session-Id" = String, description = "`sid`"),
                ("X-Auth-Tenant-Id" = String, description = "`tid`: the token's tenant (the nil uuid for the default tenant)"),
            )),
        (status = 401, description = "`missing_token`, `invalid_token` (also, with `TESSERA_REVOCATION_CHECK=on`, a token of a session that has ended) or `token_expired`", body = super::dto::ErrorBody),
    ))]
async fn verify(State(state): State<AppState>, tenant: TenantScope, req: Request) -> ApiResult<Response> {
    let token = bearer_token(req.headers())?;
    // `/api/auth/verify` is the forward-auth endpoint of every tenant; a
    // route that names its tenant (`/api/tenants/default/...` included)
    // takes that tenant's tokens only.
    let scope = if tenant.named { tenant.scope() } else { Scope::Any };
    let mut buf = TokenBuf::new();
    let claims = state.tokens.verify_access(token, scope, unix_now(), &mut buf).await?;
    let body = VerifyResponse {
        sub: claims.sub,
        sid: claims.sid,
        tid: claims.tid,
        email: &claims.email,
        role: &claims.role,
        exp: claims.exp,
    };
    let json = serde_json::to_vec(&body).map_err(ApiError::internal)?;
    let mut response = (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        json,
    )
        .into_response();
    let headers = response.headers_mut();
    let mut uuid_buf = uuid::Uuid::encode_buffer();
    if let Ok(v) = HeaderValue::from_str(claims.sub.hyphenated().encode_lower(&mut uuid_buf)) {
        headers.insert(HeaderName::from_static("x-auth-user-id"), v);
    }
    if let Ok(v) = HeaderValue::from_str(claims.sid.hyphenated().encode_lower(&mut uuid_buf)) {
        headers.insert(HeaderName::from_static("x-auth-session-id"), v);
    }
    if let Ok(v) = HeaderValue::from_str(claims.tid.hyphenated().encode_lower(&mut uuid_buf)) {
        headers.insert(HeaderName::from_static("x-auth-tenant-id"), v);
    }
    if let Ok(v) = HeaderValue::from_bytes(claims.email.as_bytes()) {
        headers.insert(HeaderName::from_static("x-auth-user-email"), v);
    }
    if let Ok(v) = HeaderValue::from_bytes(claims.role.as_bytes()) {
        headers.insert(HeaderName::from_static("x-auth-user-role"), v);
    }
    Ok(response)
}
