//! The SQLite backend: one file, WAL mode, a small pool. For one instance;
//! several instances share a [`crate::PostgresStore`] instead, which keeps
//! the same schema and behaviour.

use std::io;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{FromRow, QueryBuilder, Sqlite};
use tessera_core::{Email, Role, SessionId, TenantId, TenantSlug, UserId};
use uuid::Uuid;

use crate::decode::{
    active_kids, bug, check_new_keys, corrupt, email, key_kind, key_state, revocation_cursor_ms, role, slug,
    StoredSession,
};
use crate::error::{conflict_for, from_migrate, from_sqlx, is_foreign_key_violation, is_key_slot_taken};
use crate::{
    AccountTokenPurpose, AccountTokenStore, AuditEvent, AuditStore, Conflict, Health, ImportConflict, ImportMode,
    ImportedUser, KeyChangeListener, KeyChanges, KeyKind, KeyRotation, KeyState, NewAccountToken, NewAuditEvent,
    NewKey, NewSession, NewTenant, NewUser, RefreshState, Revocation, RevocationCursor, RevocationListener,
    RevocationPage, RevocationStore, RoleChange, RotatedKeys, Rotation, RotationMode, RotationOutcome, SealedSecrets,
    SecretStore, Session, SessionStore, StoreError, StoredKey, Tenant, TenantRecord, TenantStore, User, UserCursor,
    UserRecord, UserStore, KEY_REVOKED_RETENTION_SECS,
};

/// The schema, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// Tenants, users, sessions, keys, the audit log and the default secrets in
/// one SQLite file. Cheap to clone: clones share the pool.
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

/// [`map_err`] for statements whose only foreign key references tenants:
/// SQLite does not say which key failed.
fn map_tenant_err(err: sqlx::Error) -> StoreError {
    if is_foreign_key_violation(&err) {
        return Conflict::UnknownTenant.into();
    }
    map_err(err)
}

/// The database clock now, unix milliseconds, for `tenant_keys.changed_at`.
/// SQLite fixes "now" per statement, so every row a statement writes gets
/// the same value.
macro_rules! now_ms {
    () => {
        "CAST(round(unixepoch('now', 'subsec') * 1000) AS INTEGER)"
    };
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
    tenant_id: String,
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
    tenant_id: String,
}

fn user_id(raw: &str, column: &str) -> Result<UserId, StoreError> {
    UserId::parse(raw).ok_or_else(|| corrupt(column, "a canonical UUID"))
}

fn session_id(raw: &str, column: &str) -> Result<SessionId, StoreError> {
    SessionId::parse(raw).ok_or_else(|| corrupt(column, "a canonical UUID"))
}

fn tenant_id(raw: &str, column: &str) -> Result<TenantId, StoreError> {
    TenantId::parse(raw).ok_or_else(|| corrupt(column, "a canonical UUID"))
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
            tenant: tenant_id(&row.tenant_id, "users.tenant_id")?,
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
            tenant: tenant_id(&row.tenant_id, "users.tenant_id")?,
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
    ", users.email, users.role, users.tenant_id FROM sessions JOIN users ON users.id = sessions.user_id \
     WHERE sessions.id = ?1 AND sessions.user_id = ?2 AND sessions.expires_at > ?3"
);

