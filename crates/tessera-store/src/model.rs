use std::fmt;

use tessera_core::{Email, PersonName, Role, SessionId, TenantId, TenantName, TenantSlug, UserId};
use uuid::Uuid;

/// An account as the rest of tessera sees it: never with its password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    /// The tenant the account belongs to; emails are unique per tenant.
    pub tenant: TenantId,
    pub email: Email,
    pub email_verified: bool,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
    /// Unix seconds.
    pub created_at: i64,
}

/// Where a page of [`crate::UserStore::list_users`] ended: its last user's
/// creation time and id. The next page starts strictly after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserCursor {
    pub created_at: i64,
    pub id: UserId,
}

impl UserCursor {
    pub fn after(user: &User) -> Self {
        Self {
            created_at: user.created_at,
            id: user.id,
        }
    }
}

/// What [`crate::UserStore::set_role`] did: the role the user had, and the
/// user as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleChange {
    pub previous: Role,
    pub user: User,
}

/// A user with the password hash to check a login against.
///
/// `Debug` leaves the hash out, so a stray `{:?}` cannot log it.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user: User,
    pub password_hash: String,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("user", &self.user)
            .field("password_hash", &"[redacted]")
            .finish()
    }
}

/// What [`crate::UserStore::create_user`] stores.
///
/// `Debug` leaves the hash out.
#[derive(Clone)]
pub struct NewUser {
    pub id: UserId,
    /// Must exist ([`crate::Conflict::UnknownTenant`] otherwise).
    pub tenant: TenantId,
    pub email: Email,
    pub password_hash: String,
    pub first_name: PersonName,
    pub last_name: PersonName,
    pub role: Role,
    /// Unix seconds.
    pub created_at: i64,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("email", &self.email)
            .field("password_hash", &"[redacted]")
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// An account brought from another system
/// ([`crate::UserStore::import_users`]): its id, role, creation time and
/// verification state are kept as they were.
#[derive(Debug, Clone)]
pub struct ImportedUser {
    pub user: NewUser,
    pub email_verified: bool,
}

/// Whether [`crate::UserStore::import_users`] keeps what it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    Commit,
    /// Everything is written and checked as for real, then rolled back.
    DryRun,
}

/// A user [`crate::UserStore::import_users`] did not store, and why:
/// [`crate::Conflict::EmailTaken`] (the tenant has an account with that
/// email) or [`crate::Conflict::IdTaken`] (some account has that id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportConflict {
    /// Position in the slice given.
    pub index: usize,
    pub conflict: crate::Conflict,
}

/// What a token mailed to a user is for ([`crate::AccountTokenStore`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountTokenPurpose {
    PasswordReset,
    EmailVerification,
}

impl AccountTokenPurpose {
    /// The stored name (`account_tokens.purpose`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::EmailVerification => "email_verification",
        }
    }
}

/// What [`crate::AccountTokenStore::create_account_token`] stores: the
/// SHA-256 of a token, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccountToken {
    pub token_hash: [u8; 32],
    pub tenant: TenantId,
    pub user: UserId,
    pub purpose: AccountTokenPurpose,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; the token is dead from then on.
    pub expires_at: i64,
}

/// The refresh token a session currently accepts, and the access token minted
/// with it.
///
/// This is everything needed to mint the same pair again: within the reuse
/// grace window the server answers a second refresh with the current pair,
/// re-signed from these values, instead of rotating twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshState {
    /// The refresh token's `jti`.
    pub jti: Uuid,
    /// The `jti` of the access token issued together with it.
    pub access_jti: Uuid,
    /// `iat` of both tokens, unix seconds.
    pub issued_at: i64,
    /// `exp` of the refresh token, unix seconds; the session ends then.
    pub expires_at: i64,
}

