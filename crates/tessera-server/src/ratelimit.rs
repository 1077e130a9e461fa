//! Rate limits: what is limited, by which key, and what happens when the
//! counters cannot be reached. The counting itself is
//! `tessera_store::RateLimiter` (GCRA; Redis when configured, memory
//! otherwise).
//!
//! | limit | key | default | routes |
//! | --- | --- | --- | --- |
//! | per client | the client's IPv4 address or IPv6 /64 | 100 a minute | every unauthenticated POST but refresh: register, login, signup, password forgot/reset, email verify/resend |
//! | failed logins | tenant + normalized email, as a digest; with the client too for a client known to the account (one that logged in to it within 30 days) | 10 per 15 minutes, then locks of 1 min doubling up to 15 min | login, and the current password of `/password/change` |
//! | forgot-password | the email, as a digest, across tenants | 3 an hour | `/password/forgot` |
//! | verification resend | the email, as a digest, across tenants | 3 an hour | `/email/resend` |
//! | registration mail | the email, as a digest, across tenants | as resends | the verification mail of a registration or signup (left out past it) |
//! | password-changed notice | the email, as a digest, across tenants | as resends | the notice of a reset or change, sent to verified addresses only (left out past it) |
//!
//! A request's limits are one atomic check, applied in order (the client's
//! first), before any password hashing or store lookup of the account, and
//! the same for emails that have an account and emails that do not, so the
//! limits say nothing about which accounts exist.
//!
//! When the counters cannot be reached (Redis down), the routes that guard
//! passwords or send mail (login, password change, forgot, reset, resend)
//! refuse with 503 `unavailable`: their limits are what stops guessing and
//! mail bombing. Register, signup and email verification go on unlimited:
//! they guess nothing (a verification token has 256 random bits), and
//! register and signup are bounded by the hashing pool anyway.

use crate::http::error::{ApiError, ApiResult};
use sha2::{Digest as _, Sha256};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tessera_core::{Email, TenantId};
use tessera_store::{Limit, LimitDecision, LimitRule, RateLimiter};

/// `count` per `period`: `100/1m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub count: u32,
    pub period: Duration,
}

impl Quota {
    pub const fn new(count: u32, period_secs: u64) -> Self {
        Self {
            count,
            period: Duration::from_secs(period_secs),
        }
    }

    /// `100/1m`, `3/1h`, `10/15m` (a count, a slash, a duration as
    /// `parse_duration` reads it), or `off` (`None`).
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let bad = || format!("{raw:?} is not a limit like 100/1m (a count, a slash, a duration) or off");
        let (count, period) = raw.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let period = crate::config::parse_duration(period).map_err(|_| bad())?;
        Ok(Some(Self { count, period }))
    }

    fn rate(self) -> LimitRule {
        LimitRule::Rate {
            count: self.count,
            period: self.period,
        }
    }

    /// Why this quota cannot be used, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if self.count == 0 || self.count > 1_000_000 {
            return Some("the count must be between 1 and 1000000 (or the whole limit off)".to_owned());
        }
        if self.period < Duration::from_secs(1) || self.period > Duration::from_secs(7 * 24 * 3600) {
            return Some("the period must be between 1s and 7d".to_owned());
        }
        if u128::from(self.count) > self.period.as_millis() {
            return Some("at most one request per millisecond: lower the count or lengthen the period".to_owned());
        }
        None
    }
}

impl std::fmt::Display for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}s", self.count, self.period.as_secs())
    }
}

/// The rate-limit settings (`TESSERA_RATE_LIMITS` and the limits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// `TESSERA_RATE_LIMITS`: `false` turns every limit off.
    pub enabled: bool,
    /// `TESSERA_IP_RATE_LIMIT`: requests per client on the unauthenticated POST routes.
    pub per_client: Option<Quota>,
    /// `TESSERA_LOGIN_FAILURE_LIMIT`: failed logins per account before it locks.
    pub login_failures: Option<Quota>,
    /// `TESSERA_LOGIN_BACKOFF`: the first lock; each further failure doubles it.
    pub login_backoff: Duration,
    /// `TESSERA_LOGIN_BACKOFF_MAX`: the longest lock.
    pub login_backoff_max: Duration,
    /// `TESSERA_FORGOT_RATE_LIMIT`: forgot-password requests per email.
    pub forgot_per_email: Option<Quota>,
    /// `TESSERA_RESEND_RATE_LIMIT`: verification resends per email.
    pub resend_per_email: Option<Quota>,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            per_client: Some(Quota::new(100, 60)),
            login_failures: Some(Quota::new(10, 15 * 60)),
            login_backoff: Duration::from_secs(60),
            login_backoff_max: Duration::from_secs(15 * 60),
            forgot_per_email: Some(Quota::new(3, 3600)),
            resend_per_email: Some(Quota::new(3, 3600)),
        }
    }
}

