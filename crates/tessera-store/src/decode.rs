//! What the SQL backends share once a row is read: checking stored text
//! against the domain types, and deciding what a refresh that did not rotate
//! means.

use tessera_core::{Email, Role};
use uuid::Uuid;

use crate::{Rotation, Session, StoreError};

/// The `sessions` columns both SQL backends select (the user's email and role
/// come from a join or subquery). Shared, so the backends cannot drift apart
/// on what a session row is.
macro_rules! session_columns {
    () => {
        "sessions.id, sessions.user_id, sessions.created_at, sessions.last_used_at, \
         sessions.expires_at, sessions.user_agent, sessions.ip, sessions.current_jti, \
         sessions.current_access_jti, sessions.current_issued_at, sessions.previous_jti, \
         sessions.rotated_at"
    };
}

/// A session with the rotation bookkeeping that [`Session`] does not show.
pub(crate) struct StoredSession {
    pub(crate) session: Session,
    pub(crate) previous_jti: Option<Uuid>,
    pub(crate) rotated_at: Option<i64>,
}

impl StoredSession {
    /// Whether `rotation`, which did not match the current token, presents
    /// the token the latest rotation replaced, within the grace window
    /// counted from that rotation. Anything else is a replay.
    pub(crate) fn grants_grace(&self, rotation: &Rotation) -> bool {
        let is_parent = self.previous_jti == Some(rotation.presented_jti);
        let within_grace = rotation.grace_secs > 0
            && self
                .rotated_at
                .is_some_and(|at| rotation.now.saturating_sub(at) <= rotation.grace_secs);
        is_parent && within_grace
    }
}

pub(crate) fn corrupt(column: &str, expected: &str) -> StoreError {
    // Never the value itself: it may be personal data.
    StoreError::Corrupt(format!("{column} is not {expected}"))
}

pub(crate) fn email(raw: &str, column: &str) -> Result<Email, StoreError> {
    match Email::parse(raw) {
        // Stored emails are normalized; one that parses into something else
        // was not written by us.
        Ok(email) if email.as_str() == raw => Ok(email),
        _ => Err(corrupt(column, "a normalized email")),
    }
}

pub(crate) fn role(raw: &str, column: &str) -> Result<Role, StoreError> {
    Role::parse(raw).map_err(|_| corrupt(column, "a role"))
}
