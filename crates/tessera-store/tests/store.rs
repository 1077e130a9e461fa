//! The store contract, and the SQLite backend held to it.
//!
//! `suite` is backend-neutral: every check takes the [`Stores`] a backend
//! provides and talks to them only through the traits. `store_suite!` turns
//! the whole suite into one `#[tokio::test]` per check for a backend, so a new
//! backend adds a constructor and one line:
//!
//! ```ignore
//! store_suite!(postgres, postgres_stores);
//! ```
//!
//! A suite function that is written but not listed in `store_suite!` is dead
//! code, which `clippy -D warnings` refuses: nothing is silently left out.
//!
//! `sqlite_only` holds what only SQLite has: the file, its mode, reconnects,
//! and error mapping that needs a second connection to provoke.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tessera_store::{SecretStore, SessionStore, UserStore};

/// What a backend under test provides. A backend that keeps only sessions
/// (Redis) pairs its session store with another backend's user and secret
/// stores.
pub struct Stores {
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub secrets: Arc<dyn SecretStore>,
    /// Opens the same data again over new connections, as a restarted (or
    /// another) instance would.
    pub reopen: Reopen,
    /// Whatever must live as long as the stores (a temporary directory, a
    /// database to drop afterwards).
    _keep: Box<dyn Any + Send + Sync>,
}

/// How [`Stores::reopen`] opens the same data again.
pub type Reopen = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Stores> + Send>> + Send + Sync>;

/// `store_suite!(name, constructor)` runs every suite check against the
/// stores `constructor().await` returns, one fresh set per check.
macro_rules! store_suite {
    ($backend:ident, $stores:path) => {
        store_suite!(@each $backend, $stores, [
            created_user_is_found_by_id_and_email,
            missing_users_are_none,
            names_and_roles_round_trip,
            duplicate_email_is_email_taken,
            duplicate_user_id_is_id_taken,
            set_password_hash_changes_only_that_user,
            set_password_hash_of_missing_user_changes_nothing,
            deleted_user_frees_the_email,
            created_session_reads_back,
            session_of_unknown_user_is_unknown_user,
            duplicate_session_id_is_id_taken,
            expired_sessions_are_invisible,
            sessions_are_listed_most_recently_used_first,
            revoke_session_checks_ownership,
            revoke_other_sessions_keeps_the_named_one,
            revoke_all_sessions_ends_only_that_users_sessions,
            purge_expired_deletes_only_expired_sessions,
            current_token_rotates,
            parent_within_grace_gets_the_unchanged_current_pair,
            grace_is_counted_from_the_rotation_not_from_the_last_retry,
            parent_after_grace_is_reused_and_revokes,
            parent_with_grace_off_is_reused_and_revokes,
            grandparent_is_reused_and_revokes,
            never_issued_jti_is_reused_and_revokes,
            missing_revoked_or_expired_session_is_unknown,
            concurrent_refreshes_rotate_once_and_the_rest_get_grace,
            concurrent_refreshes_without_grace_rotate_once_and_revoke,
            sessions_of_another_user_are_invisible_and_do_not_rotate,
            first_default_secrets_insert_wins,
            concurrent_default_secrets_inserts_all_get_the_same_pair,
            default_secrets_survive_a_reopen,
        ]);
    };
    (@each $backend:ident, $stores:path, [$($check:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let stores = $stores().await;
                    crate::suite::$check(&stores).await;
                }
            )*
        }
    };
}

// Modules are `cfg(test)` so that clippy applies the test allowances of
// clippy.toml (unwrap, panic) to helpers as well as to `#[test]` functions.
#[cfg(test)]
mod suite {
    use std::sync::Arc;

    use tessera_core::{Email, PersonName, Role, SessionId, UserId};
    use tessera_store::{
        Conflict, NewSession, NewUser, RefreshState, Rotation, RotationOutcome, SealedSecrets, Session, StoreError,
    };
    use tokio::sync::Barrier;
    use uuid::Uuid;

    use super::Stores;

    /// A fixed "now"; the store has no clock.
    const T0: i64 = 1_700_000_000;
    const REFRESH_TTL: i64 = 7 * 24 * 3600;
    const GRACE: i64 = 10;
    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA";

    fn email(raw: &str) -> Email {
        Email::parse(raw).unwrap()
    }

    fn unique_email() -> Email {
        email(&format!("user-{}@example.com", Uuid::new_v4().simple()))
    }

    fn new_user(email: Email) -> NewUser {
        NewUser {
            id: UserId::random(),
            email,
            password_hash: HASH.to_owned(),
            first_name: PersonName::parse("Ada").unwrap(),
            last_name: PersonName::parse("Lovelace").unwrap(),
            role: Role::user(),
            created_at: T0,
        }
    }

    async fn user(s: &Stores) -> UserId {
        s.users.create_user(new_user(unique_email())).await.unwrap().id
    }

    fn refresh(issued_at: i64) -> RefreshState {
        RefreshState {
            jti: Uuid::new_v4(),
            access_jti: Uuid::new_v4(),
            issued_at,
            expires_at: issued_at + REFRESH_TTL,
        }
    }

    fn new_session(user: UserId, at: i64) -> NewSession {
        NewSession {
            id: SessionId::random(),
            user_id: user,
            created_at: at,
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".to_owned()),
            ip: Some("203.0.113.7".to_owned()),
            refresh: refresh(at),
        }
    }

    /// A login at `at`: the session id and its first refresh token.
    async fn login(s: &Stores, user: UserId, at: i64) -> (SessionId, RefreshState) {
        let session = new_session(user, at);
        let (id, first) = (session.id, session.refresh);
        s.sessions.create_session(session).await.unwrap();
        (id, first)
    }

