//! The PostgreSQL backend: tenants, users, sessions, signing keys, the audit
//! log and the shared default secrets in one database that several tessera
//! instances use at once.
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
//!
//! Key changes are announced on the channel `tessera_keys` (`NOTIFY`, with
//! the tenant id as payload) by the transaction that makes them, so every
//! instance hears of them at commit. A [`KeyChangeListener`] holds one
//! connection of its own, outside the pool, and pings it when it has been
//! quiet for [`PostgresStore::LISTENER_PING_EVERY`], so a connection that
//! died silently is noticed and replaced.

use std::fmt;
use std::io;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, Postgres};
use sqlx::{Connection, Executor, FromRow};
use tessera_core::{Email, Role, SessionId, TenantId, TenantSlug, UserId};
use tokio::time::error::Elapsed;
use uuid::Uuid;

use crate::decode::{
    active_kids, bug, check_new_keys, email, key_kind, key_state, parse_revocation_announcement,
    revocation_announcements, revocation_cursor_ms, role, slug, StoredSession,
};
use crate::error::{conflict_for, from_migrate, from_sqlx, is_key_slot_taken};
use crate::{
    AccountTokenPurpose, AccountTokenStore, AuditEvent, AuditStore, Conflict, Health, ImportConflict, ImportMode,
    ImportedUser, KeyChangeListener, KeyChanges, KeyKind, KeyRotation, KeyState, NewAccountToken, NewAuditEvent,
    NewKey, NewSession, NewTenant, NewUser, RefreshState, Revocation, RevocationCursor, RevocationEvent,
    RevocationListener, RevocationPage, RevocationStore, RoleChange, RotatedKeys, Rotation, RotationMode,
    RotationOutcome, SealedSecrets, SecretStore, Session, SessionStore, StoreError, StoredKey, Tenant, TenantRecord,
    TenantStore, User, UserCursor, UserRecord, UserStore, KEY_REVOKED_RETENTION_SECS, REVOCATION_LISTENER_PING_EVERY,
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

/// Tenants, users, sessions, keys, the audit log and the default secrets in
/// one PostgreSQL database. Cheap to clone: clones share the pool.
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

    /// How long a [`KeyChangeListener`] waits for a notification before it
    /// pings its connection (within the call deadline) to make sure it is
    /// still there.
    pub const LISTENER_PING_EVERY: Duration = Duration::from_secs(15);

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
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout);
        let pool = with_statement_timeout(pool, &options)
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

