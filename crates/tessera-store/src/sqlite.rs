//! The SQLite backend: one file, WAL mode, a small pool. For one instance;
//! several instances share a [`crate::PostgresStore`] instead, which keeps
//! the same schema and behaviour.

use std::io;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::FromRow;
use tessera_core::{Email, SessionId, UserId};
use uuid::Uuid;

use crate::decode::{corrupt, email, role, StoredSession};
use crate::error::{conflict_for, from_migrate, from_sqlx};
use crate::{
    Health, NewSession, NewUser, RefreshState, Rotation, RotationOutcome, SealedSecrets, SecretStore, Session,
    SessionStore, StoreError, User, UserRecord, UserStore,
};

/// The schema, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Users, sessions and the default secrets in one SQLite file. Cheap to
/// clone: clones share the pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Connections in the pool.
    ///
    /// SQLite runs one writer at a time whatever the pool size; WAL lets
    /// readers run beside it. Four connections let reads (session lookups,
    /// logins) proceed while a write holds the lock, and keep writers that
    /// wait on each other few: each waiting writer sleeps in SQLite's busy
    /// handler, so more connections would add threads (sqlx runs each SQLite
    /// connection on its own thread) and page caches, not throughput, on the
    /// small hosts the embedded default is for.
    pub const POOL_SIZE: u32 = 4;
    /// How long a statement waits for another connection's write lock before
    /// failing with [`StoreError::Unavailable`].
    pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
    /// How long a caller waits for a free pooled connection before failing
    /// with [`StoreError::Unavailable`].
    pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

    /// Opens the database at a `sqlite://path` (or `sqlite:path`) URL or a
    /// plain path, creating the file, owner-only (mode 0600), when it is
    /// missing; the directory must exist. An existing file keeps its mode.
    ///
    /// Connections use WAL, `synchronous=NORMAL` (durable across process
    /// crashes; a power loss may lose the last commits, never corrupt),
    /// foreign keys on, and [`Self::BUSY_TIMEOUT`]. In-memory databases are
    /// refused: a pool of them would not share data.
    ///
    /// Does not migrate: call [`Self::migrate`].
    pub async fn connect(url_or_path: &str) -> Result<Self, StoreError> {
        let options = file_options(url_or_path)?;
        let path = options.get_filename();
        create_owner_only(path).await?;

        let options = options
            // The file exists now; should it vanish before the pool opens it,
            // fail rather than let SQLite recreate it with the default mode.
            .create_if_missing(false)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Self::BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(Self::POOL_SIZE)
            .acquire_timeout(Self::ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(Self { pool })
    }

    /// Brings the schema up to date (`migrations/sqlite`, embedded at
    /// compile time). Safe to run on every start.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| from_migrate(e, database_error))
    }

    /// How many of this build's migrations the database has not applied
    /// (all of them for an empty database).
    pub async fn pending_migrations(&self) -> Result<usize, StoreError> {
        let applied: Vec<(i64,)> = match sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&self.pool)
            .await
        {
            Ok(rows) => rows,
            Err(sqlx::Error::Database(e)) if e.message().contains("no such table") => Vec::new(),
            Err(e) => return Err(map_err(e)),
        };
        Ok(MIGRATOR
            .iter()
            .filter(|m| !applied.iter().any(|(v,)| *v == m.version))
            .count())
    }

    /// The pool, for tests and tooling. Application code goes through the
    /// traits.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Connect options for the file `url_or_path` names, refusing anything that
/// is not a file: an in-memory database, or SQLite's private temporary one
/// (an empty name).
fn file_options(url_or_path: &str) -> Result<SqliteConnectOptions, StoreError> {
    let not_a_file = || {
        StoreError::unavailable(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the SQLite store needs a file path, not an in-memory or temporary database",
        ))
    };
    if !url_or_path.starts_with("sqlite:") {
        if url_or_path.is_empty() || url_or_path == ":memory:" {
            return Err(not_a_file());
        }
        return Ok(SqliteConnectOptions::new().filename(url_or_path));
    }
    // Split the URL as sqlx does, to see what it will open.
    let rest = url_or_path
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (location, params) = rest.split_once('?').unwrap_or((rest, ""));
    if location.is_empty() || location == ":memory:" || params.contains("memory") {
        return Err(not_a_file());
    }
    SqliteConnectOptions::from_str(url_or_path).map_err(map_err)
}

