use std::fmt;

use tessera_core::{Email, PersonName, Role, SessionId, UserId};
use uuid::Uuid;

/// An account as the rest of tessera sees it: never with its password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub email_verified: bool,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
    /// Unix seconds.
    pub created_at: i64,
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
            .field("email", &self.email)
            .field("password_hash", &"[redacted]")
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .finish()
    }
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
