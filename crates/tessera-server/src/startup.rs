//! Building and running the server. `Application::build` binds the listener
//! first, so a test can ask for port 0 and read back the port it got.

use crate::config::Config;
use crate::hashing::HashPool;
use crate::secrets::ensure_data_dir;
use crate::serve::ConnectionLimits;
use crate::state::{App, AppState};
use crate::tokens::{unix_now, TokenIssuer};
use anyhow::Context as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tessera_core::PasswordHasher;
use tessera_store::{SessionStore, SqliteStore};
use tessera_token::{HmacKey, Keyring, TokenKind, Validation};
use tokio::net::TcpListener;

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    limits: ConnectionLimits,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        ensure_data_dir(&config.data_dir)?;
        let secrets = config.secrets.resolve(&config.data_dir)?;
        let store = open_store(&config).await?;

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
        let keyring = Keyring::new(
            HmacKey::from_secret(TokenKind::Access, secrets.access.expose().as_bytes())?,
            HmacKey::from_secret(TokenKind::Refresh, secrets.refresh.expose().as_bytes())?,
        )?;
        let validation = Validation {
            issuer,
            audience: config.audience.clone(),
            leeway_secs: config.leeway.as_secs(),
        };
        let tokens = TokenIssuer::new(keyring, validation, secs(config.access_ttl), secs(config.refresh_ttl));
        let hasher = HashPool::new(
            PasswordHasher::new(config.hash_params)?,
            config.hash_concurrency,
            config.hash_queue,
        );
        let store = Arc::new(store);
        let state = Arc::new(App {
            tokens,
            users: store.clone(),
            sessions: store.clone(),
            health: vec![store],
            hasher,
            refresh_grace_secs: secs(config.refresh_reuse_grace),
            request_timeout: config.request_timeout,
        });
        let limits = ConnectionLimits {
            header_timeout: config.header_timeout,
            max_connections: crate::serve::connection_capacity(config.max_connections),
        };
        Ok(Self {
            listener,
            addr,
            state,
            limits,
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
        let purge = tokio::spawn(purge_expired_sessions(self.state.sessions.clone()));
        tracing::info!(address = %self.addr, issuer = self.state.tokens.issuer(), "tessera is listening");
        let app = crate::http::router(self.state);
        let served = crate::serve::serve(self.listener, app, self.limits, shutdown).await;
        purge.abort();
        served
    }
}

/// Opens the configured store (creating the data directory first).
pub async fn open_store(config: &Config) -> anyhow::Result<SqliteStore> {
    let url = config.database_url();
    let store = SqliteStore::connect(&url)
        .await
        .with_context(|| format!("cannot open the database {url} (check TESSERA_DATA_DIR / TESSERA_DATABASE_URL)"))?;
    if config.migrate {
        store.migrate().await.context("cannot apply database migrations")?;
    }
    Ok(store)
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

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: no new connections, finishing requests in flight");
}
