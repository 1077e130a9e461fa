//! tessera's storage: tenants, their users, login sessions, sealed signing
//! keys and audit log behind backend-neutral traits, and the backends that
//! implement them.
//!
//! **Architecture invariant:** this is the only crate that talks to databases.
//! The server holds `Arc<dyn UserStore>`, `Arc<dyn SessionStore>`,
//! `Arc<dyn SecretStore>`, `Arc<dyn TenantStore>`, `Arc<dyn AuditStore>`,
//! `Arc<dyn RevocationStore>` and `Arc<dyn Health>` and never sees SQL, a
//! pool or a driver error; every failure arrives as a [`StoreError`].
//!
//! What it is not: it knows nothing about HTTP, JSON, JWTs or passwords. It
//! stores a password *hash* it never interprets, refresh-token `jti`s it
//! never verifies, signing keys only as the server sealed them (it never sees
//! a plaintext key, and needs none), and audit details as opaque text;
//! minting and checking tokens is `tessera-token`'s job, and deciding what a
//! [`RotationOutcome`] means for the client is the server's.
//!
//! Times are unix seconds everywhere, and the caller passes "now" in, so the
//! store has no clock and tests need no sleeps. The one exception is
//! [`StoredKey::changed_at_ms`], the database's own clock in milliseconds, so
//! that instances can ask "what changed since" without trusting each other's
//! clocks (see [`TenantStore::keys_changed_since`]).
//!
//! Tenants. Every user belongs to one tenant ([`User::tenant`]); an email is
//! unique per tenant, not globally. The default tenant
//! ([`tessera_core::TenantId::DEFAULT`], slug `default`) is created by the
//! migrations and owns every user that existed before tenants did. Each
//! tenant has its own HMAC signing keys ([`StoredKey`]), an access and a
//! refresh key in each of the states `next`, `active` and `retired`, changed
//! only by [`TenantStore::rotate_keys`].
//!
//! Backends. The contract they meet is the generic suite in `tests/store.rs`,
//! which each backend runs unchanged.
//! - [`SqliteStore`]: one file on one host, for the embedded default and a
//!   single instance. Implements every trait; it has no key-change
//!   notifications ([`TenantStore::listen_key_changes`] is `None`), as the
//!   one instance updates its own memory.
//! - [`PostgresStore`]: one database shared by any number of instances
//!   (scale-out). Implements every trait, with the same schema, constraint
//!   names and behaviour as SQLite; every call is bounded in time (acquire
//!   timeout, statement timeout, client-side deadline), see
//!   [`PostgresOptions`]. Key changes are announced to every instance with
//!   `NOTIFY tessera_keys`.
//! - [`RedisSessionStore`]: sessions (and their [`RevocationStore`]) only, in
//!   Redis or Redis Cluster, beside users (and tenants, keys, audit) in one of
//!   the SQL backends.
//!
//! Rate-limit counters ([`RateLimiter`]) are kept by [`RedisRateLimiter`]
//! (from [`RedisSessionStore::rate_limiter`], sharing its connection) when
//! instances share a Redis, and by [`MemoryRateLimiter`] in one process
//! otherwise; `src/ratelimit.rs` describes the algorithm (GCRA, plus
//! exponential backoff for failed logins).
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
mod ratelimit;
mod redis;
mod sqlite;

pub use self::redis::{RedisOptions, RedisRateLimiter, RedisSessionStore};
pub use error::{Conflict, StoreError};
pub use model::{
    AccountTokenPurpose, AuditEvent, ImportConflict, ImportMode, ImportedUser, KeyChanges, KeyKind, KeyRotation,
    KeyState, NewAccountToken, NewAuditEvent, NewKey, NewSession, NewTenant, NewUser, RefreshState, Revocation,
    RevocationCursor, RevocationEvent, RevocationPage, RoleChange, RotatedKeys, Rotation, RotationMode,
    RotationOutcome, SealedSecrets, Session, StoredKey, Tenant, TenantRecord, User, UserCursor, UserRecord,
};
pub use postgres::{PostgresOptions, PostgresStore};
pub use ratelimit::{Limit, LimitDecision, LimitRule, MemoryRateLimiter, RateLimiter, MARKERS_PER_SET};
pub use sqlite::SqliteStore;

