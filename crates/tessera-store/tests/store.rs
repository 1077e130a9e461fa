//! The store contract, and the SQLite backend held to it.
//!
//! `suite` is backend-neutral: every check takes the [`Stores`] a backend
//! provides and talks to them only through the traits. `store_suite!` turns
//! the whole suite into one `#[tokio::test]` per check for a backend, so a new
//! backend adds a constructor and one line:
//!
//! ```ignore
//! store_suite!(postgres, postgres_stores, +tenants);
//! ```
//!
//! Every backend runs the user and session checks (tenant-scoped users and
//! `revoke_tenant_sessions` included); `+tenants` adds the checks of what
//! only the SQL backends implement: tenants, keys and the audit log.
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

use tessera_store::{
    AccountTokenStore, AuditStore, RevocationStore, SecretStore, SessionStore, TenantStore, UserStore,
};

/// What a backend under test provides. A backend that keeps only sessions
/// (Redis) pairs its session store with another backend's user, secret,
/// tenant and audit stores.
pub struct Stores {
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub tenants: Arc<dyn TenantStore>,
    pub audit: Arc<dyn AuditStore>,
    pub account_tokens: Arc<dyn AccountTokenStore>,
    /// The record of revoked sessions: the same backend as `sessions`.
    pub revocations: Arc<dyn RevocationStore>,
    /// Whether the backend announces revocations to listeners (PostgreSQL,
    /// Redis); SQLite's single instance reads its record instead.
    pub announces: bool,
    /// Opens the same data again over new connections, as a restarted (or
    /// another) instance would.
    pub reopen: Reopen,
    /// Whatever must live as long as the stores (a temporary directory, a
    /// database to drop afterwards).
    _keep: Box<dyn Any + Send + Sync>,
}

/// A directory holding `backend`'s migrations up to 0002 (the schema before
/// tenants), to migrate a database to that point with a `Migrator` of its
/// own. Kept alive by the returned `TempDir`.
#[cfg(test)]
pub fn migrations_before_tenants(backend: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join(backend);
    std::fs::create_dir(&old).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    for file in ["0001_users_and_sessions.sql", "0002_default_secrets.sql"] {
        std::fs::copy(source.join(file), old.join(file)).unwrap();
    }
    (dir, old)
}

/// How many migrations `backend` has (files in `migrations/<backend>`), so
/// checks of the schema version need no edit when one is added.
#[cfg(test)]
pub fn migration_count(backend: &str) -> usize {
    std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend),
    )
    .unwrap()
    .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "sql"))
    .count()
}

/// How [`Stores::reopen`] opens the same data again.
pub type Reopen = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Stores> + Send>> + Send + Sync>;

