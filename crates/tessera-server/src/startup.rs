//! Building and running the server. `Application::build` binds the listener
//! first, so a test can ask for port 0 and read back the port it got.

use crate::audit::AuditLog;
use crate::config::Config;
use crate::hashing::HashPool;
use crate::keys::{DefaultKeys, KeyManager, Lifetimes};
use crate::master::MasterKeys;
use crate::secrets::{
    ensure_data_dir, legacy_file_path, legacy_shared_secrets, read_legacy_file, SecretPair, SecretsSource,
};
use crate::serve::ConnectionLimits;
use crate::state::{App, AppState};
use crate::tenants::TenantDirectory;
use crate::tokens::{unix_now, TokenIssuer};
use anyhow::Context as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tessera_core::{PasswordHasher, TenantId};
use tessera_store::{
    AccountTokenStore, AuditStore, Health, KeyState, PostgresOptions, PostgresStore, RedisOptions, RedisSessionStore,
    RevocationStore, SecretStore, SessionStore, SqliteStore, TenantStore, UserStore,
};
use tessera_token::Validation;
use tokio::net::TcpListener;

/// Forgot-password and resend requests whose lookups and mail may be in
/// flight at once; past this, new ones are answered alike and dropped (with
/// a warning), so a flood cannot pile up tasks.
const MAIL_JOBS: usize = 256;

