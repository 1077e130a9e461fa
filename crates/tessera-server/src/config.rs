//! Settings for `tessera serve`, read from flags and the environment (the
//! contract's variable names), parsed into typed values once at start-up so a
//! bad setting stops the process with a message instead of failing later.

use crate::secrets::{SecretValue, SecretsSource};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tessera_core::HashParams;

/// Everything `Application::build` needs. Tests construct it directly.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; `None` means `<data_dir>/tessera.db`.
    pub database_url: Option<String>,
    /// Connections to PostgreSQL per instance.
    pub database_max_connections: u32,
    /// `redis://...`: sessions live in Redis instead of the database.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key tessera writes (several deployments can share one Redis).
    pub redis_key_prefix: String,
    /// Seals every stored signing key (`TESSERA_MASTER_KEY`); `None` on the
    /// embedded default generates one into the data directory.
    pub master_key: Option<SecretValue>,
    /// Keys that still open what they sealed, during a master-key rotation
    /// (`TESSERA_MASTER_KEY_PREVIOUS`).
    pub previous_master_keys: Vec<SecretValue>,
    /// How long audit events are kept (`TESSERA_AUDIT_RETENTION`).
    pub audit_retention: Duration,
    /// Whether `POST /api/auth/signup` creates tenants (`TESSERA_SIGNUP`).
    pub signup: bool,
    pub secrets: SecretsSource,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    pub leeway: Duration,
    /// `None`: the public URL, else `http://<bound address>`.
    pub issuer: Option<String>,
    pub public_url: Option<String>,
    pub audience: String,
    pub hash_params: HashParams,
    /// Password hashes computed at once; more wait in a queue.
    pub hash_concurrency: usize,
    /// Password checks allowed to wait for a hashing slot before new ones get 503.
    pub hash_queue: usize,
    /// How long a password check waits for a hashing slot before its 503
    /// (10 s; tests shorten it).
    pub hash_max_wait: Duration,
    /// Apply database migrations when serving starts.
    pub migrate: bool,
    /// The longest a request may take from its first byte to its answer.
    pub request_timeout: Duration,
    /// The longest a connection may wait for a request head (new, trickled, or idle keep-alive).
    pub header_timeout: Duration,
    /// Connections open at once; more wait in the accept queue.
    pub max_connections: usize,
    /// Signing algorithm, scheduled rotation and JWKS caching.
    pub keys: crate::keys::KeyPolicy,
    /// Refuse logins (403 `email_not_verified`) of accounts whose email is
    /// not verified, and open no session at registration
    /// (`TESSERA_REQUIRE_EMAIL_VERIFICATION`).
    pub require_email_verification: bool,
    /// Outgoing mail: SMTP or the outbox, sender, link base, templates
    /// (`TESSERA_SMTP_URL`, `TESSERA_MAIL_*`).
    pub mail: crate::mail::MailSettings,
    /// Rate limits (`TESSERA_RATE_LIMITS` and the individual limits).
    pub rate_limits: crate::ratelimit::RateLimitSettings,
    /// Peers whose `X-Forwarded-For` is believed (`TESSERA_TRUSTED_PROXIES`).
    pub trusted_proxies: crate::client_ip::TrustedProxies,
    /// Refuse access tokens of sessions that ended before they expire
    /// (`TESSERA_REVOCATION_CHECK`), from an in-memory set every instance
    /// keeps current ([`crate::revocation`]).
    pub revocation_check: bool,
}