/// `store_suite!(name, constructor)` runs every user and session check
/// against the stores `constructor().await` returns, one fresh set per check;
/// `store_suite!(name, constructor, +tenants)` the tenant, key and audit
/// checks too.
macro_rules! store_suite {
    ($backend:ident, $stores:path) => {
        store_suite!(@common $backend, $stores, []);
    };
    ($backend:ident, $stores:path, +tenants) => {
        store_suite!(@common $backend, $stores, [
            default_tenant_exists_after_migrating,
            created_tenant_reads_back_with_its_keys_and_owner,
            a_taken_slug_stores_nothing_of_the_tenant,
            keys_or_owner_of_another_tenant_are_refused,
            tenants_are_listed_bytewise_by_slug,
            api_key_hash_is_replaced_and_removed,
            graceful_rotation_moves_every_key_one_state_on,
            graceful_rotation_without_a_next_key_changes_nothing,
            rotating_an_unknown_tenant_is_unknown_tenant,
            revoke_rotation_wipes_every_sealed_secret,
            concurrent_graceful_rotations_leave_one_active_and_one_next_per_kind,
            rotation_expecting_the_active_key_rotates,
            rotation_expecting_a_stale_key_is_raced_and_changes_nothing,
            concurrent_rotations_expecting_one_key_rotate_once,
            concurrent_installs_end_with_one_set,
            keys_changed_since_reports_what_changed_after_the_mark,
            prune_keys_deletes_only_expired_retired_and_old_revoked_keys,
            reseal_is_a_compare_and_set_on_the_master_key,
            audit_events_page_newest_first_per_tenant,
            audit_of_an_unknown_tenant_stores_nothing,
            prune_audit_deletes_old_events_in_batches,
            reset_token_sets_the_password_once,
            reset_token_is_found_only_in_its_tenant_for_its_purpose_while_live,
            reset_kills_every_reset_token_of_the_user_and_verifies_the_email,
            change_password_kills_reset_tokens_but_not_verification_tokens,
            verification_token_verifies_once,
            concurrent_resets_with_one_token_succeed_once,
            account_token_of_an_unknown_user_is_unknown_user,
            purge_account_tokens_deletes_only_expired_ones,
            import_keeps_ids_roles_verification_and_creation_times,
            import_skips_taken_emails_and_ids_and_stores_the_rest,
            import_dry_run_answers_exactly_and_stores_nothing,
            import_into_an_unknown_tenant_stores_nothing,
            import_of_many_users_in_one_call,
            purge_revocations_deletes_exactly_the_expired_ones,
        ]);
    };
    (@common $backend:ident, $stores:path, [$($extra:ident),* $(,)?]) => {
        store_suite!(@each $backend, $stores, [
            same_email_in_two_tenants_is_two_accounts,
            user_in_an_unknown_tenant_is_unknown_tenant,
            user_ids_in_tenant_page_in_id_order,
            users_page_newest_first_within_their_tenant,
            set_role_reports_the_previous_role_and_shows_on_sessions,
            the_last_owner_keeps_the_role,
            owners_demoting_each_other_at_once_leave_one_owner,
            revoke_tenant_sessions_ends_only_that_tenants_sessions,
            created_user_is_found_by_id_and_email,
            missing_users_are_none,
            names_and_roles_round_trip,
            duplicate_email_is_email_taken,
            duplicate_user_id_is_id_taken,
            set_password_hash_changes_only_that_user,
            set_password_hash_of_missing_user_changes_nothing,
            upgrading_a_password_hash_is_a_compare_and_set,
            deleted_user_frees_the_email,
            created_session_reads_back,
            session_of_unknown_user_is_unknown_user,
            duplicate_session_id_is_id_taken,
            expired_sessions_are_invisible,
            sessions_are_listed_most_recently_used_first,
            revoke_session_checks_ownership,
            revoke_other_sessions_keeps_the_named_one,
            revoke_all_sessions_ends_only_that_users_sessions,
            revoking_many_returns_exactly_the_sessions_it_ended,
            revocations_are_read_back_while_live,
            revocations_recorded_later_are_read_on_from_a_cursor,
            recording_a_revocation_again_keeps_the_later_expiry,
            purging_revocations_keeps_the_live_ones,
            revocations_reach_other_instances,
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
            default_secrets_are_read_without_inserting,
            $($extra,)*
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

    use tessera_core::{Email, PersonName, Role, SessionId, TenantId, TenantName, TenantSlug, UserId};
    use tessera_store::{
        AccountTokenPurpose, AuditEvent, Conflict, ImportConflict, ImportMode, ImportedUser, KeyKind, KeyRotation,
        KeyState, NewAccountToken, NewAuditEvent, NewKey, NewSession, NewTenant, NewUser, RefreshState, Revocation,
        RevocationEvent, Rotation, RotationMode, RotationOutcome, SealedSecrets, Session, StoreError, StoredKey,
        Tenant, UserCursor, KEY_REVOKED_RETENTION_SECS,
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
            tenant: TenantId::DEFAULT,
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
            .find_user_by_email(TenantId::DEFAULT, &email(" ADA@Example.com "))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.user, created);
        assert_eq!(record.password_hash, HASH);
    }

    pub async fn missing_users_are_none(s: &Stores) {
        user(s).await;
        assert_eq!(s.users.find_user(UserId::random()).await.unwrap(), None);
        assert!(s
            .users
            .find_user_by_email(TenantId::DEFAULT, &unique_email())
            .await
            .unwrap()
            .is_none());
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
            .find_user_by_email(TenantId::DEFAULT, &email("grace@example.com"))
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

        let a_record = s
            .users
            .find_user_by_email(TenantId::DEFAULT, &a.email)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a_record.password_hash, "$argon2id$new");
        assert_eq!(a_record.user, a);
        let b_record = s
            .users
            .find_user_by_email(TenantId::DEFAULT, &b.email)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b_record.password_hash, HASH);
    }

    pub async fn upgrading_a_password_hash_is_a_compare_and_set(s: &Stores) {
        let a = s.users.create_user(new_user(unique_email())).await.unwrap();
        let hash_of = |email: Email| async move {
            s.users
                .find_user_by_email(TenantId::DEFAULT, &email)
                .await
                .unwrap()
                .unwrap()
                .password_hash
        };
        assert!(s.users.upgrade_password_hash(a.id, HASH, "$argon2id$up").await.unwrap());
        assert_eq!(hash_of(a.email.clone()).await, "$argon2id$up");
        // A reset meanwhile: the upgrade of what was checked before loses.
        s.users.set_password_hash(a.id, "$argon2id$reset").await.unwrap();
        assert!(!s
            .users
            .upgrade_password_hash(a.id, "$argon2id$up", "$argon2id$stale")
            .await
            .unwrap());
        assert_eq!(hash_of(a.email.clone()).await, "$argon2id$reset");
        assert!(!s
            .users
            .upgrade_password_hash(UserId::random(), HASH, "$argon2id$x")
            .await
            .unwrap());
    }

    pub async fn set_password_hash_of_missing_user_changes_nothing(s: &Stores) {
        let a = s.users.create_user(new_user(unique_email())).await.unwrap();
        s.users
            .set_password_hash(UserId::random(), "$argon2id$new")
            .await
            .unwrap();
        assert!(s.users.find_user(a.id).await.unwrap().is_some());
        let record = s
            .users
            .find_user_by_email(TenantId::DEFAULT, &a.email)
            .await
            .unwrap()
            .unwrap();
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
                    tenant: TenantId::DEFAULT,
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

        let mut ended = s.sessions.revoke_other_sessions(owner, keep).await.unwrap();
        ended.sort();
        let mut expected = vec![other_a, other_b];
        expected.sort();
        assert_eq!(ended, expected, "exactly the sessions it ended");
        assert_eq!(ids(&s.sessions.list_sessions(owner, T0 + 3).await.unwrap()), vec![keep]);
        assert!(!is_live(s, owner, other_a, T0 + 3).await);
        assert!(!is_live(s, owner, other_b, T0 + 3).await);
        assert!(is_live(s, stranger, stranger_session, T0 + 3).await);
        assert_eq!(s.sessions.revoke_other_sessions(owner, keep).await.unwrap(), vec![]);
    }

    pub async fn revoke_all_sessions_ends_only_that_users_sessions(s: &Stores) {
        let owner = user(s).await;
        let stranger = user(s).await;
        let (first, _) = login(s, owner, T0).await;
        let (second, _) = login(s, owner, T0 + 1).await;
        let (stranger_session, _) = login(s, stranger, T0).await;

        let mut ended = s.sessions.revoke_all_sessions(owner).await.unwrap();
        ended.sort();
        let mut expected = vec![first, second];
        expected.sort();
        assert_eq!(ended, expected, "exactly the sessions it ended");
        assert!(s.sessions.list_sessions(owner, T0 + 2).await.unwrap().is_empty());
        assert!(is_live(s, stranger, stranger_session, T0 + 2).await);
        assert_eq!(s.sessions.revoke_all_sessions(owner).await.unwrap(), vec![]);
    }

    /// Logins racing "log out everywhere" (and "everywhere else"): every
    /// session is either ended and returned, or left live and not returned.
    /// What revoking access tokens by session id relies on.
    pub async fn revoking_many_returns_exactly_the_sessions_it_ended(s: &Stores) {
        for keep_one in [false, true] {
            let owner = user(s).await;
            let (kept, _) = login(s, owner, T0).await;
            let mut before = vec![kept];
            for i in 0..5 {
                before.push(login(s, owner, T0 + 1 + i).await.0);
            }
            let racing: Vec<_> = (0..20)
                .map(|i| {
                    let sessions = Arc::clone(&s.sessions);
                    tokio::spawn(async move {
                        let session = new_session(owner, T0 + 10 + i);
                        let id = session.id;
                        sessions.create_session(session).await.unwrap();
                        id
                    })
                })
                .collect();
            tokio::task::yield_now().await;
            let ended = if keep_one {
                s.sessions.revoke_other_sessions(owner, kept).await.unwrap()
            } else {
                s.sessions.revoke_all_sessions(owner).await.unwrap()
            };
            let mut created = before.clone();
            for task in racing {
                created.push(task.await.unwrap());
            }
            let mut unique = ended.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), ended.len(), "an id returned twice: {ended:?}");
            for id in &before[usize::from(keep_one)..] {
                assert!(ended.contains(id), "a session that existed before was not returned");
            }
            for id in &created {
                let live = is_live(s, owner, *id, T0 + 100).await;
                assert_ne!(
                    live,
                    ended.contains(id),
                    "a session must be either ended and returned, or live and not returned"
                );
            }
            assert!(
                ended.iter().all(|id| created.contains(id)),
                "an id that was never a session"
            );
            assert_eq!(is_live(s, owner, kept, T0 + 100).await, keep_one);
        }
    }

    // ---- revocations ----

    fn sessions_of(revocations: &[Revocation]) -> Vec<SessionId> {
        let mut ids: Vec<SessionId> = revocations.iter().map(|r| r.session).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    fn sorted(mut ids: Vec<SessionId>) -> Vec<SessionId> {
        ids.sort();
        ids
    }

    pub async fn revocations_are_read_back_while_live(s: &Stores) {
        let (a, b, c) = (SessionId::random(), SessionId::random(), SessionId::random());
        s.revocations.record_revocations(&[a, b], T0, T0 + 900).await.unwrap();
        s.revocations.record_revocations(&[c], T0, T0 + 10).await.unwrap();
        s.revocations.record_revocations(&[], T0, T0 + 10).await.unwrap();

        let page = s.revocations.revocations_since(None, T0).await.unwrap();
        assert_eq!(sessions_of(&page.revocations), sorted(vec![a, b, c]));
        let expiry = |id| page.revocations.iter().find(|r| r.session == id).unwrap().expires_at;
        assert_eq!((expiry(a), expiry(b), expiry(c)), (T0 + 900, T0 + 900, T0 + 10));
        // Once `c`'s last access token has expired it is of no interest.
        let page = s.revocations.revocations_since(None, T0 + 10).await.unwrap();
        assert_eq!(sessions_of(&page.revocations), sorted(vec![a, b]));
        // Survives a restart: the record is durable.
        let again = (s.reopen)().await;
        let page = again.revocations.revocations_since(None, T0 + 10).await.unwrap();
        assert_eq!(sessions_of(&page.revocations), sorted(vec![a, b]));
    }

    pub async fn revocations_recorded_later_are_read_on_from_a_cursor(s: &Stores) {
        let first = SessionId::random();
        s.revocations.record_revocations(&[first], T0, T0 + 900).await.unwrap();
        let page = s.revocations.revocations_since(None, T0).await.unwrap();
        assert_eq!(sessions_of(&page.revocations), vec![first]);

        // Many at once (more than one announcement's worth), by another instance.
        let other = (s.reopen)().await;
        let later: Vec<SessionId> = (0..400).map(|_| SessionId::random()).collect();
        other
            .revocations
            .record_revocations(&later, T0, T0 + 900)
            .await
            .unwrap();
        let next = s.revocations.revocations_since(Some(&page.cursor), T0).await.unwrap();
        let seen = sessions_of(&next.revocations);
        for id in &later {
            assert!(seen.contains(id), "a revocation recorded after the cursor was not read");
        }
        // Reading on from the newest cursor finds nothing new (a backend may
        // repeat recent ones; it never invents any).
        let after = s.revocations.revocations_since(Some(&next.cursor), T0).await.unwrap();
        for revocation in &after.revocations {
            assert!(later.contains(&revocation.session) || revocation.session == first);
        }
        let fresh = SessionId::random();
        s.revocations.record_revocations(&[fresh], T0, T0 + 900).await.unwrap();
        let last = s.revocations.revocations_since(Some(&after.cursor), T0).await.unwrap();
        assert!(sessions_of(&last.revocations).contains(&fresh));
    }

    pub async fn recording_a_revocation_again_keeps_the_later_expiry(s: &Stores) {
        let id = SessionId::random();
        s.revocations.record_revocations(&[id], T0, T0 + 900).await.unwrap();
        s.revocations.record_revocations(&[id], T0 + 5, T0 + 20).await.unwrap();
        let page = s.revocations.revocations_since(None, T0 + 100).await.unwrap();
        assert_eq!(sessions_of(&page.revocations), vec![id]);
        assert!(page.revocations.iter().all(|r| r.expires_at == T0 + 900));
    }

    pub async fn purging_revocations_keeps_the_live_ones(s: &Stores) {
        let (old, live) = (SessionId::random(), SessionId::random());
        s.revocations.record_revocations(&[old], T0, T0 + 10).await.unwrap();
        s.revocations.record_revocations(&[live], T0, T0 + 900).await.unwrap();
        let purged = s.revocations.purge_revocations(T0 + 10).await.unwrap();
        assert!(purged <= 1, "{purged}");
        let page = s.revocations.revocations_since(None, T0 + 10).await.unwrap();
        assert_eq!(sessions_of(&page.revocations), vec![live]);
    }

    /// SQL backends delete expired revocations (Redis trims its stream as it
    /// records instead).
    pub async fn purge_revocations_deletes_exactly_the_expired_ones(s: &Stores) {
        let (old, boundary, live) = (SessionId::random(), SessionId::random(), SessionId::random());
        s.revocations.record_revocations(&[old], T0, T0 + 5).await.unwrap();
        s.revocations
            .record_revocations(&[boundary], T0, T0 + 10)
            .await
            .unwrap();
        s.revocations.record_revocations(&[live], T0, T0 + 900).await.unwrap();
        assert_eq!(s.revocations.purge_revocations(T0 + 10).await.unwrap(), 2);
        assert_eq!(s.revocations.purge_revocations(T0 + 10).await.unwrap(), 0);
        // Deleted, not only hidden: an earlier "now" does not find them.
        let page = s.revocations.revocations_since(None, T0).await.unwrap();
        assert_eq!(sessions_of(&page.revocations), vec![live]);
    }

    /// Announced to listeners on other connections (another instance) as
    /// soon as recorded; a backend without announcements (SQLite) hands
    /// them to a reader of its record instead.
    pub async fn revocations_reach_other_instances(s: &Stores) {
        let other = (s.reopen)().await;
        let listener = other.revocations.listen_revocations().await.unwrap();
        let ids: Vec<SessionId> = (0..200).map(|_| SessionId::random()).collect();
        match (listener, s.announces) {
            (Some(mut listener), true) => {
                s.revocations.record_revocations(&ids, T0, T0 + 900).await.unwrap();
                let mut heard = Vec::new();
                while heard.len() < ids.len() {
                    let event = tokio::time::timeout(std::time::Duration::from_secs(5), listener.next())
                        .await
                        .expect("an announcement within 5 s")
                        .unwrap();
                    match event {
                        RevocationEvent::Revoked(revoked) => heard.extend(revoked),
                        RevocationEvent::Missed => panic!("nothing was missed"),
                    }
                }
                assert_eq!(sessions_of(&heard), sorted(ids));
                assert!(heard.iter().all(|r| r.expires_at == T0 + 900));
            }
            (None, false) => {
                let page = other.revocations.revocations_since(None, T0).await.unwrap();
                s.revocations.record_revocations(&ids, T0, T0 + 900).await.unwrap();
                let next = other
                    .revocations
                    .revocations_since(Some(&page.cursor), T0)
                    .await
                    .unwrap();
                assert_eq!(sessions_of(&next.revocations), sorted(ids));
            }
            (listener, announces) => panic!(
                "the backend says it announces: {announces}, but it offers a listener: {}",
                listener.is_some()
            ),
        }
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

    pub async fn default_secrets_are_read_without_inserting(s: &Stores) {
        assert_eq!(s.secrets.default_secrets().await.unwrap(), None);
        assert_eq!(
            s.secrets.default_secrets().await.unwrap(),
            None,
            "reading stores nothing"
        );
        let first = sealed(3);
        s.secrets.default_secrets_or_insert(first.clone()).await.unwrap();
        assert_eq!(s.secrets.default_secrets().await.unwrap(), Some(first));
    }

    // ---- account tokens (SQL backends) ----

    fn token_hash() -> [u8; 32] {
        let mut hash = [0u8; 32];
        hash[..16].copy_from_slice(Uuid::new_v4().as_bytes());
        hash[16..].copy_from_slice(Uuid::new_v4().as_bytes());
        hash
    }

    async fn account_token(
        s: &Stores,
        user: &tessera_store::User,
        purpose: AccountTokenPurpose,
        expires_at: i64,
    ) -> [u8; 32] {
        let hash = token_hash();
        s.account_tokens
            .create_account_token(NewAccountToken {
                token_hash: hash,
                tenant: user.tenant,
                user: user.id,
                purpose,
                created_at: T0,
                expires_at,
            })
            .await
            .unwrap();
        hash
    }

    async fn password_hash_of(s: &Stores, user: &tessera_store::User) -> String {
        s.users
            .find_user_by_email(user.tenant, &user.email)
            .await
            .unwrap()
            .unwrap()
            .password_hash
    }

    pub async fn reset_token_sets_the_password_once(s: &Stores) {
        let user = s.users.create_user(new_user(unique_email())).await.unwrap();
        let hash = account_token(s, &user, AccountTokenPurpose::PasswordReset, T0 + 900).await;
        let reset = s
            .account_tokens
            .reset_password(TenantId::DEFAULT, &hash, "$argon2id$reset", T0 + 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reset.id, user.id);
        assert_eq!(password_hash_of(s, &user).await, "$argon2id$reset");
        let again = s
            .account_tokens
            .reset_password(TenantId::DEFAULT, &hash, "$argon2id$again", T0 + 11)
            .await
            .unwrap();
        assert!(again.is_none(), "a used token must not work twice");
        assert_eq!(password_hash_of(s, &user).await, "$argon2id$reset");
    }

    pub async fn reset_token_is_found_only_in_its_tenant_for_its_purpose_while_live(s: &Stores) {
        let other = tenant(s).await;
        let user = s.users.create_user(new_user(unique_email())).await.unwrap();
        let hash = account_token(s, &user, AccountTokenPurpose::PasswordReset, T0 + 900).await;
        let found = |tenant, purpose, now| {
            let tokens = s.account_tokens.clone();
            async move { tokens.account_token_user(tenant, purpose, &hash, now).await.unwrap() }
        };
        assert_eq!(
            found(TenantId::DEFAULT, AccountTokenPurpose::PasswordReset, T0 + 899).await,
            Some(user.id)
        );
        assert_eq!(found(other, AccountTokenPurpose::PasswordReset, T0).await, None);
        assert_eq!(
            found(TenantId::DEFAULT, AccountTokenPurpose::EmailVerification, T0).await,
            None
        );
        assert_eq!(
            found(TenantId::DEFAULT, AccountTokenPurpose::PasswordReset, T0 + 900).await,
            None,
            "dead at expires_at"
        );
        assert_eq!(
            found(TenantId::DEFAULT, AccountTokenPurpose::PasswordReset, T0).await,
            Some(user.id),
            "looking never consumes"
        );
        // The same refusals where it counts: nothing changes.
        for (tenant, now) in [(other, T0), (TenantId::DEFAULT, T0 + 900)] {
            let reset = s
                .account_tokens
                .reset_password(tenant, &hash, "$argon2id$x", now)
                .await
                .unwrap();
            assert!(reset.is_none());
        }
        assert!(s
            .account_tokens
            .verify_email(TenantId::DEFAULT, &hash, T0)
            .await
            .unwrap()
            .is_none());
        assert_eq!(password_hash_of(s, &user).await, HASH);
        assert!(!s.users.find_user(user.id).await.unwrap().unwrap().email_verified);
        assert!(s
            .account_tokens
            .reset_password(TenantId::DEFAULT, &token_hash(), "$argon2id$x", T0)
            .await
            .unwrap()
            .is_none());
    }

    pub async fn reset_kills_every_reset_token_of_the_user_and_verifies_the_email(s: &Stores) {
        let user = s.users.create_user(new_user(unique_email())).await.unwrap();
        let bystander = s.users.create_user(new_user(unique_email())).await.unwrap();
        let first = account_token(s, &user, AccountTokenPurpose::PasswordReset, T0 + 900).await;
        let second = account_token(s, &user, AccountTokenPurpose::PasswordReset, T0 + 900).await;
        let theirs = account_token(s, &bystander, AccountTokenPurpose::PasswordReset, T0 + 900).await;
        let reset = s
            .account_tokens
            .reset_password(TenantId::DEFAULT, &second, "$argon2id$reset", T0)
            .await
            .unwrap()
            .unwrap();
        assert!(reset.email_verified, "the reset link reached the mailbox");
        assert!(s.users.find_user(user.id).await.unwrap().unwrap().email_verified);
        let first_user = s
            .account_tokens
            .account_token_user(TenantId::DEFAULT, AccountTokenPurpose::PasswordReset, &first, T0)
            .await
            .unwrap();
        assert_eq!(first_user, None, "every other reset link of the user dies");
        let their_user = s
            .account_tokens
            .account_token_user(TenantId::DEFAULT, AccountTokenPurpose::PasswordReset, &theirs, T0)
            .await
            .unwrap();
        assert_eq!(their_user, Some(bystander.id));
        assert_eq!(password_hash_of(s, &bystander).await, HASH);
    }

    pub async fn change_password_kills_reset_tokens_but_not_verification_tokens(s: &Stores) {
        let user = s.users.create_user(new_user(unique_email())).await.unwrap();
        let reset = account_token(s, &user, AccountTokenPurpose::PasswordReset, T0 + 900).await;
        let verify = account_token(s, &user, AccountTokenPurpose::EmailVerification, T0 + 900).await;
        assert!(s
            .account_tokens
            .change_password(user.id, "$argon2id$changed")
            .await
            .unwrap());
        assert_eq!(password_hash_of(s, &user).await, "$argon2id$changed");
        assert!(s
            .account_tokens
            .reset_password(TenantId::DEFAULT, &reset, "$argon2id$x", T0)
            .await
            .unwrap()
            .is_none());
        assert_eq!(password_hash_of(s, &user).await, "$argon2id$changed");
        assert!(s
            .account_tokens
            .verify_email(TenantId::DEFAULT, &verify, T0)
            .await
            .unwrap()
            .is_some());
        assert!(!s
            .account_tokens
            .change_password(UserId::random(), "$argon2id$x")
            .await
            .unwrap());
    }

    pub async fn verification_token_verifies_once(s: &Stores) {
        let user = s.users.create_user(new_user(unique_email())).await.unwrap();
        assert!(!user.email_verified);
        let older = account_token(s, &user, AccountTokenPurpose::EmailVerification, T0 + 86_400).await;
        let hash = account_token(s, &user, AccountTokenPurpose::EmailVerification, T0 + 86_400).await;
        let verified = s
            .account_tokens
            .verify_email(TenantId::DEFAULT, &hash, T0 + 5)
            .await
            .unwrap()
            .unwrap();
        assert!(verified.email_verified);
        assert_eq!(verified.id, user.id);
        assert!(s.users.find_user(user.id).await.unwrap().unwrap().email_verified);
        for used in [hash, older] {
            assert!(s
                .account_tokens
                .verify_email(TenantId::DEFAULT, &used, T0 + 6)
                .await
                .unwrap()
                .is_none());
        }
        assert_eq!(
            password_hash_of(s, &user).await,
            HASH,
            "verifying leaves the password alone"
        );
    }

    pub async fn concurrent_resets_with_one_token_succeed_once(s: &Stores) {
        let user = s.users.create_user(new_user(unique_email())).await.unwrap();
        let hash = account_token(s, &user, AccountTokenPurpose::PasswordReset, T0 + 900).await;
        let barrier = Arc::new(Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let tokens = s.account_tokens.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let new_hash = format!("$argon2id$racer{i}");
                    let won = tokens
                        .reset_password(TenantId::DEFAULT, &hash, &new_hash, T0)
                        .await
                        .unwrap()
                        .is_some();
                    (won, new_hash)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            let (won, new_hash) = task.await.unwrap();
            if won {
                winners.push(new_hash);
            }
        }
        assert_eq!(winners.len(), 1, "exactly one reset wins: {winners:?}");
        assert_eq!(password_hash_of(s, &user).await, winners[0]);
    }

    pub async fn account_token_of_an_unknown_user_is_unknown_user(s: &Stores) {
        let err = s
            .account_tokens
            .create_account_token(NewAccountToken {
                token_hash: token_hash(),
                tenant: TenantId::DEFAULT,
                user: UserId::random(),
                purpose: AccountTokenPurpose::PasswordReset,
                created_at: T0,
                expires_at: T0 + 900,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(Conflict::UnknownUser)), "{err:?}");
    }

    pub async fn purge_account_tokens_deletes_only_expired_ones(s: &Stores) {
        let user = s.users.create_user(new_user(unique_email())).await.unwrap();
        let expired = account_token(s, &user, AccountTokenPurpose::PasswordReset, T0 + 100).await;
        let live = account_token(s, &user, AccountTokenPurpose::EmailVerification, T0 + 101).await;
        let purged = s.account_tokens.purge_account_tokens(T0 + 100).await.unwrap();
        assert!(purged >= 1);
        // A later "now" at which the expired one would be invisible anyway;
        // look with an earlier one to see that it is really gone.
        let gone = s
            .account_tokens
            .account_token_user(TenantId::DEFAULT, AccountTokenPurpose::PasswordReset, &expired, T0)
            .await
            .unwrap();
        assert_eq!(gone, None);
        let kept = s
            .account_tokens
            .account_token_user(TenantId::DEFAULT, AccountTokenPurpose::EmailVerification, &live, T0)
            .await
            .unwrap();
        assert_eq!(kept, Some(user.id));
    }

    // ---- tenant-scoped users (every backend) ----

    fn unique_slug() -> TenantSlug {
        TenantSlug::parse(&format!("t-{}", &Uuid::new_v4().simple().to_string()[..12])).unwrap()
    }

    fn new_tenant(slug: TenantSlug) -> NewTenant {
        NewTenant {
            id: TenantId::random(),
            slug,
            name: TenantName::parse("Acme Corp").unwrap(),
            api_key_hash: None,
            created_at: T0,
        }
    }

    /// A new tenant without keys or users.
    async fn tenant(s: &Stores) -> TenantId {
        s.tenants
            .create_tenant(new_tenant(unique_slug()), Vec::new(), None)
            .await
            .unwrap()
            .id
    }

    fn new_user_in(tenant: TenantId) -> NewUser {
        NewUser {
            tenant,
            ..new_user(unique_email())
        }
    }

    pub async fn same_email_in_two_tenants_is_two_accounts(s: &Stores) {
        let other = tenant(s).await;
        let email = unique_email();
        let in_default = s.users.create_user(new_user(email.clone())).await.unwrap();
        let mut second = new_user(email.clone());
        second.tenant = other;
        second.password_hash = "$argon2id$other".to_owned();
        let in_other = s.users.create_user(second).await.unwrap();
        assert_ne!(in_default.id, in_other.id);
        assert_eq!(in_default.tenant, TenantId::DEFAULT);
        assert_eq!(in_other.tenant, other);
        assert_eq!(in_other.email, email);
        assert_eq!(s.users.find_user(in_other.id).await.unwrap(), Some(in_other.clone()));

        let record = s
            .users
            .find_user_by_email(TenantId::DEFAULT, &email)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.user, in_default);
        assert_eq!(record.password_hash, HASH);
        let record = s.users.find_user_by_email(other, &email).await.unwrap().unwrap();
        assert_eq!(record.user, in_other);
        assert_eq!(record.password_hash, "$argon2id$other");
        assert!(s
            .users
            .find_user_by_email(TenantId::random(), &email)
            .await
            .unwrap()
            .is_none());

        // Within one tenant, the email is still taken.
        let mut again = new_user(email.clone());
        again.tenant = other;
        let again_id = again.id;
        let err = s.users.create_user(again).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(Conflict::EmailTaken)), "{err:?}");
        assert_eq!(s.users.find_user(again_id).await.unwrap(), None);

        // Sessions carry their owner's tenant.
        let (id, _) = login(s, in_other.id, T0).await;
        let session = s.sessions.session(in_other.id, id, T0).await.unwrap().unwrap();
        assert_eq!(session.tenant, other);
        assert_eq!(session.email, email);
        let listed = s.sessions.list_sessions(in_other.id, T0).await.unwrap();
        assert_eq!(listed, vec![session.clone()]);
        let (default_session, _) = login(s, in_default.id, T0).await;
        let session = s
            .sessions
            .session(in_default.id, default_session, T0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(session.tenant, TenantId::DEFAULT);
    }

    fn imported(tenant: TenantId, email: Email, verified: bool) -> ImportedUser {
        let mut user = new_user_in(tenant);
        user.email = email;
        user.role = Role::parse("editor").unwrap();
        user.created_at = T0 - 86_400 * 365;
        user.password_hash = "$2b$04$abcdefghijklmnopqrstuuQ5rZ7dEeU3Pn4cHmgyfFhRn7hSGkK9y".to_owned();
        ImportedUser {
            user,
            email_verified: verified,
        }
    }

    pub async fn import_keeps_ids_roles_verification_and_creation_times(s: &Stores) {
        let other = tenant(s).await;
        let users = vec![
            imported(other, unique_email(), true),
            imported(other, unique_email(), false),
            imported(TenantId::DEFAULT, unique_email(), true),
        ];
        let conflicts = s.users.import_users(&users, ImportMode::Commit).await.unwrap();
        assert_eq!(conflicts, []);
        for u in &users {
            let record = s
                .users
                .find_user_by_email(u.user.tenant, &u.user.email)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(record.user.id, u.user.id, "the id is kept");
            assert_eq!(record.user.role.as_str(), "editor");
            assert_eq!(record.user.email_verified, u.email_verified);
            assert_eq!(record.user.created_at, T0 - 86_400 * 365);
            assert_eq!(record.user.first_name, "Ada");
            assert_eq!(
                record.password_hash, u.user.password_hash,
                "stored as given, never interpreted"
            );
        }
        assert_eq!(s.tenants.count_users(other).await.unwrap(), 2);
    }

    pub async fn import_skips_taken_emails_and_ids_and_stores_the_rest(s: &Stores) {
        let existing = s.users.create_user(new_user(unique_email())).await.unwrap();
        let taken_email = imported(TenantId::DEFAULT, existing.email.clone(), false);
        let mut taken_id = imported(TenantId::DEFAULT, unique_email(), false);
        taken_id.user.id = existing.id;
        let fresh = imported(TenantId::DEFAULT, unique_email(), true);
        let twice = imported(TenantId::DEFAULT, unique_email(), false);
        let mut same_email = imported(TenantId::DEFAULT, twice.user.email.clone(), true);
        same_email.user.first_name = PersonName::parse("Eve").unwrap();
        let mut same_id = imported(TenantId::DEFAULT, unique_email(), false);
        same_id.user.id = fresh.user.id;
        let users = vec![
            taken_email,
            fresh.clone(),
            taken_id.clone(),
            twice.clone(),
            same_email,
            same_id.clone(),
        ];
        let conflicts = s.users.import_users(&users, ImportMode::Commit).await.unwrap();
        assert_eq!(
            conflicts,
            [
                ImportConflict {
                    index: 0,
                    conflict: Conflict::EmailTaken
                },
                ImportConflict {
                    index: 2,
                    conflict: Conflict::IdTaken
                },
                ImportConflict {
                    index: 4,
                    conflict: Conflict::EmailTaken
                },
                ImportConflict {
                    index: 5,
                    conflict: Conflict::IdTaken
                },
            ]
        );
        // The existing account is untouched; the first of two rows wins.
        let record = s
            .users
            .find_user_by_email(TenantId::DEFAULT, &existing.email)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.user, existing);
        assert_eq!(record.password_hash, HASH);
        let kept = s
            .users
            .find_user_by_email(TenantId::DEFAULT, &twice.user.email)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((kept.user.id, kept.user.first_name.as_str()), (twice.user.id, "Ada"));
        assert_eq!(
            s.users.find_user(fresh.user.id).await.unwrap().unwrap().email,
            fresh.user.email
        );
        for skipped in [&taken_id, &same_id] {
            assert!(s
                .users
                .find_user_by_email(TenantId::DEFAULT, &skipped.user.email)
                .await
                .unwrap()
                .is_none());
        }
        // Importing the same again stores nothing more.
        let again = s
            .users
            .import_users(std::slice::from_ref(&fresh), ImportMode::Commit)
            .await
            .unwrap();
        assert_eq!(
            again,
            [ImportConflict {
                index: 0,
                conflict: Conflict::EmailTaken
            }]
        );
    }

    pub async fn import_dry_run_answers_exactly_and_stores_nothing(s: &Stores) {
        let existing = s.users.create_user(new_user(unique_email())).await.unwrap();
        let users = vec![
            imported(TenantId::DEFAULT, unique_email(), true),
            imported(TenantId::DEFAULT, existing.email.clone(), false),
        ];
        let dry = s.users.import_users(&users, ImportMode::DryRun).await.unwrap();
        assert_eq!(
            dry,
            [ImportConflict {
                index: 1,
                conflict: Conflict::EmailTaken
            }]
        );
        assert_eq!(s.users.find_user(users[0].user.id).await.unwrap(), None);
        // The real run agrees with the dry one.
        let real = s.users.import_users(&users, ImportMode::Commit).await.unwrap();
        assert_eq!(real, dry);
        assert!(s.users.find_user(users[0].user.id).await.unwrap().is_some());
    }

    pub async fn import_into_an_unknown_tenant_stores_nothing(s: &Stores) {
        let good = imported(TenantId::DEFAULT, unique_email(), false);
        let lost = imported(TenantId::random(), unique_email(), false);
        let err = s
            .users
            .import_users(&[good.clone(), lost], ImportMode::Commit)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(Conflict::UnknownTenant)), "{err:?}");
        assert_eq!(s.users.find_user(good.user.id).await.unwrap(), None, "one transaction");
        assert_eq!(s.users.import_users(&[], ImportMode::Commit).await.unwrap(), []);
    }

    pub async fn import_of_many_users_in_one_call(s: &Stores) {
        let other = tenant(s).await;
        // More than one statement's worth on SQLite.
        let users: Vec<ImportedUser> = (0..2500).map(|_| imported(other, unique_email(), false)).collect();
        let conflicts = s.users.import_users(&users, ImportMode::Commit).await.unwrap();
        assert_eq!(conflicts, []);
        assert_eq!(s.tenants.count_users(other).await.unwrap(), 2500);
        let conflicts = s.users.import_users(&users[2000..], ImportMode::Commit).await.unwrap();
        assert_eq!(conflicts.len(), 500);
        assert!(conflicts.iter().all(|c| c.conflict == Conflict::EmailTaken));
        assert_eq!(conflicts.last().map(|c| c.index), Some(499));
    }

    pub async fn user_in_an_unknown_tenant_is_unknown_tenant(s: &Stores) {
        let new = new_user_in(TenantId::random());
        let id = new.id;
        let err = s.users.create_user(new).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(Conflict::UnknownTenant)), "{err:?}");
        assert_eq!(s.users.find_user(id).await.unwrap(), None);
    }

    pub async fn user_ids_in_tenant_page_in_id_order(s: &Stores) {
        let other = tenant(s).await;
        let stranger = user(s).await;
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(s.users.create_user(new_user_in(other)).await.unwrap().id);
        }
        ids.sort();

        let page = |after, limit| s.users.user_ids_in_tenant(other, after, limit);
        assert_eq!(page(None, 2).await.unwrap(), ids[..2]);
        assert_eq!(page(Some(ids[1]), 2).await.unwrap(), ids[2..4]);
        assert_eq!(page(Some(ids[3]), 2).await.unwrap(), ids[4..]);
        assert!(page(Some(ids[4]), 2).await.unwrap().is_empty());
        assert_eq!(page(None, 100).await.unwrap(), ids);
        assert!(page(None, 0).await.unwrap().is_empty());

        assert_eq!(
            s.users.user_ids_in_tenant(TenantId::DEFAULT, None, 100).await.unwrap(),
            vec![stranger]
        );
        assert!(s
            .users
            .user_ids_in_tenant(TenantId::random(), None, 100)
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn users_page_newest_first_within_their_tenant(s: &Stores) {
        let other = tenant(s).await;
        let stranger = user(s).await;
        let mut made = Vec::new();
        // Three users share a creation second: the id breaks the tie.
        for at in [T0, T0 + 5, T0 + 5, T0 + 5, T0 + 9, T0 + 2] {
            let mut new = new_user_in(other);
            new.created_at = at;
            made.push(s.users.create_user(new).await.unwrap());
        }
        made.sort_by_key(|u| std::cmp::Reverse((u.created_at, u.id)));

        let mut paged = Vec::new();
        let mut before = None;
        loop {
            let page = s.users.list_users(other, before, 2).await.unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 2);
            before = page.last().map(UserCursor::after);
            paged.extend(page);
        }
        assert_eq!(paged, made);
        assert_eq!(s.users.list_users(other, None, 100).await.unwrap(), made);
        assert!(s.users.list_users(other, None, 0).await.unwrap().is_empty());
        assert!(s
            .users
            .list_users(other, Some(UserCursor::after(&made[5])), 10)
            .await
            .unwrap()
            .is_empty());
        let default_users = s.users.list_users(TenantId::DEFAULT, None, 1000).await.unwrap();
        assert!(default_users.iter().any(|u| u.id == stranger));
        assert!(default_users.iter().all(|u| u.tenant == TenantId::DEFAULT));
        assert!(s
            .users
            .list_users(TenantId::random(), None, 10)
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn set_role_reports_the_previous_role_and_shows_on_sessions(s: &Stores) {
        let id = user(s).await;
        let (session, _) = login(s, id, T0).await;
        let admin = Role::parse("admin").unwrap();
        let change = s.users.set_role(id, &admin).await.unwrap().unwrap();
        assert_eq!(change.previous, Role::user());
        assert_eq!(change.user.role, admin);
        assert_eq!(change.user.id, id);
        assert_eq!(s.users.find_user(id).await.unwrap().unwrap().role, admin);
        // A session reads the role now, so the next refresh carries it.
        assert_eq!(s.sessions.session(id, session, T0).await.unwrap().unwrap().role, admin);

        let again = s.users.set_role(id, &admin).await.unwrap().unwrap();
        assert_eq!(again.previous, admin);
        assert!(s.users.set_role(UserId::random(), &admin).await.unwrap().is_none());
    }

    pub async fn the_last_owner_keeps_the_role(s: &Stores) {
        let other = tenant(s).await;
        let mut first = new_user_in(other);
        first.role = Role::owner();
        let first = s.users.create_user(first).await.unwrap().id;
        let second = s.users.create_user(new_user_in(other)).await.unwrap().id;

        let refused = s.users.set_role(first, &Role::user()).await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(Conflict::LastOwner))),
            "{refused:?}"
        );
        assert_eq!(s.users.find_user(first).await.unwrap().unwrap().role, Role::owner());

        // With a second owner, either may step down; then the other is the last.
        s.users.set_role(second, &Role::owner()).await.unwrap().unwrap();
        let change = s.users.set_role(first, &Role::user()).await.unwrap().unwrap();
        assert_eq!(change.previous, Role::owner());
        let refused = s.users.set_role(second, &Role::parse("admin").unwrap()).await;
        assert!(matches!(refused, Err(StoreError::Conflict(Conflict::LastOwner))));
        // An owner of another tenant does not count.
        let mut elsewhere = new_user(unique_email());
        elsewhere.role = Role::owner();
        s.users.create_user(elsewhere).await.unwrap();
        assert!(s.users.set_role(second, &Role::user()).await.is_err());
        // Owner to owner is no demotion.
        assert!(s.users.set_role(second, &Role::owner()).await.unwrap().is_some());
    }

    pub async fn owners_demoting_each_other_at_once_leave_one_owner(s: &Stores) {
        for _ in 0..5 {
            let other = tenant(s).await;
            let mut owners = Vec::new();
            for _ in 0..2 {
                let mut new = new_user_in(other);
                new.role = Role::owner();
                owners.push(s.users.create_user(new).await.unwrap().id);
            }
            let barrier = Arc::new(Barrier::new(2));
            let tasks: Vec<_> = owners
                .iter()
                .map(|&id| {
                    let (users, barrier) = (s.users.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        users.set_role(id, &Role::user()).await
                    })
                })
                .collect();
            let mut demoted = 0;
            for task in tasks {
                match task.await.unwrap() {
                    Ok(Some(_)) => demoted += 1,
                    Err(StoreError::Conflict(Conflict::LastOwner)) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(demoted, 1);
            let mut left = 0;
            for id in owners {
                if s.users.find_user(id).await.unwrap().unwrap().role.is_owner() {
                    left += 1;
                }
            }
            assert_eq!(left, 1);
        }
    }

    pub async fn revoke_tenant_sessions_ends_only_that_tenants_sessions(s: &Stores) {
        // More users than a backend that pages through them (Redis) takes
        // per page.
        const USERS: usize = 120;
        let other = tenant(s).await;
        let mut sessions = Vec::new();
        for _ in 0..USERS {
            let user = s.users.create_user(new_user_in(other)).await.unwrap().id;
            sessions.push((user, login(s, user, T0).await.0));
        }
        let busy = sessions[0].0;
        sessions.push((busy, login(s, busy, T0 + 1).await.0));
        s.users.create_user(new_user_in(other)).await.unwrap();
        let stranger = user(s).await;
        let (kept, _) = login(s, stranger, T0).await;

        assert_eq!(
            s.sessions.revoke_tenant_sessions(other).await.unwrap(),
            u64::try_from(USERS + 1).unwrap()
        );
        for (user, id) in &sessions {
            assert!(!is_live(s, *user, *id, T0 + 2).await);
        }
        assert!(s.sessions.list_sessions(busy, T0 + 2).await.unwrap().is_empty());
        assert!(is_live(s, stranger, kept, T0 + 2).await);
        assert_eq!(s.sessions.revoke_tenant_sessions(other).await.unwrap(), 0);
        assert_eq!(s.sessions.revoke_tenant_sessions(TenantId::random()).await.unwrap(), 0);
        assert!(is_live(s, stranger, kept, T0 + 2).await);
    }

    // ---- tenants (SQL backends) ----

    pub async fn default_tenant_exists_after_migrating(s: &Stores) {
        let record = s.tenants.tenant(TenantId::DEFAULT).await.unwrap().unwrap();
        assert_eq!(
            record.tenant,
            Tenant {
                id: TenantId::DEFAULT,
                slug: TenantSlug::default_tenant(),
                name: "Default".to_owned(),
                created_at: 0,
            }
        );
        assert_eq!(record.api_key_hash, None);
        assert_eq!(
            s.tenants.tenant_by_slug(&TenantSlug::default_tenant()).await.unwrap(),
            Some(record)
        );
        assert!(s.tenants.tenant_keys(TenantId::DEFAULT).await.unwrap().is_empty());
        assert!(s.tenants.live_keys().await.unwrap().is_empty());
        assert_eq!(s.tenants.key("no-such-kid").await.unwrap(), None);
        assert_eq!(s.tenants.count_users(TenantId::DEFAULT).await.unwrap(), 0);
        user(s).await;
        user(s).await;
        assert_eq!(s.tenants.count_users(TenantId::DEFAULT).await.unwrap(), 2);

        assert_eq!(s.tenants.tenant(TenantId::random()).await.unwrap(), None);
        assert_eq!(s.tenants.tenant_by_slug(&unique_slug()).await.unwrap(), None);
        assert_eq!(s.tenants.count_users(TenantId::random()).await.unwrap(), 0);
    }

    // ---- keys ----

    const MASTER: &str = "master-1";

    /// Sealed bytes that differ per kid, with NUL and 0xff in them.
    fn sealed_bytes(kid: &str) -> Vec<u8> {
        let mut bytes = kid.as_bytes().to_vec();
        bytes.extend([0, 0xff, 0]);
        bytes
    }

    fn new_key(tenant: TenantId, kind: KeyKind, state: KeyState, at: i64) -> NewKey {
        let kid = format!("{kind}-{}", Uuid::new_v4().simple());
        NewKey {
            sealed: sealed_bytes(&kid),
            kid,
            tenant,
            kind,
            state,
            master_key_id: MASTER.to_owned(),
            created_at: at,
        }
    }

    /// An active and a next key per kind, created at `at`.
    fn key_set(tenant: TenantId, at: i64) -> Vec<NewKey> {
        KeyKind::ALL
            .iter()
            .flat_map(|kind| {
                [
                    new_key(tenant, *kind, KeyState::Active, at),
                    new_key(tenant, *kind, KeyState::Next, at),
                ]
            })
            .collect()
    }

    fn next_keys(tenant: TenantId, at: i64) -> Vec<NewKey> {
        KeyKind::ALL
            .iter()
            .map(|kind| new_key(tenant, *kind, KeyState::Next, at))
            .collect()
    }

    const ACCESS_GRACE: i64 = 900;
    const REFRESH_GRACE: i64 = 86_400;

    fn graceful(tenant: TenantId, now: i64) -> KeyRotation {
        KeyRotation {
            tenant,
            mode: RotationMode::Graceful,
            now,
            access_verify_until: now + ACCESS_GRACE,
            refresh_verify_until: now + REFRESH_GRACE,
            new_keys: next_keys(tenant, now),
            expect_active_access: None,
        }
    }

    fn revoke(tenant: TenantId, now: i64) -> KeyRotation {
        KeyRotation {
            tenant,
            mode: RotationMode::Revoke,
            now,
            access_verify_until: now,
            refresh_verify_until: now,
            new_keys: key_set(tenant, now),
            expect_active_access: None,
        }
    }

    /// A new tenant with `key_set(.., T0)`.
    async fn tenant_with_keys(s: &Stores) -> (TenantId, Vec<NewKey>) {
        let tenant = new_tenant(unique_slug());
        let id = tenant.id;
        let keys = key_set(id, T0);
        s.tenants.create_tenant(tenant, keys.clone(), None).await.unwrap();
        (id, keys)
    }

    /// The key of `kind` in `state` among `keys` (the new ones a call made).
    fn pick(keys: &[NewKey], kind: KeyKind, state: KeyState) -> &NewKey {
        keys.iter().find(|k| k.kind == kind && k.state == state).unwrap()
    }

    fn find<'a>(keys: &'a [StoredKey], kid: &str) -> &'a StoredKey {
        keys.iter()
            .find(|k| k.kid == kid)
            .unwrap_or_else(|| panic!("{kid} missing from {keys:?}"))
    }

    fn count(keys: &[StoredKey], kind: KeyKind, state: KeyState) -> usize {
        keys.iter().filter(|k| k.kind == kind && k.state == state).count()
    }

    fn kids<'a>(keys: impl IntoIterator<Item = &'a StoredKey>) -> Vec<String> {
        let mut kids: Vec<String> = keys.into_iter().map(|k| k.kid.clone()).collect();
        kids.sort();
        kids
    }

    fn new_kids<'a>(keys: impl IntoIterator<Item = &'a NewKey>) -> Vec<String> {
        let mut kids: Vec<String> = keys.into_iter().map(|k| k.kid.clone()).collect();
        kids.sort();
        kids
    }

    fn wall_clock_ms() -> i64 {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        i64::try_from(since_epoch.as_millis()).unwrap()
    }

    /// `new` as the store should have it right after inserting it, with the
    /// database's `changed_at_ms`, which must be the database clock (the
    /// same machine's in these tests) in milliseconds.
    fn assert_stored_as_new(stored: &StoredKey, new: &NewKey) {
        assert!(
            (stored.changed_at_ms - wall_clock_ms()).abs() < 60_000,
            "changed_at_ms is not the clock in ms: {stored:?}"
        );
        let expected = StoredKey {
            kid: new.kid.clone(),
            tenant: new.tenant,
            kind: new.kind,
            state: new.state,
            master_key_id: new.master_key_id.clone(),
            sealed: Some(new.sealed.clone()),
            created_at: new.created_at,
            activated_at: (new.state == KeyState::Active).then_some(new.created_at),
            retired_at: None,
            verify_until: None,
            changed_at_ms: stored.changed_at_ms,
        };
        assert_eq!(*stored, expected);
    }

    /// Lets the database clock move on by a few milliseconds, so that
    /// `changed_at_ms` tells writes before and after apart.
    async fn tick() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    pub async fn created_tenant_reads_back_with_its_keys_and_owner(s: &Stores) {
        let mut new = new_tenant(unique_slug());
        new.api_key_hash = Some((0..32).collect());
        let keys = key_set(new.id, T0);
        let mut owner = new_user_in(new.id);
        owner.role = Role::owner();
        let tenant = s
            .tenants
            .create_tenant(new.clone(), keys.clone(), Some(owner.clone()))
            .await
            .unwrap();
        assert_eq!(
            tenant,
            Tenant {
                id: new.id,
                slug: new.slug.clone(),
                name: "Acme Corp".to_owned(),
                created_at: T0,
            }
        );
        let record = s.tenants.tenant_by_slug(&new.slug).await.unwrap().unwrap();
        assert_eq!(record.tenant, tenant);
        assert_eq!(record.api_key_hash, Some((0..32).collect()));
        assert_eq!(s.tenants.tenant(new.id).await.unwrap(), Some(record));

        let found = s.users.find_user(owner.id).await.unwrap().unwrap();
        assert_eq!(found.tenant, new.id);
        assert_eq!(found.role, Role::owner());
        assert_eq!(found.email, owner.email);
        assert!(s
            .users
            .find_user_by_email(new.id, &owner.email)
            .await
            .unwrap()
            .is_some());
        assert!(s
            .users
            .find_user_by_email(TenantId::DEFAULT, &owner.email)
            .await
            .unwrap()
            .is_none());
        assert_eq!(s.tenants.count_users(new.id).await.unwrap(), 1);

        let stored = s.tenants.tenant_keys(new.id).await.unwrap();
        assert_eq!(stored.len(), 4);
        for key in &keys {
            assert_stored_as_new(find(&stored, &key.kid), key);
            assert_eq!(
                s.tenants.key(&key.kid).await.unwrap().as_ref(),
                Some(find(&stored, &key.kid))
            );
        }
        let live = s.tenants.live_keys().await.unwrap();
        assert_eq!(kids(&live), kids(&stored));

        // Without keys or owner, a tenant is just its row.
        let bare = tenant_without_anything(s).await;
        assert!(s.tenants.tenant_keys(bare).await.unwrap().is_empty());
        assert_eq!(s.tenants.count_users(bare).await.unwrap(), 0);
        assert_eq!(s.tenants.live_keys().await.unwrap(), live);
    }

    async fn tenant_without_anything(s: &Stores) -> TenantId {
        tenant(s).await
    }

    pub async fn a_taken_slug_stores_nothing_of_the_tenant(s: &Stores) {
        let slug = unique_slug();
        let first = s
            .tenants
            .create_tenant(new_tenant(slug.clone()), Vec::new(), None)
            .await
            .unwrap();
        let second = new_tenant(slug.clone());
        let keys = key_set(second.id, T0);
        let owner = new_user_in(second.id);
        let err = s
            .tenants
            .create_tenant(second.clone(), keys.clone(), Some(owner.clone()))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(Conflict::SlugTaken)), "{err:?}");
        assert!(!err.to_string().contains(slug.as_str()), "{err}");

        assert_eq!(s.tenants.tenant(second.id).await.unwrap(), None);
        assert_eq!(s.tenants.tenant_by_slug(&slug).await.unwrap().unwrap().tenant, first);
        for key in &keys {
            assert_eq!(s.tenants.key(&key.kid).await.unwrap(), None);
        }
        assert!(s.tenants.live_keys().await.unwrap().is_empty());
        assert_eq!(s.users.find_user(owner.id).await.unwrap(), None);

        // The default tenant's slug is taken from the start.
        let err = s
            .tenants
            .create_tenant(new_tenant(TenantSlug::default_tenant()), Vec::new(), None)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(Conflict::SlugTaken)), "{err:?}");
        // A taken id is IdTaken.
        let mut same_id = new_tenant(unique_slug());
        same_id.id = first.id;
        let err = s.tenants.create_tenant(same_id, Vec::new(), None).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(Conflict::IdTaken)), "{err:?}");

        // With a free slug, the same tenant goes through whole.
        let mut third = second.clone();
        third.slug = unique_slug();
        s.tenants
            .create_tenant(third, keys.clone(), Some(owner.clone()))
            .await
            .unwrap();
        assert_eq!(s.tenants.tenant_keys(second.id).await.unwrap().len(), 4);
        assert_eq!(s.users.find_user(owner.id).await.unwrap().unwrap().tenant, second.id);

        // And a failure after the tenant row (the owner's email is taken in
        // the new tenant: impossible, so a taken user id) undoes the row.
        let fourth = new_tenant(unique_slug());
        let mut clash = new_user_in(fourth.id);
        clash.id = owner.id;
        let err = s
            .tenants
            .create_tenant(fourth.clone(), key_set(fourth.id, T0), Some(clash))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(Conflict::IdTaken)), "{err:?}");
        assert_eq!(s.tenants.tenant(fourth.id).await.unwrap(), None);
        assert!(s.tenants.tenant_keys(fourth.id).await.unwrap().is_empty());
    }

    pub async fn keys_or_owner_of_another_tenant_are_refused(s: &Stores) {
        let new = new_tenant(unique_slug());
        let stranger = new_user(unique_email());
        let err = s
            .tenants
            .create_tenant(new.clone(), Vec::new(), Some(stranger))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        let err = s
            .tenants
            .create_tenant(new.clone(), key_set(TenantId::random(), T0), None)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        let mut retired = key_set(new.id, T0);
        retired[0].state = KeyState::Retired;
        let err = s.tenants.create_tenant(new.clone(), retired, None).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        assert_eq!(s.tenants.tenant(new.id).await.unwrap(), None);
    }

    pub async fn tenants_are_listed_bytewise_by_slug(s: &Stores) {
        let mut created = Vec::new();
        for raw in ["zeta", "abc", "ab-x", "mid"] {
            let mut new = new_tenant(TenantSlug::parse(raw).unwrap());
            new.created_at = T0 + i64::try_from(created.len()).unwrap();
            created.push(s.tenants.create_tenant(new, Vec::new(), None).await.unwrap());
        }
        let slugs = |tenants: Vec<Tenant>| tenants.into_iter().map(|t| t.slug.to_string()).collect::<Vec<_>>();
        // Bytewise: '-' sorts before every letter.
        assert_eq!(
            slugs(s.tenants.list_tenants(None, 100).await.unwrap()),
            ["ab-x", "abc", "default", "mid", "zeta"]
        );
        let first = s.tenants.list_tenants(None, 2).await.unwrap();
        assert_eq!(first, vec![created[2].clone(), created[1].clone()]);
        let second = s.tenants.list_tenants(Some(&first[1].slug), 2).await.unwrap();
        assert_eq!(slugs(second.clone()), ["default", "mid"]);
        let third = s.tenants.list_tenants(Some(&second[1].slug), 2).await.unwrap();
        assert_eq!(third, vec![created[0].clone()]);
        assert!(s
            .tenants
            .list_tenants(Some(&third[0].slug), 2)
            .await
            .unwrap()
            .is_empty());
        assert!(s.tenants.list_tenants(None, 0).await.unwrap().is_empty());
    }

    pub async fn api_key_hash_is_replaced_and_removed(s: &Stores) {
        let id = tenant(s).await;
        let hash = |t: TenantId| async move { s.tenants.tenant(t).await.unwrap().unwrap().api_key_hash };
        assert_eq!(hash(id).await, None);
        assert!(s.tenants.set_api_key_hash(id, Some(vec![1; 32])).await.unwrap());
        assert_eq!(hash(id).await, Some(vec![1; 32]));
        assert!(s.tenants.set_api_key_hash(id, Some(vec![2; 32])).await.unwrap());
        assert_eq!(hash(id).await, Some(vec![2; 32]));
        assert!(s.tenants.set_api_key_hash(id, None).await.unwrap());
        assert_eq!(hash(id).await, None);
        assert!(!s
            .tenants
            .set_api_key_hash(TenantId::random(), Some(vec![3; 32]))
            .await
            .unwrap());
        assert_eq!(hash(TenantId::DEFAULT).await, None);
    }

    pub async fn graceful_rotation_moves_every_key_one_state_on(s: &Stores) {
        let (tenant, keys) = tenant_with_keys(s).await;
        let before = s.tenants.tenant_keys(tenant).await.unwrap();
        let (old_access, old_refresh) = (
            pick(&keys, KeyKind::Access, KeyState::Active),
            pick(&keys, KeyKind::Refresh, KeyState::Active),
        );
        let (next_access, next_refresh) = (
            pick(&keys, KeyKind::Access, KeyState::Next),
            pick(&keys, KeyKind::Refresh, KeyState::Next),
        );
        tick().await;
        let now = T0 + 100;
        let rotation = graceful(tenant, now);
        let rotated = s.tenants.rotate_keys(rotation.clone()).await.unwrap();

        assert_eq!(rotated.access_kid, next_access.kid);
        assert_eq!(rotated.refresh_kid, next_refresh.kid);
        assert_eq!(rotated.keys.len(), 6);
        for (old, verify_until) in [(old_access, now + ACCESS_GRACE), (old_refresh, now + REFRESH_GRACE)] {
            let retired = find(&rotated.keys, &old.kid);
            assert_eq!(
                *retired,
                StoredKey {
                    state: KeyState::Retired,
                    retired_at: Some(now),
                    verify_until: Some(verify_until),
                    changed_at_ms: retired.changed_at_ms,
                    ..find(&before, &old.kid).clone()
                }
            );
            assert!(retired.changed_at_ms > find(&before, &old.kid).changed_at_ms);
        }
        for next in [next_access, next_refresh] {
            let active = find(&rotated.keys, &next.kid);
            assert_eq!(
                *active,
                StoredKey {
                    state: KeyState::Active,
                    activated_at: Some(now),
                    changed_at_ms: active.changed_at_ms,
                    ..find(&before, &next.kid).clone()
                }
            );
            assert!(active.changed_at_ms > find(&before, &next.kid).changed_at_ms);
        }
        for new in &rotation.new_keys {
            assert_stored_as_new(find(&rotated.keys, &new.kid), new);
        }
        assert_eq!(s.tenants.tenant_keys(tenant).await.unwrap(), rotated.keys);

        // The next rotation goes on from there.
        let again = graceful(tenant, now + 100);
        let rotated = s.tenants.rotate_keys(again.clone()).await.unwrap();
        assert_eq!(
            rotated.access_kid,
            pick(&rotation.new_keys, KeyKind::Access, KeyState::Next).kid
        );
        assert_eq!(
            rotated.refresh_kid,
            pick(&rotation.new_keys, KeyKind::Refresh, KeyState::Next).kid
        );
        for kind in KeyKind::ALL {
            assert_eq!(count(&rotated.keys, kind, KeyState::Retired), 2);
            assert_eq!(count(&rotated.keys, kind, KeyState::Active), 1);
            assert_eq!(count(&rotated.keys, kind, KeyState::Next), 1);
        }
        assert_eq!(
            find(&rotated.keys, &next_access.kid).verify_until,
            Some(now + 100 + ACCESS_GRACE)
        );
    }

    pub async fn graceful_rotation_without_a_next_key_changes_nothing(s: &Stores) {
        let only_active: Vec<fn(TenantId) -> Vec<NewKey>> = vec![
            // Active keys only.
            |t| {
                KeyKind::ALL
                    .iter()
                    .map(|kind| new_key(t, *kind, KeyState::Active, T0))
                    .collect()
            },
            // A next key for one kind only.
            |t| {
                let mut keys: Vec<NewKey> = KeyKind::ALL
                    .iter()
                    .map(|kind| new_key(t, *kind, KeyState::Active, T0))
                    .collect();
                keys.push(new_key(t, KeyKind::Access, KeyState::Next, T0));
                keys
            },
            // No keys at all.
            |_| Vec::new(),
        ];
        for keys in only_active {
            let new = new_tenant(unique_slug());
            let tenant = new.id;
            s.tenants.create_tenant(new, keys(tenant), None).await.unwrap();
            let before = s.tenants.tenant_keys(tenant).await.unwrap();
            let rotation = graceful(tenant, T0 + 100);
            let err = s.tenants.rotate_keys(rotation.clone()).await.unwrap_err();
            assert!(matches!(err, StoreError::Conflict(Conflict::NoNextKey)), "{err:?}");
            assert_eq!(s.tenants.tenant_keys(tenant).await.unwrap(), before);
            for new in &rotation.new_keys {
                assert_eq!(s.tenants.key(&new.kid).await.unwrap(), None);
            }
        }
    }

    pub async fn rotating_an_unknown_tenant_is_unknown_tenant(s: &Stores) {
        let nobody = TenantId::random();
        for rotation in [graceful(nobody, T0), revoke(nobody, T0)] {
            let err = s.tenants.rotate_keys(rotation.clone()).await.unwrap_err();
            assert!(matches!(err, StoreError::Conflict(Conflict::UnknownTenant)), "{err:?}");
            for new in &rotation.new_keys {
                assert_eq!(s.tenants.key(&new.kid).await.unwrap(), None);
            }
        }
        let err = s
            .tenants
            .install_keys_if_absent(nobody, key_set(nobody, T0))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(Conflict::UnknownTenant)), "{err:?}");
        assert!(s.tenants.live_keys().await.unwrap().is_empty());

        // New keys of another tenant are refused before anything happens.
        let (tenant, _) = tenant_with_keys(s).await;
        let before = s.tenants.tenant_keys(tenant).await.unwrap();
        let mut stray = graceful(tenant, T0 + 100);
        stray.new_keys = next_keys(TenantId::random(), T0 + 100);
        let err = s.tenants.rotate_keys(stray).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        // So is a revocation that would leave no active key.
        let mut blind = revoke(tenant, T0 + 100);
        blind.new_keys = next_keys(tenant, T0 + 100);
        let err = s.tenants.rotate_keys(blind).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        assert_eq!(s.tenants.tenant_keys(tenant).await.unwrap(), before);
    }

    pub async fn revoke_rotation_wipes_every_sealed_secret(s: &Stores) {
        let (tenant, keys) = tenant_with_keys(s).await;
        let first = graceful(tenant, T0 + 100);
        s.tenants.rotate_keys(first.clone()).await.unwrap();
        let (bystander, _) = tenant_with_keys(s).await;
        let bystander_keys = s.tenants.tenant_keys(bystander).await.unwrap();
        let before = s.tenants.tenant_keys(tenant).await.unwrap();

        tick().await;
        let now = T0 + 200;
        let rotation = revoke(tenant, now);
        let rotated = s.tenants.rotate_keys(rotation.clone()).await.unwrap();
        assert_eq!(
            rotated.access_kid,
            pick(&rotation.new_keys, KeyKind::Access, KeyState::Active).kid
        );
        assert_eq!(
            rotated.refresh_kid,
            pick(&rotation.new_keys, KeyKind::Refresh, KeyState::Active).kid
        );
        assert_eq!(kids(&rotated.keys), new_kids(&rotation.new_keys));
        for new in &rotation.new_keys {
            assert_stored_as_new(find(&rotated.keys, &new.kid), new);
        }

        let all = s.tenants.tenant_keys(tenant).await.unwrap();
        assert_eq!(all.len(), 10);
        let retired_before: Vec<&str> = [&keys[0], &keys[2]].iter().map(|k| k.kid.as_str()).collect();
        for old in &before {
            let revoked = find(&all, &old.kid);
            let retired_at = if retired_before.contains(&old.kid.as_str()) {
                Some(T0 + 100)
            } else {
                Some(now)
            };
            assert_eq!(
                *revoked,
                StoredKey {
                    state: KeyState::Revoked,
                    sealed: None,
                    retired_at,
                    changed_at_ms: revoked.changed_at_ms,
                    ..old.clone()
                }
            );
            assert!(revoked.changed_at_ms > old.changed_at_ms);
            assert_eq!(s.tenants.key(&old.kid).await.unwrap().as_ref(), Some(revoked));
        }
        assert!(s
            .tenants
            .live_keys()
            .await
            .unwrap()
            .iter()
            .all(|k| k.state != KeyState::Revoked && k.sealed.is_some()));
        assert_eq!(s.tenants.tenant_keys(bystander).await.unwrap(), bystander_keys);
    }

    pub async fn concurrent_graceful_rotations_leave_one_active_and_one_next_per_kind(s: &Stores) {
        const ROTATIONS: usize = 8;
        let (tenant, _) = tenant_with_keys(s).await;
        let start = Arc::new(Barrier::new(ROTATIONS));
        let tasks: Vec<_> = (0..ROTATIONS)
            .map(|i| {
                let tenants = Arc::clone(&s.tenants);
                let start = Arc::clone(&start);
                let rotation = graceful(tenant, T0 + 100 + i64::try_from(i).unwrap());
                tokio::spawn(async move {
                    start.wait().await;
                    tenants.rotate_keys(rotation).await.unwrap()
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }

        let keys = s.tenants.tenant_keys(tenant).await.unwrap();
        for kind in KeyKind::ALL {
            assert_eq!(count(&keys, kind, KeyState::Active), 1, "{keys:?}");
            assert_eq!(count(&keys, kind, KeyState::Next), 1, "{keys:?}");
            assert_eq!(count(&keys, kind, KeyState::Retired), ROTATIONS, "{keys:?}");
        }
        // They ran one after the other: each activated a different key, and
        // the last one's view is what is stored.
        let mut activated: Vec<&str> = results.iter().map(|r| r.access_kid.as_str()).collect();
        activated.sort_unstable();
        activated.dedup();
        assert_eq!(activated.len(), ROTATIONS);
        assert_eq!(results.iter().filter(|r| r.keys == keys).count(), 1);
    }

    /// `graceful(..)` expecting `kid` to be the active access key.
    fn graceful_expecting(tenant: TenantId, now: i64, kid: &str) -> KeyRotation {
        KeyRotation {
            expect_active_access: Some(kid.to_owned()),
            ..graceful(tenant, now)
        }
    }

    pub async fn rotation_expecting_the_active_key_rotates(s: &Stores) {
        let (tenant, keys) = tenant_with_keys(s).await;
        let active = pick(&keys, KeyKind::Access, KeyState::Active);
        let next_access = pick(&keys, KeyKind::Access, KeyState::Next);
        let next_refresh = pick(&keys, KeyKind::Refresh, KeyState::Next);

        let rotation = graceful_expecting(tenant, T0 + 100, &active.kid);
        let rotated = s.tenants.rotate_keys(rotation.clone()).await.unwrap();
        assert_eq!(rotated.access_kid, next_access.kid);
        assert_eq!(rotated.refresh_kid, next_refresh.kid);
        assert_eq!(find(&rotated.keys, &active.kid).state, KeyState::Retired);
        for new in &rotation.new_keys {
            assert_stored_as_new(find(&rotated.keys, &new.kid), new);
        }
        assert_eq!(s.tenants.tenant_keys(tenant).await.unwrap(), rotated.keys);

        // The next one expects what this one activated.
        let again = graceful_expecting(tenant, T0 + 200, &rotated.access_kid);
        let again_rotated = s.tenants.rotate_keys(again).await.unwrap();
        assert_eq!(
            again_rotated.access_kid,
            pick(&rotation.new_keys, KeyKind::Access, KeyState::Next).kid
        );

        // A revocation takes the expectation too.
        let revocation = KeyRotation {
            expect_active_access: Some(again_rotated.access_kid.clone()),
            ..revoke(tenant, T0 + 300)
        };
        let revoked = s.tenants.rotate_keys(revocation.clone()).await.unwrap();
        assert_eq!(
            revoked.access_kid,
            pick(&revocation.new_keys, KeyKind::Access, KeyState::Active).kid
        );
        assert_eq!(kids(&revoked.keys), new_kids(&revocation.new_keys));
    }

    pub async fn rotation_expecting_a_stale_key_is_raced_and_changes_nothing(s: &Stores) {
        let (tenant, keys) = tenant_with_keys(s).await;
        let stale = pick(&keys, KeyKind::Access, KeyState::Active).kid.clone();
        // Someone else rotates first.
        let first = s.tenants.rotate_keys(graceful(tenant, T0 + 100)).await.unwrap();
        let (bystander, bystander_new) = tenant_with_keys(s).await;
        let bystander_keys = s.tenants.tenant_keys(bystander).await.unwrap();
        let before = s.tenants.tenant_keys(tenant).await.unwrap();
        assert_eq!(before, first.keys);
        tick().await;

        let refresh_kid = first.refresh_kid.clone();
        let next_access = first
            .keys
            .iter()
            .find(|k| k.kind == KeyKind::Access && k.state == KeyState::Next)
            .unwrap()
            .kid
            .clone();
        let bystander_active = pick(&bystander_new, KeyKind::Access, KeyState::Active).kid.clone();
        let rotations = [
            // The key the other rotation retired.
            graceful_expecting(tenant, T0 + 200, &stale),
            // A key that never existed.
            graceful_expecting(tenant, T0 + 200, "no-such-kid"),
            // The tenant's next access key, not yet active.
            graceful_expecting(tenant, T0 + 200, &next_access),
            // The active refresh key: active, but not the access key.
            graceful_expecting(tenant, T0 + 200, &refresh_kid),
            // Another tenant's active access key.
            graceful_expecting(tenant, T0 + 200, &bystander_active),
            // A revocation expecting the stale key.
            KeyRotation {
                expect_active_access: Some(stale.clone()),
                ..revoke(tenant, T0 + 200)
            },
        ];
        for rotation in rotations {
            let err = s.tenants.rotate_keys(rotation.clone()).await.unwrap_err();
            assert!(matches!(err, StoreError::Conflict(Conflict::RotationRaced)), "{err:?}");
            assert_eq!(
                err.to_string(),
                "conflict: the tenant's keys were rotated by someone else meanwhile"
            );
            assert_eq!(s.tenants.tenant_keys(tenant).await.unwrap(), before);
            for new in &rotation.new_keys {
                assert_eq!(s.tenants.key(&new.kid).await.unwrap(), None);
            }
        }
        assert_eq!(s.tenants.tenant_keys(bystander).await.unwrap(), bystander_keys);

        // A tenant without an active access key has nothing to match: raced,
        // checked before the missing next keys.
        let bare = tenant_without_anything(s).await;
        let err = s
            .tenants
            .rotate_keys(graceful_expecting(bare, T0 + 200, &stale))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(Conflict::RotationRaced)), "{err:?}");
        assert!(s.tenants.tenant_keys(bare).await.unwrap().is_empty());
        // An unknown tenant is still that.
        let nobody = TenantId::random();
        let err = s
            .tenants
            .rotate_keys(graceful_expecting(nobody, T0 + 200, &stale))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(Conflict::UnknownTenant)), "{err:?}");

        // Expecting the current key works.
        let rotated = s
            .tenants
            .rotate_keys(graceful_expecting(tenant, T0 + 300, &first.access_kid))
            .await
            .unwrap();
        assert_ne!(rotated.access_kid, first.access_kid);
    }

    pub async fn concurrent_rotations_expecting_one_key_rotate_once(s: &Stores) {
        const INSTANCES: usize = 8;
        let (tenant, keys) = tenant_with_keys(s).await;
        let active = pick(&keys, KeyKind::Access, KeyState::Active).kid.clone();
        let start = Arc::new(Barrier::new(INSTANCES));
        let rotations: Vec<KeyRotation> = (0..INSTANCES)
            .map(|i| graceful_expecting(tenant, T0 + 100 + i64::try_from(i).unwrap(), &active))
            .collect();
        let tasks: Vec<_> = rotations
            .iter()
            .map(|rotation| {
                let tenants = Arc::clone(&s.tenants);
                let start = Arc::clone(&start);
                let rotation = rotation.clone();
                tokio::spawn(async move {
                    start.wait().await;
                    tenants.rotate_keys(rotation).await
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }

        let winners: Vec<usize> = (0..INSTANCES).filter(|i| results[*i].is_ok()).collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        for result in &results {
            if let Err(err) = result {
                assert!(matches!(err, StoreError::Conflict(Conflict::RotationRaced)), "{err:?}");
            }
        }
        let winner = winners[0];
        let won = results[winner].as_ref().unwrap();
        assert_eq!(won.access_kid, pick(&keys, KeyKind::Access, KeyState::Next).kid);
        assert_eq!(won.refresh_kid, pick(&keys, KeyKind::Refresh, KeyState::Next).kid);

        let stored = s.tenants.tenant_keys(tenant).await.unwrap();
        assert_eq!(stored, won.keys);
        for kind in KeyKind::ALL {
            assert_eq!(count(&stored, kind, KeyState::Active), 1, "{stored:?}");
            assert_eq!(count(&stored, kind, KeyState::Next), 1, "{stored:?}");
            assert_eq!(count(&stored, kind, KeyState::Retired), 1, "{stored:?}");
        }
        assert_eq!(find(&stored, &active).retired_at, Some(rotations[winner].now));
        // Only the winner's new keys are stored.
        let mut expected = new_kids(&keys);
        expected.extend(new_kids(&rotations[winner].new_keys));
        expected.sort();
        assert_eq!(kids(&stored), expected);
    }

    pub async fn concurrent_installs_end_with_one_set(s: &Stores) {
        const INSTANCES: usize = 10;
        let tenant = TenantId::DEFAULT;
        let candidates: Vec<Vec<NewKey>> = (0..INSTANCES).map(|_| key_set(tenant, T0)).collect();
        let start = Arc::new(Barrier::new(INSTANCES));
        let tasks: Vec<_> = candidates
            .iter()
            .map(|keys| {
                let tenants = Arc::clone(&s.tenants);
                let start = Arc::clone(&start);
                let keys = keys.clone();
                tokio::spawn(async move {
                    start.wait().await;
                    tenants.install_keys_if_absent(tenant, keys).await.unwrap()
                })
            })
            .collect();
        let mut got = Vec::new();
        for task in tasks {
            got.push(task.await.unwrap());
        }
        let winner = got[0].clone();
        assert!(got.iter().all(|keys| *keys == winner), "instances disagree: {got:?}");
        let candidate = candidates
            .iter()
            .find(|c| new_kids(c.iter()) == kids(&winner))
            .unwrap_or_else(|| panic!("not one candidate's set: {winner:?}"));
        for new in candidate {
            assert_stored_as_new(find(&winner, &new.kid), new);
        }
        assert_eq!(s.tenants.tenant_keys(tenant).await.unwrap(), winner);

        // Later starts find the keys and insert nothing.
        assert_eq!(
            s.tenants
                .install_keys_if_absent(tenant, key_set(tenant, T0 + 1))
                .await
                .unwrap(),
            winner
        );
        assert_eq!(s.tenants.live_keys().await.unwrap(), winner);
    }

    pub async fn keys_changed_since_reports_what_changed_after_the_mark(s: &Stores) {
        let start = s.tenants.keys_changed_since(0).await.unwrap();
        assert!(start.keys.is_empty());
        assert!((start.db_now_ms - wall_clock_ms()).abs() < 60_000, "{start:?}");

        tick().await;
        let (tenant, keys) = tenant_with_keys(s).await;
        let created = s.tenants.keys_changed_since(start.db_now_ms).await.unwrap();
        assert_eq!(kids(&created.keys), new_kids(&keys));
        for key in &created.keys {
            assert!(key.changed_at_ms > start.db_now_ms, "{key:?}");
            assert!(key.changed_at_ms <= created.db_now_ms, "{key:?}");
        }
        assert!(created.db_now_ms >= start.db_now_ms);

        tick().await;
        let rotation = graceful(tenant, T0 + 100);
        let rotated = s.tenants.rotate_keys(rotation.clone()).await.unwrap();
        let changed = s.tenants.keys_changed_since(created.db_now_ms).await.unwrap();
        // The four it moved on and the two it added; the same rows as now.
        assert_eq!(changed.keys.len(), 6);
        for key in &changed.keys {
            assert_eq!(key, find(&rotated.keys, &key.kid));
        }

        // Nothing since.
        tick().await;
        assert!(s
            .tenants
            .keys_changed_since(changed.db_now_ms)
            .await
            .unwrap()
            .keys
            .is_empty());

        // A reseal is a change too.
        let kid = &rotation.new_keys[0].kid;
        let mark = s.tenants.keys_changed_since(i64::MAX).await.unwrap();
        assert!(mark.keys.is_empty());
        tick().await;
        assert!(s
            .tenants
            .reseal_key(kid, MASTER, "master-2", vec![1, 2, 3])
            .await
            .unwrap());
        let resealed = s.tenants.keys_changed_since(mark.db_now_ms).await.unwrap();
        assert_eq!(kids(&resealed.keys), vec![kid.clone()]);
        assert_eq!(resealed.keys[0].master_key_id, "master-2");
    }

    pub async fn prune_keys_deletes_only_expired_retired_and_old_revoked_keys(s: &Stores) {
        let (graceful_tenant, keys) = tenant_with_keys(s).await;
        s.tenants
            .rotate_keys(graceful(graceful_tenant, T0 + 100))
            .await
            .unwrap();
        let (revoked_tenant, revoked_keys) = tenant_with_keys(s).await;
        s.tenants.rotate_keys(revoke(revoked_tenant, T0 + 100)).await.unwrap();
        let retired_access = &pick(&keys, KeyKind::Access, KeyState::Active).kid;
        let retired_refresh = &pick(&keys, KeyKind::Refresh, KeyState::Active).kid;
        let access_until = T0 + 100 + ACCESS_GRACE;
        let refresh_until = T0 + 100 + REFRESH_GRACE;

        // A retired key verifies through its `verify_until`.
        assert_eq!(s.tenants.prune_keys(access_until).await.unwrap(), 0);
        assert!(s.tenants.key(retired_access).await.unwrap().is_some());
        assert_eq!(s.tenants.prune_keys(access_until + 1).await.unwrap(), 1);
        assert_eq!(s.tenants.key(retired_access).await.unwrap(), None);
        assert_eq!(s.tenants.prune_keys(refresh_until).await.unwrap(), 0);
        assert_eq!(s.tenants.prune_keys(refresh_until + 1).await.unwrap(), 1);
        assert_eq!(s.tenants.key(retired_refresh).await.unwrap(), None);

        // A revoked key is kept a week after its revocation.
        let revoked_until = T0 + 100 + KEY_REVOKED_RETENTION_SECS;
        assert_eq!(s.tenants.prune_keys(revoked_until).await.unwrap(), 0);
        assert!(s.tenants.key(&revoked_keys[0].kid).await.unwrap().is_some());
        assert_eq!(s.tenants.prune_keys(revoked_until + 1).await.unwrap(), 4);
        for key in &revoked_keys {
            assert_eq!(s.tenants.key(&key.kid).await.unwrap(), None);
        }

        // Active and next keys are never pruned.
        assert_eq!(s.tenants.prune_keys(i64::MAX).await.unwrap(), 0);
        for tenant in [graceful_tenant, revoked_tenant] {
            let left = s.tenants.tenant_keys(tenant).await.unwrap();
            assert_eq!(left.len(), 4);
            for kind in KeyKind::ALL {
                assert_eq!(count(&left, kind, KeyState::Active), 1);
                assert_eq!(count(&left, kind, KeyState::Next), 1);
            }
        }
    }

    pub async fn reseal_is_a_compare_and_set_on_the_master_key(s: &Stores) {
        let (tenant, keys) = tenant_with_keys(s).await;
        let (revoked_tenant, revoked_keys) = tenant_with_keys(s).await;
        s.tenants.rotate_keys(revoke(revoked_tenant, T0 + 100)).await.unwrap();

        // Everything still sealed under master-1, never the revoked keys.
        let todo = s.tenants.keys_sealed_by_other("master-2", 100).await.unwrap();
        assert_eq!(todo.len(), 8);
        assert!(todo.iter().all(|k| k.master_key_id == MASTER && k.sealed.is_some()));
        assert!(todo.windows(2).all(|w| w[0].kid < w[1].kid), "ordered by kid");
        assert!(revoked_keys.iter().all(|r| todo.iter().all(|k| k.kid != r.kid)));
        assert!(s.tenants.keys_sealed_by_other(MASTER, 100).await.unwrap().is_empty());
        assert_eq!(s.tenants.keys_sealed_by_other("master-2", 3).await.unwrap(), todo[..3]);

        let kid = &keys[0].kid;
        let before = s.tenants.key(kid).await.unwrap().unwrap();
        tick().await;
        assert!(s
            .tenants
            .reseal_key(kid, MASTER, "master-2", vec![9, 0, 9])
            .await
            .unwrap());
        let after = s.tenants.key(kid).await.unwrap().unwrap();
        assert_eq!(
            after,
            StoredKey {
                master_key_id: "master-2".to_owned(),
                sealed: Some(vec![9, 0, 9]),
                changed_at_ms: after.changed_at_ms,
                ..before.clone()
            }
        );
        assert!(after.changed_at_ms > before.changed_at_ms);

        // Someone else already resealed it: nothing changes.
        assert!(!s.tenants.reseal_key(kid, MASTER, "master-3", vec![1]).await.unwrap());
        assert_eq!(s.tenants.key(kid).await.unwrap(), Some(after));
        assert!(!s
            .tenants
            .reseal_key("no-such-kid", MASTER, "master-2", vec![1])
            .await
            .unwrap());
        // A revoked key has nothing left to reseal.
        let revoked = &revoked_keys[0].kid;
        assert!(!s
            .tenants
            .reseal_key(revoked, MASTER, "master-2", vec![1])
            .await
            .unwrap());
        let still = s.tenants.key(revoked).await.unwrap().unwrap();
        assert_eq!((still.sealed, still.master_key_id.as_str()), (None, MASTER));

        let left = s.tenants.keys_sealed_by_other("master-2", 100).await.unwrap();
        assert_eq!(left.len(), 7);
        assert!(left.iter().all(|k| k.kid != *kid));
        assert_eq!(s.tenants.tenant_keys(tenant).await.unwrap().len(), 4);
    }

    // ---- audit ----

    fn audit_event(tenant: TenantId, at: i64, kind: &str) -> NewAuditEvent {
        NewAuditEvent {
            tenant,
            at,
            kind: kind.to_owned(),
            user: Some(UserId::random()),
            session: Some(SessionId::random()),
            ip: Some("203.0.113.7".to_owned()),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".to_owned()),
            detail: Some(r#"{"reason":"bad password","attempt":3}"#.to_owned()),
        }
    }

    /// What `event` was appended as.
    fn appended(event: &AuditEvent) -> NewAuditEvent {
        NewAuditEvent {
            tenant: event.tenant,
            at: event.at,
            kind: event.kind.clone(),
            user: event.user,
            session: event.session,
            ip: event.ip.clone(),
            user_agent: event.user_agent.clone(),
            detail: event.detail.clone(),
        }
    }

    pub async fn audit_events_page_newest_first_per_tenant(s: &Stores) {
        let a = tenant(s).await;
        let b = tenant(s).await;
        let bare = NewAuditEvent {
            user: None,
            session: None,
            ip: None,
            user_agent: None,
            detail: None,
            ..audit_event(a, T0 + 3, "session.revoked")
        };
        let events = vec![
            audit_event(a, T0, "login.succeeded"),
            audit_event(b, T0, "login.succeeded"),
            audit_event(a, T0 + 1, "login.failed"),
            audit_event(a, T0 + 2, "password.changed"),
            audit_event(b, T0 + 1, "login.failed"),
            bare,
            audit_event(a, T0 + 4, "login.succeeded"),
        ];
        s.audit.append_audit(&events).await.unwrap();
        s.audit.append_audit(&[]).await.unwrap();

        let all = s.audit.audit_events(a, None, 100).await.unwrap();
        let expected: Vec<NewAuditEvent> = events.iter().rev().filter(|e| e.tenant == a).cloned().collect();
        assert_eq!(all.iter().map(appended).collect::<Vec<_>>(), expected);
        assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest (highest id) first");
        let of_b = s.audit.audit_events(b, None, 100).await.unwrap();
        assert_eq!(
            of_b.iter().map(appended).collect::<Vec<_>>(),
            vec![events[4].clone(), events[1].clone()]
        );

        assert_eq!(s.audit.audit_events(a, None, 2).await.unwrap(), all[..2]);
        assert_eq!(s.audit.audit_events(a, Some(all[1].id), 2).await.unwrap(), all[2..4]);
        assert_eq!(s.audit.audit_events(a, Some(all[3].id), 2).await.unwrap(), all[4..]);
        assert!(s.audit.audit_events(a, Some(all[4].id), 2).await.unwrap().is_empty());
        assert!(s.audit.audit_events(a, None, 0).await.unwrap().is_empty());
        // A cursor taken from another tenant's page shows only this tenant's.
        assert_eq!(s.audit.audit_events(a, Some(of_b[0].id), 100).await.unwrap(), all[2..]);
        assert!(s
            .audit
            .audit_events(TenantId::random(), None, 100)
            .await
            .unwrap()
            .is_empty());

        // A later append comes first.
        let later = audit_event(a, T0 + 5, "logout");
        s.audit.append_audit(std::slice::from_ref(&later)).await.unwrap();
        let newest = s.audit.audit_events(a, None, 1).await.unwrap();
        assert_eq!(newest.iter().map(appended).collect::<Vec<_>>(), vec![later]);
        assert!(newest[0].id > all[0].id);
    }

    pub async fn audit_of_an_unknown_tenant_stores_nothing(s: &Stores) {
        let a = tenant(s).await;
        let err = s
            .audit
            .append_audit(&[
                audit_event(a, T0, "login.succeeded"),
                audit_event(TenantId::random(), T0, "login.succeeded"),
            ])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(Conflict::UnknownTenant)), "{err:?}");
        assert!(s.audit.audit_events(a, None, 100).await.unwrap().is_empty());
    }

    pub async fn prune_audit_deletes_old_events_in_batches(s: &Stores) {
        let a = tenant(s).await;
        let b = tenant(s).await;
        let events: Vec<NewAuditEvent> = (0..10)
            .map(|i| audit_event(if i % 2 == 0 { a } else { b }, T0 + i, "login.succeeded"))
            .collect();
        s.audit.append_audit(&events).await.unwrap();

        assert_eq!(s.audit.prune_audit(T0 + 5, 3).await.unwrap(), 3);
        assert_eq!(s.audit.prune_audit(T0 + 5, 3).await.unwrap(), 2);
        assert_eq!(s.audit.prune_audit(T0 + 5, 3).await.unwrap(), 0);
        let mut left: Vec<AuditEvent> = s.audit.audit_events(a, None, 100).await.unwrap();
        left.extend(s.audit.audit_events(b, None, 100).await.unwrap());
        let mut at: Vec<i64> = left.iter().map(|e| e.at).collect();
        at.sort_unstable();
        assert_eq!(at, (T0 + 5..T0 + 10).collect::<Vec<_>>());
        assert_eq!(s.audit.prune_audit(T0 + 100, 100).await.unwrap(), 5);
        assert!(s.audit.audit_events(a, None, 100).await.unwrap().is_empty());
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
                secrets: Arc::new(store.clone()),
                tenants: Arc::new(store.clone()),
                audit: Arc::new(store.clone()),
                account_tokens: Arc::new(store.clone()),
                revocations: Arc::new(store),
                announces: false,
                reopen: Box::new(move || open(path.clone())),
                _keep: Box::new(()),
            }
        })
    }

    store_suite!(sqlite, super::sqlite_stores, +tenants);
}