use tessera_core::{Email, Role, SessionId, TenantId, TenantSlug, UserId};

/// Where accounts live.
#[async_trait::async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Stores a new user in `user.tenant` and returns it as stored
    /// (`email_verified` false).
    ///
    /// An email that is already registered in that tenant is
    /// `StoreError::Conflict(Conflict::EmailTaken)`, decided by the database's
    /// unique constraint, so two concurrent registrations cannot both succeed;
    /// the same email in another tenant is another account. A tenant that
    /// does not exist is `Conflict::UnknownTenant`.
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError>;

    /// The user of `tenant` with this (already normalized) email, with the
    /// password hash to check a login against.
    async fn find_user_by_email(&self, tenant: TenantId, email: &Email) -> Result<Option<UserRecord>, StoreError>;

    async fn find_user(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// Replaces the user's password hash. Doing this for an id that does not
    /// exist changes nothing and is not an error.
    async fn set_password_hash(&self, id: UserId, hash: &str) -> Result<(), StoreError>;

    /// Replaces the user's password hash with `new` if it is still
    /// `expected` (a login upgrading the hash it just checked); false, and
    /// nothing changed, if the hash changed meanwhile (a reset, a change, a
    /// concurrent upgrade) or there is no such user. A compare-and-set, so
    /// an upgrade never undoes a reset.
    async fn upgrade_password_hash(&self, id: UserId, expected: &str, new: &str) -> Result<bool, StoreError>;

    /// Deletes the user (and, in the same database, their sessions); false
    /// if there was none. Registration uses it to undo an account whose first
    /// session could not be stored elsewhere (Redis), so a retry can succeed.
    async fn delete_user(&self, id: UserId) -> Result<bool, StoreError>;

    /// Up to `limit` ids of `tenant`'s users, in ascending id order, after
    /// `after` when given: pass the last id of a page to get the next one.
    /// An empty page is the end.
    async fn user_ids_in_tenant(
        &self,
        tenant: TenantId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError>;

    /// Up to `limit` of `tenant`'s users, newest first (by `created_at`,
    /// then id, both descending), strictly after `before` when given: pass
    /// [`UserCursor::after`] of a page's last user to get the next page. An
    /// empty page is the end.
    async fn list_users(
        &self,
        tenant: TenantId,
        before: Option<UserCursor>,
        limit: u32,
    ) -> Result<Vec<User>, StoreError>;

    /// Gives the user `role`; `None` if there is no such user.
    ///
    /// Taking `owner` away from the last owner of a tenant is
    /// `Conflict::LastOwner` and changes nothing: a tenant that had an owner
    /// keeps one. Role changes of one tenant are serialized, so two owners
    /// demoting each other at once cannot both succeed.
    async fn set_role(&self, user: UserId, role: &Role) -> Result<Option<RoleChange>, StoreError>;

    /// Stores accounts brought from another system (`tessera user import`)
    /// in one transaction, keeping each one's id, role, creation time and
    /// `email_verified`; a user whose email its tenant already has, or whose
    /// id is taken (also by an earlier user of the same call), is skipped
    /// and returned as an [`ImportConflict`], and everything else is stored.
    /// [`ImportMode::DryRun`] rolls the transaction back, so the answer is
    /// exact and nothing changes. A tenant that does not exist is
    /// `Conflict::UnknownTenant`, and nothing is stored.
    ///
    /// One call is one transaction within the store's deadline: pass at most
    /// a few thousand users at a time.
    async fn import_users(&self, users: &[ImportedUser], mode: ImportMode) -> Result<Vec<ImportConflict>, StoreError>;
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

    /// Ends every session of `user` except `keep`, in one atomic step, and
    /// returns the ids of exactly the stored sessions it removed (expired,
    /// not yet purged ones included), in no particular order: a session
    /// created concurrently is either ended and listed, or left alone and not
    /// listed. The ids are what a revocation of their access tokens needs
    /// ([`RevocationStore::record_revocations`]).
    async fn revoke_other_sessions(&self, user: UserId, keep: SessionId) -> Result<Vec<SessionId>, StoreError>;

    /// Ends every session of `user`, atomically; returns the ids of the
    /// stored sessions it removed, as [`Self::revoke_other_sessions`] does.
    async fn revoke_all_sessions(&self, user: UserId) -> Result<Vec<SessionId>, StoreError>;

    /// Deletes sessions that expired at or before `now`; returns how many.
    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError>;

    /// Ends every session of every user of `tenant`; returns how many stored
    /// sessions were removed (expired, not yet purged ones count too).
    /// Sessions created while this runs may survive it.
    async fn revoke_tenant_sessions(&self, tenant: TenantId) -> Result<u64, StoreError>;
}

/// The record of sessions that ended early, so that every instance can
/// refuse their access tokens before they expire (`TESSERA_REVOCATION_CHECK`).
///
/// Revocations live where the sessions do: in SQLite or PostgreSQL (the
/// `revoked_sessions` table) next to SQL sessions, in Redis (a stream) next
/// to Redis sessions. Each lives as long as an access token of its session
/// can (`expires_at`, chosen by the caller), so the record stays as small as
/// the sessions ended within one access-token lifetime.
///
/// An instance starts listening ([`Self::listen_revocations`]), then loads
/// the live record ([`Self::revocations_since`] without a cursor), applies
/// announcements as they come, and reads on from its cursor when told it may
/// have missed some ([`RevocationEvent::Missed`]) and periodically, as a
/// safety net. Announcing is part of recording: when
/// [`Self::record_revocations`] returns, listeners have been sent the news
/// (Redis: `PUBLISH`; PostgreSQL: `NOTIFY` at commit).
#[async_trait::async_trait]
pub trait RevocationStore: Send + Sync + 'static {
    /// Records, durably, that `sessions` ended at `now` (unix seconds, the
    /// caller's clock) and that their access tokens are to be refused until
    /// `expires_at`, and announces it to every listener. Recording a session
    /// again is harmless (the later expiry wins). An empty slice does nothing.
    async fn record_revocations(&self, sessions: &[SessionId], now: i64, expires_at: i64) -> Result<(), StoreError>;

    /// The revocations still live at `now` (`expires_at > now`) recorded
    /// after `since` (every live one without it), and the cursor to continue
    /// from. Whatever was recorded before this call returned is in this page
    /// or, if it was still being written, in the next one.
    async fn revocations_since(&self, since: Option<&RevocationCursor>, now: i64)
        -> Result<RevocationPage, StoreError>;

    /// Deletes revocations that expired at or before `now`; returns how
    /// many (Redis trims its stream as it records, and answers 0).
    async fn purge_revocations(&self, now: i64) -> Result<u64, StoreError>;

    /// Announcements of revocations recorded by anyone, or `None` when the
    /// backend has none (SQLite: one instance, which knows its own; the CLI's
    /// are found by reading the record). Start listening before loading
    /// the record, so that nothing falls between the two.
    async fn listen_revocations(&self) -> Result<Option<Box<dyn RevocationListener>>, StoreError>;
}

