//! The JSON shapes of the API. Only this layer serializes: domain and store
//! types stay free of serde so the wire format changes in one place.

use serde::Serialize;
use std::collections::BTreeMap;
use tessera_store::{Session, User};
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;
use uuid::Uuid;

pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// An account, as clients see it. Never a password or its hash.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDto {
    pub id: Uuid,
    #[schema(example = "ada@example.com")]
    pub email: String,
    pub email_verified: bool,
    pub first_name: String,
    pub last_name: String,
    #[schema(example = "user")]
    pub role: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<&User> for UserDto {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.as_uuid(),
            email: user.email.as_str().to_owned(),
            email_verified: user.email_verified,
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            role: user.role.as_str().to_owned(),
            created_at: rfc3339(user.created_at),
        }
    }
}

/// Register and login answer with the user and a fresh token pair.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthResponse {
    pub user: UserDto,
    #[serde(flatten)]
    pub tokens: TokenResponse,
}

/// A rotated token pair.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

impl From<crate::tokens::IssuedPair> for TokenResponse {
    fn from(pair: crate::tokens::IssuedPair) -> Self {
        Self {
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
            token_type: "Bearer",
            expires_in: pair.expires_in,
        }
    }
}

/// What `/api/auth/verify` reports about a valid access token.
#[derive(Serialize, ToSchema)]
pub struct VerifyResponse<'a> {
    pub sub: Uuid,
    pub sid: Uuid,
    /// The token's tenant (the nil uuid for the default tenant).
    pub tid: Uuid,
    pub email: &'a str,
    pub role: &'a str,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionDto {
    pub id: Uuid,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_used_at: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// True for the session of the token that asked.
    pub current: bool,
}

impl SessionDto {
    pub fn new(session: &Session, current: bool) -> Self {
        Self {
            id: session.id.as_uuid(),
            created_at: rfc3339(session.created_at),
            last_used_at: rfc3339(session.last_used_at),
            expires_at: rfc3339(session.expires_at),
            user_agent: session.user_agent.clone(),
            ip: session.ip.clone(),
            current,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionDto>,
}

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    #[schema(example = "ok")]
    pub status: &'static str,
}

// Request bodies. Handlers parse these by hand (see `extract::Fields`) so a
// 422 can name every bad field; these types document the shape.

#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(as = RegisterRequest)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// Trimmed and compared case-insensitively.
    #[schema(example = "ada@example.com", max_length = 254)]
    email: String,
    /// 8 to 128 characters; never trimmed or truncated.
    #[schema(min_length = 8, max_length = 128)]
    password: String,
    #[schema(min_length = 1, max_length = 100)]
    first_name: String,
    /// May be empty.
    #[schema(max_length = 100)]
    last_name: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct LoginRequest {
    #[schema(example = "ada@example.com")]
    email: String,
    #[schema(max_length = 128)]
    password: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    refresh_token: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogoutRequest {
    /// `local` (default): this session; `others`: every other session of the
    /// user; `global`: all of them.
    #[schema(inline)]
    scope: Option<LogoutScopeDoc>,
    /// Identifies the session when no bearer access token is sent.
    refresh_token: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogoutScopeDoc {
    Local,
    Others,
    Global,
}

/// Every error has this body.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ErrorBody {
    /// A stable code: `invalid_request`, `validation_failed`,
    /// `unsupported_media_type`, `payload_too_large`, `invalid_credentials`,
    /// `missing_token`, `invalid_token`, `token_expired`,
    /// `refresh_token_reused`, `invalid_api_key`, `forbidden`, `not_found`,
    /// `method_not_allowed`, `email_taken`, `conflict`, `rate_limited`,
    /// `unavailable`, `internal`.
    #[schema(example = "invalid_token")]
    error: String,
    /// One human sentence.
    message: String,
    /// Present on 422: field name to what is wrong with it.
    fields: Option<BTreeMap<String, String>>,
}

/// A tenant, as its owner sees it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantDto {
    pub id: Uuid,
    /// Its routes live under `/api/tenants/{slug}/`.
    #[schema(example = "acme")]
    pub slug: String,
    #[schema(example = "Acme")]
    pub name: String,
}

/// A new tenant, its owner, the owner's first token pair, and the tenant's
/// API key, shown this once.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignupResponse {
    pub tenant: TenantDto,
    pub user: UserDto,
    #[serde(flatten)]
    pub tokens: TokenResponse,
    /// Send as `X-Api-Key` to administer the tenant. Stored only as a hash:
    /// it cannot be shown again.
    pub api_key: String,
}

