//! The PostgreSQL backend: users, sessions and the shared default secrets in
//! one database that several tessera instances use at once.
//!
//! Same schema, constraint names and behaviour as the SQLite backend (the
//! generic suite in `tests/store.rs` holds both to it), with native types:
//! `uuid` ids and jtis, `bigint` unix seconds, `boolean`, `bytea`.
//!
//! Every call is bounded in time, so a request never hangs on a database that
//! is unreachable or stuck:
//! - getting a connection, including opening one (TCP, startup, auth), waits
//!   at most [`PostgresOptions::acquire_timeout`];
//! - every statement runs under the server-side `statement_timeout`
//!   ([`PostgresOptions::statement_timeout`]), so lock waits and slow plans
//!   are cancelled by PostgreSQL itself;
//! - a call that gets no answer at all (a network partition, a frozen host:
//!   the server cannot cancel what it never receives) is abandoned on the
//!   client at `statement_timeout` + [`PostgresStore::DEADLINE_MARGIN`], and
//!   its connection is closed instead of going back to the pool. This stands
//!   in for TCP keepalive, which sqlx 0.8 does not expose.
//!
//! Every call holds at most one pooled connection, and never while waiting for
//! another: a storm of refreshes can exhaust the pool (callers then get
//! [`StoreError::Unavailable`] after the acquire timeout) but never deadlock it.

use std::fmt;
use std::io;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, Postgres};
use sqlx::{Connection, Executor, FromRow};
use tessera_core::{Email, SessionId, UserId};
use tokio::time::error::Elapsed;
use uuid::Uuid;

use crate::decode::{email, role, StoredSession};
use crate::error::{conflict_for, from_migrate, from_sqlx};
use crate::{
    Health, NewSession, NewUser, RefreshState, Rotation, RotationOutcome, SealedSecrets, SecretStore, Session,
    SessionStore, StoreError, User, UserRecord, UserStore,
};

/// The schema, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Pooled connections idle for longer than this are pinged before use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(5);

/// How a [`PostgresStore`] uses the database. `Default` is what a production
/// instance should start from; the server may override `max_connections`
/// from its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// Connections this instance keeps at most (the pool size).
    ///
    /// Default 10 ([`Self::DEFAULT_MAX_CONNECTIONS`]). Every store call holds
    /// one connection for a few milliseconds (one statement; two or three
    /// when a refresh is not the current token), and the slow parts of a
    /// request (Argon2, signing) run without one, so 10 connections serve
    /// thousands of store calls per second: more than the CPU-bound login
    /// path of one instance can ask for. PostgreSQL's own limit is shared by
    /// all instances (`max_connections`, 100 by default, a few reserved for
    /// superusers), and every connection is a backend process with its own
    /// memory, so `instances × max_connections` must stay well below it:
    /// 10 per instance lets about 8 instances share a default server with
    /// room for migrations, backups and psql. Beyond that, put PgBouncer (in
    /// session mode) in front rather than raising the numbers.
    pub max_connections: u32,
    /// How long a call waits for a pooled connection, including opening a new
    /// one, before failing with [`StoreError::Unavailable`]. Also bounds
    /// [`PostgresStore::connect_with`] and the connection that
    /// [`PostgresStore::migrate`] opens. Default 3 s.
    pub acquire_timeout: Duration,
    /// PostgreSQL's `statement_timeout` for the pool's connections: a
    /// statement running longer (waiting on a lock, a stuck disk) is
    /// cancelled by the server and the call fails with
    /// [`StoreError::Unavailable`]. Default 5 s. Must be at least 1 ms (0
    /// would turn the timeout off).
    pub statement_timeout: Duration,
}

impl PostgresOptions {
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
    pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
    pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