    fn rotation(user: UserId, session: SessionId, presented: &RefreshState, now: i64, grace: i64) -> Rotation {
        Rotation {
            user,
            session,
            presented_jti: presented.jti,
            next: refresh(now),
            now,
            grace_secs: grace,
        }
    }

    /// Rotates with the current token and returns the new current one.
    async fn refresh_ok(s: &Stores, user: UserId, id: SessionId, current: &RefreshState, now: i64) -> RefreshState {
        let rot = rotation(user, id, current, now, GRACE);
        match s.sessions.rotate(rot).await.unwrap() {
            RotationOutcome::Rotated(session) => {
                assert_eq!(session.current, rot.next);
                rot.next
            }
            other => panic!("expected Rotated, got {other:?}"),
        }
    }

    async fn is_live(s: &Stores, user: UserId, id: SessionId, now: i64) -> bool {
        s.sessions.session(user, id, now).await.unwrap().is_some()
    }

    fn ids(sessions: &[Session]) -> Vec<SessionId> {
        sessions.iter().map(|s| s.id).collect()
    }

    // ---- users ----

    pub async fn created_user_is_found_by_id_and_email(s: &Stores) {
        let new = new_user(email("ada@example.com"));
        let id = new.id;
        let created = s.users.create_user(new).await.unwrap();
        assert_eq!(created.id, id);
        assert_eq!(created.email.as_str(), "ada@example.com");
        assert!(!created.email_verified);
        assert_eq!(created.first_name, "Ada");
        assert_eq!(created.last_name, "Lovelace");
        assert_eq!(created.role, Role::user());
        assert_eq!(created.created_at, T0);

        assert_eq!(s.users.find_user(id).await.unwrap(), Some(created.clone()));
        // Emails reach the store normalized, so any spelling finds the user.
        let record = s
            .users
            .find_user_by_email(&email(" ADA@Example.com "))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.user, created);
        assert_eq!(record.password_hash, HASH);
    }

    pub async fn missing_users_are_none(s: &Stores) {
        user(s).await;
        assert_eq!(s.users.find_user(UserId::random()).await.unwrap(), None);
        assert!(s.users.find_user_by_email(&unique_email()).await.unwrap().is_none());
    }

    pub async fn names_and_roles_round_trip(s: &Stores) {
        let mut new = new_user(unique_email());
        new.first_name = PersonName::parse("Zoë 李").unwrap();
        new.last_name = PersonName::parse_optional("").unwrap();
        new.role = Role::parse("billing-reader_2").unwrap();
        let created = s.users.create_user(new).await.unwrap();
        let found = s.users.find_user(created.id).await.unwrap().unwrap();
        assert_eq!(found.first_name, "Zoë 李");
        assert_eq!(found.last_name, "");
        assert_eq!(found.role.as_str(), "billing-reader_2");
        assert_eq!(found, created);
    }

    pub async fn duplicate_email_is_email_taken(s: &Stores) {
        let first = s.users.create_user(new_user(email("grace@example.com"))).await.unwrap();
        let mut second = new_user(email("  Grace@EXAMPLE.com"));
        second.password_hash = "another hash".to_owned();
        let second_id = second.id;
        let err = s.users.create_user(second).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(Conflict::EmailTaken)), "{err:?}");
        // The message names the rule, not the address.
        assert!(!err.to_string().contains("grace"), "{err}");

        // Nothing of the second attempt was stored.
        assert_eq!(s.users.find_user(second_id).await.unwrap(), None);
        let record = s
            .users
            .find_user_by_email(&email("grace@example.com"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.user, first);
        assert_eq!(record.password_hash, HASH);
        // Other emails still register.
        user(s).await;
    }

    pub async fn duplicate_user_id_is_id_taken(s: &Stores) {
        let first = s.users.create_user(new_user(unique_email())).await.unwrap();
        let mut again = new_user(unique_email());
        again.id = first.id;
        let err = s.users.create_user(again).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(Conflict::IdTaken)), "{err:?}");
        assert_eq!(s.users.find_user(first.id).await.unwrap(), Some(first));
    }

    pub async fn set_password_hash_changes_only_that_user(s: &Stores) {
        let a = s.users.create_user(new_user(unique_email())).await.unwrap();
        let b = s.users.create_user(new_user(unique_email())).await.unwrap();
        s.users.set_password_hash(a.id, "$argon2id$new").await.unwrap();

        let a_record = s.users.find_user_by_email(&a.email).await.unwrap().unwrap();
        assert_eq!(a_record.password_hash, "$argon2id$new");
        assert_eq!(a_record.user, a);
        let b_record = s.users.find_user_by_email(&b.email).await.unwrap().unwrap();
        assert_eq!(b_record.password_hash, HASH);
    }

    pub async fn set_password_hash_of_missing_user_changes_nothing(s: &Stores) {
        let a = s.users.create_user(new_user(unique_email())).await.unwrap();
        s.users
            .set_password_hash(UserId::random(), "$argon2id$new")
            .await
            .unwrap();
        assert!(s.users.find_user(a.id).await.unwrap().is_some());
        let record = s.users.find_user_by_email(&a.email).await.unwrap().unwrap();
        assert_eq!(record.password_hash, HASH);
    }

    pub async fn deleted_user_frees_the_email(s: &Stores) {
        let email = unique_email();
        let a = s.users.create_user(new_user(email.clone())).await.unwrap();
        let b = s.users.create_user(new_user(unique_email())).await.unwrap();
        assert!(s.users.delete_user(a.id).await.unwrap());
        assert!(
            !s.users.delete_user(a.id).await.unwrap(),
            "deleting twice finds nothing the second time"
        );
        assert_eq!(s.users.find_user(a.id).await.unwrap(), None);
        assert!(s.users.find_user(b.id).await.unwrap().is_some(), "other users stay");
        s.users.create_user(new_user(email)).await.unwrap();
    }

    // ---- sessions ----

    pub async fn created_session_reads_back(s: &Stores) {
        let mut new = new_user(unique_email());
        new.role = Role::parse("admin").unwrap();
        let owner = s.users.create_user(new).await.unwrap();

        let with_client = new_session(owner.id, T0);
        let mut bare = new_session(owner.id, T0 + 1);
        bare.user_agent = None;
        bare.ip = None;
        s.sessions.create_session(with_client.clone()).await.unwrap();
        s.sessions.create_session(bare.clone()).await.unwrap();

        for new in [with_client, bare] {
            let session = s.sessions.session(owner.id, new.id, T0 + 5).await.unwrap().unwrap();
            assert_eq!(
                session,
                Session {
                    id: new.id,
                    user_id: owner.id,
                    created_at: new.created_at,
                    last_used_at: new.created_at,
                    expires_at: new.refresh.expires_at,
                    user_agent: new.user_agent.clone(),
                    ip: new.ip.clone(),
                    current: new.refresh,
                    email: owner.email.clone(),
                    role: owner.role.clone(),
                }
            );
        }
        assert_eq!(
            s.sessions.session(owner.id, SessionId::random(), T0).await.unwrap(),
            None
        );
    }

    pub async fn session_of_unknown_user_is_unknown_user(s: &Stores) {
        user(s).await;
        let orphan = new_session(UserId::random(), T0);
        let (nobody, id) = (orphan.user_id, orphan.id);
        let err = s.sessions.create_session(orphan).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(Conflict::UnknownUser)), "{err:?}");
        assert!(!is_live(s, nobody, id, T0).await);
    }

    pub async fn duplicate_session_id_is_id_taken(s: &Stores) {
        let owner = user(s).await;
        let (id, first) = login(s, owner, T0).await;
        let mut again = new_session(owner, T0 + 1);
        again.id = id;
        let err = s.sessions.create_session(again).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(Conflict::IdTaken)), "{err:?}");
        assert_eq!(s.sessions.session(owner, id, T0).await.unwrap().unwrap().current, first);
    }

    pub async fn expired_sessions_are_invisible(s: &Stores) {
        let owner = user(s).await;
        let (id, first) = login(s, owner, T0).await;
        let end = first.expires_at;

        assert!(is_live(s, owner, id, end - 1).await);
        assert_eq!(ids(&s.sessions.list_sessions(owner, end - 1).await.unwrap()), vec![id]);
        // `expires_at` is the first second it is dead.
        assert!(!is_live(s, owner, id, end).await);
        assert!(s.sessions.list_sessions(owner, end).await.unwrap().is_empty());
        assert!(!is_live(s, owner, id, end + 3600).await);
    }

    pub async fn sessions_are_listed_most_recently_used_first(s: &Stores) {
        let owner = user(s).await;
        let stranger = user(s).await;
        let (oldest, _) = login(s, owner, T0).await;
        let (middle, middle_token) = login(s, owner, T0 + 10).await;
        let (newest, _) = login(s, owner, T0 + 20).await;
        login(s, stranger, T0 + 30).await;

        let listed = s.sessions.list_sessions(owner, T0 + 40).await.unwrap();
        assert_eq!(ids(&listed), vec![newest, middle, oldest]);
        assert!(listed.iter().all(|session| session.user_id == owner));

        // A refresh counts as use.
        let next = refresh_ok(s, owner, middle, &middle_token, T0 + 50).await;
        let listed = s.sessions.list_sessions(owner, T0 + 60).await.unwrap();
        assert_eq!(ids(&listed), vec![middle, newest, oldest]);
        assert_eq!(listed[0].current, next);
        assert_eq!(listed[0].last_used_at, T0 + 50);

        assert!(s.sessions.list_sessions(UserId::random(), T0).await.unwrap().is_empty());
    }

    pub async fn revoke_session_checks_ownership(s: &Stores) {
        let owner = user(s).await;
        let stranger = user(s).await;
        let (id, token) = login(s, owner, T0).await;
        let (stranger_session, _) = login(s, stranger, T0).await;

        // Someone else's session: refused and untouched.
        assert!(!s.sessions.revoke_session(stranger, id).await.unwrap());
        assert_eq!(
            s.sessions.session(owner, id, T0 + 1).await.unwrap().unwrap().current,
            token
        );
        assert!(!s.sessions.revoke_session(owner, SessionId::random()).await.unwrap());

        assert!(s.sessions.revoke_session(owner, id).await.unwrap());
        assert!(!is_live(s, owner, id, T0 + 1).await);
        assert!(!s.sessions.revoke_session(owner, id).await.unwrap());
        assert!(is_live(s, stranger, stranger_session, T0 + 1).await);
    }

    pub async fn revoke_other_sessions_keeps_the_named_one(s: &Stores) {
        let owner = user(s).await;
        let stranger = user(s).await;
        let (keep, _) = login(s, owner, T0).await;
        let (other_a, _) = login(s, owner, T0 + 1).await;
        let (other_b, _) = login(s, owner, T0 + 2).await;
        let (stranger_session, _) = login(s, stranger, T0).await;

        assert_eq!(s.sessions.revoke_other_sessions(owner, keep).await.unwrap(), 2);
        assert_eq!(ids(&s.sessions.list_sessions(owner, T0 + 3).await.unwrap()), vec![keep]);
        assert!(!is_live(s, owner, other_a, T0 + 3).await);
        assert!(!is_live(s, owner, other_b, T0 + 3).await);
        assert!(is_live(s, stranger, stranger_session, T0 + 3).await);
        assert_eq!(s.sessions.revoke_other_sessions(owner, keep).await.unwrap(), 0);
    }

    pub async fn revoke_all_sessions_ends_only_that_users_sessions(s: &Stores) {
        let owner = user(s).await;
        let stranger = user(s).await;
        login(s, owner, T0).await;
        login(s, owner, T0 + 1).await;
        let (stranger_session, _) = login(s, stranger, T0).await;

        assert_eq!(s.sessions.revoke_all_sessions(owner).await.unwrap(), 2);
        assert!(s.sessions.list_sessions(owner, T0 + 2).await.unwrap().is_empty());
        assert!(is_live(s, stranger, stranger_session, T0 + 2).await);
        assert_eq!(s.sessions.revoke_all_sessions(owner).await.unwrap(), 0);
    }

    pub async fn purge_expired_deletes_only_expired_sessions(s: &Stores) {
        let owner = user(s).await;
        let (old, old_token) = login(s, owner, T0).await;
        let (young, _) = login(s, owner, T0 + 100).await;
        let (boundary, _) = login(s, owner, T0 + 50).await;

        // At `old`'s expiry only `old` is dead; at exactly `boundary`'s
        // expiry it is dead too.
        assert_eq!(s.sessions.purge_expired(old_token.expires_at).await.unwrap(), 1);
        assert_eq!(s.sessions.purge_expired(T0 + 50 + REFRESH_TTL).await.unwrap(), 1);
        assert_eq!(s.sessions.purge_expired(T0 + 50 + REFRESH_TTL).await.unwrap(), 0);

        // Deleted, not only hidden: even an earlier "now" does not find them.
        assert!(!is_live(s, owner, old, T0 + 1).await);
        assert!(!is_live(s, owner, boundary, T0 + 51).await);
        assert!(is_live(s, owner, young, T0 + 101).await);
    }

    // ---- rotation ----

    pub async fn current_token_rotates(s: &Stores) {
        let owner = user(s).await;
        let (id, first) = login(s, owner, T0).await;
        let before = s.sessions.session(owner, id, T0).await.unwrap().unwrap();

        let rot = rotation(owner, id, &first, T0 + 600, GRACE);
        let RotationOutcome::Rotated(rotated) = s.sessions.rotate(rot).await.unwrap() else {
            panic!("expected Rotated");
        };
        assert_eq!(
            rotated,
            Session {
                current: rot.next,
                last_used_at: T0 + 600,
                expires_at: rot.next.expires_at,
                ..before
            }
        );
        assert_eq!(s.sessions.session(owner, id, T0 + 601).await.unwrap(), Some(rotated));

        // The new token rotates in turn.
        let third = refresh_ok(s, owner, id, &rot.next, T0 + 1200).await;
        assert_eq!(
            s.sessions.session(owner, id, T0 + 1201).await.unwrap().unwrap().current,
            third
        );
    }

    pub async fn parent_within_grace_gets_the_unchanged_current_pair(s: &Stores) {
        let owner = user(s).await;
        let (id, first) = login(s, owner, T0).await;
        let second = refresh_ok(s, owner, id, &first, T0 + 100).await;
        let after_rotation = s.sessions.session(owner, id, T0 + 100).await.unwrap().unwrap();

        // A second tab presents the token the first tab just rotated away,
        // right up to the end of the window.
        for now in [T0 + 100, T0 + 105, T0 + 100 + GRACE] {
            match s
                .sessions
                .rotate(rotation(owner, id, &first, now, GRACE))
                .await
                .unwrap()
            {
                RotationOutcome::Grace(session) => {
                    assert_eq!(session.current, second);
                    assert_eq!(session, after_rotation);
                }
                other => panic!("expected Grace at +{}, got {other:?}", now - T0),
            }
        }
        // Nothing changed: not the pair, not `last_used_at`.
        assert_eq!(
            s.sessions.session(owner, id, T0 + 111).await.unwrap(),
            Some(after_rotation)
        );
        // And the current token still rotates.
        refresh_ok(s, owner, id, &second, T0 + 111).await;
    }

    pub async fn grace_is_counted_from_the_rotation_not_from_the_last_retry(s: &Stores) {
        let owner = user(s).await;
        let (id, first) = login(s, owner, T0).await;
        refresh_ok(s, owner, id, &first, T0 + 100).await;

        for now in [T0 + 104, T0 + 108, T0 + 110] {
            let outcome = s
                .sessions
                .rotate(rotation(owner, id, &first, now, GRACE))
                .await
                .unwrap();
            assert!(matches!(outcome, RotationOutcome::Grace(_)), "{outcome:?}");
        }
        let outcome = s
            .sessions
            .rotate(rotation(owner, id, &first, T0 + 111, GRACE))
            .await
            .unwrap();
        assert_eq!(outcome, RotationOutcome::Reused);
        assert!(!is_live(s, owner, id, T0 + 111).await);
    }

    pub async fn parent_after_grace_is_reused_and_revokes(s: &Stores) {
        let owner = user(s).await;
        let (id, first) = login(s, owner, T0).await;
        let (other, other_token) = login(s, owner, T0).await;
        let second = refresh_ok(s, owner, id, &first, T0 + 100).await;

        let outcome = s
            .sessions
            .rotate(rotation(owner, id, &first, T0 + 100 + GRACE + 1, GRACE))
            .await
            .unwrap();
        assert_eq!(outcome, RotationOutcome::Reused);
        assert!(!is_live(s, owner, id, T0 + 200).await);
        // The session is gone for its current token too...
        let outcome = s
            .sessions
            .rotate(rotation(owner, id, &second, T0 + 200, GRACE))
            .await
            .unwrap();
        assert_eq!(outcome, RotationOutcome::Unknown);
        // ...and only that session.
        assert_eq!(
            s.sessions
                .session(owner, other, T0 + 200)
                .await
                .unwrap()
                .unwrap()
                .current,
            other_token
        );
    }

    pub async fn parent_with_grace_off_is_reused_and_revokes(s: &Stores) {
        let owner = user(s).await;
        let (id, first) = login(s, owner, T0).await;
        let rot = rotation(owner, id, &first, T0 + 100, 0);
        assert!(matches!(
            s.sessions.rotate(rot).await.unwrap(),
            RotationOutcome::Rotated(_)
        ));

        // Even in the same second.
        let outcome = s
            .sessions
            .rotate(rotation(owner, id, &first, T0 + 100, 0))
            .await
            .unwrap();
        assert_eq!(outcome, RotationOutcome::Reused);
        assert!(!is_live(s, owner, id, T0 + 100).await);
    }

    pub async fn grandparent_is_reused_and_revokes(s: &Stores) {
        let owner = user(s).await;
        let (id, first) = login(s, owner, T0).await;
        let second = refresh_ok(s, owner, id, &first, T0 + 100).await;
        let third = refresh_ok(s, owner, id, &second, T0 + 101).await;

        // Within the grace window of the last rotation, but not its parent.
        let outcome = s
            .sessions
            .rotate(rotation(owner, id, &first, T0 + 102, GRACE))
            .await
            .unwrap();
        assert_eq!(outcome, RotationOutcome::Reused);
        assert!(!is_live(s, owner, id, T0 + 102).await);
        assert!(s.sessions.list_sessions(owner, T0 + 102).await.unwrap().is_empty());
        let outcome = s
            .sessions
            .rotate(rotation(owner, id, &third, T0 + 103, GRACE))
            .await
            .unwrap();
        assert_eq!(outcome, RotationOutcome::Unknown);
    }

    pub async fn never_issued_jti_is_reused_and_revokes(s: &Stores) {
        let owner = user(s).await;
        let (id, _) = login(s, owner, T0).await;
        let outcome = s
            .sessions
            .rotate(rotation(owner, id, &refresh(T0), T0 + 1, GRACE))
            .await
            .unwrap();
        assert_eq!(outcome, RotationOutcome::Reused);
        assert!(!is_live(s, owner, id, T0 + 1).await);
    }

    pub async fn missing_revoked_or_expired_session_is_unknown(s: &Stores) {
        let owner = user(s).await;

        let outcome = s
            .sessions
            .rotate(rotation(owner, SessionId::random(), &refresh(T0), T0, GRACE))
            .await
            .unwrap();
        assert_eq!(outcome, RotationOutcome::Unknown);

        let (revoked, revoked_token) = login(s, owner, T0).await;
        assert!(s.sessions.revoke_session(owner, revoked).await.unwrap());
        let outcome = s
            .sessions
            .rotate(rotation(owner, revoked, &revoked_token, T0 + 1, GRACE))
            .await
            .unwrap();
        assert_eq!(outcome, RotationOutcome::Unknown);

        // Expired: its current token no longer rotates, nor does the parent
        // get grace, and nothing is resurrected.
        let (expired, first) = login(s, owner, T0).await;
        let second = refresh_ok(s, owner, expired, &first, T0 + 10).await;
        let end = second.expires_at;
        let outcome = s
            .sessions
            .rotate(rotation(owner, expired, &second, end, GRACE))
            .await
            .unwrap();
        assert_eq!(outcome, RotationOutcome::Unknown);
        let outcome = s
            .sessions
            .rotate(rotation(owner, expired, &first, end + 1, i64::MAX))
            .await
            .unwrap();
        assert_eq!(outcome, RotationOutcome::Unknown);
        assert!(!is_live(s, owner, expired, end).await);
        assert!(
            is_live(s, owner, expired, end - 1).await,
            "an expired session is not revoked, only dead"
        );
    }

    const RACERS: usize = 50;

    /// `RACERS` refreshes presenting the same token at the same instant.
    async fn race(
        s: &Stores,
        user: UserId,
        id: SessionId,
        presented: &RefreshState,
        now: i64,
        grace: i64,
    ) -> Vec<(RefreshState, RotationOutcome)> {
        let start = Arc::new(Barrier::new(RACERS));
        let tasks: Vec<_> = (0..RACERS)
            .map(|_| {
                let sessions = Arc::clone(&s.sessions);
                let start = Arc::clone(&start);
                let rot = rotation(user, id, presented, now, grace);
                tokio::spawn(async move {
                    start.wait().await;
                    (rot.next, sessions.rotate(rot).await.unwrap())
                })
            })
            .collect();
        let mut outcomes = Vec::with_capacity(RACERS);
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        outcomes
    }

    fn the_one_rotated(outcomes: &[(RefreshState, RotationOutcome)]) -> RefreshState {
        let winners: Vec<_> = outcomes
            .iter()
            .filter_map(|(next, outcome)| match outcome {
                RotationOutcome::Rotated(session) => Some((*next, session.current)),
                _ => None,
            })
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "exactly one refresh may rotate, {} did",
            winners.len()
        );
        let (next, current) = winners[0];
        assert_eq!(next, current);
        next
    }

    pub async fn concurrent_refreshes_rotate_once_and_the_rest_get_grace(s: &Stores) {
        let owner = user(s).await;
        let (id, first) = login(s, owner, T0).await;
        let outcomes = race(s, owner, id, &first, T0 + 60, GRACE).await;

        let winner = the_one_rotated(&outcomes);
        for (_, outcome) in &outcomes {
            match outcome {
                RotationOutcome::Rotated(_) => {}
                // Every loser is handed the winner's pair: one live successor.
                RotationOutcome::Grace(session) => assert_eq!(session.current, winner),
                other => panic!("expected Grace, got {other:?}"),
            }
        }
        assert_eq!(
            s.sessions.session(owner, id, T0 + 61).await.unwrap().unwrap().current,
            winner
        );
    }

    pub async fn concurrent_refreshes_without_grace_rotate_once_and_revoke(s: &Stores) {
        let owner = user(s).await;
        let (id, first) = login(s, owner, T0).await;
        let outcomes = race(s, owner, id, &first, T0 + 60, 0).await;

        let winner = the_one_rotated(&outcomes);
        let mut reused = 0;
        for (_, outcome) in &outcomes {
            match outcome {
                RotationOutcome::Rotated(_) => {}
                RotationOutcome::Reused => reused += 1,
                // Raced a loser that had already revoked the session.
                RotationOutcome::Unknown => {}
                RotationOutcome::Grace(_) => panic!("grace is off, got {outcome:?}"),
            }
        }
        assert!(reused >= 1, "the first loser sees the replay");
        assert!(!is_live(s, owner, id, T0 + 61).await);
        let outcome = s
            .sessions
            .rotate(rotation(owner, id, &winner, T0 + 62, 0))
            .await
            .unwrap();
        assert_eq!(outcome, RotationOutcome::Unknown);
    }

    // ---- ownership ----

    pub async fn sessions_of_another_user_are_invisible_and_do_not_rotate(s: &Stores) {
        let owner = user(s).await;
        let stranger = user(s).await;
        let (id, first) = login(s, owner, T0).await;
        login(s, stranger, T0).await;

        assert_eq!(s.sessions.session(stranger, id, T0 + 1).await.unwrap(), None);
        assert_eq!(s.sessions.session(UserId::random(), id, T0 + 1).await.unwrap(), None);
        // Under someone else's id the session does not exist: not even its
        // current token rotates, and a wrong token does not revoke it.
        for (who, presented) in [(stranger, first), (stranger, refresh(T0)), (UserId::random(), first)] {
            let outcome = s
                .sessions
                .rotate(rotation(who, id, &presented, T0 + 2, GRACE))
                .await
                .unwrap();
            assert_eq!(outcome, RotationOutcome::Unknown);
        }
        let untouched = s.sessions.session(owner, id, T0 + 3).await.unwrap().unwrap();
        assert_eq!(untouched.current, first);
        assert_eq!(untouched.last_used_at, T0);

        // Nor does the parent get grace under another id.
        let second = refresh_ok(s, owner, id, &first, T0 + 10).await;
        let outcome = s
            .sessions
            .rotate(rotation(stranger, id, &first, T0 + 11, GRACE))
            .await
            .unwrap();
        assert_eq!(outcome, RotationOutcome::Unknown);
        assert_eq!(
            s.sessions.session(owner, id, T0 + 12).await.unwrap().unwrap().current,
            second
        );
        assert!(!ids(&s.sessions.list_sessions(stranger, T0 + 12).await.unwrap()).contains(&id));
    }

    // ---- default secrets ----

    /// A sealed pair that differs per `tag`, with bytes of every value
    /// (NUL included) in it.
    fn sealed(tag: u8) -> SealedSecrets {
        SealedSecrets {
            master_key_id: format!("master-{tag}"),
            access: (0..=255u8).map(|b| b ^ tag).collect(),
            refresh: vec![tag, 0, 0xff, tag],
            created_at: T0 + i64::from(tag),
        }
    }

    pub async fn first_default_secrets_insert_wins(s: &Stores) {
        let first = sealed(1);
        assert_eq!(s.secrets.default_secrets_or_insert(first.clone()).await.unwrap(), first);
        // Later candidates are discarded; the stored pair is never replaced.
        assert_eq!(s.secrets.default_secrets_or_insert(sealed(2)).await.unwrap(), first);
        assert_eq!(s.secrets.default_secrets_or_insert(first.clone()).await.unwrap(), first);
    }

    pub async fn concurrent_default_secrets_inserts_all_get_the_same_pair(s: &Stores) {
        const INSTANCES: u8 = 20;
        let start = Arc::new(Barrier::new(usize::from(INSTANCES)));
        let tasks: Vec<_> = (0..INSTANCES)
            .map(|tag| {
                let secrets = Arc::clone(&s.secrets);
                let start = Arc::clone(&start);
                tokio::spawn(async move {
                    start.wait().await;
                    secrets.default_secrets_or_insert(sealed(tag)).await.unwrap()
                })
            })
            .collect();
        let mut got = Vec::new();
        for task in tasks {
            got.push(task.await.unwrap());
        }
        let winner = got[0].clone();
        assert!(got.iter().all(|pair| *pair == winner), "instances disagree: {got:?}");
        assert!((0..INSTANCES).any(|tag| sealed(tag) == winner), "{winner:?}");
        assert_eq!(s.secrets.default_secrets_or_insert(sealed(99)).await.unwrap(), winner);
    }

    pub async fn default_secrets_survive_a_reopen(s: &Stores) {
        let first = sealed(7);
        assert_eq!(s.secrets.default_secrets_or_insert(first.clone()).await.unwrap(), first);
        let restarted = (s.reopen)().await;
        assert_eq!(
            restarted.secrets.default_secrets_or_insert(sealed(8)).await.unwrap(),
            first
        );
    }
}