/// What [`crate::SessionStore::create_session`] stores: a session born at a
/// login or registration, with its first refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub id: SessionId,
    pub user_id: UserId,
    /// Unix seconds; also the first `last_used_at`.
    pub created_at: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub refresh: RefreshState,
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: i64,
    /// When it was created or last rotated.
    pub last_used_at: i64,
    /// `current.expires_at`.
    pub expires_at: i64,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub current: RefreshState,
    /// The user's email now (not at login), so a refresh can mint an access
    /// token without a second query.
    pub email: Email,
    /// The user's role now (not at login).
    pub role: Role,
    /// The owner's tenant.
    pub tenant: TenantId,
}

/// A refresh: "session `session` of `user` presents refresh token
/// `presented_jti`; if that is the current one, make `next` current".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The session's owner (the refresh token's `sub`). Only a session of
    /// this user is ever touched; a session of anyone else is
    /// [`RotationOutcome::Unknown`]. Backends that shard by user (Redis
    /// Cluster) need it to find the session at all.
    pub user: UserId,
    pub session: SessionId,
    pub presented_jti: Uuid,
    /// The pair to issue if the presented token is current. Its `jti` must be
    /// fresh (never used before).
    pub next: RefreshState,
    pub now: i64,
    /// How long after a rotation the replaced token still gets
    /// [`RotationOutcome::Grace`]; 0 turns grace off.
    pub grace_secs: i64,
}

/// What a [`Rotation`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationOutcome {
    /// The presented token was current. Now `next` is current, the presented
    /// one is the previous (at `rotated_at = now`) and `last_used_at = now`.
    /// The returned session has `current == next`.
    Rotated(Session),
    /// The presented token is the one the latest rotation replaced, and that
    /// rotation was at most `grace_secs` ago (with `grace_secs > 0`): nothing
    /// changed; answer with the session's current pair. The window is measured
    /// from the rotation, so repeating the old token does not extend it.
    Grace(Session),
    /// Any other `jti`: an older ancestor, the parent after the window, or
    /// the parent with grace off. The session was revoked (deleted): a
    /// rotated token came back, so it may be stolen.
    Reused,
    /// No live session with that id of that user (never existed, revoked,
    /// expired, or someone else's).
    Unknown,
}

/// The default keyring's two secrets, sealed by the server (AES-256-GCM under
/// the master key); the store never sees plaintext.
///
/// Several instances of tessera behind one load balancer must sign with the
/// same keys, so the first instance to start generates the pair and every
/// other one adopts it through [`crate::SecretStore::default_secrets_or_insert`].
///
/// `Debug` shows only `master_key_id` and the lengths of the sealed secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecrets {
    /// Which master key sealed `access` and `refresh`, so the server can tell
    /// a rotated master key from a damaged secret.
    pub master_key_id: String,
    /// The sealed access-token signing secret (nonce, ciphertext and tag, as
    /// the server lays them out).
    pub access: Vec<u8>,
    /// The sealed refresh-token signing secret.
    pub refresh: Vec<u8>,
    /// Unix seconds.
    pub created_at: i64,
}

impl fmt::Debug for SealedSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSecrets")
            .field("master_key_id", &self.master_key_id)
            .field("access_len", &self.access.len())
            .field("refresh_len", &self.refresh.len())
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A customer of tessera, with its own users and signing keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    /// Unique; the tenant's name in URLs.
    pub slug: TenantSlug,
    /// The display name.
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A tenant with the hash of its API key, to check a presented key against.
///
/// `Debug` shows whether there is a hash, never the hash.
#[derive(Clone, PartialEq, Eq)]
pub struct TenantRecord {
    pub tenant: Tenant,
    /// SHA-256 of the tenant's API key (32 bytes); `None` when it has none.
    pub api_key_hash: Option<Vec<u8>>,
}

