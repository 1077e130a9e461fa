//! tessera's storage: users, login sessions and the shared default signing
//! secrets behind backend-neutral traits, and the backends that implement
//! them.
//!
//! **Architecture invariant:** this is the only crate that talks to databases.
//! The server holds `Arc<dyn UserStore>`, `Arc<dyn SessionStore>`,
//! `Arc<dyn SecretStore>` and `Arc<dyn Health>` and never sees SQL, a pool or
//! a driver error; every failure arrives as a [`StoreError`].
//!
//! What it is not: it knows nothing about HTTP, JSON, JWTs or passwords. It
//! stores a password *hash* it never interprets, and refresh-token `jti`s it
//! never verifies; minting and checking tokens is `tessera-token`'s job, and
//! deciding what a [`RotationOutcome`] means for the client is the server's.
//!
//! Times are unix seconds everywhere, and the caller passes "now" in, so the
//! store has no clock and tests need no sleeps.
//!
//! Backends. The contract they meet is the generic suite in `tests/store.rs`,
//! which each backend runs unchanged.
//! - [`SqliteStore`]: one file on one host, for the embedded default and a
//!   single instance. Implements every trait.
//! - [`PostgresStore`]: one database shared by any number of instances
//!   (scale-out). Implements every trait, with the same schema, constraint
//!   names and behaviour as SQLite; every call is bounded in time (acquire
//!   timeout, statement timeout, client-side deadline), see
//!   [`PostgresOptions`].
//! - [`RedisSessionStore`]: sessions only, in Redis or Redis Cluster, beside
//!   users in one of the SQL backends.
//!
//! Both SQL backends embed their migrations (`migrations/sqlite`,
//! `migrations/postgres`: the same tables, columns and named constraints, in
//! each database's native types) and apply them with `migrate()`; neither
//! migrates on connect.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tessera_store::StoreError> {
//! use tessera_store::{Health, PostgresOptions, PostgresStore, SqliteStore};
//! let store = SqliteStore::connect("sqlite://tessera-data/tessera.db").await?;
//! store.migrate().await?;
//! store.ping().await?;
//!
//! let options = PostgresOptions { max_connections: 20, ..PostgresOptions::default() };
//! let shared = PostgresStore::connect_with("postgres://tessera:secret@db:5432/tessera", options).await?;
//! shared.migrate().await?;
//! shared.ping().await?;
//! # Ok(())
//! # }
//! ```

#[macro_use]
mod decode;
mod error;
mod model;
mod postgres;
mod redis;
mod sqlite;

pub use self::redis::{RedisOptions, RedisSessionStore};
pub use error::{Conflict, StoreError};
pub use model::{
    NewSession, NewUser, RefreshState, Rotation, RotationOutcome, SealedSecrets, Session, User, UserRecord,
};
pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::SqliteStore;

use tessera_core::{Email, SessionId, UserId};

/// Where accounts live.
#[async_trait::async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Stores a new user and returns it as stored (`email_verified` false).
    ///
    /// An email that is already registered is
    /// `StoreError::Conflict(Conflict::EmailTaken)`, decided by the database's
    /// unique constraint, so two concurrent registrations cannot both succeed.
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError>;

    /// The user with this (already normalized) email, with the password hash
    /// to check a login against.
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError>;

    async fn find_user(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// Replaces the user's password hash. Doing this for an id that does not
    /// exist changes nothing and is not an error.
    async fn set_password_hash(&self, id: UserId, hash: &str) -> Result<(), StoreError>;

    /// Deletes the user (and, in the same database, their sessions); false
    /// if there was none. Registration uses it to undo an account whose first
    /// session could not be stored elsewhere (Redis), so a retry can succeed.
    async fn delete_user(&self, id: UserId) -> Result<bool, StoreError>;
}

/// Where login sessions and their refresh-token state live.
///
/// Only live sessions (`expires_at > now`) are ever returned; expired ones
/// stay stored, invisible, until [`SessionStore::purge_expired`] removes them.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session whose current refresh token is `session.refresh`.
    /// A user id that does not exist is `Conflict(Conflict::UnknownUser)`.
    async fn create_session(&self, session: NewSession) -> Result<(), StoreError>;

    /// The live session with this id, if it belongs to `user`; `None` for a
    /// session of anyone else, exactly as for one that does not exist.
    ///
    /// The owner is part of the key because backends that shard by user
    /// (Redis Cluster keeps all of a user's keys in one hash slot) cannot find
    /// a session by its id alone.
    async fn session(&self, user: UserId, id: SessionId, now: i64) -> Result<Option<Session>, StoreError>;

    /// Refresh-token rotation, atomically: see [`RotationOutcome`] for the
    /// rules. Concurrent calls presenting the same `jti` never both rotate.
    /// Only a session of `rotation.user` is ever read or changed; a session
    /// of another user is [`RotationOutcome::Unknown`] and left alone.
    async fn rotate(&self, rotation: Rotation) -> Result<RotationOutcome, StoreError>;

    /// The user's live sessions, most recently used first.
    async fn list_sessions(&self, user: UserId, now: i64) -> Result<Vec<Session>, StoreError>;

    /// Ends one session of `user`. `false` when there is no such session or
    /// it belongs to someone else (which is then left alone).
    async fn revoke_session(&self, user: UserId, id: SessionId) -> Result<bool, StoreError>;

    /// Ends every session of `user` except `keep`; returns how many stored
    /// sessions were removed (expired, not yet purged ones count too).
    async fn revoke_other_sessions(&self, user: UserId, keep: SessionId) -> Result<u64, StoreError>;

    /// Ends every session of `user`; returns how many stored sessions were
    /// removed (expired, not yet purged ones count too).
    async fn revoke_all_sessions(&self, user: UserId) -> Result<u64, StoreError>;

    /// Deletes sessions that expired at or before `now`; returns how many.
    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError>;
}

/// Readiness of a backing store, for `/readyz`.
#[async_trait::async_trait]
pub trait Health: Send + Sync + 'static {
    /// Answers `Ok` when the store can serve a query right now.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Where the default keyring's sealed signing secrets live, so that every
/// instance sharing a database signs with the same keys.
#[async_trait::async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// The stored pair, or `candidate` after storing it if there is none yet.
    ///
    /// Atomic: when several instances start at once, all get the same pair
    /// (the first insert wins; the others' candidates are discarded). The
    /// stored pair is never replaced by this call.
    async fn default_secrets_or_insert(&self, candidate: SealedSecrets) -> Result<SealedSecrets, StoreError>;
}