#[cfg(test)]
mod sqlite_only {
    use std::path::Path;

    use tessera_core::{Email, PersonName, Role, SessionId, TenantId, UserId};
    use tessera_store::{
        Health, NewSession, NewUser, RefreshState, SessionStore, SqliteStore, StoreError, TenantStore, UserStore,
    };
    use uuid::Uuid;

    const T0: i64 = 1_700_000_000;

    fn new_user(email: &str) -> NewUser {
        NewUser {
            id: UserId::random(),
            tenant: TenantId::DEFAULT,
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
            .find_user_by_email(TenantId::DEFAULT, &Email::parse("grace@example.com").unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    }

    #[tokio::test]
    async fn migrating_from_0002_keeps_users_and_sessions_in_the_default_tenant() {
        use tessera_store::{Rotation, RotationOutcome, Session, User};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.db");
        let store = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
        let (_old_dir, old) = crate::migrations_before_tenants("sqlite");
        sqlx::migrate::Migrator::new(old.as_path())
            .await
            .unwrap()
            .run(store.pool())
            .await
            .unwrap();
        // Everything after 0002 is pending.
        assert_eq!(
            store.pending_migrations().await.unwrap(),
            crate::migration_count("sqlite") - 2
        );

        // A user with a rotated session, and one without, as the 0002 build
        // wrote them.
        let (user, session, lonely) = (UserId::random(), SessionId::random(), UserId::random());
        let (jti1, jti2, access2) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        for (id, email) in [(user, "ada@example.com"), (lonely, "grace@example.com")] {
            sqlx::query(
                "INSERT INTO users (id, email, email_verified, password_hash, first_name, last_name, role, \
                 created_at) VALUES (?1, ?2, 1, '$argon2id$old-hash', 'Ada', 'Lovelace', 'admin', ?3)",
            )
            .bind(id.to_string())
            .bind(email)
            .bind(T0)
            .execute(store.pool())
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent, ip, \
             current_jti, current_access_jti, current_issued_at, previous_jti, rotated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'Mozilla/5.0', '198.51.100.1', ?6, ?7, ?4, ?8, ?4)",
        )
        .bind(session.to_string())
        .bind(user.to_string())
        .bind(T0)
        .bind(T0 + 50)
        .bind(T0 + 3600)
        .bind(jti2.to_string())
        .bind(access2.to_string())
        .bind(jti1.to_string())
        .execute(store.pool())
        .await
        .unwrap();

        store.migrate().await.unwrap();
        assert_eq!(store.pending_migrations().await.unwrap(), 0);

        let email = Email::parse("ada@example.com").unwrap();
        let migrated = User {
            id: user,
            tenant: TenantId::DEFAULT,
            email: email.clone(),
            email_verified: true,
            first_name: "Ada".to_owned(),
            last_name: "Lovelace".to_owned(),
            role: Role::parse("admin").unwrap(),
            created_at: T0,
        };
        assert_eq!(store.find_user(user).await.unwrap(), Some(migrated.clone()));
        let record = store
            .find_user_by_email(TenantId::DEFAULT, &email)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.user, migrated);
        assert_eq!(record.password_hash, "$argon2id$old-hash");
        assert_eq!(
            store.find_user(lonely).await.unwrap().unwrap().tenant,
            TenantId::DEFAULT
        );

        let expected = Session {
            id: session,
            user_id: user,
            created_at: T0,
            last_used_at: T0 + 50,
            expires_at: T0 + 3600,
            user_agent: Some("Mozilla/5.0".to_owned()),
            ip: Some("198.51.100.1".to_owned()),
            current: RefreshState {
                jti: jti2,
                access_jti: access2,
                issued_at: T0 + 50,
                expires_at: T0 + 3600,
            },
            email: email.clone(),
            role: Role::parse("admin").unwrap(),
            tenant: TenantId::DEFAULT,
        };
        assert_eq!(
            store.session(user, session, T0 + 55).await.unwrap(),
            Some(expected.clone())
        );
        // The rotation bookkeeping survived too: the replaced token is
        // still within its grace window.
        let retry = Rotation {
            user,
            session,
            presented_jti: jti1,
            next: RefreshState {
                jti: Uuid::new_v4(),
                access_jti: Uuid::new_v4(),
                issued_at: T0 + 55,
                expires_at: T0 + 7200,
            },
            now: T0 + 55,
            grace_secs: 10,
        };
        assert_eq!(store.rotate(retry).await.unwrap(), RotationOutcome::Grace(expected));

        // The email is unique per tenant now, and sessions still follow
        // their user.
        let err = store.create_user(new_user("ada@example.com")).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict(tessera_store::Conflict::EmailTaken)),
            "{err:?}"
        );
        let acme = tessera_store::NewTenant {
            id: TenantId::random(),
            slug: tessera_core::TenantSlug::parse("acme").unwrap(),
            name: tessera_core::TenantName::parse("Acme").unwrap(),
            api_key_hash: None,
            created_at: T0,
        };
        let acme = store.create_tenant(acme, Vec::new(), None).await.unwrap().id;
        let elsewhere = store
            .create_user(NewUser {
                tenant: acme,
                ..new_user("ada@example.com")
            })
            .await
            .unwrap();
        assert_eq!(elsewhere.tenant, acme);
        let fresh = new_session(lonely);
        let fresh_id = fresh.id;
        store.create_session(fresh).await.unwrap();
        assert!(store.session(lonely, fresh_id, T0).await.unwrap().is_some());
        assert!(store.delete_user(user).await.unwrap());
        assert!(store.delete_user(lonely).await.unwrap());
        assert_eq!(store.session(user, session, T0 + 55).await.unwrap(), None);
        let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM sessions")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(left, 0);
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
            "SELECT group_concat(sql, ';') FROM sqlite_master WHERE sql IS NOT NULL AND tbl_name IN \
             ('users', 'sessions', 'tenants', 'tenant_keys', 'audit_events', 'revoked_sessions')",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        for name in [
            "users_pkey",
            "users_tenant_email_key",
            "users_tenant_id_fkey",
            "users_tenant_id_idx",
            "sessions_pkey",
            "sessions_user_id_fkey",
            "REFERENCES \"users\" (id) ON DELETE CASCADE",
            "sessions_user_id_idx",
            "sessions_expires_at_idx",
            "tenants_pkey",
            "tenants_slug_key",
            "tenants_api_key_hash_check",
            "tenant_keys_pkey",
            "tenant_keys_tenant_id_fkey",
            "tenant_keys_kind_check",
            "tenant_keys_state_check",
            "tenant_keys_sealed_check",
            "tenant_keys_one_active",
            "tenant_keys_one_next",
            "tenant_keys_changed_at_idx",
            "tenant_keys_tenant_id_idx",
            "audit_events_pkey",
            "audit_events_tenant_id_fkey",
            "audit_events_tenant_id_idx",
            "audit_events_at_idx",
            "revoked_sessions_pkey",
            "revoked_sessions_revoked_at_idx",
            "revoked_sessions_expires_at_idx",
        ] {
            assert!(schema.contains(name), "{name} missing from {schema}");
        }
        // Renaming the rebuilt tables left nothing behind.
        for gone in ["users_new", "sessions_new", "users_email_key"] {
            assert!(!schema.contains(gone), "{gone} left in {schema}");
        }
        let (violations,): (i64,) = sqlx::query_as("SELECT count(*) FROM pragma_foreign_key_check")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(violations, 0);
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
                tenant: TenantId::DEFAULT,
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

    #[test]
    fn debug_output_never_shows_sealed_keys_or_api_key_hashes() {
        use tessera_core::{TenantName, TenantSlug};
        use tessera_store::{KeyKind, KeyState, NewKey, NewTenant, StoredKey, Tenant, TenantRecord};

        // Bytes whose decimal and hex spellings appear nowhere else.
        let secret = vec![0xab; 37];
        let shown = |debug: &str| !debug.contains("171") && !debug.contains("ab, ") && !debug.contains("0xab");

        let new_tenant = NewTenant {
            id: TenantId::random(),
            slug: TenantSlug::parse("acme").unwrap(),
            name: TenantName::parse("Acme").unwrap(),
            api_key_hash: Some(secret.clone()),
            created_at: T0,
        };
        let debug = format!("{new_tenant:?}");
        assert!(
            shown(&debug) && debug.contains("acme") && debug.contains("[redacted]"),
            "{debug}"
        );

        let record = TenantRecord {
            tenant: Tenant {
                id: new_tenant.id,
                slug: new_tenant.slug.clone(),
                name: "Acme".to_owned(),
                created_at: T0,
            },
            api_key_hash: Some(secret.clone()),
        };
        let debug = format!("{record:?}");
        assert!(shown(&debug) && debug.contains("[redacted]"), "{debug}");

        let key = NewKey {
            kid: "access-1".to_owned(),
            tenant: new_tenant.id,
            kind: KeyKind::Access,
            state: KeyState::Active,
            master_key_id: "master-2024".to_owned(),
            sealed: secret.clone(),
            created_at: T0,
        };
        let debug = format!("{key:?}");
        assert!(
            shown(&debug) && debug.contains("access-1") && debug.contains("sealed_len: 37"),
            "{debug}"
        );

        let stored = StoredKey {
            kid: "access-1".to_owned(),
            tenant: new_tenant.id,
            kind: KeyKind::Access,
            state: KeyState::Active,
            master_key_id: "master-2024".to_owned(),
            sealed: Some(secret),
            created_at: T0,
            activated_at: Some(T0),
            retired_at: None,
            verify_until: None,
            changed_at_ms: 1,
        };
        let debug = format!("{stored:?}");
        assert!(shown(&debug) && debug.contains("sealed_len: Some(37)"), "{debug}");
    }

    #[test]
    fn key_kinds_and_states_spell_as_stored() {
        use tessera_store::{KeyKind, KeyState};
        for kind in KeyKind::ALL {
            assert_eq!(KeyKind::parse(kind.as_str()), Some(kind));
        }
        for state in KeyState::ALL {
            assert_eq!(KeyState::parse(state.as_str()), Some(state));
        }
        assert_eq!(KeyKind::Refresh.as_str(), "refresh");
        assert_eq!(KeyState::Retired.as_str(), "retired");
        assert_eq!(KeyKind::parse("Access"), None);
        assert_eq!(KeyState::parse("gone"), None);
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
            let sessions = Arc::new(sessions);
            Stores {
                users,
                sessions: sessions.clone(),
                revocations: sessions,
                announces: true,
                secrets: Arc::new(sql.clone()),
                tenants: Arc::new(sql.clone()),
                audit: Arc::new(sql.clone()),
                account_tokens: Arc::new(sql),
                reopen: Box::new(move || open(path.clone(), redis.clone(), prefix.clone())),
                _keep: Box::new(()),
            }
        })
    }

    store_suite!(redis, super::redis_stores);
    store_suite!(redis_cluster, super::redis_cluster_stores);
}

#[cfg(test)]
#[path = "support/proxy.rs"]
mod proxy;

#[cfg(test)]
mod postgres_backend;

/// The rate limiters' suite, in memory, Redis and Redis Cluster.
#[cfg(test)]
#[macro_use]
mod ratelimit;