/// Creates `path` with mode 0600 if it does not exist, so the database (and
/// its `-wal` and `-shm` files, which SQLite creates with the database
/// file's mode) is never readable by other users, not even for a moment.
async fn create_owner_only(path: &Path) -> Result<(), StoreError> {
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    match options.open(path).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::unavailable(io::Error::new(
            e.kind(),
            format!("cannot create the database file {}: {e}", path.display()),
        ))),
    }
}

fn map_err(err: sqlx::Error) -> StoreError {
    from_sqlx(err, database_error)
}

// SQLite primary result codes (https://www.sqlite.org/rescode.html) that mean
// "not now" rather than "not like this".
const SQLITE_PERM: i32 = 3;
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_NOMEM: i32 = 7;
const SQLITE_READONLY: i32 = 8;
const SQLITE_INTERRUPT: i32 = 9;
const SQLITE_IOERR: i32 = 10;
const SQLITE_FULL: i32 = 13;
const SQLITE_CANTOPEN: i32 = 14;
const SQLITE_PROTOCOL: i32 = 15;

/// Classifies an error SQLite returned (`err` is `sqlx::Error::Database`).
fn database_error(err: sqlx::Error) -> StoreError {
    let sqlx::Error::Database(db) = &err else {
        return StoreError::Corrupt(err.to_string());
    };
    if let Some(conflict) = conflict_for(db.as_ref()) {
        return conflict.into();
    }
    // sqlx reports the extended code; its low byte is the primary code.
    let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
    match code & 0xff {
        SQLITE_PERM | SQLITE_BUSY | SQLITE_LOCKED | SQLITE_NOMEM | SQLITE_READONLY | SQLITE_INTERRUPT
        | SQLITE_IOERR | SQLITE_FULL | SQLITE_CANTOPEN | SQLITE_PROTOCOL => StoreError::unavailable(err),
        // Constraint violations we do not know, missing tables (not
        // migrated), a corrupt file. SQLite's messages name tables and
        // columns, never bound values.
        _ => StoreError::Corrupt(format!("database error: {}", db.message())),
    }
}

#[derive(FromRow)]
struct UserRow {
    id: String,
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
    id: String,
    user_id: String,
    created_at: i64,
    last_used_at: i64,
    expires_at: i64,
    user_agent: Option<String>,
    ip: Option<String>,
    current_jti: String,
    current_access_jti: String,
    current_issued_at: i64,
    previous_jti: Option<String>,
    rotated_at: Option<i64>,
    email: String,
    role: String,
}

fn user_id(raw: &str, column: &str) -> Result<UserId, StoreError> {
    UserId::parse(raw).ok_or_else(|| corrupt(column, "a canonical UUID"))
}