/// A subscription to revocations, from
/// [`RevocationStore::listen_revocations`].
#[async_trait::async_trait]
pub trait RevocationListener: Send + 'static {
    /// Waits for the next announcement.
    ///
    /// - `Ok(Revoked(_))`: sessions were revoked.
    /// - `Ok(Missed)`: the listener lost its connection and has a new one
    ///   (or heard something it cannot read): read the record on.
    /// - `Err(_)`: it cannot listen right now (the store is unreachable);
    ///   call again after a pause, and it reconnects (answering `Missed`
    ///   once it has).
    ///
    /// A connection that goes silent is noticed by a ping within
    /// [`REVOCATION_LISTENER_PING_EVERY`] plus the store's call deadline.
    /// Cancelling it midway is safe, but may lose the announcement being
    /// received.
    async fn next(&mut self) -> Result<RevocationEvent, StoreError>;
}

/// How long a [`RevocationListener`] waits for an announcement before it
/// pings its connection to make sure it is still there.
pub const REVOCATION_LISTENER_PING_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Single-use tokens mailed to users: password reset and email
/// verification.
///
/// The store keeps only each token's SHA-256 (`token_hash`), never the
/// token. A token is found only within its tenant and for its purpose, and
/// only while live (`expires_at > now`); expired ones stay stored, invisible,
/// until [`AccountTokenStore::purge_account_tokens`] removes them.
#[async_trait::async_trait]
pub trait AccountTokenStore: Send + Sync + 'static {
    /// Stores a token. A user that does not exist is
    /// `Conflict::UnknownUser`.
    async fn create_account_token(&self, token: NewAccountToken) -> Result<(), StoreError>;

    /// The user a live token of `tenant` and `purpose` was issued to; never
    /// changes anything.
    async fn account_token_user(
        &self,
        tenant: TenantId,
        purpose: AccountTokenPurpose,
        token_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<UserId>, StoreError>;

    /// A password reset, atomically: if `token_hash` is a live reset token of
    /// `tenant`, deletes it and every other reset token of its user, sets the
    /// user's password hash, marks the email verified (the reset link
    /// reached it), and returns the user as changed. `None` (and nothing
    /// changed) otherwise, so of two resets with one token only one wins.
    async fn reset_password(
        &self,
        tenant: TenantId,
        token_hash: &[u8; 32],
        new_password_hash: &str,
        now: i64,
    ) -> Result<Option<User>, StoreError>;

    /// A password change by the user: sets the hash and deletes every reset
    /// token of the user, in one transaction, so a reset link mailed before
    /// the change no longer works. False if there is no such user.
    async fn change_password(&self, user: UserId, new_password_hash: &str) -> Result<bool, StoreError>;

    /// Email verification, atomically: if `token_hash` is a live
    /// verification token of `tenant`, deletes every verification token of
    /// its user, marks the email verified and returns the user. `None` (and
    /// nothing changed) otherwise.
    async fn verify_email(&self, tenant: TenantId, token_hash: &[u8; 32], now: i64)
        -> Result<Option<User>, StoreError>;

    /// Deletes tokens that expired at or before `now`; returns how many.
    async fn purge_account_tokens(&self, now: i64) -> Result<u64, StoreError>;
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

    /// The stored pair, if there is one; never stores anything. Read once,
    /// to carry the pair over into the default tenant's keys.
    async fn default_secrets(&self) -> Result<Option<SealedSecrets>, StoreError>;
}