#[cfg(test)]
mod sqlite_backend {
    use std::future::Future;
    use std::path::PathBuf;
    use std::pin::Pin;
    use std::sync::Arc;

    use tessera_store::SqliteStore;

    use crate::Stores;

    /// A fresh, migrated database file in its own temporary directory.
    pub async fn sqlite_stores() -> Stores {
        let dir = tempfile::tempdir().unwrap();
        let mut stores = open(dir.path().join("tessera.db")).await;
        stores._keep = Box::new(dir);
        stores
    }

    /// The database at `path`, opened and migrated.
    fn open(path: PathBuf) -> Pin<Box<dyn Future<Output = Stores> + Send>> {
        Box::pin(async move {
            let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
            store.migrate().await.unwrap();
            Stores {
                users: Arc::new(store.clone()),
                sessions: Arc::new(store.clone()),
                secrets: Arc::new(store),
                reopen: Box::new(move || open(path.clone())),
                _keep: Box::new(()),
            }
        })
    }

    store_suite!(sqlite, super::sqlite_stores);
}

#[cfg(test)]
mod sqlite_only {
    use std::path::Path;

    use tessera_core::{Email, PersonName, Role, SessionId, UserId};
    use tessera_store::{Health, NewSession, NewUser, RefreshState, SessionStore, SqliteStore, StoreError, UserStore};
    use uuid::Uuid;