    fn validate(&self) -> Result<(), StoreError> {
        let invalid = |why: &str| StoreError::unavailable(io::Error::new(io::ErrorKind::InvalidInput, why.to_owned()));
        if self.max_connections == 0 {
            return Err(invalid("PostgreSQL max_connections must be at least 1"));
        }
        if self.acquire_timeout.is_zero() {
            return Err(invalid("PostgreSQL acquire_timeout must be positive"));
        }
        // PostgreSQL takes an int of milliseconds.
        if self.statement_timeout < Duration::from_millis(1) || self.statement_timeout.as_millis() > i32::MAX as u128 {
            return Err(invalid(
                "PostgreSQL statement_timeout must be between 1 ms and about 24 days",
            ));
        }
        Ok(())
    }
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            acquire_timeout: Self::DEFAULT_ACQUIRE_TIMEOUT,
            statement_timeout: Self::DEFAULT_STATEMENT_TIMEOUT,
        }
    }
}

/// Users, sessions and the default secrets in one PostgreSQL database. Cheap
/// to clone: clones share the pool.
///
/// `Debug` shows where it connects, never the password.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// For the dedicated migration connection.
    connect_options: PgConnectOptions,
    options: PostgresOptions,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("host", &self.connect_options.get_host())
            .field("port", &self.connect_options.get_port())
            .field("database", &self.connect_options.get_database())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// How much longer than `statement_timeout` the client waits for an
    /// answer before it gives a call up: enough for the server's own
    /// cancellation to arrive first whenever the server can answer at all.
    pub const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

    /// Rows [`SessionStore::purge_expired`] deletes per statement, so a large
    /// backlog is purged in short statements that each stay far below the
    /// statement timeout.
    pub const PURGE_BATCH: i64 = 1000;

    /// [`Self::connect_with`] and the default [`PostgresOptions`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// Connects to the database at a `postgres://user:password@host:port/db`
    /// URL (any libpq-style parameter sqlx understands, e.g. `sslmode`), and
    /// checks that one connection opens within `options.acquire_timeout`.
    ///
    /// Connections identify as `application_name=tessera` unless the URL says
    /// otherwise. Does not migrate: call [`Self::migrate`].
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        options.validate()?;
        let mut connect_options = PgConnectOptions::from_str(url).map_err(map_err)?;
        if connect_options.get_application_name().is_none() {
            connect_options = connect_options.application_name("tessera");
        }
        let statement_timeout_ms = options.statement_timeout.as_millis();
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            // sqlx pings every connection before lending it out: a second
            // round trip per store call, the largest cost of a refresh under
            // load. A connection in steady use has just proven itself; one
            // that sat idle may have been cut by a restart or a failover, so
            // only those are pinged (a failed ping replaces the connection
            // instead of failing the request).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > IDLE_BEFORE_PING {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            // A `SET` rather than `options=-c statement_timeout=...` in the
            // startup packet, which PgBouncer refuses by default.
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    let set = format!("SET statement_timeout = {statement_timeout_ms}");
                    conn.execute(set.as_str()).await?;
                    Ok(())
                })
            })
            .connect_with(connect_options.clone())
            .await
            .map_err(|err| match err {
                // sqlx retries a refused connection until the deadline and
                // then reports only that the pool timed out.
                sqlx::Error::PoolTimedOut => StoreError::unavailable(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no connection to PostgreSQL within {:?} (refused, unreachable or not answering)",
                        options.acquire_timeout
                    ),
                )),
                other => map_err(other),
            })?;
        Ok(Self {
            pool,
            connect_options,
            options,
        })
    }

    /// Brings the schema up to date (`migrations/postgres`, embedded at
    /// compile time). Safe to run on every start, and from several instances
    /// starting at once: sqlx serializes them with an advisory lock, and each
    /// migration runs in a transaction.
    ///
    /// Runs on a connection of its own, outside the pool and without the
    /// pool's statement timeout, so that waiting for another instance's
    /// migration, or a migration that rewrites a large table, is not cancelled.
    /// How many of this build's migrations the database has not applied
    /// (all of them for an empty database).
    pub async fn pending_migrations(&self) -> Result<usize, StoreError> {
        let applied: Vec<(i64,)> = match sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&self.pool)
            .await
        {
            Ok(rows) => rows,
            // 42P01: no such table, nothing has ever been migrated.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
            Err(e) => return Err(map_err(e)),
        };
        Ok(MIGRATOR
            .iter()
            .filter(|m| !applied.iter().any(|(v,)| *v == m.version))
            .count())
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = tokio::time::timeout(
            self.options.acquire_timeout,
            PgConnection::connect_with(&self.connect_options),
        )
        .await
        .map_err(|_| {
            StoreError::unavailable(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no connection to PostgreSQL within {:?} to migrate",
                    self.options.acquire_timeout
                ),
            ))
        })?
        .map_err(map_err)?;
        // `run_direct`, not `run`: `run(&mut conn)` makes a future the
        // compiler cannot prove `Send` ("implementation of `Acquire` is not
        // general enough"), and the server migrates inside spawned tasks.
        // sqlx keeps `run_direct` public for exactly this.
        let migrated = MIGRATOR
            .run_direct(&mut conn)
            .await
            .map_err(|e| from_migrate(e, database_error));
        // A failed close leaves nothing behind that matters: the server ends
        // the session when the socket goes.
        let _closed = conn.close().await;
        migrated
    }

    /// The pool, for tests and tooling. Application code goes through the
    /// traits.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// How long a call may go without an answer.
    fn deadline(&self) -> Duration {
        self.options.statement_timeout + Self::DEADLINE_MARGIN
    }

    async fn acquire(&self) -> Result<PoolConnection<Postgres>, StoreError> {
        self.pool.acquire().await.map_err(map_err)
    }

    /// The result of a call bounded by [`Self::deadline`]. A call that ran
    /// out of time was cut off mid-protocol, so its connection is closed
    /// rather than reused.
    fn settle<T>(
        &self,
        conn: &mut PoolConnection<Postgres>,
        done: Result<Result<T, StoreError>, Elapsed>,
    ) -> Result<T, StoreError> {
        match done {
            Ok(result) => result,
            Err(_) => {
                conn.close_on_drop();
                Err(StoreError::unavailable(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("PostgreSQL did not answer within {:?}", self.deadline()),
                )))
            }
        }
    }
}