impl fmt::Debug for TenantRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantRecord")
            .field("tenant", &self.tenant)
            .field("api_key_hash", &self.api_key_hash.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// What [`crate::TenantStore::create_tenant`] stores.
///
/// `Debug` shows whether there is an API key hash, never the hash.
#[derive(Clone, PartialEq, Eq)]
pub struct NewTenant {
    pub id: TenantId,
    pub slug: TenantSlug,
    pub name: TenantName,
    /// SHA-256 of the tenant's API key: exactly 32 bytes (a CHECK refuses
    /// anything else), or `None`.
    pub api_key_hash: Option<Vec<u8>>,
    /// Unix seconds.
    pub created_at: i64,
}

impl fmt::Debug for NewTenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewTenant")
            .field("id", &self.id)
            .field("slug", &self.slug)
            .field("name", &self.name)
            .field("api_key_hash", &self.api_key_hash.as_ref().map(|_| "[redacted]"))
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// Which tokens a signing key signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyKind {
    Access,
    Refresh,
}

impl KeyKind {
    pub const ALL: [Self; 2] = [Self::Access, Self::Refresh];

    /// The text stored in `tenant_keys.kind`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }

    /// The inverse of [`Self::as_str`].
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a signing key is in its life:
/// `Next` → `Active` → `Retired` → (pruned), or → `Revoked` from any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyState {
    /// Published (so other instances and verifiers know it before it signs),
    /// not signing yet; the next graceful rotation activates it.
    Next,
    /// Signs new tokens. At most one per tenant and kind.
    Active,
    /// No longer signs; still verifies until `verify_until`.
    Retired,
    /// Neither signs nor verifies; its sealed secret is gone.
    Revoked,
}

impl KeyState {
    pub const ALL: [Self; 4] = [Self::Next, Self::Active, Self::Retired, Self::Revoked];

    /// The text stored in `tenant_keys.state`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Revoked => "revoked",
        }
    }

    /// The inverse of [`Self::as_str`].
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == raw)
    }

    /// Next, active and retired keys: the ones an instance keeps in memory.
    pub const fn is_live(self) -> bool {
        !matches!(self, Self::Revoked)
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tenant's signing key as stored: its secret sealed by the server under
/// the master key `master_key_id`.
///
/// `Debug` shows the length of the sealed secret only.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The key id (`kid` of the tokens it signs); unique across tenants.
    pub kid: String,
    pub tenant: TenantId,
    pub kind: KeyKind,
    pub state: KeyState,
    /// Which master key sealed `sealed`.
    pub master_key_id: String,
    /// The sealed secret; `None` once revoked (and only then).
    pub sealed: Option<Vec<u8>>,
    /// Unix seconds.
    pub created_at: i64,
    /// When it became active, unix seconds.
    pub activated_at: Option<i64>,
    /// When it was retired or revoked, unix seconds.
    pub retired_at: Option<i64>,
    /// A retired key verifies tokens until then, unix seconds.
    pub verify_until: Option<i64>,
    /// When the row last changed, unix **milliseconds** on the database's
    /// clock (see [`crate::TenantStore::keys_changed_since`]).
    pub changed_at_ms: i64,
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("tenant", &self.tenant)
            .field("kind", &self.kind)
            .field("state", &self.state)
            .field("master_key_id", &self.master_key_id)
            .field("sealed_len", &self.sealed.as_ref().map(Vec::len))
            .field("created_at", &self.created_at)
            .field("activated_at", &self.activated_at)
            .field("retired_at", &self.retired_at)
            .field("verify_until", &self.verify_until)
            .field("changed_at_ms", &self.changed_at_ms)
            .finish()
    }
}

/// A signing key to store, sealed by the server.
///
/// `Debug` shows the length of the sealed secret only.
#[derive(Clone, PartialEq, Eq)]
pub struct NewKey {
    pub kid: String,
    pub tenant: TenantId,
    pub kind: KeyKind,
    /// [`KeyState::Next`] or [`KeyState::Active`] (an active key gets
    /// `activated_at = created_at`); anything else is refused.
    pub state: KeyState,
    pub master_key_id: String,
    pub sealed: Vec<u8>,
    /// Unix seconds.
    pub created_at: i64,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("kid", &self.kid)
            .field("tenant", &self.tenant)
            .field("kind", &self.kind)
            .field("state", &self.state)
            .field("master_key_id", &self.master_key_id)
            .field("sealed_len", &self.sealed.len())
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// How [`crate::TenantStore::rotate_keys`] rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationMode {
    /// Per kind: active → retired (still verifying until its
    /// `verify_until`), next → active, and one new `Next` key per kind.
    Graceful,
    /// Every next, active and retired key → revoked (sealed secret wiped),
    /// and a new `Active` and `Next` key per kind: every token signed so far
    /// stops verifying.
    Revoke,
}