    const T0: i64 = 1_700_000_000;

    fn new_user(email: &str) -> NewUser {
        NewUser {
            id: UserId::random(),
            email: Email::parse(email).unwrap(),
            password_hash: "$argon2id$v=19$secret-hash".to_owned(),
            first_name: PersonName::parse("Ada").unwrap(),
            last_name: PersonName::parse("Lovelace").unwrap(),
            role: Role::user(),
            created_at: T0,
        }
    }

    fn new_session(user: UserId) -> NewSession {
        NewSession {
            id: SessionId::random(),
            user_id: user,
            created_at: T0,
            user_agent: None,
            ip: None,
            refresh: RefreshState {
                jti: Uuid::new_v4(),
                access_jti: Uuid::new_v4(),
                issued_at: T0,
                expires_at: T0 + 3600,
            },
        }
    }

    async fn open(path: &Path) -> SqliteStore {
        let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn database_files_are_created_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        let store = open(&path).await;
        store.create_user(new_user("ada@example.com")).await.unwrap();

        assert_eq!(mode(&path), 0o600);
        // SQLite gives the WAL files the database file's mode.
        assert_eq!(mode(&dir.path().join("tessera.db-wal")), 0o600);
        assert_eq!(mode(&dir.path().join("tessera.db-shm")), 0o600);
    }