impl RateLimitSettings {
    /// Every limit off (`TESSERA_RATE_LIMITS=off`).
    pub fn off() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// The first setting that cannot be used: its variable and why.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        for (var, quota) in [
            ("TESSERA_IP_RATE_LIMIT", self.per_client),
            ("TESSERA_LOGIN_FAILURE_LIMIT", self.login_failures),
            ("TESSERA_FORGOT_RATE_LIMIT", self.forgot_per_email),
            ("TESSERA_RESEND_RATE_LIMIT", self.resend_per_email),
        ] {
            if let Some(problem) = quota.as_ref().and_then(Quota::problem) {
                return Some((var, problem));
            }
        }
        if self.login_backoff < Duration::from_secs(1) {
            return Some(("TESSERA_LOGIN_BACKOFF", "must be at least 1s".to_owned()));
        }
        if self.login_backoff_max < self.login_backoff || self.login_backoff_max > Duration::from_secs(24 * 3600) {
            return Some((
                "TESSERA_LOGIN_BACKOFF_MAX",
                format!(
                    "must be between TESSERA_LOGIN_BACKOFF ({}s) and 24h: a lock must end, or an attacker could \
                     lock a victim out for good",
                    self.login_backoff.as_secs()
                ),
            ));
        }
        None
    }
}

/// What a route does when the counters cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// 503 `unavailable`: the limit is what protects the route.
    Refuse,
    /// Serve the request unlimited, with a warning.
    Allow,
}

/// Which per-email limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailLimit {
    Forgot,
    Resend,
    /// The verification mail of a registration or signup.
    Registration,
    /// The notice that a password changed.
    Notice,
}

/// A password check that the limits let through: call
/// [`RateLimits::password_correct`] if the password is right.
#[derive(Debug)]
pub struct PasswordAttempt {
    /// The failure counter the attempt was charged to.
    failures: Option<String>,
    /// The set of clients known to the account, and this client's member
    /// of it, remembered once the password proves right.
    known: Option<(String, String)>,
    /// If this attempt fails, the account is locked for this long (for the
    /// clients that share its counter).
    pub locks_for: Duration,
}

/// How long a client stays known to an account after logging in to it.
pub const KNOWN_CLIENT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The limits, as every handler sees them.
pub struct RateLimits {
    limiter: Option<Arc<dyn RateLimiter>>,
    settings: RateLimitSettings,
}

impl RateLimits {
    /// `limiter` counts; with the settings off it is never asked.
    pub fn new(settings: RateLimitSettings, limiter: Arc<dyn RateLimiter>) -> Self {
        Self {
            limiter: settings.enabled.then_some(limiter),
            settings,
        }
    }

    pub fn enabled(&self) -> bool {
        self.limiter.is_some()
    }

    /// An unauthenticated POST from `client` with no limit of its own
    /// (register, signup, reset, email verification).
    pub async fn client(&self, client: Option<IpAddr>, outage: Outage) -> ApiResult<()> {
        let limits: Vec<Limit> = self.client_limit(client).into_iter().collect();
        self.check(&limits, outage).await.map(|_| ())
    }

    /// Before checking a password of the account `email` names in `tenant`
    /// (a login: `client` is the caller; a password change: `None`). Known
    /// and unknown emails, even malformed ones, are counted alike.
    ///
    /// Failures are counted per account, shared by every client the account
    /// does not know; a client that logged in to the account within
    /// [`KNOWN_CLIENT_TTL`] has a counter of its own for it. So an attacker
    /// who locks an account locks out strangers only: its owner, logging in
    /// from where they did before, is not made to wait.
    pub async fn password_attempt(
        &self,
        tenant: TenantId,
        email: &str,
        client: Option<IpAddr>,
    ) -> ApiResult<PasswordAttempt> {
        self.attempt(tenant, email, client, true).await
    }