/// `bounded!(self, |conn| body)` runs `body`, an expression that may use
/// `conn` (a pooled connection; pass `&mut *conn` to sqlx) and `?`, and
/// evaluates to `Result<T, StoreError>`, on one pooled connection within the
/// store's deadline.
macro_rules! bounded {
    ($store:ident, |$conn:ident| $body:expr) => {{
        let mut $conn = $store.acquire().await?;
        let done = tokio::time::timeout($store.deadline(), async { $body }).await;
        $store.settle(&mut $conn, done)
    }};
}

fn map_err(err: sqlx::Error) -> StoreError {
    from_sqlx(err, database_error)
}

/// SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html)
/// that mean "not now" rather than "not like this", beyond whole classes 08
/// (connection exception), 53 (insufficient resources: too many connections,
/// disk full, out of memory) and 58 (system error: IO).
const TRANSIENT_SQLSTATES: &[&str] = &[
    // query_canceled: the statement timeout, or an operator's cancel.
    "57014",
    // admin_shutdown, crash_shutdown, cannot_connect_now (starting up or in
    // recovery), database_dropped, idle_session_timeout.
    "57P01", "57P02", "57P03", "57P04", "57P05",
    // lock_not_available, serialization_failure, deadlock_detected.
    "55P03", "40001", "40P01", // read_only_sql_transaction: connected to a standby, e.g. mid-failover.
    "25006",
    // Wrong credentials or a missing database: the operator has to fix the
    // configuration, nothing about the stored data is wrong.
    "28000", "28P01", "3D000",
];

/// Classifies an error PostgreSQL returned (`err` is `sqlx::Error::Database`).
fn database_error(err: sqlx::Error) -> StoreError {
    let sqlx::Error::Database(db) = &err else {
        return StoreError::Corrupt(err.to_string());
    };
    if let Some(conflict) = conflict_for(db.as_ref()) {
        return conflict.into();
    }
    let code = db.code().unwrap_or_default();
    let transient = matches!(code.get(..2), Some("08" | "53" | "58")) || TRANSIENT_SQLSTATES.contains(&code.as_ref());
    if transient {
        return StoreError::unavailable(err);
    }
    // Unknown constraint violations, missing tables (not migrated), internal
    // errors. The primary message names relations, columns and constraints;
    // values appear only in the detail, which is left out.
    StoreError::Corrupt(format!("database error {code}: {}", db.message()))
}