    #[tokio::test]
    async fn data_survives_a_reconnect_and_migrations_rerun() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        let store = open(&path).await;
        let user = store.create_user(new_user("ada@example.com")).await.unwrap();
        let session = new_session(user.id);
        let session_id = session.id;
        store.create_session(session).await.unwrap();
        store.pool().close().await;
        drop(store);

        // Migrating an up-to-date database is a no-op.
        let store = open(&path).await;
        store.migrate().await.unwrap();
        assert!(store.session(user.id, session_id, T0).await.unwrap().is_some());
        assert_eq!(store.find_user(user.id).await.unwrap(), Some(user));
    }

    #[tokio::test]
    async fn urls_and_plain_paths_open_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        let user = open(&path)
            .await
            .create_user(new_user("ada@example.com"))
            .await
            .unwrap();

        for url in [
            format!("sqlite://{}", path.display()),
            format!("sqlite:{}", path.display()),
        ] {
            let store = SqliteStore::connect(&url).await.unwrap();
            assert_eq!(store.find_user(user.id).await.unwrap(), Some(user.clone()), "{url}");
        }
    }

    #[tokio::test]
    async fn in_memory_empty_and_malformed_locations_are_refused() {
        for location in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://?mode=memory",
            "sqlite:never-created.db?mode=memory",
            ":memory:",
            "",
            "sqlite://",
            "sqlite:",
            // Not valid UTF-8 once percent-decoded.
            "sqlite://%ff%fe.db",
            "sqlite://never-created.db?mode=bogus",
        ] {
            let err = SqliteStore::connect(location).await.unwrap_err();
            assert!(matches!(err, StoreError::Unavailable(_)), "{location:?}: {err:?}");
        }
    }

    #[tokio::test]
    async fn a_missing_directory_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent").join("tessera.db");
        let err = SqliteStore::connect(path.to_str().unwrap()).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        std::fs::write(
            &path,
            b"this is not an SQLite database, it is just some text".repeat(100),
        )
        .unwrap();
        let err = match SqliteStore::connect(path.to_str().unwrap()).await {
            Ok(store) => store.migrate().await.unwrap_err(),
            Err(err) => err,
        };
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    }

    #[tokio::test]
    async fn ping_answers_until_the_pool_closes() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("tessera.db")).await;
        store.ping().await.unwrap();
        store.pool().close().await;
        let err = store.ping().await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }

    #[tokio::test]
    async fn an_unmigrated_database_is_corrupt_not_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
        store.ping().await.unwrap();
        let err = store.find_user(UserId::random()).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(why) if why.contains("no such table")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn undecodable_rows_are_corrupt_and_not_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("tessera.db")).await;
        let user = store.create_user(new_user("ada@example.com")).await.unwrap();
        sqlx::query("UPDATE users SET email = 'Not An Email', role = 'Admin!' WHERE id = ?1")
            .bind(user.id.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        let err = store.find_user(user.id).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        assert!(!err.to_string().contains("Not An Email"), "{err}");

        let user = store.create_user(new_user("grace@example.com")).await.unwrap();
        sqlx::query("UPDATE users SET id = 'not-a-uuid' WHERE id = ?1")
            .bind(user.id.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        let err = store
            .find_user_by_email(&Email::parse("grace@example.com").unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    }

    #[tokio::test]
    async fn deleting_a_user_deletes_their_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("tessera.db")).await;
        let user = store.create_user(new_user("ada@example.com")).await.unwrap();
        let session = new_session(user.id);
        let id = session.id;
        store.create_session(session).await.unwrap();

        sqlx::query("DELETE FROM users WHERE id = ?1")
            .bind(user.id.to_string())
            .execute(store.pool())
            .await
            .unwrap();
        assert_eq!(store.session(user.id, id, T0).await.unwrap(), None);
        let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM sessions")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(left, 0);
    }

    #[tokio::test]
    async fn schema_names_its_constraints_and_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("tessera.db")).await;
        let (schema,): (String,) = sqlx::query_as(
            "SELECT group_concat(sql, ';') FROM sqlite_master WHERE name IN ('users', 'sessions') \
             OR tbl_name = 'sessions' AND type = 'index'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        for name in [
            "users_pkey",
            "users_email_key",
            "sessions_pkey",
            "sessions_user_id_fkey",
            "ON DELETE CASCADE",
            "sessions_user_id_idx",
            "sessions_expires_at_idx",
        ] {
            assert!(schema.contains(name), "{name} missing from {schema}");
        }
        let (journal,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(journal, "wal");
        let (foreign_keys,): (i64,) = sqlx::query_as("PRAGMA foreign_keys")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(foreign_keys, 1);
    }

    #[tokio::test]
    async fn a_write_lock_held_past_the_busy_timeout_is_unavailable() {
        use sqlx::Connection as _;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        let store = open(&path).await;
        let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();

        let started = std::time::Instant::now();
        let err = store.create_user(new_user("ada@example.com")).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(
            started.elapsed() >= SqliteStore::BUSY_TIMEOUT / 2,
            "{:?}",
            started.elapsed()
        );
        sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
        store.create_user(new_user("ada@example.com")).await.unwrap();
    }

    #[tokio::test]
    async fn an_exhausted_pool_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("tessera.db")).await;
        let mut held = Vec::new();
        for _ in 0..SqliteStore::POOL_SIZE {
            held.push(store.pool().acquire().await.unwrap());
        }
        let err = store.find_user(UserId::random()).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        drop(held);
        store.find_user(UserId::random()).await.unwrap();
    }

    #[test]
    fn debug_output_never_shows_password_hashes() {
        let new = new_user("ada@example.com");
        let debug = format!("{new:?}");
        assert!(!debug.contains("secret-hash"), "{debug}");
        assert!(debug.contains("ada@example.com"), "{debug}");

        let record = tessera_store::UserRecord {
            user: tessera_store::User {
                id: new.id,
                email: new.email.clone(),
                email_verified: false,
                first_name: "Ada".to_owned(),
                last_name: "Lovelace".to_owned(),
                role: Role::user(),
                created_at: T0,
            },
            password_hash: new.password_hash.clone(),
        };
        let debug = format!("{record:?}");
        assert!(!debug.contains("secret-hash"), "{debug}");
        assert!(debug.contains("[redacted]"), "{debug}");

        let sealed = tessera_store::SealedSecrets {
            master_key_id: "master-2024".to_owned(),
            access: vec![0xab; 60],
            refresh: vec![0xcd; 61],
            created_at: T0,
        };
        let debug = format!("{sealed:?}");
        assert!(
            debug.contains("master-2024") && debug.contains("60") && debug.contains("61"),
            "{debug}"
        );
        assert!(
            !debug.contains("171") && !debug.contains("ab") && !debug.contains("205"),
            "{debug}"
        );
    }
}