impl Config {
    /// The embedded default rooted at `data_dir`, as `tessera serve` runs with no
    /// configuration at all.
    pub fn embedded(data_dir: PathBuf) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir,
            database_url: None,
            database_max_connections: 10,
            redis_url: None,
            redis_key_prefix: "tessera".to_owned(),
            master_key: None,
            previous_master_keys: Vec::new(),
            audit_retention: Duration::from_secs(90 * 24 * 3600),
            signup: true,
            secrets: SecretsSource::Generated,
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(7 * 24 * 3600),
            refresh_reuse_grace: Duration::from_secs(10),
            leeway: Duration::from_secs(5),
            issuer: None,
            public_url: None,
            audience: "tessera".to_owned(),
            hash_params: HashParams::OWASP_MINIMUM,
            hash_concurrency: default_hash_concurrency(),
            hash_queue: 64,
            hash_max_wait: Duration::from_secs(10),
            migrate: true,
            request_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            keys: crate::keys::KeyPolicy::default(),
            require_email_verification: false,
            mail: crate::mail::MailSettings::default(),
            rate_limits: crate::ratelimit::RateLimitSettings::default(),
            trusted_proxies: crate::client_ip::TrustedProxies::default(),
            revocation_check: false,
        }
    }

    /// True when users (and, without Redis, sessions) live in PostgreSQL.
    pub fn uses_postgres(&self) -> bool {
        self.database_url
            .as_deref()
            .is_some_and(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("tessera.db").display()),
        }
    }

    /// Checks the relations between settings that each parsed fine alone.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let secs = |d: Duration| d.as_secs();
        if self.access_ttl < Duration::from_secs(30) || self.access_ttl > Duration::from_secs(24 * 3600) {
            return Err(ConfigError::new(
                "TESSERA_ACCESS_TTL",
                format!(
                    "{}s is outside 30s..24h; access tokens should be short-lived",
                    secs(self.access_ttl)
                ),
            ));
        }
        if self.refresh_ttl <= self.access_ttl || self.refresh_ttl > Duration::from_secs(365 * 24 * 3600) {
            return Err(ConfigError::new(
                "TESSERA_REFRESH_TTL",
                "must be longer than TESSERA_ACCESS_TTL and at most 365d".to_owned(),
            ));
        }
        if self.leeway > Duration::from_secs(30) {
            return Err(ConfigError::new(
                "TESSERA_LEEWAY",
                "must be at most 30s (RFC 8725 keeps clock skew small)".to_owned(),
            ));
        }
        if self.refresh_reuse_grace > Duration::from_secs(60) {
            return Err(ConfigError::new(
                "TESSERA_REFRESH_REUSE_GRACE",
                "must be at most 60s: a longer window lets a stolen refresh token ride along".to_owned(),
            ));
        }
        self.validate_keys()?;
        if self.audience.trim().is_empty() || self.audience.len() > 256 {
            return Err(ConfigError::new(
                "TESSERA_AUDIENCE",
                "must be 1 to 256 characters".to_owned(),
            ));
        }
        // Tokens are capped at 4 KiB on verification; bounded names keep every
        // token tessera issues well under it.
        for (var, value) in [
            ("TESSERA_ISSUER", &self.issuer),
            ("TESSERA_PUBLIC_URL", &self.public_url),
        ] {
            if value.as_ref().is_some_and(|v| v.len() > 512) {
                return Err(ConfigError::new(var, "must be at most 512 characters".to_owned()));
            }
        }
        if let Some(url) = &self.public_url {
            check_http_url("TESSERA_PUBLIC_URL", url)?;
        }
        if let Some(url) = &self.issuer {
            if url.trim().is_empty() {
                return Err(ConfigError::new("TESSERA_ISSUER", "must not be empty".to_owned()));
            }
        }
        if let Some(url) = &self.database_url {
            if !self.uses_postgres() && !url.starts_with("sqlite:") {
                return Err(ConfigError::new(
                    "TESSERA_DATABASE_URL",
                    "must start with sqlite:// or postgres://".to_owned(),
                ));
            }
        }
        if self.uses_postgres() && self.master_key.is_none() {
            return Err(ConfigError::new(
                "TESSERA_MASTER_KEY",
                "is required with PostgreSQL: it seals the signing keys that every instance shares \
                 (`tessera keygen` prints one; TESSERA_MASTER_KEY_FILE may name a file holding it)"
                    .to_owned(),
            ));
        }
        if let Some(key) = &self.master_key {
            tessera_core::MasterKey::from_base64(key.expose())
                .map_err(|e| ConfigError::new("TESSERA_MASTER_KEY", e.to_string()))?;
        }
        if !self.previous_master_keys.is_empty() && self.master_key.is_none() {
            return Err(ConfigError::new(
                "TESSERA_MASTER_KEY_PREVIOUS",
                "is set without TESSERA_MASTER_KEY; previous keys only open, the current one must seal".to_owned(),
            ));
        }
        for key in &self.previous_master_keys {
            tessera_core::MasterKey::from_base64(key.expose())
                .map_err(|e| ConfigError::new("TESSERA_MASTER_KEY_PREVIOUS", e.to_string()))?;
        }
        if self.audit_retention < Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "TESSERA_AUDIT_RETENTION",
                "must be at least 1h".to_owned(),
            ));
        }
        if let Some(urls) = &self.redis_url {
            if !urls.split(',').map(str::trim).all(|u| u.starts_with("redis://")) {
                return Err(ConfigError::new(
                    "TESSERA_REDIS_URL",
                    "must be redis://host:port, or several comma-separated for a Redis Cluster (TLS is not supported yet)"
                        .to_owned(),
                ));
            }
        }
        let prefix_ok = !self.redis_key_prefix.is_empty()
            && self.redis_key_prefix.len() <= 64
            && self
                .redis_key_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if !prefix_ok {
            return Err(ConfigError::new(
                "TESSERA_REDIS_KEY_PREFIX",
                "must be 1 to 64 characters of A-Z a-z 0-9 - _ . :".to_owned(),
            ));
        }
        if self.database_max_connections == 0 || self.database_max_connections > 1000 {
            return Err(ConfigError::new(
                "TESSERA_DATABASE_MAX_CONNECTIONS",
                "must be between 1 and 1000".to_owned(),
            ));
        }
        // A login may wait 10 s for a hashing slot and a store call 5 s for a lock.
        if self.request_timeout < Duration::from_secs(1) || self.request_timeout > Duration::from_secs(600) {
            return Err(ConfigError::new(
                "TESSERA_REQUEST_TIMEOUT",
                "must be between 1s and 600s".to_owned(),
            ));
        }
        if self.header_timeout < Duration::from_secs(1) || self.header_timeout > Duration::from_secs(600) {
            return Err(ConfigError::new(
                "TESSERA_HEADER_TIMEOUT",
                "must be between 1s and 600s".to_owned(),
            ));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::new(
                "TESSERA_MAX_CONNECTIONS",
                "must be at least 1".to_owned(),
            ));
        }
        check_hash_params(&self.hash_params)?;
        self.mail.validate()?;
        if self.hash_concurrency == 0 {
            return Err(ConfigError::new(
                "TESSERA_HASH_CONCURRENCY",
                "must be at least 1".to_owned(),
            ));
        }
        if let Some((var, problem)) = self.rate_limits.problem() {
            return Err(ConfigError::new(var, problem));
        }
        Ok(())
    }
}