/// How long a stopping server waits for queued mail (an SMTP server that is
/// down is not waited for through every retry).
const MAIL_DRAIN: Duration = Duration::from_secs(5);

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    limits: ConnectionLimits,
    audit_retention: Duration,
    /// Held while serving the embedded default, so operator commands that
    /// must not run beside a server (a master-key rotation) can tell.
    _data_dir_lock: Option<std::fs::File>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let data_dir_lock = if config.uses_postgres() {
            None
        } else {
            ensure_data_dir(&config.data_dir)?;
            Some(lock_data_dir(&config.data_dir, false)?)
        };
        let stores = open_stores(&config).await?;
        let master = master_keys(&config)?;
        let now = unix_now();
        let mut adopted_file = None;
        let default = match &config.secrets {
            SecretsSource::Env { access, refresh } => DefaultKeys::Env(SecretPair {
                access: access.clone(),
                refresh: refresh.clone(),
            }),
            SecretsSource::Generated => {
                let has_keys = stores
                    .tenants
                    .tenant_keys(TenantId::DEFAULT)
                    .await
                    .context("cannot read the default tenant's keys")?
                    .iter()
                    .any(|k| k.state == KeyState::Active);
                let legacy = if has_keys {
                    None
                } else if let Some(shared) = &stores.shared_secrets {
                    legacy_shared_secrets(&master, shared.as_ref()).await?
                } else {
                    let found = read_legacy_file(&config.data_dir)?;
                    if found.is_some() {
                        adopted_file = Some(legacy_file_path(&config.data_dir));
                    }
                    found
                };
                DefaultKeys::Stored { legacy }
            }
        };
        let keys = KeyManager::start(
            master,
            stores.tenants.clone(),
            default,
            config.keys,
            Lifetimes::of(&config),
            now,
        )
        .await?;
        if let Some(path) = adopted_file {
            // The keys are sealed in the database now; a plaintext copy
            // beside it would only be one more thing to leak.
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed the plaintext key file; its keys are sealed in the database now")
                }
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "could not remove the plaintext key file; delete it by hand")
                }
            }
        }

        let listener = TcpListener::bind(config.bind).await.with_context(|| {
            format!(
                "cannot listen on {} (is another process using it? set TESSERA_BIND)",
                config.bind
            )
        })?;
        let addr = listener.local_addr()?;

        let issuer = config
            .issuer
            .clone()
            .or_else(|| config.public_url.as_ref().map(|u| u.trim_end_matches('/').to_owned()))
            .unwrap_or_else(|| format!("http://{addr}"));
        if config.issuer.is_none() && config.public_url.is_none() {
            tracing::warn!(
                issuer = %issuer,
                "TESSERA_PUBLIC_URL is not set: tokens name the listen address as their issuer; \
                 set TESSERA_PUBLIC_URL (or TESSERA_ISSUER) in production so restarts and instances agree"
            );
        }
        let validation = Validation {
            issuer,
            audience: config.audience.clone(),
            leeway_secs: config.leeway.as_secs(),
        };
        let public_base = config
            .public_url
            .as_deref()
            .unwrap_or(&validation.issuer)
            .trim_end_matches('/')
            .to_owned();
        // Loaded before serving: a restarted instance forgets no revocation.
        let revocations = if config.revocation_check {
            Some(
                crate::revocation::Revocations::start(
                    stores.revocations.clone(),
                    crate::revocation::lifetime(&config),
                    unix_now(),
                )
                .await
                .context("cannot load the revoked sessions (TESSERA_REVOCATION_CHECK is on)")?,
            )
        } else {
            None
        };
        let tokens = TokenIssuer::new(keys, validation, secs(config.access_ttl), secs(config.refresh_ttl))
            .with_revocations(revocations.clone());
        let hasher = HashPool::with_max_wait(
            PasswordHasher::new(config.hash_params)?,
            config.hash_concurrency,
            config.hash_queue,
            config.hash_max_wait,
        );
        let state = Arc::new(App {
            tokens,
            users: stores.users,
            sessions: stores.sessions,
            tenants: TenantDirectory::new(stores.tenants.clone()),
            tenant_store: stores.tenants,
            audit: AuditLog::start(stores.audit.clone()),
            audit_store: stores.audit,
            account_tokens: stores.account_tokens,
            health: stores.health,
            hasher,
            refresh_grace_secs: secs(config.refresh_reuse_grace),
            request_timeout: config.request_timeout,
            signup_open: config.signup,
            mailer: crate::mail::Mailer::start(&config.mail, config.data_dir.join("outbox"), &public_base)?,
            public_base,
            require_email_verification: config.require_email_verification,
            mail_jobs: Arc::new(tokio::sync::Semaphore::new(MAIL_JOBS)),
            limits: crate::ratelimit::RateLimits::new(
                config.rate_limits.clone(),
                stores
                    .rate_limiter
                    .unwrap_or_else(|| Arc::new(tessera_store::MemoryRateLimiter::default())),
            ),
            trusted_proxies: config.trusted_proxies.clone(),
            revocations,
        });
        if !config.rate_limits.enabled {
            tracing::warn!("rate limits are off (TESSERA_RATE_LIMITS=off): nothing slows down password guessing");
        }
        let limits = ConnectionLimits {
            header_timeout: config.header_timeout,
            max_connections: crate::serve::connection_capacity(config.max_connections),
        };
        Ok(Self {
            listener,
            addr,
            state,
            limits,
            audit_retention: config.audit_retention,
            _data_dir_lock: data_dir_lock,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn issuer(&self) -> &str {
        self.state.tokens.issuer()
    }

    /// Serves until `shutdown` resolves, then stops accepting connections and
    /// lets in-flight requests finish.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let following_revocations = self
            .state
            .revocations
            .clone()
            .map(|revocations| tokio::spawn(crate::revocation::follow(revocations)));
        let background = [
            tokio::spawn(purge_expired_sessions(self.state.sessions.clone())),
            tokio::spawn(purge_expired_account_tokens(self.state.account_tokens.clone())),
            tokio::spawn(crate::keys::follow_key_changes(self.state.tokens.keys().clone())),
            tokio::spawn(crate::keys::prune_keys(self.state.tenant_store.clone())),
            tokio::spawn(crate::keys::rotate_on_schedule(
                self.state.tokens.keys().clone(),
                self.state.audit.clone(),
            )),
            tokio::spawn(crate::audit::prune_audit(
                self.state.audit_store.clone(),
                self.audit_retention,
            )),
        ];
        tracing::info!(address = %self.addr, issuer = self.state.tokens.issuer(), "tessera is listening");
        let audit = self.state.audit.clone();
        let mailer = self.state.mailer.clone();
        let app = crate::http::router(self.state);
        let served = crate::serve::serve(self.listener, app, self.limits, shutdown).await;
        // Requests have finished: write what they recorded before exiting.
        audit.flush().await;
        let unsent = mailer.drain(MAIL_DRAIN).await;
        if unsent > 0 {
            tracing::warn!(messages = unsent, "stopping with mail not yet delivered");
        }
        for task in background.into_iter().chain(following_revocations) {
            task.abort();
        }
        served
    }
}

