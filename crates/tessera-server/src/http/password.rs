//! Passwords and email addresses: forgot and reset, change, verification.
//!
//! Forgot-password and resend-verification answer 202 at once, whatever the
//! email: the lookup, the token and the mail happen in a background task,
//! so neither the answer nor its timing says whether an account exists.

use super::error::{ApiError, ApiResult};
use super::extract::{checked, session_caller, ClientMeta, Fields, JsonObject, TenantScope};
use crate::accounts;
use crate::audit::{event, Event};
use crate::mail::{Mail, MailKind};
use crate::ratelimit::{MailLimit, Outage};
use crate::state::AppState;
use crate::tenants::TenantInfo;
use crate::tokens::unix_now;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use std::sync::Arc;
use tessera_core::{Email, Password, PasswordVerdict};
use tessera_store::{AccountTokenPurpose, NewAccountToken, User};

/// Relative routes, nested beside the account routes (`/api/auth`,
/// `/api/tenants/{slug}/auth`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/password/forgot", post(forgot_password))
        .route("/password/reset", post(reset_password))
        .route("/password/change", post(change_password))
        .route("/email/verify", post(verify_email))
        .route("/email/resend", post(resend_verification))
}

/// Mails `user` a fresh token of `purpose`, in the background: the caller
/// never waits for the store write or the mail, and a failure is logged, not
/// returned (the user can ask again).
pub(crate) fn mail_token(state: &AppState, user: User, tenant: Arc<TenantInfo>, purpose: AccountTokenPurpose) {
    let state = state.clone();
    tokio::spawn(async move {
        // One address gets so many mails an hour, whichever tenant sends
        // them: registrations in tenants made for the purpose must not
        // flood a stranger's mailbox.
        if !state.limits.allow_mail(MailLimit::Registration, &user.email).await {
            return;
        }
        retrying_while_unavailable(purpose.as_str(), || issue_and_mail(&state, &user, &tenant, purpose)).await;
    });
}

async fn issue_and_mail(
    state: &AppState,
    user: &User,
    tenant: &TenantInfo,
    purpose: AccountTokenPurpose,
) -> Result<(), tessera_store::StoreError> {
    let now = unix_now();
    let (token, token_hash) = accounts::new_token(purpose);
    state
        .account_tokens
        .create_account_token(NewAccountToken {
            token_hash,
            tenant: user.tenant,
            user: user.id,
            purpose,
            created_at: now,
            expires_at: now + accounts::ttl_secs(purpose),
        })
        .await?;
    let kind = match purpose {
        AccountTokenPurpose::PasswordReset => MailKind::PasswordReset,
        AccountTokenPurpose::EmailVerification => MailKind::EmailVerification,
    };
    let link = state.mailer.link(kind, &token, &tenant.slug);
    state.mailer.send(Mail {
        to: user.email.clone(),
        kind,
        first_name: user.first_name.clone(),
        tenant_name: (!tenant.slug.is_default()).then(|| tenant.name.clone()),
        link: Some(link),
    });
    Ok(())
}

/// The notice that a password changed, so a user whose account was taken
/// over hears of it.
///
/// Only to an address its owner has shown they read (verified): an account
/// made with someone else's address must not turn its password changes into
/// mail to them. And only so many an hour per address, across tenants.
fn mail_password_changed(state: &AppState, user: &User, tenant: &TenantInfo) {
    if !user.email_verified {
        return;
    }
    let mail = Mail {
        to: user.email.clone(),
        kind: MailKind::PasswordChanged,
        first_name: user.first_name.clone(),
        tenant_name: (!tenant.slug.is_default()).then(|| tenant.name.clone()),
        link: None,
    };
    let state = state.clone();
    tokio::spawn(async move {
        if state.limits.allow_mail(MailLimit::Notice, &mail.to).await {
            state.mailer.send(mail);
        }
    });
}