const SELECT_LIVE_SESSIONS_OF_USER: &str = concat!(
    "SELECT ",
    session_columns!(),
    ", users.email, users.role, users.tenant_id FROM sessions JOIN users ON users.id = sessions.user_id \
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
     (SELECT role FROM users WHERE users.id = sessions.user_id) AS role, \
     (SELECT tenant_id FROM users WHERE users.id = sessions.user_id) AS tenant_id"
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
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        insert_user(&mut conn, user).await
    }

    async fn find_user_by_email(&self, tenant: TenantId, email: &Email) -> Result<Option<UserRecord>, StoreError> {
        let row: Option<UserRecordRow> = sqlx::query_as(
            "SELECT id, tenant_id, email, email_verified, first_name, last_name, role, created_at, \
             password_hash FROM users WHERE tenant_id = ?1 AND email = ?2",
        )
        .bind(tenant.to_string())
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
            "SELECT id, tenant_id, email, email_verified, first_name, last_name, role, created_at \
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

    async fn upgrade_password_hash(&self, id: UserId, expected: &str, new: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = ?3 WHERE id = ?1 AND password_hash = ?2")
            .bind(id.to_string())
            .bind(expected)
            .bind(new)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_user(&self, id: UserId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE id = ?1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn user_ids_in_tenant(
        &self,
        tenant: TenantId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        let rows: Vec<(String,)> = match after {
            Some(after) => {
                sqlx::query_as("SELECT id FROM users WHERE tenant_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3")
                    .bind(tenant.to_string())
                    .bind(after.to_string())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                sqlx::query_as("SELECT id FROM users WHERE tenant_id = ?1 ORDER BY id LIMIT ?2")
                    .bind(tenant.to_string())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(map_err)?;
        rows.iter().map(|(id,)| user_id(id, "users.id")).collect()
    }

    async fn list_users(
        &self,
        tenant: TenantId,
        before: Option<UserCursor>,
        limit: u32,
    ) -> Result<Vec<User>, StoreError> {
        let rows: Vec<UserRow> = match before {
            Some(cursor) => {
                sqlx::query_as(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = ?1 AND (created_at, id) < (?2, ?3) \
                     ORDER BY created_at DESC, id DESC LIMIT ?4"
                ))
                .bind(tenant.to_string())
                .bind(cursor.created_at)
                .bind(cursor.id.to_string())
                .bind(limit)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query_as(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = ?1 \
                     ORDER BY created_at DESC, id DESC LIMIT ?2"
                ))
                .bind(tenant.to_string())
                .bind(limit)
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(map_err)?;
        rows.into_iter().map(User::try_from).collect()
    }

    async fn set_role(&self, user: UserId, role: &Role) -> Result<Option<RoleChange>, StoreError> {
        // The write lock (`BEGIN IMMEDIATE`) serializes role changes, so the
        // owner count read here is still true when the update lands.
        let mut tx = self.begin_write().await?;
        let current: Option<(String, String)> = sqlx::query_as("SELECT tenant_id, role FROM users WHERE id = ?1")
            .bind(user.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let Some((tenant, previous)) = current else {
            return Ok(None);
        };
        let previous = self::role(&previous, "users.role")?;
        if previous.is_owner() && !role.is_owner() {
            let (others,): (i64,) =
                sqlx::query_as("SELECT count(*) FROM users WHERE tenant_id = ?1 AND role = ?2 AND id <> ?3")
                    .bind(&tenant)
                    .bind(Role::OWNER)
                    .bind(user.to_string())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(map_err)?;
            if others == 0 {
                return Err(Conflict::LastOwner.into());
            }
        }
        let row: UserRow = sqlx::query_as(&format!(
            "UPDATE users SET role = ?2 WHERE id = ?1 RETURNING {USER_COLUMNS}"
        ))
        .bind(user.to_string())
        .bind(role.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(RoleChange {
            previous,
            user: User::try_from(row)?,
        }))
    }
    async fn import_users(&self, users: &[ImportedUser], mode: ImportMode) -> Result<Vec<ImportConflict>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let mut inserted: Vec<(String, String)> = Vec::with_capacity(users.len());
        for chunk in users.chunks(Self::IMPORT_CHUNK) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO users \
                 (id, tenant_id, email, email_verified, password_hash, first_name, last_name, role, created_at) ",
            );
            insert.push_values(chunk, |mut row, imported| {
                let user = &imported.user;
                row.push_bind(user.id.to_string())
                    .push_bind(user.tenant.to_string())
                    .push_bind(user.email.as_str())
                    .push_bind(imported.email_verified)
                    .push_bind(user.password_hash.as_str())
                    .push_bind(user.first_name.as_str())
                    .push_bind(user.last_name.as_str())
                    .push_bind(user.role.as_str())
                    .push_bind(user.created_at);
            });
            insert.push(" ON CONFLICT DO NOTHING RETURNING id, email");
            let rows: Vec<(String, String)> = insert
                .build_query_as()
                .fetch_all(&mut *tx)
                .await
                // The users table's only foreign key references tenants.
                .map_err(map_tenant_err)?;
            inserted.extend(rows);
        }
        let skipped =
            crate::decode::not_inserted(users, inserted.iter().map(|(id, email)| (id.as_str(), email.as_str())));
        let mut conflicts = Vec::with_capacity(skipped.len());
        for chunk in skipped.chunks(Self::IMPORT_CHUNK) {
            let mut taken =
                QueryBuilder::<Sqlite>::new("SELECT tenant_id, email FROM users WHERE (tenant_id, email) IN (VALUES ");
            let mut values = taken.separated(", ");
            for &index in chunk {
                let user = &users[index].user;
                values.push("(");
                values.push_bind_unseparated(user.tenant.to_string());
                values.push_unseparated(", ");
                values.push_bind_unseparated(user.email.as_str());
                values.push_unseparated(")");
            }
            taken.push(")");
            let rows: Vec<(String, String)> = taken.build_query_as().fetch_all(&mut *tx).await.map_err(map_err)?;
            let taken: std::collections::HashSet<(String, String)> = rows.into_iter().collect();
            conflicts.extend(chunk.iter().map(|&index| {
                let user = &users[index].user;
                let email_taken = taken.contains(&(user.tenant.to_string(), user.email.as_str().to_owned()));
                ImportConflict {
                    index,
                    conflict: if email_taken {
                        Conflict::EmailTaken
                    } else {
                        Conflict::IdTaken
                    },
                }
            }));
        }
        match mode {
            ImportMode::Commit => tx.commit().await.map_err(map_err)?,
            ImportMode::DryRun => tx.rollback().await.map_err(map_err)?,
        }
        Ok(conflicts)
    }
}

impl SqliteStore {
    /// Users per INSERT of an import: 9 parameters each stays far below
    /// SQLite's limit of 32766 bound parameters per statement.
    const IMPORT_CHUNK: usize = 1000;
}

/// Inserts `user` on `conn` (alone, or in a transaction).
async fn insert_user(conn: &mut SqliteConnection, user: NewUser) -> Result<User, StoreError> {
    sqlx::query(
        "INSERT INTO users \
         (id, tenant_id, email, email_verified, password_hash, first_name, last_name, role, created_at) \
         VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?7, ?8)",
    )
    .bind(user.id.to_string())
    .bind(user.tenant.to_string())
    .bind(user.email.as_str())
    .bind(&user.password_hash)
    .bind(user.first_name.as_str())
    .bind(user.last_name.as_str())
    .bind(user.role.as_str())
    .bind(user.created_at)
    .execute(&mut *conn)
    .await
    // The users table's only foreign key references tenants.
    .map_err(map_tenant_err)?;
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

    async fn revoke_other_sessions(&self, user: UserId, keep: SessionId) -> Result<Vec<SessionId>, StoreError> {
        // One statement: what it deletes is what it returns. `fetch_all`
        // steps it to its end, which commits it (see `rotate`).
        let rows: Vec<(String,)> = sqlx::query_as("DELETE FROM sessions WHERE user_id = ?1 AND id <> ?2 RETURNING id")
            .bind(user.to_string())
            .bind(keep.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(|(id,)| session_id(id, "sessions.id")).collect()
    }

    async fn revoke_all_sessions(&self, user: UserId) -> Result<Vec<SessionId>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as("DELETE FROM sessions WHERE user_id = ?1 RETURNING id")
            .bind(user.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(|(id,)| session_id(id, "sessions.id")).collect()
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ?1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn revoke_tenant_sessions(&self, tenant: TenantId) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE tenant_id = ?1)")
            .bind(tenant.to_string())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}

const USER_COLUMNS: &str = "id, tenant_id, email, email_verified, first_name, last_name, role, created_at";

#[async_trait::async_trait]
impl AccountTokenStore for SqliteStore {
    async fn create_account_token(&self, token: NewAccountToken) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO account_tokens (token_hash, tenant_id, user_id, purpose, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(&token.token_hash[..])
        .bind(token.tenant.to_string())
        .bind(token.user.to_string())
        .bind(token.purpose.as_str())
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn account_token_user(
        &self,
        tenant: TenantId,
        purpose: AccountTokenPurpose,
        token_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<UserId>, StoreError> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT user_id FROM account_tokens \
             WHERE token_hash = ?1 AND tenant_id = ?2 AND purpose = ?3 AND expires_at > ?4",
        )
        .bind(&token_hash[..])
        .bind(tenant.to_string())
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.map(|(id,)| user_id(&id, "account_tokens.user_id")).transpose()
    }

    async fn reset_password(
        &self,
        tenant: TenantId,
        token_hash: &[u8; 32],
        new_password_hash: &str,
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(user) =
            consume_account_token(&mut tx, tenant, AccountTokenPurpose::PasswordReset, token_hash, now).await?
        else {
            return Ok(None);
        };
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "UPDATE users SET password_hash = ?2, email_verified = 1 WHERE id = ?1 RETURNING {USER_COLUMNS}"
        ))
        .bind(&user)
        .bind(new_password_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let user = User::try_from(row)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(user))
    }

    async fn change_password(&self, user: UserId, new_password_hash: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE users SET password_hash = ?2 WHERE id = ?1")
            .bind(user.to_string())
            .bind(new_password_hash)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM account_tokens WHERE user_id = ?1 AND purpose = ?2")
            .bind(user.to_string())
            .bind(AccountTokenPurpose::PasswordReset.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn verify_email(
        &self,
        tenant: TenantId,
        token_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<User>, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(user) =
            consume_account_token(&mut tx, tenant, AccountTokenPurpose::EmailVerification, token_hash, now).await?
        else {
            return Ok(None);
        };
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "UPDATE users SET email_verified = 1 WHERE id = ?1 RETURNING {USER_COLUMNS}"
        ))
        .bind(&user)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let user = User::try_from(row)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(user))
    }

    async fn purge_account_tokens(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM account_tokens WHERE expires_at <= ?1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}

/// Deletes the live token `token_hash` of `tenant` and `purpose` and every
/// other token of that purpose of its user; the user's id (as stored), or
/// `None` when there was no such token.
async fn consume_account_token(
    conn: &mut SqliteConnection,
    tenant: TenantId,
    purpose: AccountTokenPurpose,
    token_hash: &[u8; 32],
    now: i64,
) -> Result<Option<String>, StoreError> {
    let found: Option<(String,)> = sqlx::query_as(
        "DELETE FROM account_tokens \
         WHERE token_hash = ?1 AND tenant_id = ?2 AND purpose = ?3 AND expires_at > ?4 RETURNING user_id",
    )
    .bind(&token_hash[..])
    .bind(tenant.to_string())
    .bind(purpose.as_str())
    .bind(now)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?;
    let Some((user,)) = found else {
        return Ok(None);
    };
    sqlx::query("DELETE FROM account_tokens WHERE user_id = ?1 AND purpose = ?2")
        .bind(&user)
        .bind(purpose.as_str())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(Some(user))
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

    async fn default_secrets(&self) -> Result<Option<SealedSecrets>, StoreError> {
        let row: Option<SecretsRow> =
            sqlx::query_as("SELECT master_key_id, access, refresh, created_at FROM default_secrets WHERE id = 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(row.map(SealedSecrets::from))
    }
}

#[derive(FromRow)]
struct TenantRow {
    id: String,
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
                id: tenant_id(&row.id, "tenants.id")?,
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
    tenant_id: String,
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
            tenant: tenant_id(&row.tenant_id, "tenant_keys.tenant_id")?,
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

const SELECT_TENANT_KEYS: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM tenant_keys WHERE tenant_id = ?1 ORDER BY created_at, kid"
);

const SELECT_LIVE_TENANT_KEYS: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM tenant_keys WHERE tenant_id = ?1 AND state IN ('next', 'active', 'retired') \
     ORDER BY created_at, kid"
);

/// Inserts `keys` (checked by [`check_new_keys`]) in the transaction `conn`
/// is in. The error is left for the caller to map: only tenants can be
/// missing ([`map_tenant_err`]), and losing a key slot may mean another
/// instance won ([`is_key_slot_taken`]).
async fn insert_keys(conn: &mut SqliteConnection, keys: &[NewKey]) -> Result<(), sqlx::Error> {
    for key in keys {
        sqlx::query(concat!(
            "INSERT INTO tenant_keys \
             (kid, tenant_id, kind, state, master_key_id, sealed, created_at, activated_at, changed_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ",
            now_ms!(),
            ")"
        ))
        .bind(&key.kid)
        .bind(key.tenant.to_string())
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

async fn tenant_exists(conn: &mut SqliteConnection, tenant: TenantId) -> Result<bool, StoreError> {
    let found: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM tenants WHERE id = ?1")
        .bind(tenant.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(found.is_some())
}

/// Whether `kid` is `tenant`'s active access key.
async fn is_active_access_key(conn: &mut SqliteConnection, tenant: TenantId, kid: &str) -> Result<bool, StoreError> {
    let found: Option<(i64,)> =
        sqlx::query_as("SELECT 1 FROM tenant_keys WHERE tenant_id = ?1 AND kind = ?2 AND state = ?3 AND kid = ?4")
            .bind(tenant.to_string())
            .bind(KeyKind::Access.as_str())
            .bind(KeyState::Active.as_str())
            .bind(kid)
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?;
    Ok(found.is_some())
}

async fn live_tenant_keys(conn: &mut SqliteConnection, tenant: TenantId) -> Result<Vec<StoredKey>, StoreError> {
    let rows: Vec<KeyRow> = sqlx::query_as(SELECT_LIVE_TENANT_KEYS)
        .bind(tenant.to_string())
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    stored_keys(rows)
}

impl SqliteStore {
    /// A write transaction that holds SQLite's write lock from its first
    /// statement: a deferred one that reads first and writes later fails at
    /// once (SQLITE_BUSY_SNAPSHOT, no busy wait) when another connection
    /// wrote in between. `BEGIN IMMEDIATE` waits for the lock instead, up to
    /// the busy timeout, which also serializes key rotations.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)
    }
}

#[async_trait::async_trait]
impl TenantStore for SqliteStore {
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
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO tenants (id, slug, name, api_key_hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")
            .bind(tenant.id.to_string())
            .bind(tenant.slug.as_str())
            .bind(tenant.name.as_str())
            .bind(&tenant.api_key_hash)
            .bind(tenant.created_at)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        insert_keys(&mut tx, &keys).await.map_err(map_tenant_err)?;
        if let Some(owner) = owner {
            insert_user(&mut tx, owner).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(Tenant {
            id: tenant.id,
            slug: tenant.slug,
            name: tenant.name.as_str().to_owned(),
            created_at: tenant.created_at,
        })
    }

    async fn tenant_by_slug(&self, slug: &TenantSlug) -> Result<Option<TenantRecord>, StoreError> {
        let row: Option<TenantRow> = sqlx::query_as(&format!("{SELECT_TENANT} WHERE slug = ?1"))
            .bind(slug.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(TenantRecord::try_from).transpose()
    }

    async fn tenant(&self, id: TenantId) -> Result<Option<TenantRecord>, StoreError> {
        let row: Option<TenantRow> = sqlx::query_as(&format!("{SELECT_TENANT} WHERE id = ?1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.map(TenantRecord::try_from).transpose()
    }

    async fn list_tenants(&self, after: Option<&TenantSlug>, limit: u32) -> Result<Vec<Tenant>, StoreError> {
        // Every slug sorts after the empty string.
        let rows: Vec<TenantRow> = sqlx::query_as(&format!("{SELECT_TENANT} WHERE slug > ?1 ORDER BY slug LIMIT ?2"))
            .bind(after.map_or("", TenantSlug::as_str))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.into_iter()
            .map(|row| Ok(TenantRecord::try_from(row)?.tenant))
            .collect()
    }

    async fn count_users(&self, tenant: TenantId) -> Result<u64, StoreError> {
        let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM users WHERE tenant_id = ?1")
            .bind(tenant.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(count.unsigned_abs())
    }

    async fn set_api_key_hash(&self, tenant: TenantId, hash: Option<Vec<u8>>) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE tenants SET api_key_hash = ?2 WHERE id = ?1")
            .bind(tenant.to_string())
            .bind(hash)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn tenant_keys(&self, tenant: TenantId) -> Result<Vec<StoredKey>, StoreError> {
        let rows: Vec<KeyRow> = sqlx::query_as(SELECT_TENANT_KEYS)
            .bind(tenant.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        stored_keys(rows)
    }

    async fn live_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows: Vec<KeyRow> = sqlx::query_as(concat!(
            "SELECT ",
            key_columns!(),
            " FROM tenant_keys WHERE state IN ('next', 'active', 'retired') \
             ORDER BY tenant_id, created_at, kid"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        stored_keys(rows)
    }

    async fn key(&self, kid: &str) -> Result<Option<StoredKey>, StoreError> {
        let row: Option<KeyRow> =
            sqlx::query_as(concat!("SELECT ", key_columns!(), " FROM tenant_keys WHERE kid = ?1"))
                .bind(kid)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        row.map(StoredKey::try_from).transpose()
    }

    async fn keys_changed_since(&self, since_ms: i64) -> Result<KeyChanges, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        // The clock first: a key changed after this read is either returned
        // below or stamped after `db_now_ms`.
        let (db_now_ms,): (i64,) = sqlx::query_as(concat!("SELECT ", now_ms!()))
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
        let rows: Vec<KeyRow> = sqlx::query_as(concat!(
            "SELECT ",
            key_columns!(),
            " FROM tenant_keys WHERE changed_at > ?1 ORDER BY changed_at, kid"
        ))
        .bind(since_ms)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
        Ok(KeyChanges {
            keys: stored_keys(rows)?,
            db_now_ms,
        })
    }

    async fn rotate_keys(&self, rotation: KeyRotation) -> Result<RotatedKeys, StoreError> {
        check_new_keys(rotation.tenant, &rotation.new_keys)?;
        let tenant = rotation.tenant.to_string();
        // Holds the write lock from here to the commit: rotations (of any
        // tenant) run one after the other.
        let mut tx = self.begin_write().await?;
        if !tenant_exists(&mut tx, rotation.tenant).await? {
            return Err(Conflict::UnknownTenant.into());
        }
        // Read under the write lock (`BEGIN IMMEDIATE`): no other writer can
        // rotate between this check and the updates below.
        if let Some(expected) = &rotation.expect_active_access {
            if !is_active_access_key(&mut tx, rotation.tenant, expected).await? {
                return Err(Conflict::RotationRaced.into());
            }
        }
        match rotation.mode {
            RotationMode::Graceful => {
                let next: Vec<(String,)> =
                    sqlx::query_as("SELECT kind FROM tenant_keys WHERE tenant_id = ?1 AND state = 'next'")
                        .bind(&tenant)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(map_err)?;
                if !KeyKind::ALL
                    .iter()
                    .all(|kind| next.iter().any(|(k,)| k == kind.as_str()))
                {
                    return Err(Conflict::NoNextKey.into());
                }
                // Retire first: the new active keys need the slots.
                sqlx::query(concat!(
                    "UPDATE tenant_keys SET state = 'retired', retired_at = ?2, \
                     verify_until = CASE kind WHEN 'access' THEN ?3 ELSE ?4 END, changed_at = ",
                    now_ms!(),
                    " WHERE tenant_id = ?1 AND state = 'active'"
                ))
                .bind(&tenant)
                .bind(rotation.now)
                .bind(rotation.access_verify_until)
                .bind(rotation.refresh_verify_until)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                sqlx::query(concat!(
                    "UPDATE tenant_keys SET state = 'active', activated_at = ?2, changed_at = ",
                    now_ms!(),
                    " WHERE tenant_id = ?1 AND state = 'next'"
                ))
                .bind(&tenant)
                .bind(rotation.now)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
            RotationMode::Revoke => {
                sqlx::query(concat!(
                    "UPDATE tenant_keys SET state = 'revoked', sealed = NULL, \
                     retired_at = coalesce(retired_at, ?2), changed_at = ",
                    now_ms!(),
                    " WHERE tenant_id = ?1 AND state IN ('next', 'active', 'retired')"
                ))
                .bind(&tenant)
                .bind(rotation.now)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
            }
        }
        insert_keys(&mut tx, &rotation.new_keys).await.map_err(map_tenant_err)?;
        let keys = live_tenant_keys(&mut tx, rotation.tenant).await?;
        // Dropping the transaction on an error rolls it back.
        let (access_kid, refresh_kid) = active_kids(&keys)?;
        tx.commit().await.map_err(map_err)?;
        Ok(RotatedKeys {
            access_kid,
            refresh_kid,
            keys,
        })
    }

    async fn install_keys_if_absent(&self, tenant: TenantId, keys: Vec<NewKey>) -> Result<Vec<StoredKey>, StoreError> {
        check_new_keys(tenant, &keys)?;
        let mut tx = self.begin_write().await?;
        if !tenant_exists(&mut tx, tenant).await? {
            return Err(Conflict::UnknownTenant.into());
        }
        let active: Option<(i64,)> =
            sqlx::query_as("SELECT 1 FROM tenant_keys WHERE tenant_id = ?1 AND state = 'active' LIMIT 1")
                .bind(tenant.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
        if active.is_none() {
            match insert_keys(&mut tx, &keys).await {
                Ok(()) => {}
                // The write lock makes this impossible; should a slot be
                // taken anyway, whoever took it won, and nothing of ours is
                // kept.
                Err(err) if is_key_slot_taken(&err) => {
                    tx.rollback().await.map_err(map_err)?;
                    let mut conn = self.pool.acquire().await.map_err(map_err)?;
                    return live_tenant_keys(&mut conn, tenant).await;
                }
                Err(err) => return Err(map_tenant_err(err)),
            }
        }
        let live = live_tenant_keys(&mut tx, tenant).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(live)
    }

    async fn prune_keys(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM tenant_keys WHERE (state = 'retired' AND verify_until < ?1) \
             OR (state = 'revoked' AND retired_at < ?2)",
        )
        .bind(now)
        .bind(now.saturating_sub(KEY_REVOKED_RETENTION_SECS))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn keys_sealed_by_other(&self, master_key_id: &str, limit: u32) -> Result<Vec<StoredKey>, StoreError> {
        let rows: Vec<KeyRow> = sqlx::query_as(concat!(
            "SELECT ",
            key_columns!(),
            " FROM tenant_keys WHERE sealed IS NOT NULL AND master_key_id <> ?1 ORDER BY kid LIMIT ?2"
        ))
        .bind(master_key_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        stored_keys(rows)
    }

    async fn reseal_key(
        &self,
        kid: &str,
        expected_master_key_id: &str,
        new_master_key_id: &str,
        sealed: Vec<u8>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(concat!(
            "UPDATE tenant_keys SET master_key_id = ?3, sealed = ?4, changed_at = ",
            now_ms!(),
            " WHERE kid = ?1 AND master_key_id = ?2 AND sealed IS NOT NULL"
        ))
        .bind(kid)
        .bind(expected_master_key_id)
        .bind(new_master_key_id)
        .bind(sealed)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() > 0)
    }

    /// `None`: one SQLite file serves one instance, which knows its own
    /// changes.
    async fn listen_key_changes(&self) -> Result<Option<Box<dyn KeyChangeListener>>, StoreError> {
        Ok(None)
    }
}

impl SqliteStore {
    /// Revocations written per INSERT (three bound parameters each, far
    /// below SQLite's limit per statement).
    const REVOCATION_CHUNK: usize = 500;
    /// How far before its cursor a read of the revocation record starts: a
    /// transaction stamps `revoked_at` when it writes, and may commit a
    /// moment later, after a reader took its cursor. Writers hold SQLite's
    /// lock from their first statement, so that moment is short; this is
    /// twice the busy timeout.
    const REVOCATION_LOOKBACK_MS: i64 = 10_000;
}

#[async_trait::async_trait]
impl RevocationStore for SqliteStore {
    async fn record_revocations(&self, sessions: &[SessionId], _now: i64, expires_at: i64) -> Result<(), StoreError> {
        if sessions.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for chunk in sessions.chunks(Self::REVOCATION_CHUNK) {
            let mut insert =
                QueryBuilder::<Sqlite>::new("INSERT INTO revoked_sessions (session_id, expires_at, revoked_at) ");
            insert.push_values(chunk, |mut row, id| {
                row.push_bind(id.to_string()).push_bind(expires_at).push(now_ms!());
            });
            insert.push(
                " ON CONFLICT (session_id) DO UPDATE SET \
                 expires_at = max(revoked_sessions.expires_at, excluded.expires_at), \
                 revoked_at = excluded.revoked_at",
            );
            insert.build().execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn revocations_since(
        &self,
        since: Option<&RevocationCursor>,
        now: i64,
    ) -> Result<RevocationPage, StoreError> {
        // One read transaction, so the clock and the rows are one snapshot.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let (db_now_ms,): (i64,) = sqlx::query_as(concat!("SELECT ", now_ms!()))
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        let after_ms = since
            .and_then(revocation_cursor_ms)
            .map_or(i64::MIN, |ms| ms.saturating_sub(Self::REVOCATION_LOOKBACK_MS));
        // Decoded row by row: a starting instance may read a million.
        let mut revocations = Vec::new();
        {
            use futures_util::TryStreamExt as _;
            let mut rows = sqlx::query_as::<_, (String, i64)>(
                "SELECT session_id, expires_at FROM revoked_sessions WHERE revoked_at > ?1 AND expires_at > ?2",
            )
            .bind(after_ms)
            .bind(now)
            .fetch(&mut *tx);
            while let Some((id, expires_at)) = rows.try_next().await.map_err(map_err)? {
                revocations.push(Revocation {
                    session: session_id(&id, "revoked_sessions.session_id")?,
                    expires_at,
                });
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(RevocationPage {
            revocations,
            cursor: RevocationCursor(db_now_ms.to_string()),
        })
    }

    async fn purge_revocations(&self, now: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM revoked_sessions WHERE expires_at <= ?1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    /// `None`: one SQLite file serves one instance, which knows its own
    /// revocations (the CLI's are found by reading the record).
    async fn listen_revocations(&self) -> Result<Option<Box<dyn RevocationListener>>, StoreError> {
        Ok(None)
    }
}

#[derive(FromRow)]
struct AuditRow {
    id: i64,
    tenant_id: String,
    at: i64,
    #[sqlx(rename = "type")]
    kind: String,
    user_id: Option<String>,
    session_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    detail: Option<String>,
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        let session =
            |raw: &str| SessionId::parse(raw).ok_or_else(|| corrupt("audit_events.session_id", "a canonical UUID"));
        Ok(AuditEvent {
            id: row.id,
            tenant: tenant_id(&row.tenant_id, "audit_events.tenant_id")?,
            at: row.at,
            kind: row.kind,
            user: row
                .user_id
                .as_deref()
                .map(|raw| user_id(raw, "audit_events.user_id"))
                .transpose()?,
            session: row.session_id.as_deref().map(session).transpose()?,
            ip: row.ip,
            user_agent: row.user_agent,
            detail: row.detail,
        })
    }
}

impl SqliteStore {
    /// Events per INSERT: 8 parameters each stays far below SQLite's limit
    /// of 32766 bound parameters per statement.
    const AUDIT_CHUNK: usize = 1000;
}

async fn insert_audit(conn: &mut SqliteConnection, events: &[NewAuditEvent]) -> Result<(), StoreError> {
    let mut insert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO audit_events (tenant_id, at, type, user_id, session_id, ip, user_agent, detail) ",
    );
    insert.push_values(events, |mut row, event| {
        row.push_bind(event.tenant.to_string())
            .push_bind(event.at)
            .push_bind(event.kind.as_str())
            .push_bind(event.user.map(|id| id.to_string()))
            .push_bind(event.session.map(|id| id.to_string()))
            .push_bind(event.ip.as_deref())
            .push_bind(event.user_agent.as_deref())
            .push_bind(event.detail.as_deref());
    });
    insert
        .build()
        .execute(&mut *conn)
        .await
        // The only foreign key of audit_events references tenants.
        .map_err(map_tenant_err)?;
    Ok(())
}

#[async_trait::async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, events: &[NewAuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        if events.len() <= Self::AUDIT_CHUNK {
            let mut conn = self.pool.acquire().await.map_err(map_err)?;
            return insert_audit(&mut conn, events).await;
        }
        let mut tx = self.begin_write().await?;
        for chunk in events.chunks(Self::AUDIT_CHUNK) {
            insert_audit(&mut tx, chunk).await?;
        }
        tx.commit().await.map_err(map_err)
    }

    async fn audit_events(
        &self,
        tenant: TenantId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows: Vec<AuditRow> = sqlx::query_as(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_events WHERE tenant_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3"
        ))
        .bind(tenant.to_string())
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.into_iter().map(AuditEvent::try_from).collect()
    }

    async fn prune_audit(&self, older_than: i64, batch: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM audit_events WHERE id IN \
             (SELECT id FROM audit_events WHERE at < ?1 ORDER BY at LIMIT ?2)",
        )
        .bind(older_than)
        .bind(batch)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}