/// Tenants and their signing keys.
///
/// Keys reach the store sealed by the server (AES-256-GCM under a master
/// key, named by `master_key_id`); the store never sees, and never needs,
/// a plaintext key.
///
/// Every write that creates or changes keys (`create_tenant` with keys,
/// `rotate_keys`, `install_keys_if_absent` when it inserts, `reseal_key`)
/// sets the rows' `changed_at_ms` from the database clock and, on
/// PostgreSQL, notifies [`TenantStore::listen_key_changes`] listeners at
/// commit. An instance keeps the live keys of every tenant in memory: it
/// starts listening, loads [`TenantStore::live_keys`], then on each
/// notification reloads that tenant ([`TenantStore::tenant_keys`]), and on a
/// reconnect (or periodically, as a safety net) asks
/// [`TenantStore::keys_changed_since`] with a lookback window.
#[async_trait::async_trait]
pub trait TenantStore: Send + Sync + 'static {
    /// Stores a tenant, its `keys` and its first user `owner`, all in one
    /// transaction, and returns the tenant as stored.
    ///
    /// A slug that is taken is `Conflict::SlugTaken` and nothing is stored
    /// (nor is anything when any other part fails). Every key and the owner
    /// must name the new tenant (`tenant.id`); anything else is refused as a
    /// bug (`StoreError::Corrupt`), as is a key that is not `Next` or
    /// `Active`.
    async fn create_tenant(
        &self,
        tenant: NewTenant,
        keys: Vec<NewKey>,
        owner: Option<NewUser>,
    ) -> Result<Tenant, StoreError>;

    async fn tenant_by_slug(&self, slug: &TenantSlug) -> Result<Option<TenantRecord>, StoreError>;

    async fn tenant(&self, id: TenantId) -> Result<Option<TenantRecord>, StoreError>;

    /// Up to `limit` tenants in ascending slug order (bytewise, the same on
    /// every backend), after `after` when given: pass the last slug of a page
    /// to get the next one.
    async fn list_tenants(&self, after: Option<&TenantSlug>, limit: u32) -> Result<Vec<Tenant>, StoreError>;

    /// How many users `tenant` has (0 for a tenant that does not exist).
    async fn count_users(&self, tenant: TenantId) -> Result<u64, StoreError>;

    /// Replaces (or with `None`, removes) the tenant's API key hash, which
    /// must be 32 bytes; false if there is no such tenant.
    async fn set_api_key_hash(&self, tenant: TenantId, hash: Option<Vec<u8>>) -> Result<bool, StoreError>;

    /// Every key of `tenant`, in every state, oldest first (by `created_at`,
    /// then `kid`).
    async fn tenant_keys(&self, tenant: TenantId) -> Result<Vec<StoredKey>, StoreError>;

    /// The next, active and retired keys of every tenant: what a starting
    /// instance loads. Ordered by tenant, then as [`Self::tenant_keys`].
    async fn live_keys(&self) -> Result<Vec<StoredKey>, StoreError>;

    /// The key `kid`, in any state.
    async fn key(&self, kid: &str) -> Result<Option<StoredKey>, StoreError>;

    /// Keys (any state) whose `changed_at_ms` is after `since_ms`, and the
    /// database clock now (read first, so a key changed meanwhile is either
    /// returned or after `db_now_ms`).
    ///
    /// A transaction stamps its rows when it writes them, not when it
    /// commits, so a row may become visible with a `changed_at_ms` slightly
    /// in the past: callers ask again from `db_now_ms` minus a lookback
    /// window longer than a write transaction can take (the statement
    /// timeout), not from `db_now_ms` itself. Deleted keys
    /// ([`Self::prune_keys`]) are not reported; they were past their
    /// `verify_until` (or revoked) anyway.
    async fn keys_changed_since(&self, since_ms: i64) -> Result<KeyChanges, StoreError>;

    /// Rotates the tenant's keys, atomically and serialized per tenant (a
    /// concurrent rotation of the same tenant waits, then rotates what this
    /// one left). See [`RotationMode`]:
    ///
    /// - `Graceful`: for each kind, the active key becomes retired
    ///   (`retired_at = now`, `verify_until` = `access_verify_until` or
    ///   `refresh_verify_until`), the next key becomes active
    ///   (`activated_at = now`), and `new_keys` (one `Next` key per kind) are
    ///   inserted. No next key for a kind is `Conflict::NoNextKey`, and
    ///   nothing changes.
    /// - `Revoke`: every next, active and retired key becomes revoked, its
    ///   sealed secret wiped (`retired_at = now` unless already set), and
    ///   `new_keys` (an `Active` and a `Next` key per kind) are inserted.
    ///
    /// With [`KeyRotation::expect_active_access`] set, the rotation is a
    /// compare-and-set: checked in the same transaction, after the
    /// per-tenant serialization, so it sees what a concurrent rotation left;
    /// if the tenant's active access key is not that kid (or there is none),
    /// nothing changes and the rotation is `Conflict::RotationRaced`.
    /// Instances rotating on a schedule at once thus rotate a tenant once.
    ///
    /// A tenant that does not exist is `Conflict::UnknownTenant`. New keys
    /// must belong to the tenant and be `Next` or `Active`, and the
    /// rotation must leave an active key of each kind; otherwise it is
    /// refused as a bug (`StoreError::Corrupt`) and nothing changes.
    async fn rotate_keys(&self, rotation: KeyRotation) -> Result<RotatedKeys, StoreError>;

    /// For start-up, with the default tenant: if `tenant` has no active key,
    /// inserts `keys`; returns the tenant's live keys either way.
    ///
    /// Instances starting at once end up with one set: the first to get
    /// there inserts, the others find its keys and insert nothing. A tenant
    /// that does not exist is `Conflict::UnknownTenant`.
    async fn install_keys_if_absent(&self, tenant: TenantId, keys: Vec<NewKey>) -> Result<Vec<StoredKey>, StoreError>;

    /// Deletes retired keys whose `verify_until` is before `now`, and revoked
    /// keys revoked (`retired_at`) more than [`KEY_REVOKED_RETENTION_SECS`]
    /// before `now`; returns how many.
    async fn prune_keys(&self, now: i64) -> Result<u64, StoreError>;

    /// Up to `limit` keys that still have a sealed secret and were sealed
    /// under a master key other than `master_key_id`, by `kid`: what
    /// `tessera master-key rotate` has left to reseal.
    async fn keys_sealed_by_other(&self, master_key_id: &str, limit: u32) -> Result<Vec<StoredKey>, StoreError>;

    /// Replaces the sealed secret of `kid` with `sealed` (under
    /// `new_master_key_id`) if it is still sealed under
    /// `expected_master_key_id`; false (and nothing changed) otherwise:
    /// no such key, revoked meanwhile, or resealed by someone else.
    async fn reseal_key(
        &self,
        kid: &str,
        expected_master_key_id: &str,
        new_master_key_id: &str,
        sealed: Vec<u8>,
    ) -> Result<bool, StoreError>;

    /// Notifications of key changes made by any instance, or `None` when the
    /// backend has none (SQLite: a single process, which updates its own
    /// memory). Start listening before loading the keys, so that no change
    /// falls between the two.
    async fn listen_key_changes(&self) -> Result<Option<Box<dyn KeyChangeListener>>, StoreError>;
}