/// How long the work behind a mailed link (a registration's, a forgot or
/// resend request's) keeps being retried while the store is unavailable: the
/// answer promised a mail, and an outage of the database or Redis usually
/// ends within this.
const MAIL_JOB_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(300);
/// The window within which a forgot or resend request's work starts.
const MAIL_JOB_SPREAD: std::time::Duration = std::time::Duration::from_secs(1);
/// The longest wait between two tries.
const MAIL_JOB_RETRY_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `job` for a forgot or resend request in the background, within
/// [`crate::state::App::mail_jobs`]; past that bound the request is dropped
/// with a warning (its answer is the same 202 either way).
///
/// The job starts at a random moment within [`MAIL_JOB_SPREAD`]: for a
/// known email it stores a token and writes a mail, for an unknown one it
/// does not, and that work, done at once, would slow the caller's next
/// request just enough to tell the two apart over a few hundred tries.
fn in_background<F, Fut>(state: &AppState, what: &'static str, job: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), tessera_store::StoreError>> + Send + 'static,
{
    let Ok(permit) = state.mail_jobs.clone().try_acquire_owned() else {
        tracing::warn!(request = what, "too many mail requests in flight; dropped one");
        return;
    };
    let start_in = MAIL_JOB_SPREAD.mul_f64(rand::random::<f64>());
    tokio::spawn(async move {
        tokio::time::sleep(start_in).await;
        retrying_while_unavailable(what, job).await;
        drop(permit);
    });
}

/// Runs `job`, and while the store is unavailable runs it again, waiting
/// 1 s, then twice as long each time (at most 30 s), for up to five minutes.
async fn retrying_while_unavailable<F, Fut>(what: &'static str, job: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), tessera_store::StoreError>>,
{
    let started = tokio::time::Instant::now();
    let mut wait = std::time::Duration::from_secs(1);
    loop {
        match job().await {
            Ok(()) => return,
            Err(err @ tessera_store::StoreError::Unavailable(_)) if started.elapsed() + wait <= MAIL_JOB_RETRY_FOR => {
                tracing::info!(request = what, error = %err, retry_in_ms = wait.as_millis() as u64, "could not handle a mail request yet; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAIL_JOB_RETRY_MAX_WAIT);
            }
            Err(err) => {
                tracing::warn!(request = what, error = %err, "could not handle a mail request; giving up");
                return;
            }
        }
    }
}

fn invalid_reset() -> ApiError {
    ApiError::InvalidToken("the reset link is used, expired or not valid; ask for a new one")
}

fn invalid_verification() -> ApiError {
    ApiError::InvalidToken("the verification link is used, expired or not valid; ask for a new one")
}

/// The `email` field of a forgot or resend request.
fn email_field(body: serde_json::Map<String, serde_json::Value>) -> ApiResult<Email> {
    let mut f = Fields::new(body);
    let email = f.required("email", |s| Email::parse_existing(&s));
    f.finish()?;
    checked(email)
}

/// Ask for a password-reset link. The answer is 202 whether or not the email
/// has an account, and comes as fast either way.
#[utoipa::path(post, path = "/api/auth/password/forgot", tag = "accounts",
    request_body = super::dto::EmailRequest,
    responses(
        (status = 202, description = "Accepted: if the email has an account, a reset link valid 15 minutes is on its way"),
        (status = 400, body = super::dto::ErrorBody),
        (status = 413, body = super::dto::ErrorBody), (status = 415, body = super::dto::ErrorBody),
        (status = 422, description = "`validation_failed`: not an email address", body = super::dto::ErrorBody),
        (status = 429, description = "`rate_limited`: too many requests for this email (`TESSERA_FORGOT_RATE_LIMIT`, the same for emails without an account) or from this client; `Retry-After` says when to retry", body = super::dto::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 503, description = "`unavailable`, also when the rate limits cannot be checked", body = super::dto::ErrorBody),
    ))]
async fn forgot_password(
    State(state): State<AppState>,
    tenant: TenantScope,
    client: ClientMeta,
    JsonObject(body): JsonObject,
) -> ApiResult<StatusCode> {
    let email = email_field(body)?;
    state
        .limits
        .mail_request(MailLimit::Forgot, &email, client.addr)
        .await?;
    let job_state = state.clone();
    let scope = tenant.tenant.clone();
    in_background(&state, "password.forgot", move || {
        let (state, scope, email, client) = (job_state.clone(), scope.clone(), email.clone(), client.clone());
        async move {
            let Some(record) = state.users.find_user_by_email(scope.id, &email).await? else {
                return Ok(());
            };
            let user = record.user;
            issue_and_mail(&state, &user, &scope, AccountTokenPurpose::PasswordReset).await?;
            state.audit.record(
                Event::new(event::PASSWORD_RESET_REQUESTED, scope.id, unix_now())
                    .user(user.id)
                    .client(&client),
            );
            Ok(())
        }
    });
    Ok(StatusCode::ACCEPTED)
}

/// Set a new password with the token of a reset link. Every session of the
/// user ends; the token works once.
#[utoipa::path(post, path = "/api/auth/password/reset", tag = "accounts",
    request_body = super::dto::ResetPasswordRequest,
    responses(
        (status = 204, description = "Password replaced; every session of the user has ended"),
        (status = 400, body = super::dto::ErrorBody),
        (status = 401, description = "`invalid_token`: a used, expired, forged or other tenant's token", body = super::dto::ErrorBody),
        (status = 413, body = super::dto::ErrorBody), (status = 415, body = super::dto::ErrorBody),
        (status = 422, description = "`validation_failed`: the new password breaks the policy", body = super::dto::ErrorBody),
        (status = 429, description = "`rate_limited`: too many requests from this client; `Retry-After` says when to retry", body = super::dto::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 503, description = "`unavailable`, also when the rate limits cannot be checked", body = super::dto::ErrorBody),
    ))]