impl PostgresStore {
    /// Runs `delete` (`$1` now, `$2` at most [`Self::PURGE_BATCH`] rows) until
    /// a batch deletes fewer than that; the rows deleted in all. Each batch
    /// runs on a connection of its own that goes back to the pool in
    /// between, so a large backlog neither runs into the statement timeout
    /// nor keeps a connection from requests.
    async fn delete_in_batches(&self, delete: &'static str, now: i64) -> Result<u64, StoreError> {
        let mut purged = 0;
        loop {
            let done = bounded!(self, |conn| {
                sqlx::query(delete)
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

/// `pool` with every new connection's `statement_timeout` set: a `SET`
/// rather than `options=-c statement_timeout=...` in the startup packet,
/// which PgBouncer refuses by default.
fn with_statement_timeout(pool: PgPoolOptions, options: &PostgresOptions) -> PgPoolOptions {
    let statement_timeout_ms = options.statement_timeout.as_millis();
    pool.after_connect(move |conn, _meta| {
        Box::pin(async move {
            let set = format!("SET statement_timeout = {statement_timeout_ms}");
            conn.execute(set.as_str()).await?;
            Ok(())
        })
    })
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
    tenant_id: Uuid,
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
    tenant_id: Uuid,
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
            tenant: TenantId::from_uuid(row.tenant_id),
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
            tenant: TenantId::from_uuid(row.tenant_id),
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
    ", users.email, users.role, users.tenant_id FROM sessions JOIN users ON users.id = sessions.user_id \
     WHERE sessions.id = $1 AND sessions.user_id = $2 AND sessions.expires_at > $3"
);

const SELECT_LIVE_SESSIONS_OF_USER: &str = concat!(
    "SELECT ",
    session_columns!(),
    ", users.email, users.role, users.tenant_id FROM sessions JOIN users ON users.id = sessions.user_id \
     WHERE sessions.user_id = $1 AND sessions.expires_at > $2 \
     ORDER BY sessions.last_used_at DESC, sessions.created_at DESC, sessions.id"
);

/// The database clock now, unix milliseconds. `clock_timestamp()`, not
/// `now()`: the time of the statement, not of the start of its transaction,
/// which may have waited on a lock.
macro_rules! now_ms {
    () => {
        "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    };
}

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
     AND ",
    now_ms!(),
    " <= $9 \
     RETURNING ",
    session_columns!(),
    ", (SELECT email FROM users WHERE users.id = sessions.user_id) AS email, \
     (SELECT role FROM users WHERE users.id = sessions.user_id) AS role, \
     (SELECT tenant_id FROM users WHERE users.id = sessions.user_id) AS tenant_id"
);

/// The server's clock, in milliseconds since the epoch.
const SERVER_CLOCK_MS: &str = concat!("SELECT ", now_ms!());

/// Whether the server's clock is still at or before `$1` (milliseconds).
const SERVER_CLOCK_AT_MOST: &str = concat!("SELECT ", now_ms!(), " <= $1");

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
        bounded!(self, |conn| insert_user(&mut conn, user).await)
    }

    async fn find_user_by_email(&self, tenant: TenantId, email: &Email) -> Result<Option<UserRecord>, StoreError> {
        let row: Option<UserRecordRow> = bounded!(self, |conn| {
            sqlx::query_as(
                "SELECT id, tenant_id, email, email_verified, first_name, last_name, role, created_at, \
                 password_hash FROM users WHERE tenant_id = $1 AND email = $2",
            )
            .bind(tenant.as_uuid())
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
                "SELECT id, tenant_id, email, email_verified, first_name, last_name, role, created_at \
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

    async fn upgrade_password_hash(&self, id: UserId, expected: &str, new: &str) -> Result<bool, StoreError> {
        let done = bounded!(self, |conn| {
            sqlx::query("UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2")
                .bind(id.as_uuid())
                .bind(expected)
                .bind(new)
                .execute(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        Ok(done.rows_affected() == 1)
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

    async fn user_ids_in_tenant(
        &self,
        tenant: TenantId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        let rows: Vec<(Uuid,)> = bounded!(self, |conn| {
            match after {
                Some(after) => {
                    sqlx::query_as("SELECT id FROM users WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3")
                        .bind(tenant.as_uuid())
                        .bind(after.as_uuid())
                        .bind(i64::from(limit))
                        .fetch_all(&mut *conn)
                        .await
                }
                None => {
                    sqlx::query_as("SELECT id FROM users WHERE tenant_id = $1 ORDER BY id LIMIT $2")
                        .bind(tenant.as_uuid())
                        .bind(i64::from(limit))
                        .fetch_all(&mut *conn)
                        .await
                }
            }
            .map_err(map_err)
        })?;
        Ok(rows.into_iter().map(|(id,)| UserId::from_uuid(id)).collect())
    }

    async fn list_users(
        &self,
        tenant: TenantId,
        before: Option<UserCursor>,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        let rows: Vec<UserRow> = bounded!(self, |conn| {
            match before {
                Some(cursor) => {
                    sqlx::query_as(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND (created_at, id) < ($2, $3) \
                         ORDER BY created_at DESC, id DESC LIMIT $4"
                    ))
                    .bind(tenant.as_uuid())
                    .bind(cursor.created_at)
                    .bind(cursor.id.as_uuid())
                    .bind(i64::from(limit))
                    .fetch_all(&mut *conn)
                    .await
                }
                None => {
                    sqlx::query_as(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 \
                         ORDER BY created_at DESC, id DESC LIMIT $2"
                    ))
                    .bind(tenant.as_uuid())
                    .bind(i64::from(limit))
                    .fetch_all(&mut *conn)
                    .await
                }
            }
            .map_err(map_err)
        })?;
        rows.into_iter().map(User::try_from).collect()
    }

    async fn set_role(&self, user: UserId, role: &Role) -> Result<Option<RoleChange>, StoreError> {
        let changed: Option<(String, UserRow)> = bounded!(self, |conn| {
            let mut tx = Connection::begin(&mut *conn).await.map_err(map_err)?;
            let tenant: Option<(Uuid,)> = sqlx::query_as("SELECT tenant_id FROM users WHERE id = $1")
                .bind(user.as_uuid())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            let Some((tenant,)) = tenant else {
                return Ok(None);
            };
            // Role changes of one tenant take turns on the tenant's row, so
            // two owners demoting each other cannot both see the other as
            // the owner who remains.
            sqlx::query("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE")
                .bind(tenant)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            // Read again under the lock: what a concurrent change left.
            let previous: Option<(String,)> = sqlx::query_as("SELECT role FROM users WHERE id = $1")
                .bind(user.as_uuid())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            let Some((previous,)) = previous else {
                return Ok(None);
            };
            if previous == Role::OWNER && !role.is_owner() {
                let (others,): (i64,) =
                    sqlx::query_as("SELECT count(*) FROM users WHERE tenant_id = $1 AND role = $2 AND id <> $3")
                        .bind(tenant)
                        .bind(Role::OWNER)
                        .bind(user.as_uuid())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(map_err)?;
                if others == 0 {
                    return Err(Conflict::LastOwner.into());
                }
            }
            let row: UserRow = sqlx::query_as(&format!(
                "UPDATE users SET role = $2 WHERE id = $1 RETURNING {USER_COLUMNS}"
            ))
            .bind(user.as_uuid())
            .bind(role.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(Some((previous, row)))
        })?;
        let Some((previous, row)) = changed else {
            return Ok(None);
        };
        Ok(Some(RoleChange {
            previous: self::role(&previous, "users.role")?,
            user: User::try_from(row)?,
        }))
    }

    async fn import_users(&self, users: &[ImportedUser], mode: ImportMode) -> Result<Vec<ImportConflict>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let column = |f: fn(&ImportedUser) -> String| users.iter().map(f).collect::<Vec<String>>();
        let ids: Vec<Uuid> = users.iter().map(|u| u.user.id.as_uuid()).collect();
        let tenants: Vec<Uuid> = users.iter().map(|u| u.user.tenant.as_uuid()).collect();
        let emails = column(|u| u.user.email.as_str().to_owned());
        let verified: Vec<bool> = users.iter().map(|u| u.email_verified).collect();
        let hashes = column(|u| u.user.password_hash.clone());
        let first_names = column(|u| u.user.first_name.as_str().to_owned());
        let last_names = column(|u| u.user.last_name.as_str().to_owned());
        let roles = column(|u| u.user.role.as_str().to_owned());
        let created: Vec<i64> = users.iter().map(|u| u.user.created_at).collect();
        let (inserted, taken): (Vec<(Uuid, String)>, Vec<(Uuid, String)>) = bounded!(self, |conn| {
            let mut tx = Connection::begin(&mut *conn).await.map_err(map_err)?;
            let inserted: Vec<(Uuid, String)> = sqlx::query_as(IMPORT_USERS)
                .bind(&ids)
                .bind(&tenants)
                .bind(&emails)
                .bind(&verified)
                .bind(&hashes)
                .bind(&first_names)
                .bind(&last_names)
                .bind(&roles)
                .bind(&created)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?;
            // The emails of the users that were not stored which their
            // tenant has now (before this import, or from an earlier row).
            let taken: Vec<(Uuid, String)> = if inserted.len() == users.len() {
                Vec::new()
            } else {
                sqlx::query_as(
                    "SELECT tenant_id, email FROM users \
                     WHERE (tenant_id, email) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))",
                )
                .bind(&tenants)
                .bind(&emails)
                .fetch_all(&mut *tx)
                .await
                .map_err(map_err)?
            };
            match mode {
                ImportMode::Commit => tx.commit().await.map_err(map_err)?,
                ImportMode::DryRun => tx.rollback().await.map_err(map_err)?,
            }
            Ok((inserted, taken))
        })?;
        let inserted: Vec<(String, String)> = inserted
            .into_iter()
            .map(|(id, email)| (id.to_string(), email))
            .collect();
        let skipped =
            crate::decode::not_inserted(users, inserted.iter().map(|(id, email)| (id.as_str(), email.as_str())));
        let taken: std::collections::HashSet<(Uuid, String)> = taken.into_iter().collect();
        Ok(skipped
            .into_iter()
            .map(|index| {
                let user = &users[index].user;
                let email_taken = taken.contains(&(user.tenant.as_uuid(), user.email.as_str().to_owned()));
                ImportConflict {
                    index,
                    conflict: if email_taken {
                        Conflict::EmailTaken
                    } else {
                        Conflict::IdTaken
                    },
                }
            })
            .collect())
    }
}

/// Inserts `user` on `conn` (alone, or in a transaction). A tenant that does
/// not exist is `users_tenant_id_fkey`, `Conflict::UnknownTenant`.
/// An import: every user in one statement, in the order given; whatever
/// breaks a unique constraint (email in its tenant, id) is skipped.
const IMPORT_USERS: &str = "INSERT INTO users \
     (id, tenant_id, email, email_verified, password_hash, first_name, last_name, role, created_at) \
     SELECT id, tenant_id, email, email_verified, password_hash, first_name, last_name, role, created_at \
     FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::boolean[], $5::text[], $6::text[], $7::text[], \
                 $8::text[], $9::bigint[]) \
     WITH ORDINALITY AS u (id, tenant_id, email, email_verified, password_hash, first_name, last_name, role, \
                           created_at, n) \
     ORDER BY n \
     ON CONFLICT DO NOTHING \
     RETURNING id, email";

async fn insert_user(conn: &mut PgConnection, user: NewUser) -> Result<User, StoreError> {
    sqlx::query(
        "INSERT INTO users \
         (id, tenant_id, email, email_verified, password_hash, first_name, last_name, role, created_at) \
         VALUES ($1, $2, $3, false, $4, $5, $6, $7, $8)",
    )
    .bind(user.id.as_uuid())
    .bind(user.tenant.as_uuid())
    .bind(user.email.as_str())
    .bind(&user.password_hash)
    .bind(user.first_name.as_str())
    .bind(user.last_name.as_str())
    .bind(user.role.as_str())
    .bind(user.created_at)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(User {
        id: user.id,
        tenant: user.tenant,
        email: user.email,
        email_verified: false,
        first_name: user.first_name.into_string(),
        last_name: user.last_name.into_string(),
        role: user.role,
        created_at: user.created_at,
    })
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
        //
        // A statement held up on its way to the server (a stalled host or
        // network) can still run after this call gave up and answered 503;
        // the client then retries with the same token, and a rotation that
        // ran late would make that retry look like a stolen token. So the
        // rotation runs only while this call is still waiting, judged on the
        // server's own clock (read first, so no clock skew enters), less a
        // margin for the answer's way back.
        bounded!(self, |conn| {
            let started = Instant::now();
            let server_now_ms: i64 = sqlx::query_scalar(SERVER_CLOCK_MS)
                .fetch_one(&mut *conn)
                .await
                .map_err(map_err)?;
            let left = self.deadline().saturating_sub(started.elapsed());
            let margin = (left / 4).min(Duration::from_millis(250));
            let run_by_ms = server_now_ms
                .saturating_add(i64::try_from(left.saturating_sub(margin).as_millis()).unwrap_or(i64::MAX));
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
                .bind(run_by_ms)
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?;
            if let Some(row) = rotated {
                return Ok(RotationOutcome::Rotated(StoredSession::try_from(row)?.session));
            }
            // Clocks only move on: had the rotation been too late, so is this.
            let in_time: bool = sqlx::query_scalar(SERVER_CLOCK_AT_MOST)
                .bind(run_by_ms)
                .fetch_one(&mut *conn)
                .await
                .map_err(map_err)?;
            if !in_time {
                return Err(StoreError::unavailable(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "PostgreSQL got to the rotation too late for this instance to still be waiting for its \
                     answer (a stall); nothing changed",
                )));
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

    async fn revoke_other_sessions(&self, user: UserId, keep: SessionId) -> Result<Vec<SessionId>, StoreError> {
        // One statement: what it deletes is what it returns.
        let rows: Vec<(Uuid,)> = bounded!(self, |conn| {
            sqlx::query_as("DELETE FROM sessions WHERE user_id = $1 AND id <> $2 RETURNING id")
                .bind(user.as_uuid())
                .bind(keep.as_uuid())
                .fetch_all(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        Ok(rows.into_iter().map(|(id,)| SessionId::from_uuid(id)).collect())
    }

    async fn revoke_all_sessions(&self, user: UserId) -> Result<Vec<SessionId>, StoreError> {
        let rows: Vec<(Uuid,)> = bounded!(self, |conn| {
            sqlx::query_as("DELETE FROM sessions WHERE user_id = $1 RETURNING id")
                .bind(user.as_uuid())
                .fetch_all(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        Ok(rows.into_iter().map(|(id,)| SessionId::from_uuid(id)).collect())
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        self.delete_in_batches(DELETE_EXPIRED_BATCH, now).await
    }

    async fn revoke_tenant_sessions(&self, tenant: TenantId) -> Result<u64, StoreError> {
        let done = bounded!(self, |conn| {
            sqlx::query("DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE tenant_id = $1)")
                .bind(tenant.as_uuid())
                .execute(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        Ok(done.rows_affected())
    }
}

const USER_COLUMNS: &str = "id, tenant_id, email, email_verified, first_name, last_name, role, created_at";

#[async_trait::async_trait]
impl AccountTokenStore for PostgresStore {
    async fn create_account_token(&self, token: NewAccountToken) -> Result<(), StoreError> {
        bounded!(self, |conn| {
            sqlx::query(
                "INSERT INTO account_tokens (token_hash, tenant_id, user_id, purpose, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&token.token_hash[..])
            .bind(token.tenant.as_uuid())
            .bind(token.user.as_uuid())
            .bind(token.purpose.as_str())
            .bind(token.created_at)
            .bind(token.expires_at)
            .execute(&mut *conn)
            .await
            .map_err(map_err)
        })?;
        Ok(())
    }

    async fn account_token_user(
        &self,
        tenant: TenantId,
        purpose: AccountTokenPurpose,
        token_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<UserId>, StoreError> {
        let row: Option<(Uuid,)> = bounded!(self, |conn| {
            sqlx::query_as(
                "SELECT user_id FROM account_tokens \
                 WHERE token_hash = $1 AND tenant_id = $2 AND purpose = $3 AND expires_at > $4",
            )
            .bind(&token_hash[..])
            .bind(tenant.as_uuid())
            .bind(purpose.as_str())
            .bind(now)
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)
        })?;
        Ok(row.map(|(id,)| UserId::from_uuid(id)))
    }

    async fn reset_password(
        &self,
        tenant: TenantId,
        token_hash: &[u8; 32],
        new_password_hash: &str,
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = bounded!(self, |conn| {
            let mut tx = Connection::begin(&mut *conn).await.map_err(map_err)?;
            let Some(user) =
                consume_account_token(&mut tx, tenant, AccountTokenPurpose::PasswordReset, token_hash, now).await?
            else {
                return Ok(None);
            };
            let row: Option<UserRow> = sqlx::query_as(&format!(
                "UPDATE users SET password_hash = $2, email_verified = true WHERE id = $1 RETURNING {USER_COLUMNS}"
            ))
            .bind(user)
            .bind(new_password_hash)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(row)
        })?;
        row.map(User::try_from).transpose()
    }

    async fn change_password(&self, user: UserId, new_password_hash: &str) -> Result<bool, StoreError> {
        bounded!(self, |conn| {
            let mut tx = Connection::begin(&mut *conn).await.map_err(map_err)?;
            let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                .bind(user.as_uuid())
                .bind(new_password_hash)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            sqlx::query("DELETE FROM account_tokens WHERE user_id = $1 AND purpose = $2")
                .bind(user.as_uuid())
                .bind(AccountTokenPurpose::PasswordReset.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(true)
        })
    }

    async fn verify_email(
        &self,
        tenant: TenantId,
        token_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = bounded!(self, |conn| {
            let mut tx = Connection::begin(&mut *conn).await.map_err(map_err)?;
            let Some(user) =
                consume_account_token(&mut tx, tenant, AccountTokenPurpose::EmailVerification, token_hash, now).await?
            else {
                return Ok(None);
            };
            let row: Option<UserRow> = sqlx::query_as(&format!(
                "UPDATE users SET email_verified = true WHERE id = $1 RETURNING {USER_COLUMNS}"
            ))
            .bind(user)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
            tx.commit().await.map_err(map_err)?;
            Ok(row)
        })?;
        row.map(User::try_from).transpose()
    }

    async fn purge_account_tokens(&self, now: i64) -> Result<u64, StoreError> {
        let done = bounded!(self, |conn| {
            sqlx::query("DELETE FROM account_tokens WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        Ok(done.rows_affected())
    }
}

/// Deletes the live token `token_hash` of `tenant` and `purpose` and every
/// other token of that purpose of its user; the user's id, or `None` when
/// there was no such token.
async fn consume_account_token(
    conn: &mut PgConnection,
    tenant: TenantId,
    purpose: AccountTokenPurpose,
    token_hash: &[u8; 32],
    now: i64,
) -> Result<Option<Uuid>, StoreError> {
    let found: Option<(Uuid,)> = sqlx::query_as(
        "DELETE FROM account_tokens \
         WHERE token_hash = $1 AND tenant_id = $2 AND purpose = $3 AND expires_at > $4 RETURNING user_id",
    )
    .bind(&token_hash[..])
    .bind(tenant.as_uuid())
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    let Some((user,)) = found else {
        return Ok(None);
    };
    sqlx::query("DELETE FROM account_tokens WHERE user_id = $1 AND purpose = $2")
        .bind(user)
        .bind(purpose.as_str())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(Some(user))
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

    async fn default_secrets(&self) -> Result<Option<SealedSecrets>, StoreError> {
        let row: Option<SecretsRow> = bounded!(self, |conn| {
            sqlx::query_as("SELECT master_key_id, access, refresh, created_at FROM default_secrets WHERE id = 1")
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        Ok(row.map(SealedSecrets::from))
    }
}

/// The channel key changes are announced on; the payload is the tenant id.
const KEY_CHANNEL: &str = "tessera_keys";

#[derive(FromRow)]
struct TenantRow {
    id: Uuid,
    slug: String,
    name: String,
    api_key_hash: Option<Vec<u8>>,
    created_at: i64,
}

impl TryFrom<TenantRow> for TenantRecord {
    type Error = StoreError;

    fn try_from(row: TenantRow) -> Result<Self, StoreError> {
        Ok(TenantRecord {
            tenant: Tenant {
                id: TenantId::from_uuid(row.id),
                slug: slug(&row.slug, "tenants.slug")?,
                name: row.name,
                created_at: row.created_at,
            },
            api_key_hash: row.api_key_hash,
        })
    }
}

#[derive(FromRow)]
struct KeyRow {
    kid: String,
    tenant_id: Uuid,
    kind: String,
    state: String,
    master_key_id: String,
    sealed: Option<Vec<u8>>,
    created_at: i64,
    activated_at: Option<i64>,
    retired_at: Option<i64>,
    verify_until: Option<i64>,
    changed_at: i64,
}

impl TryFrom<KeyRow> for StoredKey {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> Result<Self, StoreError> {
        Ok(StoredKey {
            kid: row.kid,
            tenant: TenantId::from_uuid(row.tenant_id),
            kind: key_kind(&row.kind)?,
            state: key_state(&row.state)?,
            master_key_id: row.master_key_id,
            sealed: row.sealed,
            created_at: row.created_at,
            activated_at: row.activated_at,
            retired_at: row.retired_at,
            verify_until: row.verify_until,
            changed_at_ms: row.changed_at,
        })
    }
}

fn stored_keys(rows: Vec<KeyRow>) -> Result<Vec<StoredKey>, StoreError> {
    rows.into_iter().map(StoredKey::try_from).collect()
}

const SELECT_TENANT: &str = "SELECT id, slug, name, api_key_hash, created_at FROM tenants";

const SELECT_LIVE_TENANT_KEYS: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM tenant_keys WHERE tenant_id = $1 AND state IN ('next', 'active', 'retired') \
     ORDER BY created_at, kid"
);

/// Inserts `keys` (checked by [`check_new_keys`]) in the transaction `conn`
/// is in. The error is left for the caller: losing a key slot may mean
/// another instance won ([`is_key_slot_taken`]).
async fn insert_keys(conn: &mut PgConnection, keys: &[NewKey]) -> Result<(), sqlx::Error> {
    for key in keys {
        sqlx::query(concat!(
            "INSERT INTO tenant_keys \
             (kid, tenant_id, kind, state, master_key_id, sealed, created_at, activated_at, changed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, ",
            now_ms!(),
            ")"
        ))
        .bind(&key.kid)
        .bind(key.tenant.as_uuid())
        .bind(key.kind.as_str())
        .bind(key.state.as_str())
        .bind(&key.master_key_id)
        .bind(&key.sealed)
        .bind(key.created_at)
        .bind((key.state == KeyState::Active).then_some(key.created_at))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Announces that `tenant`'s keys changed, when the transaction `conn` is in
/// commits (and not at all if it rolls back).
async fn notify_key_change(conn: &mut PgConnection, tenant: TenantId) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(KEY_CHANNEL)
        .bind(tenant.to_string())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

/// Locks `tenant`'s row until the transaction `conn` is in ends; false if
/// there is no such tenant.
///
/// `FOR NO KEY UPDATE` serializes key writers of one tenant (rotations,
/// installs) without blocking anything else: inserting a user or an audit
/// event of the tenant takes `FOR KEY SHARE` (the foreign-key check), which
/// does not conflict with it, where `FOR UPDATE` would make them wait for the
/// rotation.
async fn lock_tenant(conn: &mut PgConnection, tenant: TenantId) -> Result<bool, StoreError> {
    let found: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE")
        .bind(tenant.as_uuid())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(found.is_some())
}

/// Whether `kid` is `tenant`'s active access key.
async fn is_active_access_key(conn: &mut PgConnection, tenant: TenantId, kid: &str) -> Result<bool, StoreError> {
    let found: Option<(i32,)> =
        sqlx::query_as("SELECT 1 FROM tenant_keys WHERE tenant_id = $1 AND kind = $2 AND state = $3 AND kid = $4")
            .bind(tenant.as_uuid())
            .bind(KeyKind::Access.as_str())
            .bind(KeyState::Active.as_str())
            .bind(kid)
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?;
    Ok(found.is_some())
}

async fn live_tenant_keys(conn: &mut PgConnection, tenant: TenantId) -> Result<Vec<StoredKey>, StoreError> {
    let rows: Vec<KeyRow> = sqlx::query_as(SELECT_LIVE_TENANT_KEYS)
        .bind(tenant.as_uuid())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    stored_keys(rows)
}

#[async_trait::async_trait]
impl TenantStore for PostgresStore {
    async fn create_tenant(
        &self,
        tenant: NewTenant,
        keys: Vec<NewKey>,
        owner: Option<NewUser>,
    ) -> Result<Tenant, StoreError> {
        check_new_keys(tenant.id, &keys)?;
        if owner.as_ref().is_some_and(|owner| owner.tenant != tenant.id) {
            return Err(bug("the owner of a new tenant belongs to another tenant"));
        }
        bounded!(self, |conn| {
            // Any error drops the transaction, which rolls it back.
            let mut tx = Connection::begin(&mut *conn).await.map_err(map_err)?;
            sqlx::query("INSERT INTO tenants (id, slug, name, api_key_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(tenant.id.as_uuid())
                .bind(tenant.slug.as_str())
                .bind(tenant.name.as_str())
                .bind(&tenant.api_key_hash)
                .bind(tenant.created_at)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            insert_keys(&mut tx, &keys).await.map_err(map_err)?;
            if let Some(owner) = owner {
                insert_user(&mut tx, owner).await?;
            }
            if !keys.is_empty() {
                notify_key_change(&mut tx, tenant.id).await?;
            }
            tx.commit().await.map_err(map_err)
        })?;
        Ok(Tenant {
            id: tenant.id,
            slug: tenant.slug,
            name: tenant.name.as_str().to_owned(),
            created_at: tenant.created_at,
        })
    }

    async fn tenant_by_slug(&self, slug: &TenantSlug) -> Result<Option<TenantRecord>, StoreError> {
        let row: Option<TenantRow> = bounded!(self, |conn| {
            sqlx::query_as(&format!("{SELECT_TENANT} WHERE slug = $1"))
                .bind(slug.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        row.map(TenantRecord::try_from).transpose()
    }

    async fn tenant(&self, id: TenantId) -> Result<Option<TenantRecord>, StoreError> {
        let row: Option<TenantRow> = bounded!(self, |conn| {
            sqlx::query_as(&format!("{SELECT_TENANT} WHERE id = $1"))
                .bind(id.as_uuid())
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        row.map(TenantRecord::try_from).transpose()
    }

    async fn list_tenants(&self, after: Option<&TenantSlug>, limit: u32) -> Result<Vec<Tenant>, StoreError> {
        // The column's collation is "C" (bytewise); every slug sorts after
        // the empty string.
        let rows: Vec<TenantRow> = bounded!(self, |conn| {
            sqlx::query_as(&format!("{SELECT_TENANT} WHERE slug > $1 ORDER BY slug LIMIT $2"))
                .bind(after.map_or("", TenantSlug::as_str))
                .bind(i64::from(limit))
                .fetch_all(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        rows.into_iter()
            .map(|row| Ok(TenantRecord::try_from(row)?.tenant))
            .collect()
    }

    async fn count_users(&self, tenant: TenantId) -> Result<u64, StoreError> {
        let (count,): (i64,) = bounded!(self, |conn| {
            sqlx::query_as("SELECT count(*) FROM users WHERE tenant_id = $1")
                .bind(tenant.as_uuid())
                .fetch_one(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        Ok(count.unsigned_abs())
    }

    async fn set_api_key_hash(&self, tenant: TenantId, hash: Option<Vec<u8>>) -> Result<bool, StoreError> {
        let done = bounded!(self, |conn| {
            sqlx::query("UPDATE tenants SET api_key_hash = $2 WHERE id = $1")
                .bind(tenant.as_uuid())
                .bind(&hash)
                .execute(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        Ok(done.rows_affected() > 0)
    }

    async fn tenant_keys(&self, tenant: TenantId) -> Result<Vec<StoredKey>, StoreError> {
        let rows: Vec<KeyRow> = bounded!(self, |conn| {
            sqlx::query_as(concat!(
                "SELECT ",
                key_columns!(),
                " FROM tenant_keys WHERE tenant_id = $1 ORDER BY created_at, kid"
            ))
            .bind(tenant.as_uuid())
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)
        })?;
        stored_keys(rows)
    }

    async fn live_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows: Vec<KeyRow> = bounded!(self, |conn| {
            sqlx::query_as(concat!(
                "SELECT ",
                key_columns!(),
                " FROM tenant_keys WHERE state IN ('next', 'active', 'retired') \
                 ORDER BY tenant_id, created_at, kid"
            ))
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)
        })?;
        stored_keys(rows)
    }

    async fn key(&self, kid: &str) -> Result<Option<StoredKey>, StoreError> {
        let row: Option<KeyRow> = bounded!(self, |conn| {
            sqlx::query_as(concat!("SELECT ", key_columns!(), " FROM tenant_keys WHERE kid = $1"))
                .bind(kid)
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        row.map(StoredKey::try_from).transpose()
    }

    async fn keys_changed_since(&self, since_ms: i64) -> Result<KeyChanges, StoreError> {
        let (db_now_ms, rows): (i64, Vec<KeyRow>) = bounded!(self, |conn| {
            // The clock first: a key changed after this read is either
            // returned below or stamped after `db_now_ms`.
            let (db_now_ms,): (i64,) = sqlx::query_as(SERVER_CLOCK_MS)
                .fetch_one(&mut *conn)
                .await
                .map_err(map_err)?;
            let rows = sqlx::query_as(concat!(
                "SELECT ",
                key_columns!(),
                " FROM tenant_keys WHERE changed_at > $1 ORDER BY changed_at, kid"
            ))
            .bind(since_ms)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
            Ok((db_now_ms, rows))
        })?;
        Ok(KeyChanges {
            keys: stored_keys(rows)?,
            db_now_ms,
        })
    }

    async fn rotate_keys(&self, rotation: KeyRotation) -> Result<RotatedKeys, StoreError> {
        check_new_keys(rotation.tenant, &rotation.new_keys)?;
        let tenant = rotation.tenant.as_uuid();
        bounded!(self, |conn| {
            // Any error drops the transaction, which rolls it back.
            let mut tx = Connection::begin(&mut *conn).await.map_err(map_err)?;
            // Rotations of one tenant queue here, each seeing what the one
            // before it left.
            if !lock_tenant(&mut tx, rotation.tenant).await? {
                return Err(Conflict::UnknownTenant.into());
            }
            // Under the tenant lock: every writer of active keys takes it
            // first, and this statement's snapshot (READ COMMITTED) is taken
            // after the lock was granted, so it sees what the rotation before
            // committed, and nothing can rotate between it and the updates.
            if let Some(expected) = &rotation.expect_active_access {
                if !is_active_access_key(&mut tx, rotation.tenant, expected).await? {
                    return Err(Conflict::RotationRaced.into());
                }
            }
            match rotation.mode {
                RotationMode::Graceful => {
                    let next: Vec<(String,)> =
                        sqlx::query_as("SELECT kind FROM tenant_keys WHERE tenant_id = $1 AND state = 'next'")
                            .bind(tenant)
                            .fetch_all(&mut *tx)
                            .await
                            .map_err(map_err)?;
                    if !KeyKind::ALL
                        .iter()
                        .all(|kind| next.iter().any(|(k,)| k == kind.as_str()))
                    {
                        return Err(Conflict::NoNextKey.into());
                    }
                    // Retire first: the new active keys need the slots (a
                    // unique index is checked row by row, not at the end).
                    sqlx::query(concat!(
                        "UPDATE tenant_keys SET state = 'retired', retired_at = $2, \
                         verify_until = CASE kind WHEN 'access' THEN $3 ELSE $4 END, changed_at = ",
                        now_ms!(),
                        " WHERE tenant_id = $1 AND state = 'active'"
                    ))
                    .bind(tenant)
                    .bind(rotation.now)
                    .bind(rotation.access_verify_until)
                    .bind(rotation.refresh_verify_until)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                    sqlx::query(concat!(
                        "UPDATE tenant_keys SET state = 'active', activated_at = $2, changed_at = ",
                        now_ms!(),
                        " WHERE tenant_id = $1 AND state = 'next'"
                    ))
                    .bind(tenant)
                    .bind(rotation.now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
                RotationMode::Revoke => {
                    sqlx::query(concat!(
                        "UPDATE tenant_keys SET state = 'revoked', sealed = NULL, \
                         retired_at = coalesce(retired_at, $2), changed_at = ",
                        now_ms!(),
                        " WHERE tenant_id = $1 AND state IN ('next', 'active', 'retired')"
                    ))
                    .bind(tenant)
                    .bind(rotation.now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                }
            }
            insert_keys(&mut tx, &rotation.new_keys).await.map_err(map_err)?;
            let keys = live_tenant_keys(&mut tx, rotation.tenant).await?;
            let (access_kid, refresh_kid) = active_kids(&keys)?;
            notify_key_change(&mut tx, rotation.tenant).await?;
            tx.commit().await.map_err(map_err)?;
            Ok(RotatedKeys {
                access_kid,
                refresh_kid,
                keys,
            })
        })
    }

    async fn install_keys_if_absent(&self, tenant: TenantId, keys: Vec<NewKey>) -> Result<Vec<StoredKey>, StoreError> {
        check_new_keys(tenant, &keys)?;
        bounded!(self, |conn| {
            let mut tx = Connection::begin(&mut *conn).await.map_err(map_err)?;
            // Instances starting at once queue here; the ones after the
            // first find its keys.
            if !lock_tenant(&mut tx, tenant).await? {
                return Err(Conflict::UnknownTenant.into());
            }
            let active: Option<(i32,)> =
                sqlx::query_as("SELECT 1 FROM tenant_keys WHERE tenant_id = $1 AND state = 'active' LIMIT 1")
                    .bind(tenant.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
            if active.is_none() {
                match insert_keys(&mut tx, &keys).await {
                    Ok(()) => notify_key_change(&mut tx, tenant).await?,
                    // Only a writer that skipped the lock could have taken a
                    // slot meanwhile; it won, and nothing of ours is kept.
                    Err(err) if is_key_slot_taken(&err) => {
                        tx.rollback().await.map_err(map_err)?;
                        return live_tenant_keys(&mut conn, tenant).await;
                    }
                    Err(err) => return Err(map_err(err)),
                }
            }
            let live = live_tenant_keys(&mut tx, tenant).await?;
            tx.commit().await.map_err(map_err)?;
            Ok(live)
        })
    }

    async fn prune_keys(&self, now: i64) -> Result<u64, StoreError> {
        let done = bounded!(self, |conn| {
            sqlx::query(
                "DELETE FROM tenant_keys WHERE (state = 'retired' AND verify_until < $1) \
                 OR (state = 'revoked' AND retired_at < $2)",
            )
            .bind(now)
            .bind(now.saturating_sub(KEY_REVOKED_RETENTION_SECS))
            .execute(&mut *conn)
            .await
            .map_err(map_err)
        })?;
        Ok(done.rows_affected())
    }

    async fn keys_sealed_by_other(&self, master_key_id: &str, limit: u32) -> Result<Vec<StoredKey>, StoreError> {
        let rows: Vec<KeyRow> = bounded!(self, |conn| {
            sqlx::query_as(concat!(
                "SELECT ",
                key_columns!(),
                " FROM tenant_keys WHERE sealed IS NOT NULL AND master_key_id <> $1 ORDER BY kid LIMIT $2"
            ))
            .bind(master_key_id)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)
        })?;
        stored_keys(rows)
    }

    async fn reseal_key(
        &self,
        kid: &str,
        expected_master_key_id: &str,
        new_master_key_id: &str,
        sealed: Vec<u8>,
    ) -> Result<bool, StoreError> {
        // One statement: the compare-and-set, and the announcement of the
        // change, which goes out only if it happened.
        let resealed: Vec<(Uuid,)> = bounded!(self, |conn| {
            sqlx::query_as(concat!(
                "WITH resealed AS (UPDATE tenant_keys SET master_key_id = $3, sealed = $4, changed_at = ",
                now_ms!(),
                " WHERE kid = $1 AND master_key_id = $2 AND sealed IS NOT NULL RETURNING tenant_id) \
                 SELECT tenant_id FROM resealed, pg_notify($5, tenant_id::text)"
            ))
            .bind(kid)
            .bind(expected_master_key_id)
            .bind(new_master_key_id)
            .bind(&sealed)
            .bind(KEY_CHANNEL)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)
        })?;
        Ok(!resealed.is_empty())
    }

    async fn listen_key_changes(&self) -> Result<Option<Box<dyn KeyChangeListener>>, StoreError> {
        let listener = PgKeyListener {
            listener: Some(self.connect_listener().await?),
            connect_options: self.connect_options.clone(),
            options: self.options.clone(),
        };
        Ok(Some(Box::new(listener)))
    }
}

impl PostgresStore {
    async fn connect_listener(&self) -> Result<PgListener, StoreError> {
        connect_listener(&self.connect_options, &self.options, KEY_CHANNEL).await
    }
}

/// A listener on `channel` over a connection of its own (a pool of
/// one, which is how sqlx's listener reconnects), with the store's timeouts.
async fn connect_listener(
    connect_options: &PgConnectOptions,
    options: &PostgresOptions,
    channel: &'static str,
) -> Result<PgListener, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(options.acquire_timeout)
        // Held for as long as the listener lives.
        .idle_timeout(None)
        .max_lifetime(None);
    let pool = with_statement_timeout(pool, options).connect_lazy_with(connect_options.clone());
    let limit = options.acquire_timeout + options.statement_timeout + PostgresStore::DEADLINE_MARGIN;
    let connecting = async {
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(channel).await?;
        Ok::<_, sqlx::Error>(listener)
    };
    match tokio::time::timeout(limit, connecting).await {
        Ok(Ok(listener)) => Ok(listener),
        Ok(Err(sqlx::Error::PoolTimedOut)) => Err(StoreError::unavailable(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no connection to PostgreSQL within {:?} to listen on {channel}",
                options.acquire_timeout
            ),
        ))),
        Ok(Err(err)) => Err(map_err(err)),
        Err(_) => Err(StoreError::unavailable(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("PostgreSQL did not answer within {limit:?} to listen on {channel}"),
        ))),
    }
}

/// [`KeyChangeListener`] for PostgreSQL: `LISTEN tessera_keys`.
struct PgKeyListener {
    /// `None` after a failure: the next call connects anew.
    listener: Option<PgListener>,
    connect_options: PgConnectOptions,
    options: PostgresOptions,
}

#[async_trait::async_trait]
impl KeyChangeListener for PgKeyListener {
    async fn next(&mut self) -> Result<Option<TenantId>, StoreError> {
        loop {
            let Some(listener) = self.listener.as_mut() else {
                self.listener = Some(connect_listener(&self.connect_options, &self.options, KEY_CHANNEL).await?);
                // Whatever was announced while there was no connection is lost.
                return Ok(None);
            };
            match tokio::time::timeout(PostgresStore::LISTENER_PING_EVERY, listener.try_recv()).await {
                // A payload that is not a tenant id was not sent by tessera;
                // "something may have changed" is the safe reading.
                Ok(Ok(Some(notification))) => return Ok(TenantId::parse(notification.payload())),
                // The connection broke and sqlx has opened (and listens on) a
                // new one.
                Ok(Ok(None)) => return Ok(None),
                // The connection failed (terminated, reset) and sqlx could
                // not replace it: drop it and connect anew on the next turn
                // of the loop, which answers `None` once listening again, or
                // the error of connecting.
                Ok(Err(_)) => self.listener = None,
                // Quiet for a while: make sure the connection is still there,
                // as a network partition would otherwise leave this waiting
                // forever. Notifications arriving meanwhile are buffered.
                Err(_) => {
                    let limit = self.options.statement_timeout + PostgresStore::DEADLINE_MARGIN;
                    let ping = tokio::time::timeout(limit, sqlx::query("SELECT 1").execute(&mut *listener)).await;
                    if !matches!(ping, Ok(Ok(_))) {
                        // Dropped, with its connection; the next turn of the
                        // loop connects anew.
                        self.listener = None;
                    }
                }
            }
        }
    }
}

/// The channel revocations are announced on, by the transaction that
/// records them; the payload is `<expires_at> <id>,<id>,...`.
const REVOCATION_CHANNEL: &str = "tessera_revocations";

#[async_trait::async_trait]
impl RevocationStore for PostgresStore {
    async fn record_revocations(&self, sessions: &[SessionId], _now: i64, expires_at: i64) -> Result<(), StoreError> {
        if sessions.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = sessions.iter().map(SessionId::as_uuid).collect();
        let announcements = revocation_announcements(sessions, expires_at);
        bounded!(self, |conn| {
            // Any error drops the transaction, which rolls it back; the
            // notifications go out at commit, with the rows.
            let mut tx = Connection::begin(&mut *conn).await.map_err(map_err)?;
            sqlx::query(concat!(
                "INSERT INTO revoked_sessions (session_id, expires_at, revoked_at) \
                 SELECT id, $2, ",
                now_ms!(),
                " FROM unnest($1::uuid[]) AS id \
                 ON CONFLICT (session_id) DO UPDATE SET \
                 expires_at = GREATEST(revoked_sessions.expires_at, EXCLUDED.expires_at), \
                 revoked_at = EXCLUDED.revoked_at"
            ))
            .bind(&ids)
            .bind(expires_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
            for payload in &announcements {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(REVOCATION_CHANNEL)
                    .bind(payload)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
            }
            tx.commit().await.map_err(map_err)
        })
    }

    async fn revocations_since(
        &self,
        since: Option<&RevocationCursor>,
        now: i64,
    ) -> Result<RevocationPage, StoreError> {
        // A transaction stamps `revoked_at` when it writes and may commit
        // later, after a reader took its cursor: read again from before it,
        // by longer than a recording call can last (its deadline).
        let lookback_ms = i64::try_from((self.deadline() + Duration::from_secs(3)).as_millis()).unwrap_or(i64::MAX);
        let after_ms = since
            .and_then(revocation_cursor_ms)
            .map_or(i64::MIN, |ms| ms.saturating_sub(lookback_ms));
        let (db_now_ms, rows): (i64, Vec<(Uuid, i64)>) = bounded!(self, |conn| {
            // The clock first: a revocation committed after this read is
            // either returned below or stamped after `db_now_ms` (less the
            // look-back, which covers a transaction that stamped earlier).
            let (db_now_ms,): (i64,) = sqlx::query_as(SERVER_CLOCK_MS)
                .fetch_one(&mut *conn)
                .await
                .map_err(map_err)?;
            let rows = sqlx::query_as(
                "SELECT session_id, expires_at FROM revoked_sessions WHERE revoked_at > $1 AND expires_at > $2",
            )
            .bind(after_ms)
            .bind(now)
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)?;
            Ok((db_now_ms, rows))
        })?;
        Ok(RevocationPage {
            revocations: rows
                .into_iter()
                .map(|(id, expires_at)| Revocation {
                    session: SessionId::from_uuid(id),
                    expires_at,
                })
                .collect(),
            cursor: RevocationCursor(db_now_ms.to_string()),
        })
    }

    async fn purge_revocations(&self, now: i64) -> Result<u64, StoreError> {
        self.delete_in_batches(
            "DELETE FROM revoked_sessions WHERE session_id IN \
             (SELECT session_id FROM revoked_sessions WHERE expires_at <= $1 LIMIT $2)",
            now,
        )
        .await
    }

    async fn listen_revocations(&self) -> Result<Option<Box<dyn RevocationListener>>, StoreError> {
        let listener = PgRevocationListener {
            listener: Some(connect_listener(&self.connect_options, &self.options, REVOCATION_CHANNEL).await?),
            connect_options: self.connect_options.clone(),
            options: self.options.clone(),
        };
        Ok(Some(Box::new(listener)))
    }
}

/// [`RevocationListener`] for PostgreSQL: `LISTEN tessera_revocations`.
struct PgRevocationListener {
    /// `None` after a failure: the next call connects anew.
    listener: Option<PgListener>,
    connect_options: PgConnectOptions,
    options: PostgresOptions,
}

#[async_trait::async_trait]
impl RevocationListener for PgRevocationListener {
    async fn next(&mut self) -> Result<RevocationEvent, StoreError> {
        loop {
            let Some(listener) = self.listener.as_mut() else {
                self.listener = Some(connect_listener(&self.connect_options, &self.options, REVOCATION_CHANNEL).await?);
                // Whatever was announced while there was no connection is lost.
                return Ok(RevocationEvent::Missed);
            };
            match tokio::time::timeout(REVOCATION_LISTENER_PING_EVERY, listener.try_recv()).await {
                Ok(Ok(Some(notification))) => {
                    return Ok(match parse_revocation_announcement(notification.payload()) {
                        Some(revoked) => RevocationEvent::Revoked(revoked),
                        None => RevocationEvent::Missed,
                    })
                }
                // The connection broke and sqlx has opened (and listens on) a
                // new one.
                Ok(Ok(None)) => return Ok(RevocationEvent::Missed),
                // The connection failed and sqlx could not replace it: say
                // so, and connect anew on the next call.
                Ok(Err(err)) => {
                    self.listener = None;
                    return Err(map_err(err));
                }
                // Quiet for a while: make sure the connection is still there.
                Err(_) => {
                    let limit = self.options.statement_timeout + PostgresStore::DEADLINE_MARGIN;
                    let ping = tokio::time::timeout(limit, sqlx::query("SELECT 1").execute(&mut *listener)).await;
                    match ping {
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => {
                            self.listener = None;
                            return Err(map_err(err));
                        }
                        Err(_) => {
                            self.listener = None;
                            return Err(StoreError::unavailable(io::Error::new(
                                io::ErrorKind::TimedOut,
                                format!("PostgreSQL did not answer the revocation listener's ping within {limit:?}"),
                            )));
                        }
                    }
                }
            }
        }
    }
}

#[derive(FromRow)]
struct AuditRow {
    id: i64,
    tenant_id: Uuid,
    at: i64,
    #[sqlx(rename = "type")]
    kind: String,
    user_id: Option<Uuid>,
    session_id: Option<Uuid>,
    ip: Option<String>,
    user_agent: Option<String>,
    detail: Option<String>,
}

impl From<AuditRow> for AuditEvent {
    fn from(row: AuditRow) -> Self {
        AuditEvent {
            id: row.id,
            tenant: TenantId::from_uuid(row.tenant_id),
            at: row.at,
            kind: row.kind,
            user: row.user_id.map(UserId::from_uuid),
            session: row.session_id.map(SessionId::from_uuid),
            ip: row.ip,
            user_agent: row.user_agent,
            detail: row.detail,
        }
    }
}

/// Every event of the batch in one statement, whatever its size (one array
/// per column, no limit on bound parameters), in the batch's order.
const INSERT_AUDIT: &str = "INSERT INTO audit_events \
     (tenant_id, at, type, user_id, session_id, ip, user_agent, detail) \
     SELECT tenant_id, at, type, user_id, session_id, ip, user_agent, detail \
     FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::uuid[], $5::uuid[], $6::text[], $7::text[], $8::text[]) \
     WITH ORDINALITY AS e (tenant_id, at, type, user_id, session_id, ip, user_agent, detail, n) \
     ORDER BY n";

#[async_trait::async_trait]
impl AuditStore for PostgresStore {
    async fn append_audit(&self, events: &[NewAuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let tenants: Vec<Uuid> = events.iter().map(|e| e.tenant.as_uuid()).collect();
        let ats: Vec<i64> = events.iter().map(|e| e.at).collect();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        let users: Vec<Option<Uuid>> = events.iter().map(|e| e.user.map(|id| id.as_uuid())).collect();
        let sessions: Vec<Option<Uuid>> = events.iter().map(|e| e.session.map(|id| id.as_uuid())).collect();
        let ips: Vec<Option<&str>> = events.iter().map(|e| e.ip.as_deref()).collect();
        let agents: Vec<Option<&str>> = events.iter().map(|e| e.user_agent.as_deref()).collect();
        let details: Vec<Option<&str>> = events.iter().map(|e| e.detail.as_deref()).collect();
        bounded!(self, |conn| {
            sqlx::query(INSERT_AUDIT)
                .bind(&tenants)
                .bind(&ats)
                .bind(&kinds)
                .bind(&users)
                .bind(&sessions)
                .bind(&ips)
                .bind(&agents)
                .bind(&details)
                .execute(&mut *conn)
                .await
                .map_err(map_err)
        })?;
        Ok(())
    }

    async fn audit_events(
        &self,
        tenant: TenantId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows: Vec<AuditRow> = bounded!(self, |conn| {
            sqlx::query_as(concat!(
                "SELECT ",
                audit_columns!(),
                " FROM audit_events WHERE tenant_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
            ))
            .bind(tenant.as_uuid())
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await
            .map_err(map_err)
        })?;
        Ok(rows.into_iter().map(AuditEvent::from).collect())
    }

    async fn prune_audit(&self, older_than: i64, batch: u32) -> Result<u64, StoreError> {
        // `SKIP LOCKED`: instances pruning at once split the rows.
        let done = bounded!(self, |conn| {
            sqlx::query(
                "DELETE FROM audit_events WHERE id IN \
                 (SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)",
            )
            .bind(older_than)
            .bind(i64::from(batch))
            .execute(&mut *conn)
            .await
            .map_err(map_err)
        })?;
        Ok(done.rows_affected())
    }
}
