use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::migrate::MigrateError;

/// Why a store operation failed.
///
/// Messages never carry secrets or stored values: no password hashes, no
/// tokens, no emails; at most table and column names.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The write breaks a rule of the data (a unique or foreign key). The
    /// server answers the client accordingly (409 for
    /// [`Conflict::EmailTaken`]).
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// The store cannot answer now: pool exhausted (acquire timeout), database
    /// busy or locked past its timeout (SQLite's busy timeout, PostgreSQL's
    /// statement timeout), IO error, connection refused or closed, a server
    /// shutting down, in recovery or out of connections, no answer within
    /// the client-side deadline, a bad URL or credentials. Retrying later may
    /// work; the server answers 503.
    #[error("storage unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The store answered, but not what this build expects: a row that does
    /// not decode into the domain types, an unknown constraint, a missing
    /// table, a failed or foreign migration. A bug or a damaged database; the
    /// server answers 500 and logs this.
    #[error("stored data is not what this build expects: {0}")]
    Corrupt(String),
}

/// Which rule of the data a write broke.
///
/// Non-exhaustive: later features (tenants, usernames) add their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Conflict {
    /// Another user has this email (`users_email_key`).
    #[error("the email is already registered")]
    EmailTaken,
    /// A user or session with this id already exists (`users_pkey`,
    /// `sessions_pkey`). Ids are random UUIDs, so this is a bug, not a
    /// client error.
    #[error("the id is already in use")]
    IdTaken,
    /// A session names a user that does not exist (`sessions_user_id_fkey`),
    /// e.g. deleted while logging in.
    #[error("the user does not exist")]
    UnknownUser,
}

impl From<Conflict> for StoreError {
    fn from(conflict: Conflict) -> Self {
        Self::Conflict(conflict)
    }
}

impl StoreError {
    pub(crate) fn unavailable(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(err))
    }
}

/// A named unique constraint of the schema and the conflict it means.
///
/// Every SQL backend names its constraints the same (see the migrations).
/// PostgreSQL reports the name; SQLite reports the columns instead
/// (`UNIQUE constraint failed: users.email`), or `index 'name'` for a unique
/// index, so both spellings are kept here.
struct UniqueConstraint {
    name: &'static str,
    sqlite_columns: &'static str,
    conflict: Conflict,
}

const UNIQUE_CONSTRAINTS: &[UniqueConstraint] = &[
    UniqueConstraint {
        name: "users_email_key",
        sqlite_columns: "users.email",
        conflict: Conflict::EmailTaken,
    },
    UniqueConstraint {
        name: "users_pkey",
        sqlite_columns: "users.id",
        conflict: Conflict::IdTaken,
    },
    UniqueConstraint {
        name: "sessions_pkey",
        sqlite_columns: "sessions.id",
        conflict: Conflict::IdTaken,
    },
];

/// The [`Conflict`] a constraint violation means, if it is one we know.
///
/// Mapping the database's own verdict (not checking first and inserting
/// after) is what makes two concurrent registrations of one email safe.
pub(crate) fn conflict_for(db: &dyn DatabaseError) -> Option<Conflict> {
    match db.kind() {
        ErrorKind::UniqueViolation => {
            let sqlite_target = db.message().strip_prefix("UNIQUE constraint failed: ");
            UNIQUE_CONSTRAINTS
                .iter()
                .find(|c| {
                    db.constraint() == Some(c.name)
                        || sqlite_target.is_some_and(|target| {
                            target == c.sqlite_columns
                                || target.strip_prefix("index '").and_then(|t| t.strip_suffix('\'')) == Some(c.name)
                        })
                })
                .map(|c| c.conflict)
        }
        // Every foreign key of the schema (`sessions_user_id_fkey`) references
        // users, and SQLite does not say which one failed.
        ErrorKind::ForeignKeyViolation => Some(Conflict::UnknownUser),
        _ => None,
    }
}

/// Maps a sqlx error; `database` classifies errors the database itself
/// returned, which differ per backend.
pub(crate) fn from_sqlx(err: sqlx::Error, database: fn(sqlx::Error) -> StoreError) -> StoreError {
    match err {
        sqlx::Error::Database(_) => database(err),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Configuration(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::unavailable(err),
        sqlx::Error::Migrate(migrate) => from_migrate(*migrate, database),
        // Decoding, missing columns, unexpected row counts: the data or the
        // schema is not what the code expects. The messages name columns and
        // types, never values.
        other => StoreError::Corrupt(other.to_string()),
    }
}

pub(crate) fn from_migrate(err: MigrateError, database: fn(sqlx::Error) -> StoreError) -> StoreError {
    match err {
        MigrateError::Execute(e) => from_sqlx(e, database),
        MigrateError::ExecuteMigration(e, version) => match from_sqlx(e, database) {
            StoreError::Corrupt(why) => StoreError::Corrupt(format!("migration {version} failed: {why}")),
            other => other,
        },
        // Checksum mismatch, a migration this build does not know, a dirty
        // (half-applied) migration: an operator has to look.
        other => StoreError::Corrupt(format!("migrations: {other}")),
    }
}