async fn reset_password(
    State(state): State<AppState>,
    tenant: TenantScope,
    client: ClientMeta,
    JsonObject(body): JsonObject,
) -> ApiResult<StatusCode> {
    let mut f = Fields::new(body);
    let token = f.required("token", Ok::<String, std::convert::Infallible>);
    let password = f.required("password", Password::parse);
    f.finish()?;
    let (token, password) = (checked(token)?, checked(password)?);
    state.limits.client(client.addr, Outage::Refuse).await?;
    let token_hash = accounts::presented_hash(AccountTokenPurpose::PasswordReset, &token).ok_or_else(invalid_reset)?;

    // Looked up before hashing, so a forged token costs no Argon2 work.
    let now = unix_now();
    let Some(user) = state
        .account_tokens
        .account_token_user(tenant.id(), AccountTokenPurpose::PasswordReset, &token_hash, now)
        .await?
    else {
        return Err(invalid_reset());
    };
    let new_hash = state.hasher.hash(password).await?;
    // Sessions end before the password changes and again after: one opened
    // with the old password in between does not survive the reset.
    crate::http::sessions::end_all_sessions_of(&state, user).await?;
    let Some(user) = state
        .account_tokens
        .reset_password(tenant.id(), &token_hash, &new_hash, unix_now())
        .await?
    else {
        // Used (or expired) by a concurrent reset meanwhile.
        return Err(invalid_reset());
    };
    let ended = crate::http::sessions::end_all_sessions(&state, &user).await?;
    // The mailbox's owner chose a new password: a lock set by guesses at the
    // old one no longer protects anything, and would keep them out.
    state.limits.clear_failed_logins(user.tenant, &user.email).await;
    tracing::info!(tenant = %user.tenant, user = %user.id, "password reset");
    state.audit.record(
        Event::new(event::PASSWORD_RESET, user.tenant, unix_now())
            .user(user.id)
            .client(&client)
            .detail(serde_json::json!({"sessionsEnded": ended})),
    );
    mail_password_changed(&state, &user, &tenant.tenant);
    Ok(StatusCode::NO_CONTENT)
}

