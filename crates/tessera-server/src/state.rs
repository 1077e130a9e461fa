//! What every handler shares: the token issuer, the stores, the hash pool.

use crate::audit::AuditLog;
use crate::hashing::HashPool;
use crate::tenants::TenantDirectory;
use crate::tokens::TokenIssuer;
use std::sync::Arc;
use tessera_store::{AccountTokenStore, AuditStore, Health, SessionStore, TenantStore, UserStore};

pub type AppState = Arc<App>;

pub struct App {
    pub tokens: TokenIssuer,
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub tenant_store: Arc<dyn TenantStore>,
    pub audit_store: Arc<dyn AuditStore>,
    /// Password-reset and email-verification tokens (hashed).
    pub account_tokens: Arc<dyn AccountTokenStore>,
    pub tenants: TenantDirectory,
    pub audit: AuditLog,
    pub health: Vec<Arc<dyn Health>>,
    pub hasher: HashPool,
    /// Seconds during which the parent of the current refresh token still
    /// gets the current pair back (two tabs refreshing at once).
    pub refresh_grace_secs: i64,
    /// Deadline for a whole request (headers, body, handler).
    pub request_timeout: std::time::Duration,
    /// Whether `POST /api/auth/signup` creates tenants (`TESSERA_SIGNUP`).
    pub signup_open: bool,
    /// The URL clients reach this server at, without a trailing slash
    /// (`TESSERA_PUBLIC_URL`, else the issuer): base of discovery URLs.
    pub public_base: String,
    /// Outgoing mail (verification, reset, password-changed notices).
    pub mailer: crate::mail::Mailer,
    /// Logins of unverified accounts are refused
    /// (`TESSERA_REQUIRE_EMAIL_VERIFICATION`).
    pub require_email_verification: bool,
    /// Bounds the background work of forgot-password and resend requests
    /// (lookups, tokens, mail), which the request does not wait for.
    pub mail_jobs: Arc<tokio::sync::Semaphore>,
    /// Rate limits (failed logins, requests per client, mail per email).
    pub limits: crate::ratelimit::RateLimits,
    /// Peers whose `X-Forwarded-For` names the client (`TESSERA_TRUSTED_PROXIES`).
    pub trusted_proxies: crate::client_ip::TrustedProxies,
    /// Sessions ended early, whose access tokens are refused
    /// (`TESSERA_REVOCATION_CHECK`); `None` when the check is off.
    pub revocations: Option<Arc<crate::revocation::Revocations>>,
}
