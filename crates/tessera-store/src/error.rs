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
/// Non-exhaustive: later features (usernames) add their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Conflict {
    /// Another user of the same tenant has this email
    /// (`users_tenant_email_key`; before migration 0003, `users_email_key`).
    #[error("the email is already registered")]
    EmailTaken,
    /// A user, session, tenant or key with this id already exists
    /// (`users_pkey`, `sessions_pkey`, `tenants_pkey`, `tenant_keys_pkey`).
    /// Ids are random, so this is a bug, not a client error.
    #[error("the id is already in use")]
    IdTaken,
    /// A session names a user that does not exist (`sessions_user_id_fkey`),
    /// e.g. deleted while logging in.
    #[error("the user does not exist")]
    UnknownUser,
    /// Another tenant has this slug (`tenants_slug_key`).
    #[error("the tenant slug is already taken")]
    SlugTaken,
    /// A user, key or audit event names a tenant that does not exist
    /// (`users_tenant_id_fkey`, `tenant_keys_tenant_id_fkey`,
    /// `audit_events_tenant_id_fkey`), or a key operation was asked of one.
    #[error("the tenant does not exist")]
    UnknownTenant,
    /// A graceful key rotation found no `next` key to activate for a kind;
    /// nothing changed.
    #[error("the tenant has no next key to activate")]
    NoNextKey,
    /// A rotation expected another active access key
    /// ([`crate::KeyRotation::expect_active_access`]): the tenant's keys were
    /// rotated meanwhile, by another instance or call; nothing changed.
    #[error("the tenant's keys were rotated by someone else meanwhile")]
    RotationRaced,
    /// A role change would leave a tenant that has an owner without one;
    /// nothing changed.
    #[error("the user is the tenant's last owner")]
    LastOwner,
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
        name: "users_tenant_email_key",
        sqlite_columns: "users.tenant_id, users.email",
        conflict: Conflict::EmailTaken,
    },
    // Replaced by `users_tenant_email_key` in migration 0003; kept so that a
    // database between migrations still maps.
    UniqueConstraint {
        name: "users_email_key",
        sqlite_columns: "users.email",
        conflict: Conflict::EmailTaken,
    },
    UniqueConstraint {
        name: "tenants_slug_key",
        sqlite_columns: "tenants.slug",
        conflict: Conflict::SlugTaken,
    },
    UniqueConstraint {
        name: "tenants_pkey",
        sqlite_columns: "tenants.id",
        conflict: Conflict::IdTaken,
    },
    UniqueConstraint {
        name: "tenant_keys_pkey",
        sqlite_columns: "tenant_keys.kid",
        conflict: Conflict::IdTaken,
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

/// Foreign keys and the conflict each means. PostgreSQL names the one that
/// failed; SQLite does not, so its backend says per statement which one it
/// can be ([`is_foreign_key_violation`]).
const FOREIGN_KEYS: &[(&str, Conflict)] = &[
    ("sessions_user_id_fkey", Conflict::UnknownUser),
    ("account_tokens_user_id_fkey", Conflict::UnknownUser),
    ("users_tenant_id_fkey", Conflict::UnknownTenant),
    ("tenant_keys_tenant_id_fkey", Conflict::UnknownTenant),
    ("audit_events_tenant_id_fkey", Conflict::UnknownTenant),
];

/// The partial unique indexes that allow one active and one next key per
/// tenant and kind. SQLite reports both by their columns.
const KEY_SLOT_INDEXES: &[&str] = &["tenant_keys_one_active", "tenant_keys_one_next"];
const KEY_SLOT_SQLITE_COLUMNS: &str = "tenant_keys.tenant_id, tenant_keys.kind";

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
        ErrorKind::ForeignKeyViolation => match db.constraint() {
            Some(name) => FOREIGN_KEYS.iter().find(|(fk, _)| *fk == name).map(|(_, c)| *c),
            // SQLite does not say which key failed. Statements that can only
            // break a tenant key say so through `is_foreign_key_violation`; the
            // rest (sessions) reference users.
            None => Some(Conflict::UnknownUser),
        },
        _ => None,
    }
}

/// Whether `err` is a foreign-key violation. SQLite does not name the key,
/// so its backend maps it per statement, where only one key can fail.
pub(crate) fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation)
}

/// Whether `err` says a tenant already has an active (or next) key of that
/// kind: another writer got there first.
pub(crate) fn is_key_slot_taken(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    db.kind() == ErrorKind::UniqueViolation
        && (db.constraint().is_some_and(|name| KEY_SLOT_INDEXES.contains(&name))
            || db.message().strip_prefix("UNIQUE constraint failed: ") == Some(KEY_SLOT_SQLITE_COLUMNS))
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
