//! What the SQL backends share once a row is read: checking stored text
//! against the domain types, and deciding what a refresh that did not rotate
//! means. Also what every backend shares about revocations: the format of
//! their announcements.

use tessera_core::{Email, Role, TenantId, TenantSlug};
use uuid::Uuid;

use crate::{KeyKind, KeyState, NewKey, Rotation, Session, StoreError};

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

/// The `tenant_keys` columns both SQL backends select, in [`StoredKey`]'s
/// order.
///
/// [`StoredKey`]: crate::StoredKey
macro_rules! key_columns {
    () => {
        "tenant_keys.kid, tenant_keys.tenant_id, tenant_keys.kind, tenant_keys.state, \
         tenant_keys.master_key_id, tenant_keys.sealed, tenant_keys.created_at, \
         tenant_keys.activated_at, tenant_keys.retired_at, tenant_keys.verify_until, \
         tenant_keys.changed_at"
    };
}

/// The `audit_events` columns both SQL backends select.
macro_rules! audit_columns {
    () => {
        "id, tenant_id, at, type, user_id, session_id, ip, user_agent, detail"
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
    match Email::parse_existing(raw) {
        // Stored emails are normalized; one that parses into something else
        // was not written by us.
        Ok(email) if email.as_str() == raw => Ok(email),
        _ => Err(corrupt(column, "a normalized email")),
    }
}

pub(crate) fn role(raw: &str, column: &str) -> Result<Role, StoreError> {
    Role::parse(raw).map_err(|_| corrupt(column, "a role"))
}

pub(crate) fn slug(raw: &str, column: &str) -> Result<TenantSlug, StoreError> {
    TenantSlug::parse(raw).map_err(|_| corrupt(column, "a tenant slug"))
}

pub(crate) fn key_kind(raw: &str) -> Result<KeyKind, StoreError> {
    KeyKind::parse(raw).ok_or_else(|| corrupt("tenant_keys.kind", "a key kind"))
}

pub(crate) fn key_state(raw: &str) -> Result<KeyState, StoreError> {
    KeyState::parse(raw).ok_or_else(|| corrupt("tenant_keys.state", "a key state"))
}

/// A refusal of a call the server should never make: a bug, reported as
/// [`StoreError::Corrupt`] (the server answers 500 and logs it).
pub(crate) fn bug(why: &str) -> StoreError {
    StoreError::Corrupt(format!("refused, a bug in the caller: {why}"))
}

/// Checks keys about to be inserted for `tenant`: theirs, and `Next` or
/// `Active`.
pub(crate) fn check_new_keys(tenant: TenantId, keys: &[NewKey]) -> Result<(), StoreError> {
    if keys.iter().any(|key| key.tenant != tenant) {
        return Err(bug("a new key belongs to another tenant"));
    }
    if keys
        .iter()
        .any(|key| !matches!(key.state, KeyState::Next | KeyState::Active))
    {
        return Err(bug("a new key must be next or active"));
    }
    Ok(())
}

/// The kids of the active access and refresh keys among `keys`, for
/// [`crate::RotatedKeys`].
pub(crate) fn active_kids(keys: &[crate::StoredKey]) -> Result<(String, String), StoreError> {
    let active = |kind: KeyKind| {
        keys.iter()
            .find(|key| key.kind == kind && key.state == KeyState::Active)
            .map(|key| key.kid.clone())
            .ok_or_else(|| bug(&format!("the rotation would leave no active {kind} key")))
    };
    Ok((active(KeyKind::Access)?, active(KeyKind::Refresh)?))
}

/// The positions of `users` an import did not store, given the `(id,
/// email)` of every row it did (in any order; ids as the backend prints
/// them, canonical hyphenated UUIDs). A pair matches the first unmatched
/// user with that id and email, so of two identical users only one counts
/// as stored.
pub(crate) fn not_inserted<'a>(
    users: &[crate::ImportedUser],
    inserted: impl Iterator<Item = (&'a str, &'a str)>,
) -> Vec<usize> {
    let mut waiting: std::collections::HashMap<(String, &str), Vec<usize>> = std::collections::HashMap::new();
    for (index, imported) in users.iter().enumerate().rev() {
        waiting
            .entry((imported.user.id.to_string(), imported.user.email.as_str()))
            .or_default()
            .push(index);
    }
    for (id, email) in inserted {
        if let Some(positions) = waiting.get_mut(&(id.to_owned(), email)) {
            positions.pop();
        }
    }
    let mut left: Vec<usize> = waiting.into_values().flatten().collect();
    left.sort_unstable();
    left
}

/// The database clock a SQL revocation cursor holds; `None` for one that is
/// not (another backend's), which then reads the whole live record.
pub(crate) fn revocation_cursor_ms(cursor: &crate::RevocationCursor) -> Option<i64> {
    cursor.0.parse().ok()
}

/// Session ids per revocation announcement: a PostgreSQL `NOTIFY` payload
/// must stay under 8000 bytes, and 150 ids (37 bytes each with the comma)
/// plus the expiry do.
pub(crate) const REVOCATION_IDS_PER_ANNOUNCEMENT: usize = 150;

/// The announcements (`NOTIFY` or `PUBLISH` payloads) of `sessions` revoked
/// until `expires_at`: `<expires_at> <id>,<id>,...`, at most
/// [`REVOCATION_IDS_PER_ANNOUNCEMENT`] ids each.
pub(crate) fn revocation_announcements(sessions: &[tessera_core::SessionId], expires_at: i64) -> Vec<String> {
    sessions
        .chunks(REVOCATION_IDS_PER_ANNOUNCEMENT)
        .map(|chunk| {
            let mut payload = String::with_capacity(21 + chunk.len() * 37);
            payload.push_str(&expires_at.to_string());
            payload.push(' ');
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    payload.push(',');
                }
                payload.push_str(&id.to_string());
            }
            payload
        })
        .collect()
}

/// The revocations an announcement carries; `None` for anything that is not
/// one tessera sends (the listener then asks to read the record).
pub(crate) fn parse_revocation_announcement(payload: &str) -> Option<Vec<crate::Revocation>> {
    let (expires_at, ids) = payload.split_once(' ')?;
    let expires_at: i64 = expires_at.parse().ok()?;
    ids.split(',')
        .map(|id| {
            Some(crate::Revocation {
                session: tessera_core::SessionId::parse(id)?,
                expires_at,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::SessionId;

    #[test]
    fn announcements_round_trip_and_fit_a_notify_payload() {
        let ids: Vec<SessionId> = (0..REVOCATION_IDS_PER_ANNOUNCEMENT * 2 + 1)
            .map(|_| SessionId::random())
            .collect();
        let payloads = revocation_announcements(&ids, 1_700_000_905);
        assert_eq!(payloads.len(), 3);
        let mut back = Vec::new();
        for payload in &payloads {
            assert!(payload.len() < 8000, "{}", payload.len());
            back.extend(parse_revocation_announcement(payload).unwrap());
        }
        assert_eq!(back.iter().map(|r| r.session).collect::<Vec<_>>(), ids);
        assert!(back.iter().all(|r| r.expires_at == 1_700_000_905));
    }

    #[test]
    fn foreign_announcements_are_not_read() {
        let id = SessionId::random();
        for bad in [
            String::new(),
            "hello".to_owned(),
            format!("soon {id}"),
            format!("1700000000 {id},"),
            format!("1700000000 {}", id.to_string().to_uppercase().replace('-', "")),
        ] {
            assert_eq!(parse_revocation_announcement(&bad), None, "{bad:?}");
        }
    }
}