/// The stores a configuration asks for.
pub struct Stores {
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    /// Everything `/readyz` must reach.
    pub health: Vec<Arc<dyn Health>>,
    /// Tenants and every tenant's sealed keys (the default tenant's too).
    pub tenants: Arc<dyn TenantStore>,
    pub audit: Arc<dyn AuditStore>,
    pub account_tokens: Arc<dyn AccountTokenStore>,
    /// The record of revoked sessions, beside the sessions (Redis, else the
    /// database), for `TESSERA_REVOCATION_CHECK`.
    pub revocations: Arc<dyn RevocationStore>,
    /// Where an earlier version shared its generated default secrets
    /// (PostgreSQL), read once to adopt them; `None` on SQLite.
    pub shared_secrets: Option<Arc<dyn SecretStore>>,
    /// Rate-limit counters shared by every instance (Redis); `None`: each
    /// instance counts in its own memory.
    pub rate_limiter: Option<Arc<dyn tessera_store::RateLimiter>>,
}

/// Opens the database (SQLite or PostgreSQL, migrating unless told not to)
/// and, when configured, Redis for sessions.
pub async fn open_stores(config: &Config) -> anyhow::Result<Stores> {
    let url = config.database_url();
    let shown = redact_url(&url);
    let mut stores = if config.uses_postgres() {
        let options = PostgresOptions {
            max_connections: config.database_max_connections,
            ..PostgresOptions::default()
        };
        let store = PostgresStore::connect_with(&url, options)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {shown} (check TESSERA_DATABASE_URL)"))?;
        let pending = store
            .pending_migrations()
            .await
            .context("cannot read the database's schema version")?;
        prepare_schema(config, pending, store.migrate()).await?;
        let store = Arc::new(store);
        Stores {
            users: store.clone(),
            sessions: store.clone(),
            health: vec![store.clone()],
            tenants: store.clone(),
            audit: store.clone(),
            account_tokens: store.clone(),
            revocations: store.clone(),
            shared_secrets: Some(store),
            rate_limiter: None,
        }
    } else {
        let store = SqliteStore::connect(&url).await.with_context(|| {
            format!("cannot open the database {shown} (check TESSERA_DATA_DIR / TESSERA_DATABASE_URL)")
        })?;
        let pending = store
            .pending_migrations()
            .await
            .context("cannot read the database's schema version")?;
        prepare_schema(config, pending, store.migrate()).await?;
        let store = Arc::new(store);
        Stores {
            users: store.clone(),
            sessions: store.clone(),
            health: vec![store.clone()],
            tenants: store.clone(),
            audit: store.clone(),
            account_tokens: store.clone(),
            revocations: store,
            shared_secrets: None,
            rate_limiter: None,
        }
    };
    if let Some(redis_url) = &config.redis_url {
        let options = RedisOptions {
            key_prefix: config.redis_key_prefix.clone(),
            ..RedisOptions::default()
        };
        // Several comma-separated URLs name the nodes of a Redis Cluster.
        let nodes: Vec<&str> = redis_url.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
        let redis = if nodes.len() > 1 {
            RedisSessionStore::connect_cluster(&nodes, stores.users.clone(), options).await
        } else {
            RedisSessionStore::connect_with(redis_url, stores.users.clone(), options).await
        }
        .with_context(|| {
            format!(
                "cannot connect to Redis at {} (check TESSERA_REDIS_URL)",
                redact_url(redis_url)
            )
        })?;
        if let Ok(Some(policy)) = redis.eviction_policy().await {
            if policy != "noeviction" {
                tracing::warn!(
                    policy = %policy,
                    "Redis may evict keys under memory pressure (maxmemory-policy is not noeviction): \
                     an evicted session index would let a logged-out device keep refreshing"
                );
            }
        }
        stores.rate_limiter = Some(Arc::new(redis.rate_limiter()));
        let redis = Arc::new(redis);
        stores.health.push(redis.clone());
        stores.sessions = redis.clone();
        stores.revocations = redis;
    }
    Ok(stores)
}