/// How long [`TenantStore::prune_keys`] keeps a revoked key (7 days), so
/// that a token signed with it is still recognized as revoked rather than
/// signed by an unknown key.
pub const KEY_REVOKED_RETENTION_SECS: i64 = 7 * 24 * 3600;

/// A subscription to key changes, from [`TenantStore::listen_key_changes`].
#[async_trait::async_trait]
pub trait KeyChangeListener: Send + 'static {
    /// Waits for the next change.
    ///
    /// - `Ok(Some(tenant))`: `tenant`'s keys changed (reload them).
    /// - `Ok(None)`: the listener lost its connection and has a new one, so
    ///   changes may have been missed: reload recent changes
    ///   ([`TenantStore::keys_changed_since`]).
    /// - `Err(_)`: it cannot listen right now (the database is unreachable);
    ///   call again after a pause, and it reconnects (answering `Ok(None)`
    ///   once it has).
    ///
    /// Meant to be awaited in a task of its own; cancelling it midway (at
    /// shutdown) is safe, but may lose the change being received.
    async fn next(&mut self) -> Result<Option<TenantId>, StoreError>;
}

/// Each tenant's audit log: what happened to its accounts, newest first.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Stores `events` atomically and in order (ids increase along the
    /// slice): one multi-row INSERT (SQLite splits more than a thousand
    /// events into several, in one transaction). An empty slice does
    /// nothing. An event of a tenant that does not exist is
    /// `Conflict::UnknownTenant`, and then none of them is stored.
    async fn append_audit(&self, events: &[NewAuditEvent]) -> Result<(), StoreError>;

    /// Up to `limit` of `tenant`'s events, newest (highest id) first, with
    /// ids below `before` when given: pass the last id of a page to get the
    /// next one.
    async fn audit_events(
        &self,
        tenant: TenantId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// Deletes up to `batch` events (of any tenant) that happened before
    /// `older_than` (`at < older_than`), oldest first; returns how many.
    /// Call again while it returns `batch`.
    async fn prune_audit(&self, older_than: i64, batch: u32) -> Result<u64, StoreError>;
}