/// `TESSERA_ARGON2_MEMORY_KIB` and `TESSERA_ARGON2_ITERATIONS` (checked by
/// `tessera user import` too, whose Argon2 limits follow them).
pub fn check_hash_params(hash: &HashParams) -> Result<(), ConfigError> {
    if hash.memory_kib < HashParams::OWASP_MINIMUM.memory_kib || hash.memory_kib > 4 * 1024 * 1024 {
        return Err(ConfigError::new(
            "TESSERA_ARGON2_MEMORY_KIB",
            "must be between 19456 (the OWASP minimum for Argon2id) and 4194304 (4 GiB)".to_owned(),
        ));
    }
    if hash.iterations < HashParams::OWASP_MINIMUM.iterations || hash.iterations > 100 {
        return Err(ConfigError::new(
            "TESSERA_ARGON2_ITERATIONS",
            "must be between 2 (the OWASP minimum with 19 MiB) and 100".to_owned(),
        ));
    }
    Ok(())
}

impl Config {
    fn validate_keys(&self) -> Result<(), ConfigError> {
        let policy = &self.keys;
        if policy.default_alg.is_asymmetric() && matches!(self.secrets, SecretsSource::Env { .. }) {
            return Err(ConfigError::new(
                "TESSERA_SIGNING_ALG",
                format!(
                    "{} needs a key pair tessera generates and stores, but JWT_SECRET is an HS256 secret; \
                     unset JWT_SECRET and REFRESH_TOKEN_SECRET, or keep TESSERA_SIGNING_ALG=HS256",
                    policy.default_alg
                ),
            ));
        }
        let max_age = policy.jwks_max_age;
        if max_age < Duration::from_secs(1) || max_age > Duration::from_secs(24 * 3600) {
            return Err(ConfigError::new("TESSERA_JWKS_MAX_AGE", "must be 1s to 24h".to_owned()));
        }
        for (var, every) in [
            ("TESSERA_KEY_ROTATION", policy.rotation),
            ("TESSERA_HMAC_KEY_ROTATION", policy.hmac_rotation),
        ] {
            let Some(every) = every else { continue };
            if every < max_age * 2 {
                return Err(ConfigError::new(
                    var,
                    format!(
                        "{}s is shorter than twice TESSERA_JWKS_MAX_AGE ({}s): a verifier caching the JWKS \
                         could meet a key before its cache has it; rotate less often or lower the max-age",
                        every.as_secs(),
                        max_age.as_secs()
                    ),
                ));
            }
            if every > Duration::from_secs(365 * 24 * 3600) {
                return Err(ConfigError::new(var, "must be at most 365d, or off".to_owned()));
            }
        }
        Ok(())
    }
}

pub fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