/// Change the password of the bearer's account. The current password is
/// required; every other session of the user ends, this one stays.
#[utoipa::path(post, path = "/api/auth/password/change", tag = "accounts", security(("bearer" = [])),
    request_body = super::dto::ChangePasswordRequest,
    responses(
        (status = 204, description = "Password changed; every other session has ended"),
        (status = 400, body = super::dto::ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, or `invalid_credentials` (the current password is wrong)", body = super::dto::ErrorBody),
        (status = 413, body = super::dto::ErrorBody), (status = 415, body = super::dto::ErrorBody),
        (status = 422, description = "`validation_failed`: the new password breaks the policy", body = super::dto::ErrorBody),
        (status = 429, description = "`rate_limited`: too many failed password checks of this account (a wrong current password counts as a failed login); `Retry-After` says when to retry", body = super::dto::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 503, description = "`unavailable`, also when the rate limits cannot be checked", body = super::dto::ErrorBody),
    ))]
async fn change_password(
    State(state): State<AppState>,
    tenant: TenantScope,
    client: ClientMeta,
    req: Request,
) -> ApiResult<StatusCode> {
    let caller = session_caller(&state, req.headers(), &tenant).await?;
    let JsonObject(body) = <JsonObject as axum::extract::FromRequest<AppState>>::from_request(req, &state).await?;
    let mut f = Fields::new(body);
    let current = f.required("currentPassword", Password::parse_candidate);
    let new = f.required("newPassword", Password::parse);
    f.finish()?;
    let (current, new) = (checked(current)?, checked(new)?);

    let user = state
        .users
        .find_user(caller.user)
        .await?
        .ok_or(ApiError::InvalidToken("the account no longer exists"))?;
    // A wrong current password is a failed login of the account: a stolen
    // access token must not become a way to guess the password.
    let ticket = state.hasher.ticket()?.ready().await?;
    let attempt = state
        .limits
        .current_password_attempt(user.tenant, user.email.as_str(), client.addr)
        .await?;
    let record = state
        .users
        .find_user_by_email(user.tenant, &user.email)
        .await?
        .ok_or(ApiError::InvalidToken("the account no longer exists"))?;
    let verdict = ticket.verify(current, Some(record.password_hash)).await?;
    if verdict == PasswordVerdict::Refused {
        tracing::warn!(
            user = %user.id,
            "stored password hash not run (over the Argon2/bcrypt limits, or malformed): a wrong password until it is reset"
        );
    }
    if !matches!(verdict, PasswordVerdict::Valid { .. }) {
        tracing::info!(user = %user.id, "password change with a wrong current password");
        state.audit.record(
            Event::new(event::LOGIN_FAILED, user.tenant, unix_now())
                .user(user.id)
                .session(caller.session)
                .client(&client)
                .detail(serde_json::json!({"reason": "wrong_password", "during": "password.change"})),
        );
        if !attempt.locks_for.is_zero() {
            state.audit.record(
                Event::new(event::LOGIN_LOCKED, user.tenant, unix_now())
                    .user(user.id)
                    .session(caller.session)
                    .client(&client)
                    .detail(serde_json::json!({
                        "lockedForSecs": crate::ratelimit::whole_seconds(attempt.locks_for),
                        "during": "password.change",
                    })),
            );
        }
        return Err(ApiError::InvalidCredentials);
    }
    state.limits.password_correct(&attempt).await;
    let new_hash = state.hasher.hash(new).await?;
    if !state.account_tokens.change_password(user.id, &new_hash).await? {
        return Err(ApiError::InvalidToken("the account no longer exists"));
    }
    let ended = crate::http::sessions::end_other_sessions(&state, &user, caller.session).await?;
    tracing::info!(tenant = %user.tenant, user = %user.id, "password changed");
    state.audit.record(
        Event::new(event::PASSWORD_CHANGED, user.tenant, unix_now())
            .user(user.id)
            .session(caller.session)
            .client(&client)
            .detail(serde_json::json!({"sessionsEnded": ended})),
    );
    mail_password_changed(&state, &user, &tenant.tenant);
    Ok(StatusCode::NO_CONTENT)
}