#[derive(FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    email_verified: bool,
    first_name: String,
    last_name: String,
    role: String,
    created_at: i64,
}

#[derive(FromRow)]
struct UserRecordRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
}

#[derive(FromRow)]
struct SessionRow {
    id: Uuid,
    user_id: Uuid,
    created_at: i64,
    last_used_at: i64,
    expires_at: i64,
    user_agent: Option<String>,
    ip: Option<String>,
    current_jti: Uuid,
    current_access_jti: Uuid,
    current_issued_at: i64,
    previous_jti: Option<Uuid>,
    rotated_at: Option<i64>,
    email: String,
    role: String,
}

#[derive(FromRow)]
struct SecretsRow {
    master_key_id: String,
    access: Vec<u8>,
    refresh: Vec<u8>,
    created_at: i64,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: UserId::from_uuid(row.id),
            email: email(&row.email, "users.email")?,
            email_verified: row.email_verified,
            first_name: row.first_name,
            last_name: row.last_name,
            role: role(&row.role, "users.role")?,
            created_at: row.created_at,
        })
    }
}

impl TryFrom<SessionRow> for StoredSession {
    type Error = StoreError;

    fn try_from(row: SessionRow) -> Result<Self, StoreError> {
        let session = Session {
            id: SessionId::from_uuid(row.id),
            user_id: UserId::from_uuid(row.user_id),
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            user_agent: row.user_agent,
            ip: row.ip,
            current: RefreshState {
                jti: row.current_jti,
                access_jti: row.current_access_jti,
                issued_at: row.current_issued_at,
                expires_at: row.expires_at,
            },
            email: email(&row.email, "users.email")?,
            role: role(&row.role, "users.role")?,
        };
        Ok(StoredSession {
            session,
            previous_jti: row.previous_jti,
            rotated_at: row.rotated_at,
        })
    }
}

impl From<SecretsRow> for SealedSecrets {
    fn from(row: SecretsRow) -> Self {
        SealedSecrets {
            master_key_id: row.master_key_id,
            access: row.access,
            refresh: row.refresh,
            created_at: row.created_at,
        }
    }
}

const SELECT_LIVE_SESSION: &str = concat!(
    "SELECT ",
    session_columns!(),
    ", users.email, users.role FROM sessions JOIN users ON users.id = sessions.user_id \
     WHERE sessions.id = $1 AND sessions.user_id = $2 AND sessions.expires_at > $3"
);

const SELECT_LIVE_SESSIONS_OF_USER: &str = concat!(
    "SELECT ",
    session_columns!(),
    ", users.email, users.role FROM sessions JOIN users ON users.id = sessions.user_id \
     WHERE sessions.user_id = $1 AND sessions.expires_at > $2 \
     ORDER BY sessions.last_used_at DESC, sessions.created_at DESC, sessions.id"
);

/// The only statement that rotates, checking and writing in one step. Of
/// concurrent refreshes presenting the same token, the first takes the row
/// lock and rotates; the others wait for it and then (READ COMMITTED
/// re-checks the WHERE clause against the updated row) find `current_jti`
/// changed and match nothing. SET right-hand sides read the old row, so
/// `previous_jti` gets the presented token.
const ROTATE: &str = concat!(
    "UPDATE sessions SET previous_jti = current_jti, rotated_at = $4, \
     current_jti = $5, current_access_jti = $6, current_issued_at = $7, expires_at = $8, \
     last_used_at = $4 \
     WHERE id = $1 AND user_id = $2 AND current_jti = $3 AND expires_at > $4 \
     RETURNING ",
    session_columns!(),
    ", (SELECT email FROM users WHERE users.id = sessions.user_id) AS email, \
     (SELECT role FROM users WHERE users.id = sessions.user_id) AS role"
);

/// One batch of [`SessionStore::purge_expired`]. `SKIP LOCKED`: instances
/// purging at the same time split the rows instead of queueing on each
/// other, and a session being rotated right now is left for the next round.
const DELETE_EXPIRED_BATCH: &str = "DELETE FROM sessions WHERE id IN \
     (SELECT id FROM sessions WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)";