#[cfg(test)]
#[path = "support/redis.rs"]
mod redis_support;

/// Redis keeps sessions only: its stores pair a [`tessera_store::RedisSessionStore`]
/// with a fresh SQLite file for users and secrets. Every check gets a key
/// prefix of its own, so checks running at once never meet. An unreachable
/// Redis fails the checks with directions; they never skip.
#[cfg(test)]
mod redis_backend {
    use std::future::Future;
    use std::path::PathBuf;
    use std::pin::Pin;
    use std::sync::Arc;

    use tessera_store::{RedisSessionStore, SqliteStore, UserStore};

    use crate::redis_support::{self, Cleanup};
    use crate::Stores;

    /// Where the sessions go.
    #[derive(Clone)]
    enum Redis {
        /// The shared Redis (`TESSERA_TEST_REDIS_URL`).
        Shared,
        /// The seed nodes of this binary's private Redis Cluster.
        Cluster(&'static [String]),
    }

    /// Sessions in the shared Redis.
    pub async fn redis_stores() -> Stores {
        let url = redis_support::url();
        let prefix = redis_support::unique_prefix();
        let dir = tempfile::tempdir().unwrap();
        let mut stores = open(dir.path().join("tessera.db"), Redis::Shared, prefix.clone()).await;
        stores._keep = Box::new((Cleanup { url, prefix }, dir));
        stores
    }