    /// Before checking the current password of a password change, by
    /// `client`: counted like a login (a stolen access token is no password
    /// oracle), without the per-client limit of unauthenticated requests.
    pub async fn current_password_attempt(
        &self,
        tenant: TenantId,
        email: &str,
        client: Option<IpAddr>,
    ) -> ApiResult<PasswordAttempt> {
        self.attempt(tenant, email, client, false).await
    }

    async fn attempt(
        &self,
        tenant: TenantId,
        email: &str,
        client: Option<IpAddr>,
        limit_client: bool,
    ) -> ApiResult<PasswordAttempt> {
        let unlimited = PasswordAttempt {
            failures: None,
            known: None,
            locks_for: Duration::ZERO,
        };
        let Some(limiter) = &self.limiter else {
            return Ok(unlimited);
        };
        let mut limits: Vec<Limit> = if limit_client {
            self.client_limit(client).into_iter().collect()
        } else {
            Vec::new()
        };
        let Some(quota) = self.settings.login_failures else {
            self.check(&limits, Outage::Refuse).await?;
            return Ok(unlimited);
        };
        let known = client.map(|ip| (known_clients_key(tenant, email), client_member(ip)));
        let is_known = match &known {
            Some((set, member)) => match limiter.remembered(set, member, unix_now_ms()).await {
                Ok(is_known) => is_known,
                Err(err) => {
                    tracing::warn!(error = %err, "rate limits unavailable; refusing the request");
                    return Err(unavailable());
                }
            },
            None => false,
        };
        let failures = match client {
            Some(ip) if is_known => account_client_key(tenant, email, ip),
            _ => account_key(tenant, email),
        };
        limits.push(Limit {
            key: failures.clone(),
            rule: LimitRule::Failures {
                count: quota.count,
                period: quota.period,
                backoff: self.settings.login_backoff,
                backoff_max: self.settings.login_backoff_max,
            },
        });
        let locks_for = self.check(&limits, Outage::Refuse).await?;
        Ok(PasswordAttempt {
            failures: Some(failures),
            known,
            locks_for,
        })
    }

    /// Forgets the failed logins (and lock) of the account `email` names in
    /// `tenant`, for the clients it does not know: its password was reset.
    /// A failure is logged, not returned.
    pub async fn clear_failed_logins(&self, tenant: TenantId, email: &Email) {
        let Some(limiter) = &self.limiter else {
            return;
        };
        if let Err(err) = limiter.reset(&account_key(tenant, email.as_str())).await {
            tracing::warn!(error = %err, "could not clear an account's failed logins");
        }
    }

    /// The account's password changed, or all its sessions ended: no client
    /// is known to it any more, so whoever knew the old password has no
    /// count of their own left. A failure is logged, not returned.
    pub async fn forget_known_clients(&self, tenant: TenantId, email: &Email) {
        let Some(limiter) = &self.limiter else {
            return;
        };
        if let Err(err) = forget_known_clients(limiter.as_ref(), tenant, email).await {
            tracing::warn!(error = %err, "could not forget the clients known to an account");
        }
    }

    /// The password was right: the failures and backoff of the counter the
    /// attempt was charged to are forgotten, and the client is known to the
    /// account from now on. A failure here is logged, not returned: the
    /// login stands.
    pub async fn password_correct(&self, attempt: &PasswordAttempt) {
        let Some(limiter) = &self.limiter else {
            return;
        };
        if let Some(key) = &attempt.failures {
            if let Err(err) = limiter.reset(key).await {
                tracing::warn!(error = %err, "could not clear an account's failed logins");
            }
        }
        if let Some((set, member)) = &attempt.known {
            if let Err(err) = limiter.remember(set, member, KNOWN_CLIENT_TTL, unix_now_ms()).await {
                tracing::warn!(error = %err, "could not remember a client of an account");
            }
        }
    }

    /// A forgot-password or resend request for `email` from `client`. The
    /// count is the address's, across every tenant: anyone may create
    /// tenants, so a count per tenant would let one address be mailed
    /// without end.
    pub async fn mail_request(&self, which: MailLimit, email: &Email, client: Option<IpAddr>) -> ApiResult<()> {
        let mut limits: Vec<Limit> = self.client_limit(client).into_iter().collect();
        limits.extend(self.mail_limit(which, email));
        self.check(&limits, Outage::Refuse).await.map(|_| ())
    }