async fn live_session(
    conn: &mut PgConnection,
    user: UserId,
    id: SessionId,
    now: i64,
) -> Result<Option<StoredSession>, StoreError> {
    let row: Option<SessionRow> = sqlx::query_as(SELECT_LIVE_SESSION)
        .bind(id.as_uuid())
        .bind(user.as_uuid())
        .bind(now)
        .fetch_optional(conn)
        .await
        .map_err(map_err)?;
    row.map(StoredSession::try_from).transpose()
}

#[async_trait::async_trait]
impl UserStore for PostgresStore {
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        bounded!(self, |conn| {
            sqlx::query(
                "INSERT INTO users \
                 (id, email, email_verified, password_hash, first_name, last_name, role, created_at) \
                 VALUES ($1, $2, false, $3, $4, $5, $6, $7)",
            )
            .bind(user.id.as_uuid())
            .bind(user.email.as_str())
            .bind(&user.password_hash)
            .bind(user.first_name.as_str())
            .bind(user.last_name.as_str())
            .bind(user.role.as_str())
            .bind(user.created_at)
            .execute(&mut *conn)
            .await
            .map_err(map_err)
        })?;
        Ok(User {
            id: user.id,
            email: user.email,
            email_verified: false,
            first_name: user.first_name.into_string(),
            last_name: user.last_name.into_string(),
            role: user.role,
            created_at: user.created_at,
        })
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError> {
        let row: Option<UserRecordRow> = bounded!(self, |conn| {
            sqlx::query_as(
                "SELECT id, email, email_verified, first_name, last_name, role, created_at, \
                 password_hash FROM users WHERE email = $1",
            )
            .bind(email.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)
        })?;
        row.map(|row| {
            Ok(UserRecord {
                user: User::try_from(row.user)?,
                password_hash: row.password_hash,
            })
        })
        .transpose()
    }