/// The kids that sign from now on.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotateResponse {
    pub access_kid: String,
    pub refresh_kid: String,
}

/// One audit event.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventDto {
    /// Also the cursor: pass it as `before` to read older events.
    #[schema(example = "1024")]
    pub id: String,
    #[schema(format = DateTime)]
    pub at: String,
    /// `user.registered`, `login.succeeded`, `login.failed`, `login.locked`,
    /// `token.refreshed`, `refresh.reused`, `session.revoked`, `logout`,
    /// `keys.rotated`, `tenant.created`.
    #[serde(rename = "type")]
    #[schema(example = "login.succeeded")]
    pub kind: String,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Event-specific facts (for example the rotation mode); never a secret.
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}

impl From<&tessera_store::AuditEvent> for AuditEventDto {
    fn from(e: &tessera_store::AuditEvent) -> Self {
        Self {
            id: e.id.to_string(),
            at: rfc3339(e.at),
            kind: e.kind.clone(),
            user_id: e.user.map(|u| u.as_uuid()),
            session_id: e.session.map(|s| s.as_uuid()),
            ip: e.ip.clone(),
            user_agent: e.user_agent.clone(),
            detail: e.detail.as_deref().and_then(|d| serde_json::from_str(d).ok()),
        }
    }
}

/// A page of a tenant's users, newest first.
#[derive(Serialize, ToSchema)]
pub struct UserPage {
    pub users: Vec<UserDto>,
    /// The cursor of the next (older) page, or null at the end.
    pub next: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct SetRoleRequest {
    /// `user`, `admin`, `owner`, or a role of your own (1 to 32 of `a-z 0-9 _ -`), which tokens carry as `role`.
    #[schema(example = "admin", max_length = 32)]
    pub role: String,
}

/// A page of audit events, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEventDto>,
    /// The cursor of the next (older) page, or null at the end.
    pub next: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignupRequest {
    #[schema(example = "ada@example.com", max_length = 254)]
    email: String,
    #[schema(min_length = 8, max_length = 128)]
    password: String,
    #[schema(min_length = 1, max_length = 100)]
    first_name: String,
    #[schema(max_length = 100)]
    last_name: String,
    /// The tenant's display name; its slug is made from it.
    #[schema(example = "Acme", min_length = 1, max_length = 100)]
    tenant_name: String,
    /// How the tenant's access tokens are signed (default `HS256`).
    /// Refresh tokens are always HS256.
    #[schema(inline)]
    signing_alg: Option<SigningAlgDoc>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub enum SigningAlgDoc {
    HS256,
    EdDSA,
    ES256,
    RS256,
}

/// An RFC 7517 key set.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct JwkSetDto {
    keys: Vec<JwkDto>,
}

/// A public key (RFC 7517, RFC 8037), with tessera's `tid`.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct JwkDto {
    /// `OKP`, `EC` or `RSA`.
    kty: String,
    kid: String,
    /// `EdDSA`, `ES256` or `RS256`.
    alg: String,
    /// Always `sig`.
    #[schema(rename = "use")]
    use_: String,
    /// `Ed25519` or `P-256`.
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    /// The tenant whose tokens this key verifies.
    tid: uuid::Uuid,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct RotateRequest {
    /// `graceful` (default): new keys sign from now on, old ones verify
    /// until their last token expires. `revoke`: old keys, tokens and
    /// sessions of the tenant end at once.
    #[schema(inline)]
    mode: Option<RotateModeDoc>,
    /// Switch the tenant's access tokens to this algorithm. `graceful`
    /// publishes a key of it as the next key (it signs from the following
    /// rotation); `revoke` signs with it at once.
    #[serde(rename = "signingAlg")]
    #[schema(inline)]
    signing_alg: Option<SigningAlgDoc>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RotateModeDoc {
    Graceful,
    Revoke,
}

/// Register's answer while `TESSERA_REQUIRE_EMAIL_VERIFICATION` is on: the
/// account, and no session until its email is verified.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingVerificationResponse {
    pub user: UserDto,
    /// Always true: follow the mailed link, then log in.
    pub email_verification_required: bool,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct EmailRequest {
    #[schema(example = "ada@example.com", max_length = 254)]
    email: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ResetPasswordRequest {
    /// The `token` query parameter of the mailed link.
    token: String,
    /// The new password: 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    password: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordRequest {
    #[schema(max_length = 128)]
    current_password: String,
    #[schema(min_length = 8, max_length = 128)]
    new_password: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct VerifyEmailRequest {
    /// The `token` query parameter of the mailed link.
    token: String,
}