    /// Whether one more mail of `which` kind may go to `email` now, counting
    /// it if so: the verification mail of a registration or signup, counted
    /// apart from resends (so resends answer alike for every address) at the
    /// resend rate. Registering is not refused for it; the mail is left out
    /// (the user can ask again at `/email/resend`), as it is when the
    /// counters cannot be reached.
    pub async fn allow_mail(&self, which: MailLimit, email: &Email) -> bool {
        let limits: Vec<Limit> = self.mail_limit(which, email).into_iter().collect();
        match self.check(&limits, Outage::Refuse).await {
            Ok(_) => true,
            Err(ApiError::RateLimited { .. }) => {
                tracing::info!(kind = ?which, "mail left out: this address had its share of mail");
                false
            }
            Err(_) => false,
        }
    }

    fn mail_limit(&self, which: MailLimit, email: &Email) -> Option<Limit> {
        let (kind, quota) = match which {
            MailLimit::Forgot => ("forgot", self.settings.forgot_per_email),
            MailLimit::Resend => ("resend", self.settings.resend_per_email),
            MailLimit::Registration => ("registered", self.settings.resend_per_email),
            MailLimit::Notice => ("notice", self.settings.resend_per_email),
        };
        quota.map(|quota| Limit {
            key: address_key(kind, email.as_str()),
            rule: quota.rate(),
        })
    }

    fn client_limit(&self, client: Option<IpAddr>) -> Option<Limit> {
        let (quota, ip) = (self.settings.per_client?, client?);
        Some(Limit {
            key: crate::client_ip::limit_key(ip),
            rule: quota.rate(),
        })
    }

    /// One atomic check; the lock a failure would set, if any.
    async fn check(&self, limits: &[Limit], outage: Outage) -> ApiResult<Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(Duration::ZERO);
        };
        if limits.is_empty() {
            return Ok(Duration::ZERO);
        }
        match limiter.check(limits, unix_now_ms()).await {
            Ok(LimitDecision::Allowed { locks_for }) => Ok(locks_for),
            Ok(LimitDecision::Limited { index, retry_after }) => {
                let which = limits
                    .get(index)
                    .and_then(|l| l.key.split(':').next())
                    .unwrap_or("limit");
                let retry_after = whole_seconds(retry_after);
                tracing::info!(limit = which, retry_after, "request refused: rate limited");
                Err(ApiError::RateLimited { retry_after })
            }
            Err(err) => match outage {
                Outage::Refuse => {
                    tracing::warn!(error = %err, "rate limits unavailable; refusing the request");
                    Err(unavailable())
                }
                Outage::Allow => {
                    tracing::warn!(error = %err, "rate limits unavailable; serving the request unlimited");
                    Ok(Duration::ZERO)
                }
            },
        }
    }
}

/// Forgets the clients known to the account `email` of `tenant`, in
/// `limiter` (what [`RateLimits::forget_known_clients`] does, for the
/// command line, which has no `RateLimits`).
pub async fn forget_known_clients(
    limiter: &dyn RateLimiter,
    tenant: TenantId,
    email: &Email,
) -> Result<(), tessera_store::StoreError> {
    limiter.forget(&known_clients_key(tenant, email.as_str())).await
}

fn unavailable() -> ApiError {
    ApiError::Unavailable {
        message: "the rate limiter is unavailable; retry shortly",
        retry_after: 1,
    }
}

fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
pub fn whole_seconds(d: Duration) -> u32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

/// The failed-login counter of the account `email` names in `tenant`: the
/// normalized address when it is one, else the text as typed (trimmed,
/// lowercased), so malformed emails are counted like any other.
fn account_key(tenant: TenantId, email: &str) -> String {
    digest_key("login", tenant, &normalized(email))
}

/// The normalized address when `email` is one, else the text as typed
/// (trimmed, lowercased), so malformed emails are counted like any other.
fn normalized(email: &str) -> String {
    match Email::parse_existing(email) {
        Ok(email) => email.as_str().to_owned(),
        Err(_) => email.trim().to_lowercase(),
    }
}

/// The failed-login counter of the account `email` names in `tenant`,
/// together with the client `ip` (its IPv4 address or IPv6 /64, as the
/// client limit counts): a client known to the account.
fn account_client_key(tenant: TenantId, email: &str, ip: IpAddr) -> String {
    let client = crate::client_ip::limit_key(ip);
    digest_key("login-client", tenant, &format!("{}\0{client}", normalized(email)))
}

/// The set of clients known to the account `email` names in `tenant`.
fn known_clients_key(tenant: TenantId, email: &str) -> String {
    digest_key("known", tenant, &normalized(email))
}