/// Verify the account's email with the token of the mailed link.
#[utoipa::path(post, path = "/api/auth/email/verify", tag = "accounts",
    request_body = super::dto::VerifyEmailRequest,
    responses(
        (status = 204, description = "`user.emailVerified` is now true"),
        (status = 400, body = super::dto::ErrorBody),
        (status = 401, description = "`invalid_token`: a used, expired, forged or other tenant's token", body = super::dto::ErrorBody),
        (status = 413, body = super::dto::ErrorBody), (status = 415, body = super::dto::ErrorBody),
        (status = 422, body = super::dto::ErrorBody),
        (status = 429, description = "`rate_limited`: too many requests from this client; `Retry-After` says when to retry", body = super::dto::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 503, body = super::dto::ErrorBody),
    ))]
async fn verify_email(
    State(state): State<AppState>,
    tenant: TenantScope,
    client: ClientMeta,
    JsonObject(body): JsonObject,
) -> ApiResult<StatusCode> {
    let mut f = Fields::new(body);
    let token = f.required("token", Ok::<String, std::convert::Infallible>);
    f.finish()?;
    let token = checked(token)?;
    state.limits.client(client.addr, Outage::Allow).await?;
    let token_hash =
        accounts::presented_hash(AccountTokenPurpose::EmailVerification, &token).ok_or_else(invalid_verification)?;
    let Some(user) = state
        .account_tokens
        .verify_email(tenant.id(), &token_hash, unix_now())
        .await?
    else {
        return Err(invalid_verification());
    };
    tracing::info!(tenant = %user.tenant, user = %user.id, "email verified");
    state.audit.record(
        Event::new(event::EMAIL_VERIFIED, user.tenant, unix_now())
            .user(user.id)
            .client(&client),
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Ask for a new verification link. 202 whatever the email: an unknown or
/// already verified address gets no mail, and the answer does not say so.
#[utoipa::path(post, path = "/api/auth/email/resend", tag = "accounts",
    request_body = super::dto::EmailRequest,
    responses(
        (status = 202, description = "Accepted: if the email has an unverified account, a new link is on its way"),
        (status = 400, body = super::dto::ErrorBody),
        (status = 413, body = super::dto::ErrorBody), (status = 415, body = super::dto::ErrorBody),
        (status = 422, body = super::dto::ErrorBody),
        (status = 429, description = "`rate_limited`: too many requests for this email (`TESSERA_RESEND_RATE_LIMIT`, the same for emails without an account) or from this client; `Retry-After` says when to retry", body = super::dto::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
        (status = 503, description = "`unavailable`, also when the rate limits cannot be checked", body = super::dto::ErrorBody),
    ))]
async fn resend_verification(
    State(state): State<AppState>,
    tenant: TenantScope,
    client: ClientMeta,
    JsonObject(body): JsonObject,
) -> ApiResult<StatusCode> {
    let email = email_field(body)?;
    state
        .limits
        .mail_request(MailLimit::Resend, &email, client.addr)
        .await?;
    let job_state = state.clone();
    let scope = tenant.tenant.clone();
    in_background(&state, "email.resend", move || {
        let (state, scope, email) = (job_state.clone(), scope.clone(), email.clone());
        async move {
            match state.users.find_user_by_email(scope.id, &email).await? {
                Some(record) if !record.user.email_verified => {
                    issue_and_mail(&state, &record.user, &scope, AccountTokenPurpose::EmailVerification).await
                }
                _ => Ok(()),
            }
        }
    });
    Ok(StatusCode::ACCEPTED)
}