/// A key rotation of one tenant. See [`crate::TenantStore::rotate_keys`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRotation {
    pub tenant: TenantId,
    pub mode: RotationMode,
    /// Unix seconds.
    pub now: i64,
    /// `verify_until` of the access key a graceful rotation retires.
    pub access_verify_until: i64,
    /// `verify_until` of the refresh key a graceful rotation retires.
    pub refresh_verify_until: i64,
    /// Graceful: one `Next` key per kind. Revoke: an `Active` and a `Next`
    /// key per kind. All of `tenant`.
    pub new_keys: Vec<NewKey>,
    /// The kid of the tenant's active access key this rotation expects.
    /// `Some` and the active access key is another (or there is none):
    /// nothing changes and the rotation fails with `Conflict::RotationRaced`,
    /// so that instances rotating on a schedule at once rotate a tenant once.
    /// `None`: rotate whatever is active (manual rotation).
    pub expect_active_access: Option<String>,
}

/// What a rotation left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedKeys {
    /// The kid of the active access key now.
    pub access_kid: String,
    /// The kid of the active refresh key now.
    pub refresh_kid: String,
    /// The tenant's next, active and retired keys after the rotation.
    pub keys: Vec<StoredKey>,
}

/// What [`crate::TenantStore::keys_changed_since`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChanges {
    /// Keys (any state) whose `changed_at_ms` is after the given time.
    pub keys: Vec<StoredKey>,
    /// The database's clock, unix milliseconds, read before the keys were.
    pub db_now_ms: i64,
}

/// One entry of a tenant's audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Increasing in insertion order; the pagination cursor.
    pub id: i64,
    pub tenant: TenantId,
    /// Unix seconds.
    pub at: i64,
    /// The event type, e.g. `login.succeeded` (column `type`).
    pub kind: String,
    pub user: Option<UserId>,
    pub session: Option<SessionId>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// A JSON object as text; the store does not interpret it.
    pub detail: Option<String>,
}

/// What [`crate::AuditStore::append_audit`] stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    pub tenant: TenantId,
    /// Unix seconds.
    pub at: i64,
    /// The event type, e.g. `login.succeeded`.
    pub kind: String,
    pub user: Option<UserId>,
    pub session: Option<SessionId>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
}

/// A session that ended before its access tokens expired: they are refused
/// until `expires_at`, when the last of them has expired anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Revocation {
    pub session: SessionId,
    /// Unix seconds.
    pub expires_at: i64,
}

/// A position in a backend's record of revocations, from
/// [`crate::RevocationStore::revocations_since`]: pass it to the next call to
/// get what was recorded after it. Opaque; meaningful only to the backend
/// (and the deployment) that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationCursor(pub(crate) String);

/// What [`crate::RevocationStore::revocations_since`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationPage {
    /// Live revocations recorded after the cursor given (all of them
    /// without one); a revocation may appear in several pages.
    pub revocations: Vec<Revocation>,
    /// Where the next call continues.
    pub cursor: RevocationCursor,
}

/// What a [`crate::RevocationListener`] hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationEvent {
    /// These sessions were just revoked (by any instance, or the CLI).
    Revoked(Vec<Revocation>),
    /// Announcements may have been missed (the listener reconnected, or a
    /// message was not one tessera sends): read the record from the last
    /// cursor ([`crate::RevocationStore::revocations_since`]).
    Missed,
}