    async fn find_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = bounded!(self, |conn| {
            sqlx::query_as(
                "SELECT id, email, email_verified, first_name, last_name, role, created_at \
                 FROM users WHERE id = $1",
            )
            .bind(id.as_uuid())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)
        })?;
        row.map(User::try_from).transpose()
    }

    async fn set_password_hash(&self, id: UserId, hash: &str) -> Result<(), StoreError> {
        bounded!(self, |conn| {
            sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                .bind(id.as_uuid())
                .bind(hash)
                .execute(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        Ok(())
    }

    async fn delete_user(&self, id: UserId) -> Result<bool, StoreError> {
        let done = bounded!(self, |conn| {
            sqlx::query("DELETE FROM users WHERE id = $1")
                .bind(id.as_uuid())
                .execute(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait::async_trait]
impl SessionStore for PostgresStore {
    async fn create_session(&self, session: NewSession) -> Result<(), StoreError> {
        bounded!(self, |conn| {
            sqlx::query(
                "INSERT INTO sessions \
                 (id, user_id, created_at, last_used_at, expires_at, user_agent, ip, \
                  current_jti, current_access_jti, current_issued_at) \
                 VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(session.id.as_uuid())
            .bind(session.user_id.as_uuid())
            .bind(session.created_at)
            .bind(session.refresh.expires_at)
            .bind(&session.user_agent)
            .bind(&session.ip)
            .bind(session.refresh.jti)
            .bind(session.refresh.access_jti)
            .bind(session.refresh.issued_at)
            .execute(&mut *conn)
            .await
            .map_err(map_err)
        })?;
        Ok(())
    }

    async fn session(&self, user: UserId, id: SessionId, now: i64) -> Result<Option<Session>, StoreError> {
        let stored = bounded!(self, |conn| live_session(&mut conn, user, id, now).await)?;
        Ok(stored.map(|stored| stored.session))
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotationOutcome, StoreError> {
        // Up to three statements, all on this one connection and each in
        // its own implicit transaction: no transaction spans them, so none
        // holds a lock while the call waits for anything else.
        bounded!(self, |conn| {
            let next = rotation.next;
            let rotated: Option<SessionRow> = sqlx::query_as(ROTATE)
                .bind(rotation.session.as_uuid())
                .bind(rotation.user.as_uuid())
                .bind(rotation.presented_jti)
                .bind(rotation.now)
                .bind(next.jti)
                .bind(next.access_jti)
                .bind(next.issued_at)
                .bind(next.expires_at)
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?;
            if let Some(row) = rotated {
                return Ok(RotationOutcome::Rotated(StoredSession::try_from(row)?.session));
            }

            // Not the current token. What it is decides between grace and
            // theft. A token that is not current now can never be current
            // again (jtis are fresh), so deciding on a later read is safe.
            let Some(stored) = live_session(&mut conn, rotation.user, rotation.session, rotation.now).await? else {
                return Ok(RotationOutcome::Unknown);
            };
            if stored.grants_grace(&rotation) {
                return Ok(RotationOutcome::Grace(stored.session));
            }

            // A token that was rotated away came back: whoever holds the
            // session now may be a thief, so end it. Unconditionally: had
            // another rotation happened since the read, the presented token
            // would only be older.
            sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2")
                .bind(rotation.session.as_uuid())
                .bind(rotation.user.as_uuid())
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
            Ok(RotationOutcome::Reused)
        })
    }

    async fn list_sessions(&self, user: UserId, now: i64) -> Result<Vec<Session>, StoreError> {
        let rows: Vec<SessionRow> = bounded!(self, |conn| {
            sqlx::query_as(SELECT_LIVE_SESSIONS_OF_USER)
                .bind(user.as_uuid())
                .bind(now)
                .fetch_all(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        rows.into_iter()
            .map(|row| Ok(StoredSession::try_from(row)?.session))
            .collect()
    }

    async fn revoke_session(&self, user: UserId, id: SessionId) -> Result<bool, StoreError> {
        let done = bounded!(self, |conn| {
            sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2")
                .bind(id.as_uuid())
                .bind(user.as_uuid())
                .execute(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_other_sessions(&self, user: UserId, keep: SessionId) -> Result<u64, StoreError> {
        let done = bounded!(self, |conn| {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
                .bind(user.as_uuid())
                .bind(keep.as_uuid())
                .execute(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        Ok(done.rows_affected())
    }

    async fn revoke_all_sessions(&self, user: UserId) -> Result<u64, StoreError> {
        let done = bounded!(self, |conn| {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user.as_uuid())
                .execute(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        Ok(done.rows_affected())
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        // Batches, each on a connection of its own that goes back to the
        // pool in between, so a large backlog neither runs into the statement
        // timeout nor keeps a connection from requests.
        let mut purged = 0;
        loop {
            let done = bounded!(self, |conn| {
                sqlx::query(DELETE_EXPIRED_BATCH)
                    .bind(now)
                    .bind(Self::PURGE_BATCH)
                    .execute(&mut *conn)
                    .await
                    .map_err(map_err)
            })?;
            purged += done.rows_affected();
            if done.rows_affected() < Self::PURGE_BATCH.unsigned_abs() {
                return Ok(purged);
            }
        }
    }
}

#[async_trait::async_trait]
impl Health for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        bounded!(self, |conn| {
            sqlx::query("SELECT 1").execute(&mut *conn).await.map_err(map_err)
        })?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl SecretStore for PostgresStore {
    async fn default_secrets_or_insert(&self, candidate: SealedSecrets) -> Result<SealedSecrets, StoreError> {
        // Two statements, not one: a single `WITH ins AS (INSERT ... ON
        // CONFLICT DO NOTHING) SELECT ...` reads with the snapshot taken
        // before a concurrent winner committed, and would find no row. An
        // insert that conflicts with an uncommitted one waits for it, so by
        // the time the SELECT starts the winner is committed and visible.
        let row: Option<SecretsRow> = bounded!(self, |conn| {
            sqlx::query(
                "INSERT INTO default_secrets (id, master_key_id, access, refresh, created_at) \
                 VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&candidate.master_key_id)
            .bind(&candidate.access)
            .bind(&candidate.refresh)
            .bind(candidate.created_at)
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
            sqlx::query_as("SELECT master_key_id, access, refresh, created_at FROM default_secrets WHERE id = 1")
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        // Nothing deletes the row, so the read always finds one.
        row.map(SealedSecrets::from)
            .ok_or_else(|| StoreError::Corrupt("default_secrets has no row right after an insert".to_owned()))
    }
}