    /// Sessions in a private three-master Redis Cluster, through the
    /// cluster-aware client: a script touching keys of two slots, or a key
    /// its node does not own, fails there.
    pub async fn redis_cluster_stores() -> Stores {
        let nodes = tokio::task::spawn_blocking(redis_support::cluster).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut stores = open(
            dir.path().join("tessera.db"),
            Redis::Cluster(nodes),
            redis_support::unique_prefix(),
        )
        .await;
        stores._keep = Box::new(dir);
        stores
    }

    fn open(path: PathBuf, redis: Redis, prefix: String) -> Pin<Box<dyn Future<Output = Stores> + Send>> {
        Box::pin(async move {
            let sql = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
            sql.migrate().await.unwrap();
            let users: Arc<dyn UserStore> = Arc::new(sql.clone());
            let sessions = match &redis {
                Redis::Shared => redis_support::connect_shared(Arc::clone(&users), &prefix).await,
                Redis::Cluster(nodes) => {
                    let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
                    RedisSessionStore::connect_cluster(&nodes, Arc::clone(&users), redis_support::options(&prefix))
                        .await
                        .unwrap()
                }
            };
            Stores {
                users,
                sessions: Arc::new(sessions),
                secrets: Arc::new(sql),
                reopen: Box::new(move || open(path.clone(), redis.clone(), prefix.clone())),
                _keep: Box::new(()),
            }
        })
    }

    store_suite!(redis, super::redis_stores);
    store_suite!(redis_cluster, super::redis_cluster_stores);
}

#[cfg(test)]
mod postgres_backend;