/// A client as a member of a known-clients set: a digest of its IPv4
/// address or IPv6 /64, so the set holds no address.
fn client_member(ip: IpAddr) -> String {
    use base64::Engine as _;
    let mut hash = Sha256::new();
    hash.update(b"tessera known client\0");
    hash.update(crate::client_ip::limit_key(ip).as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&hash.finalize()[..16])
}

/// A key of the address `email` alone, whatever the tenant.
fn address_key(kind: &str, email: &str) -> String {
    digest_key(kind, TenantId::DEFAULT, email)
}

/// `<kind>:<digest>`: 128 bits of SHA-256 over the kind, the tenant and the
/// email, so the counters hold no address (people type passwords into the
/// email field) and every key has the same short length.
fn digest_key(kind: &str, tenant: TenantId, email: &str) -> String {
    use base64::Engine as _;
    let mut hash = Sha256::new();
    hash.update(b"tessera rate limit\0");
    hash.update(kind.as_bytes());
    hash.update([0]);
    hash.update(tenant.as_uuid().as_bytes());
    hash.update(email.as_bytes());
    let digest = hash.finalize();
    format!(
        "{kind}:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse_in_the_documented_form() {
        assert_eq!(Quota::parse("100/1m"), Ok(Some(Quota::new(100, 60))));
        assert_eq!(Quota::parse(" 3/1h "), Ok(Some(Quota::new(3, 3600))));
        assert_eq!(Quota::parse("10/900"), Ok(Some(Quota::new(10, 900))));
        assert_eq!(Quota::parse("OFF"), Ok(None));
        for bad in ["", "100", "/1m", "100/", "-1/1m", "1.5/1m", "100/1 minute", "lots/1m"] {
            assert!(Quota::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Quota::new(0, 60).problem().is_some());
        assert!(Quota::new(10, 0).problem().is_some());
        assert!(Quota::new(5000, 1).problem().is_some());
        assert!(Quota::new(100, 60).problem().is_none());
    }

    #[test]
    fn the_defaults_are_the_contracts_and_valid() {
        let s = RateLimitSettings::default();
        assert!(s.enabled);
        assert_eq!(s.per_client, Some(Quota::new(100, 60)));
        assert_eq!(s.login_failures, Some(Quota::new(10, 900)));
        assert_eq!(s.forgot_per_email, Some(Quota::new(3, 3600)));
        assert_eq!(s.problem(), None);
        let s = RateLimitSettings {
            login_backoff_max: Duration::from_secs(30),
            ..RateLimitSettings::default()
        };
        assert_eq!(s.problem().map(|(var, _)| var), Some("TESSERA_LOGIN_BACKOFF_MAX"));
        let s = RateLimitSettings {
            forgot_per_email: Some(Quota::new(0, 60)),
            ..RateLimitSettings::default()
        };
        assert_eq!(s.problem().map(|(var, _)| var), Some("TESSERA_FORGOT_RATE_LIMIT"));
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1000)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn account_keys_are_digests_of_the_normalized_email_per_tenant() {
        let a = account_key(TenantId::DEFAULT, "Ada@Example.com ");
        assert_eq!(a, account_key(TenantId::DEFAULT, "ada@example.com"));
        assert!(a.starts_with("login:") && a.len() == "login:".len() + 22, "{a}");
        assert!(!a.contains("ada"));
        assert_ne!(a, account_key(TenantId::random(), "ada@example.com"));
        assert_ne!(a, digest_key("forgot", TenantId::DEFAULT, "ada@example.com"));
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let pair = account_client_key(TenantId::DEFAULT, "Ada@Example.com", ip);
        assert_eq!(pair, account_client_key(TenantId::DEFAULT, "ada@example.com ", ip));
        assert_ne!(
            pair,
            account_client_key(TenantId::DEFAULT, "ada@example.com", "203.0.113.10".parse().unwrap())
        );
        assert_ne!(pair, a);
        assert_eq!(
            known_clients_key(TenantId::DEFAULT, "ADA@example.com"),
            known_clients_key(TenantId::DEFAULT, "ada@example.com")
        );
        assert_eq!(client_member(ip), client_member("::ffff:203.0.113.9".parse().unwrap()));
        assert!(!client_member(ip).contains("203"));
        // Not an address at all: still one counter per text.
        assert_eq!(
            account_key(TenantId::DEFAULT, " NOPE "),
            account_key(TenantId::DEFAULT, "nope")
        );
    }
}