/// Applies the `pending` migrations, or, when told not to migrate, refuses a
/// schema this build cannot work with (every query would fail later).
async fn prepare_schema(
    config: &Config,
    pending: usize,
    migrate: impl std::future::Future<Output = Result<(), tessera_store::StoreError>>,
) -> anyhow::Result<()> {
    if pending == 0 {
        return Ok(());
    }
    if !config.migrate {
        return Err(crate::config::ConfigError::new(
            "TESSERA_SKIP_MIGRATIONS",
            format!(
                "the database schema is {pending} migration(s) behind this build; \
                 run `tessera migrate` first, or unset TESSERA_SKIP_MIGRATIONS"
            ),
        )
        .into());
    }
    migrate.await.context("cannot apply database migrations")?;
    tracing::info!(applied = pending, "database migrations applied");
    Ok(())
}

/// Takes the data directory's lock file: shared by servers (several may
/// share one data directory), exclusive for operator commands that must run
/// alone.
pub fn lock_data_dir(data_dir: &std::path::Path, exclusive: bool) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = data_dir.join("tessera.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    let locked = if exclusive {
        file.try_lock()
    } else {
        file.try_lock_shared()
    };
    match locked {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) if exclusive => anyhow::bail!(
            "a tessera server is running on {}; stop it first (this command rewrites what it holds in memory)",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "an operator command holds {} (a master-key rotation?); start the server again when it is done",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(err)) => {
            Err(anyhow::Error::new(err).context(format!("cannot lock {}", path.display())))
        }
    }
}

/// The master keys: from the environment, or (embedded default only)
/// generated into the data directory.
pub fn master_keys(config: &Config) -> anyhow::Result<MasterKeys> {
    match &config.master_key {
        Some(current) => Ok(MasterKeys::from_config(current, &config.previous_master_keys)?),
        None => Ok(MasterKeys::load_or_generate(&config.data_dir)?),
    }
}

/// A URL fit for a log line or an error message: no password.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

async fn purge_expired_sessions(sessions: Arc<dyn SessionStore>) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        match sessions.purge_expired(unix_now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "purged expired sessions"),
            Err(err) => tracing::warn!(error = %err, "could not purge expired sessions"),
        }
    }
}

async fn purge_expired_account_tokens(tokens: Arc<dyn AccountTokenStore>) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        match tokens.purge_account_tokens(unix_now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(tokens = n, "purged expired reset and verification tokens"),
            Err(err) => tracing::warn!(error = %err, "could not purge expired reset and verification tokens"),
        }
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is
/// called, not when the future is first polled: a signal that arrives as
/// soon as the server says it is listening must find them in place (else
/// the default action kills the process without a graceful stop).
pub fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        let wait = |stream: std::io::Result<tokio::signal::unix::Signal>| async move {
            match stream {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(term) => {},
            () = wait(interrupt) => {},
        }
        tracing::info!("shutting down: no new connections, finishing requests in flight");
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_in_urls_are_never_shown() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/auth"),
            "postgres://app:***@db:5432/auth"
        );
        assert_eq!(redact_url("redis://:s3cret@cache:6379/0"), "redis://:***@cache:6379/0");
        assert_eq!(redact_url("redis://cache:6379"), "redis://cache:6379");
        assert_eq!(
            redact_url("sqlite://./tessera-data/tessera.db"),
            "sqlite://./tessera-data/tessera.db"
        );
    }
}