fn uuid(raw: &str, column: &str) -> Result<Uuid, StoreError> {
    match Uuid::try_parse(raw) {
        Ok(id) if raw.len() == 36 => Ok(id),
        _ => Err(corrupt(column, "a canonical UUID")),
    }
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(User {
            id: user_id(&row.id, "users.id")?,
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
        let id = SessionId::parse(&row.id).ok_or_else(|| corrupt("sessions.id", "a canonical UUID"))?;
        let session = Session {
            id,
            user_id: user_id(&row.user_id, "sessions.user_id")?,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            expires_at: row.expires_at,
            user_agent: row.user_agent,
            ip: row.ip,
            current: RefreshState {
                jti: uuid(&row.current_jti, "sessions.current_jti")?,
                access_jti: uuid(&row.current_access_jti, "sessions.current_access_jti")?,
                issued_at: row.current_issued_at,
                expires_at: row.expires_at,
            },
            email: email(&row.email, "users.email")?,
            role: role(&row.role, "users.role")?,
        };
        let previous_jti = row
            .previous_jti
            .as_deref()
            .map(|raw| uuid(raw, "sessions.previous_jti"))
            .transpose()?;
        Ok(StoredSession {
            session,
            previous_jti,
            rotated_at: row.rotated_at,
        })
    }
}

const SELECT_LIVE_SESSION: &str = concat!(
    "SELECT ",
    session_columns!(),
    ", users.email, users.role FROM sessions JOIN users ON users.id = sessions.user_id \
     WHERE sessions.id = ?1 AND sessions.user_id = ?2 AND sessions.expires_at > ?3"
);

const SELECT_LIVE_SESSIONS_OF_USER: &str = concat!(
    "SELECT ",
    session_columns!(),
    ", users.email, users.role FROM sessions JOIN users ON users.id = sessions.user_id \
     WHERE sessions.user_id = ?1 AND sessions.expires_at > ?2 \
     ORDER BY sessions.last_used_at DESC, sessions.created_at DESC, sessions.id"
);

/// The only statement that rotates. It checks and writes in one step, so of
/// concurrent refreshes presenting the same token exactly one matches
/// `current_jti`; the others see the new value and match nothing. In an
/// UPDATE every right-hand side reads the old row, so `previous_jti` gets the
/// presented token.
const ROTATE: &str = concat!(
    "UPDATE sessions SET previous_jti = current_jti, rotated_at = ?3, \
     current_jti = ?4, current_access_jti = ?5, current_issued_at = ?6, expires_at = ?7, \
     last_used_at = ?3 \
     WHERE id = ?1 AND user_id = ?8 AND current_jti = ?2 AND expires_at > ?3 \
     RETURNING ",
    session_columns!(),
    ", (SELECT email FROM users WHERE users.id = sessions.user_id) AS email, \
     (SELECT role FROM users WHERE users.id = sessions.user_id) AS role"
);

impl SqliteStore {
    async fn live_session(&self, user: &str, id: &str, now: i64) -> Result<Option<StoredSession>, StoreError> {
        let row: Option<SessionRow> = sqlx::query_as(SELECT_LIVE_SESSION)
            .bind(id)
            .bind(user)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(StoredSession::try_from).transpose()
    }
}

#[async_trait::async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        sqlx::query(
            "INSERT INTO users \
             (id, email, email_verified, password_hash, first_name, last_name, role, created_at) \
             VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(user.id.to_string())
        .bind(user.email.as_str())
        .bind(&user.password_hash)
        .bind(user.first_name.as_str())
        .bind(user.last_name.as_str())
        .bind(user.role.as_str())
        .bind(user.created_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
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
        let row: Option<UserRecordRow> = sqlx::query_as(
            "SELECT id, email, email_verified, first_name, last_name, role, created_at, \
             password_hash FROM users WHERE email = ?1",
        )
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(|row| {
            Ok(UserRecord {
                user: User::try_from(row.user)?,
                password_hash: row.password_hash,
            })
        })
        .transpose()
    }

    async fn find_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, email, email_verified, first_name, last_name, role, created_at \
             FROM users WHERE id = ?1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(User::try_from).transpose()
    }

    async fn set_password_hash(&self, id: UserId, hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET password_hash = ?2 WHERE id = ?1")
            .bind(id.to_string())
            .bind(hash)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn delete_user(&self, id: UserId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE id = ?1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait::async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, session: NewSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions \
             (id, user_id, created_at, last_used_at, expires_at, user_agent, ip, \
              current_jti, current_access_jti, current_issued_at) \
             VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .bind(session.id.to_string())
        .bind(session.user_id.to_string())
        .bind(session.created_at)
        .bind(session.refresh.expires_at)
        .bind(session.user_agent)
        .bind(session.ip)
        .bind(session.refresh.jti.to_string())
        .bind(session.refresh.access_jti.to_string())
        .bind(session.refresh.issued_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn session(&self, user: UserId, id: SessionId, now: i64) -> Result<Option<Session>, StoreError> {
        Ok(self
            .live_session(&user.to_string(), &id.to_string(), now)
            .await?
            .map(|stored| stored.session))
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotationOutcome, StoreError> {
        let user = rotation.user.to_string();
        let id = rotation.session.to_string();
        let presented = rotation.presented_jti.to_string();
        let next = rotation.next;

        // `fetch_all`, not `fetch_optional`: stepping the statement to its end
        // is what commits it in autocommit mode (sqlx issue #3430); at
        // most one row comes back.
        let rotated: Vec<SessionRow> = sqlx::query_as(ROTATE)
            .bind(&id)
            .bind(&presented)
            .bind(rotation.now)
            .bind(next.jti.to_string())
            .bind(next.access_jti.to_string())
            .bind(next.issued_at)
            .bind(next.expires_at)
            .bind(&user)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        if let Some(row) = rotated.into_iter().next() {
            return Ok(RotationOutcome::Rotated(StoredSession::try_from(row)?.session));
        }

        // Not the current token. What it is decides between grace and theft;
        // no write happens on the way, so there is no read-then-write
        // transaction to fail with SQLITE_BUSY_SNAPSHOT.
        let Some(stored) = self.live_session(&user, &id, rotation.now).await? else {
            return Ok(RotationOutcome::Unknown);
        };
        if stored.grants_grace(&rotation) {
            return Ok(RotationOutcome::Grace(stored.session));
        }

        // A token that was rotated away came back: whoever holds the session
        // now may be a thief, so end it. Unconditionally: had another rotation
        // happened since the read, the presented token would only be older.
        sqlx::query("DELETE FROM sessions WHERE id = ?1 AND user_id = ?2")
            .bind(&id)
            .bind(&user)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(RotationOutcome::Reused)
    }

    async fn list_sessions(&self, user: UserId, now: i64) -> Result<Vec<Session>, StoreError> {
        let rows: Vec<SessionRow> = sqlx::query_as(SELECT_LIVE_SESSIONS_OF_USER)
            .bind(user.to_string())
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.into_iter()
            .map(|row| Ok(StoredSession::try_from(row)?.session))
            .collect()
    }

    async fn revoke_session(&self, user: UserId, id: SessionId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = ?1 AND user_id = ?2")
            .bind(id.to_string())
            .bind(user.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_other_sessions(&self, user: UserId, keep: SessionId) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = ?1 AND id <> ?2")
            .bind(user.to_string())
            .bind(keep.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn revoke_all_sessions(&self, user: UserId) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = ?1")
            .bind(user.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}

#[async_trait::async_trait]
impl Health for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }
}

#[derive(FromRow)]
struct SecretsRow {
    master_key_id: String,
    access: Vec<u8>,
    refresh: Vec<u8>,
    created_at: i64,
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

#[async_trait::async_trait]
impl SecretStore for SqliteStore {
    async fn default_secrets_or_insert(&self, candidate: SealedSecrets) -> Result<SealedSecrets, StoreError> {
        // The CHECK pins the only row to id 1, so of concurrent inserts the
        // first wins and the others do nothing; whoever reads afterwards
        // reads the winner. Nothing deletes the row, so the read always finds
        // one.
        sqlx::query(
            "INSERT INTO default_secrets (id, master_key_id, access, refresh, created_at) \
             VALUES (1, ?1, ?2, ?3, ?4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&candidate.master_key_id)
        .bind(&candidate.access)
        .bind(&candidate.refresh)
        .bind(candidate.created_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        let row: Option<SecretsRow> =
            sqlx::query_as("SELECT master_key_id, access, refresh, created_at FROM default_secrets WHERE id = 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.map(SealedSecrets::from)
            .ok_or_else(|| StoreError::Corrupt("default_secrets has no row right after an insert".to_owned()))
    }
}