fn check_http_url(var: &'static str, url: &str) -> Result<(), ConfigError> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(()),
        _ => Err(ConfigError::new(
            var,
            format!("{url:?} is not an http:// or https:// URL"),
        )),
    }
}

/// A setting that stops start-up. Says which variable and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(var: &'static str, message: String) -> Self {
        Self { var, message }
    }
}

/// Parses `90s`, `15m`, `2h`, `7d` or plain seconds (`900`).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (digits, unit) = match raw.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => raw.split_at(i),
        None => (raw, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration like 90s, 15m, 2h, 7d or 900"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{raw:?} has an unknown unit; use s, m, h or d")),
    };
    n.checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{raw:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_documented_form() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("900"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "m", "15 m", "15min", "-5s", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn embedded_default_is_valid() {
        Config::embedded("/tmp/x".into()).validate().unwrap();
    }

    #[test]
    fn out_of_range_settings_name_their_variable() {
        let mut c = Config::embedded("/tmp/x".into());
        c.leeway = Duration::from_secs(31);
        assert_eq!(c.validate().unwrap_err().var, "TESSERA_LEEWAY");
        let mut c = Config::embedded("/tmp/x".into());
        c.refresh_ttl = c.access_ttl;
        assert_eq!(c.validate().unwrap_err().var, "TESSERA_REFRESH_TTL");
        let mut c = Config::embedded("/tmp/x".into());
        c.database_url = Some("mysql://localhost/test".into());
        assert_eq!(c.validate().unwrap_err().var, "TESSERA_DATABASE_URL");
        let mut c = Config::embedded("/tmp/x".into());
        c.database_url = Some("postgres://localhost/test".into());
        assert_eq!(c.validate().unwrap_err().var, "TESSERA_MASTER_KEY");
        c.master_key = Some(SecretValue::new("c2hvcnQ=".into()));
        assert_eq!(c.validate().unwrap_err().var, "TESSERA_MASTER_KEY");
        c.master_key = Some(SecretValue::new(tessera_core::MasterKey::generate_base64()));
        c.validate().unwrap();
        c.redis_url = Some("http://localhost".into());
        assert_eq!(c.validate().unwrap_err().var, "TESSERA_REDIS_URL");
        let mut c = Config::embedded("/tmp/x".into());
        c.public_url = Some("ftp://x".into());
        assert_eq!(c.validate().unwrap_err().var, "TESSERA_PUBLIC_URL");
    }

    #[test]
    fn rate_limit_settings_name_their_variable() {
        let mut c = Config::embedded("/tmp/x".into());
        c.rate_limits.login_backoff = Duration::from_secs(600);
        c.rate_limits.login_backoff_max = Duration::from_secs(60);
        assert_eq!(c.validate().unwrap_err().var, "TESSERA_LOGIN_BACKOFF_MAX");
        let mut c = Config::embedded("/tmp/x".into());
        c.rate_limits.per_client = Some(crate::ratelimit::Quota::new(0, 60));
        assert_eq!(c.validate().unwrap_err().var, "TESSERA_IP_RATE_LIMIT");
    }

    #[test]
    fn key_settings_are_checked_against_each_other() {
        let strong = || crate::secrets::generate_secret();
        let mut c = Config::embedded("/tmp/x".into());
        c.keys.default_alg = tessera_token::Algorithm::EdDSA;
        c.validate().unwrap();
        // JWT_SECRET is an HS256 secret: it cannot sign EdDSA tokens.
        c.secrets = SecretsSource::from_env_values(Some(strong()), Some(strong())).unwrap();
        let err = c.validate().unwrap_err();
        assert_eq!(err.var, "TESSERA_SIGNING_ALG");
        assert!(err.to_string().contains("unset JWT_SECRET"), "{err}");
        // A rotation faster than two max-ages would sign with keys caches lack.
        let mut c = Config::embedded("/tmp/x".into());
        c.keys.jwks_max_age = Duration::from_secs(600);
        c.keys.rotation = Some(Duration::from_secs(1199));
        assert_eq!(c.validate().unwrap_err().var, "TESSERA_KEY_ROTATION");
        c.keys.rotation = Some(Duration::from_secs(1200));
        c.keys.hmac_rotation = Some(Duration::from_secs(60));
        assert_eq!(c.validate().unwrap_err().var, "TESSERA_HMAC_KEY_ROTATION");
        c.keys.hmac_rotation = None;
        c.validate().unwrap();
        c.keys.jwks_max_age = Duration::from_secs(2 * 24 * 3600);
        assert_eq!(c.validate().unwrap_err().var, "TESSERA_JWKS_MAX_AGE");
    }
}
