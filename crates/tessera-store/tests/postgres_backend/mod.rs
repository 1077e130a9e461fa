//! The PostgreSQL backend held to the suite, and what only PostgreSQL has.
//!
//! Needs a running PostgreSQL: `TESSERA_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test` (a role that may `CREATE
//! DATABASE`, on a database that exists). Every test gets a database of its
//! own, `tessera_test_<uuid>`, dropped when the test ends, so tests run in
//! parallel without seeing each other. An unreachable server fails the tests
//! with a message saying how to start it; nothing is skipped.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, Executor};
use tessera_store::PostgresStore;
use uuid::Uuid;

use crate::proxy::FreezableProxy;
use crate::Stores;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server the tests use, as a URL to a database that exists.
fn admin_url() -> String {
    std::env::var("TESSERA_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// `base` with its database replaced, and its `host:port` too if given.
fn url_for(base: &str, host_port: Option<&str>, database: &str) -> String {
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let (scheme, rest) = base.split_at(scheme_end);
    let (rest, query) = match rest.find('?') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (userinfo, server) = match authority.rfind('@') {
        Some(at) => authority.split_at(at + 1),
        None => ("", authority),
    };
    format!("{scheme}{userinfo}{}/{database}{query}", host_port.unwrap_or(server))
}

/// The URL without its user and password, for messages.
fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}{}", &url[..scheme + 3], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// Where the server listens, to put a proxy in front of it.
fn server_addr() -> SocketAddr {
    let options = PgConnectOptions::from_str(&admin_url()).unwrap();
    let host = match options.get_host() {
        "localhost" => "127.0.0.1",
        host => host,
    };
    format!("{host}:{}", options.get_port()).parse().unwrap()
}

/// A connection to the tests' server, or a failed test saying how to get one.
pub async fn admin_connection() -> PgConnection {
    let url = admin_url();
    let failure = match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(&url)).await {
        Ok(Ok(conn)) => return conn,
        Ok(Err(err)) => err.to_string(),
        Err(_) => "no answer within 10 s".to_owned(),
    };
    panic!(
        "the PostgreSQL tests need a PostgreSQL server, and {} is not reachable: {failure}. \
         Start the local one with `pg_ctlcluster --skip-systemctl-redirect 15 main start`, \
         or point TESSERA_TEST_POSTGRES_URL at a server where this role may CREATE DATABASE.",
        shown(&url)
    );
}

/// A database of its own for one test, dropped (connections and all) when
/// this is dropped, even when the test failed.
pub struct TempDatabase {
    pub name: String,
    pub url: String,
}

impl TempDatabase {
    pub async fn create() -> Self {
        let mut admin = admin_connection().await;
        let name = format!("tessera_test_{}", Uuid::new_v4().simple());
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
        admin.close().await.unwrap();
        let url = url_for(&admin_url(), None, &name);
        Self { name, url }
    }

    /// The database's URL, reached through `host_port` instead.
    pub fn url_via(&self, host_port: &str) -> String {
        url_for(&admin_url(), Some(host_port), &self.name)
    }

    /// A connection of its own to the database, outside any store.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.unwrap()
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async; a runtime of its own on a thread of its
        // own does the async work without blocking on the test's runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut admin = PgConnection::connect(&admin_url()).await?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await?;
                admin.close().await
            })
        })
        .join();
        // A database left behind is harmless (its name is unique): report it,
        // without a panic that would abort a test already unwinding.
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("could not drop the test database {}: {err}", self.name),
            Err(_) => eprintln!("could not drop the test database {}", self.name),
        }
    }
}

/// A fresh, migrated database of its own.
pub async fn postgres_stores() -> Stores {
    let database = TempDatabase::create().await;
    let mut stores = open(database.url.clone()).await;
    stores._keep = Box::new(database);
    stores
}

/// The database at `url`, connected and migrated.
fn open(url: String) -> Pin<Box<dyn Future<Output = Stores> + Send>> {
    Box::pin(async move {
        let store = PostgresStore::connect(&url).await.unwrap();
        store.migrate().await.unwrap();
        Stores {
            users: Arc::new(store.clone()),
            sessions: Arc::new(store.clone()),
            secrets: Arc::new(store.clone()),
            tenants: Arc::new(store.clone()),
            audit: Arc::new(store.clone()),
            account_tokens: Arc::new(store.clone()),
            revocations: Arc::new(store),
            announces: true,
            reopen: Box::new(move || open(url.clone())),
            _keep: Box::new(()),
        }
    })
}

store_suite!(postgres, super::postgres_stores, +tenants);

/// A [`FreezableProxy`] in front of the tests' PostgreSQL.
async fn freezable_proxy() -> FreezableProxy {
    FreezableProxy::start(server_addr()).await
}

mod postgres_only {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use std::str::FromStr;

    use sqlx::postgres::PgConnectOptions;
    use sqlx::{Connection, Executor};
    use tessera_core::{Email, PersonName, Role, SessionId, TenantId, UserId};
    use tessera_core::{TenantName, TenantSlug};
    use tessera_store::{
        Conflict, Health, KeyChangeListener, KeyKind, KeyRotation, KeyState, NewKey, NewSession, NewTenant, NewUser,
        PostgresOptions, PostgresStore, RefreshState, RevocationEvent, RevocationListener, RevocationStore, Rotation,
        RotationMode, RotationOutcome, Session, SessionStore, StoreError, TenantStore, User, UserStore,
        REVOCATION_LISTENER_PING_EVERY,
    };
    use tokio::net::TcpListener;
    use tokio::sync::Barrier;
    use uuid::Uuid;

    use super::TempDatabase;

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

    fn refresh(at: i64) -> RefreshState {
        RefreshState {
            jti: Uuid::new_v4(),
            access_jti: Uuid::new_v4(),
            issued_at: at,
            expires_at: at + 3600,
        }
    }

    fn new_session(user: UserId) -> NewSession {
        NewSession {
            id: SessionId::random(),
            user_id: user,
            created_at: T0,
            user_agent: None,
            ip: None,
            refresh: refresh(T0),
        }
    }

    /// Short timeouts, so the fault tests are quick.
    fn quick() -> PostgresOptions {
        PostgresOptions {
            max_connections: 4,
            acquire_timeout: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(1),
        }
    }

    async fn open(db: &TempDatabase, options: PostgresOptions) -> PostgresStore {
        let store = PostgresStore::connect_with(&db.url, options).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    fn assert_unavailable(result: Result<impl std::fmt::Debug, StoreError>) -> String {
        match result {
            Err(StoreError::Unavailable(source)) => source.to_string(),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    // ---- schema ----

    #[tokio::test]
    async fn migrations_are_idempotent_and_safe_from_instances_starting_together() {
        let db = TempDatabase::create().await;
        // Four instances start at once on an empty database.
        let mut starting = Vec::new();
        for _ in 0..4 {
            let url = db.url.clone();
            starting.push(tokio::spawn(async move {
                let store = PostgresStore::connect(&url).await.unwrap();
                store.migrate().await.unwrap();
                store
            }));
        }
        let mut stores = Vec::new();
        for task in starting {
            stores.push(task.await.unwrap());
        }
        // And again, on an up-to-date schema.
        for store in &stores {
            store.migrate().await.unwrap();
        }
        let (applied, failed): (i64, i64) =
            sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE NOT success) FROM _sqlx_migrations")
                .fetch_one(stores[0].pool())
                .await
                .unwrap();
        assert_eq!((applied, failed), (crate::migration_count("postgres") as i64, 0));

        let user = stores[1].create_user(new_user("ada@example.com")).await.unwrap();
        assert_eq!(stores[2].find_user(user.id).await.unwrap(), Some(user));
    }

    #[tokio::test]
    async fn schema_names_its_constraints_and_uses_native_types() {
        let db = TempDatabase::create().await;
        let store = open(&db, PostgresOptions::default()).await;

        let constraints: Vec<(String,)> = sqlx::query_as(
            "SELECT conname::text FROM pg_constraint WHERE conrelid IN ('users'::regclass, \
             'sessions'::regclass, 'default_secrets'::regclass, 'tenants'::regclass, \
             'tenant_keys'::regclass, 'audit_events'::regclass, 'revoked_sessions'::regclass)",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let constraints: Vec<String> = constraints.into_iter().map(|(name,)| name).collect();
        for name in [
            "users_pkey",
            "users_tenant_email_key",
            "users_tenant_id_fkey",
            "sessions_pkey",
            "sessions_user_id_fkey",
            "sessions_rotation_check",
            "default_secrets_pkey",
            "default_secrets_single_row_check",
            "tenants_pkey",
            "tenants_slug_key",
            "tenants_api_key_hash_check",
            "tenant_keys_pkey",
            "tenant_keys_tenant_id_fkey",
            "tenant_keys_kind_check",
            "tenant_keys_state_check",
            "tenant_keys_sealed_check",
            "audit_events_pkey",
            "audit_events_tenant_id_fkey",
            "revoked_sessions_pkey",
        ] {
            assert!(
                constraints.iter().any(|c| c == name),
                "{name} missing from {constraints:?}"
            );
        }
        assert!(!constraints.iter().any(|c| c == "users_email_key"), "{constraints:?}");
        for fkey in [
            "sessions_user_id_fkey",
            "users_tenant_id_fkey",
            "tenant_keys_tenant_id_fkey",
            "audit_events_tenant_id_fkey",
        ] {
            let (on_delete,): (String,) =
                sqlx::query_as("SELECT confdeltype::text FROM pg_constraint WHERE conname = $1")
                    .bind(fkey)
                    .fetch_one(store.pool())
                    .await
                    .unwrap();
            assert_eq!(on_delete, "c", "{fkey}: ON DELETE CASCADE");
        }
        let indexes: Vec<(String,)> = sqlx::query_as(
            "SELECT indexname::text FROM pg_indexes WHERE tablename IN \
             ('sessions', 'users', 'tenant_keys', 'audit_events', 'revoked_sessions')",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        for name in [
            "sessions_user_id_idx",
            "sessions_expires_at_idx",
            "users_tenant_id_idx",
            "tenant_keys_one_active",
            "tenant_keys_one_next",
            "tenant_keys_changed_at_idx",
            "tenant_keys_tenant_id_idx",
            "audit_events_tenant_id_idx",
            "audit_events_at_idx",
            "revoked_sessions_revoked_at_idx",
            "revoked_sessions_expires_at_idx",
        ] {
            assert!(indexes.iter().any(|(i,)| i == name), "{name} missing from {indexes:?}");
        }

        let columns: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name IN \
             ('users', 'sessions', 'default_secrets', 'tenants', 'tenant_keys', 'audit_events', 'revoked_sessions')",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let type_of = |table: &str, column: &str| {
            columns
                .iter()
                .find(|(t, c, _)| t == table && c == column)
                .map(|(_, _, ty)| ty.clone())
                .unwrap_or_else(|| panic!("{table}.{column} missing"))
        };
        assert_eq!(type_of("users", "id"), "uuid");
        assert_eq!(type_of("users", "email_verified"), "boolean");
        assert_eq!(type_of("users", "created_at"), "bigint");
        assert_eq!(type_of("sessions", "user_id"), "uuid");
        assert_eq!(type_of("sessions", "previous_jti"), "uuid");
        assert_eq!(type_of("sessions", "expires_at"), "bigint");
        assert_eq!(type_of("default_secrets", "access"), "bytea");
        assert_eq!(type_of("users", "tenant_id"), "uuid");
        assert_eq!(type_of("tenants", "id"), "uuid");
        assert_eq!(type_of("tenants", "api_key_hash"), "bytea");
        assert_eq!(type_of("tenant_keys", "tenant_id"), "uuid");
        assert_eq!(type_of("tenant_keys", "sealed"), "bytea");
        assert_eq!(type_of("tenant_keys", "changed_at"), "bigint");
        assert_eq!(type_of("audit_events", "id"), "bigint");
        assert_eq!(type_of("audit_events", "user_id"), "uuid");
        assert_eq!(type_of("revoked_sessions", "session_id"), "uuid");
        assert_eq!(type_of("revoked_sessions", "expires_at"), "bigint");
        assert_eq!(type_of("revoked_sessions", "revoked_at"), "bigint");
        let (collation,): (Option<String>,) = sqlx::query_as(
            "SELECT collation_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = 'tenants' AND column_name = 'slug'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(collation.as_deref(), Some("C"), "slugs order bytewise, as in SQLite");

        // The secrets table holds one row at most, whatever writes to it.
        let err = sqlx::query(
            "INSERT INTO default_secrets (id, master_key_id, access, refresh, created_at) \
             VALUES (2, 'k', '\\x00', '\\x00', 0)",
        )
        .execute(store.pool())
        .await
        .unwrap_err();
        assert_eq!(
            err.as_database_error().and_then(|e| e.constraint()),
            Some("default_secrets_single_row_check")
        );
    }

    #[tokio::test]
    async fn an_unmigrated_database_is_corrupt_not_unavailable() {
        let db = TempDatabase::create().await;
        let store = PostgresStore::connect(&db.url).await.unwrap();
        store.ping().await.unwrap();
        let err = store.find_user(UserId::random()).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(why) if why.contains("42P01")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn undecodable_rows_are_corrupt_and_not_quoted() {
        let db = TempDatabase::create().await;
        let store = open(&db, PostgresOptions::default()).await;
        let user = store.create_user(new_user("ada@example.com")).await.unwrap();
        sqlx::query("UPDATE users SET email = 'Not An Email', role = 'Admin!' WHERE id = $1")
            .bind(user.id.as_uuid())
            .execute(store.pool())
            .await
            .unwrap();
        let err = store.find_user(user.id).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        assert!(!err.to_string().contains("Not An Email"), "{err}");

        let user = store.create_user(new_user("grace@example.com")).await.unwrap();
        let session = new_session(user.id);
        let id = session.id;
        store.create_session(session).await.unwrap();
        sqlx::query("UPDATE users SET role = '' WHERE id = $1")
            .bind(user.id.as_uuid())
            .execute(store.pool())
            .await
            .unwrap();
        let err = store.session(user.id, id, T0).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    }

    #[tokio::test]
    async fn migrating_from_0002_keeps_users_and_sessions_in_the_default_tenant() {
        let db = TempDatabase::create().await;
        let store = PostgresStore::connect(&db.url).await.unwrap();
        let (_old_dir, old) = crate::migrations_before_tenants("postgres");
        sqlx::migrate::Migrator::new(old.as_path())
            .await
            .unwrap()
            .run(store.pool())
            .await
            .unwrap();
        assert_eq!(
            store.pending_migrations().await.unwrap(),
            crate::migration_count("postgres") - 2
        );

        // A user with a rotated session, and one without, as the 0002 build
        // wrote them.
        let (user, session, lonely) = (UserId::random(), SessionId::random(), UserId::random());
        let (jti1, jti2, access2) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        for (id, email) in [(user, "ada@example.com"), (lonely, "grace@example.com")] {
            sqlx::query(
                "INSERT INTO users (id, email, email_verified, password_hash, first_name, last_name, role, \
                 created_at) VALUES ($1, $2, true, '$argon2id$old-hash', 'Ada', 'Lovelace', 'admin', $3)",
            )
            .bind(id.as_uuid())
            .bind(email)
            .bind(T0)
            .execute(store.pool())
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, user_agent, ip, \
             current_jti, current_access_jti, current_issued_at, previous_jti, rotated_at) \
             VALUES ($1, $2, $3, $4, $5, 'Mozilla/5.0', '198.51.100.1', $6, $7, $4, $8, $4)",
        )
        .bind(session.as_uuid())
        .bind(user.as_uuid())
        .bind(T0)
        .bind(T0 + 50)
        .bind(T0 + 3600)
        .bind(jti2)
        .bind(access2)
        .bind(jti1)
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
        // The rotation bookkeeping survived too: the replaced token is still
        // within its grace window.
        let retry = Rotation {
            user,
            session,
            presented_jti: jti1,
            next: refresh(T0 + 55),
            now: T0 + 55,
            grace_secs: 10,
        };
        assert_eq!(store.rotate(retry).await.unwrap(), RotationOutcome::Grace(expected));

        // The email is unique per tenant now; new rows name their tenant.
        let err = store.create_user(new_user("ada@example.com")).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(Conflict::EmailTaken)), "{err:?}");
        let acme = store.create_tenant(new_tenant(), Vec::new(), None).await.unwrap().id;
        let elsewhere = store
            .create_user(NewUser {
                tenant: acme,
                ..new_user("ada@example.com")
            })
            .await
            .unwrap();
        assert_eq!(elsewhere.tenant, acme);
        let (default,): (Option<String>,) = sqlx::query_as(
            "SELECT column_default::text FROM information_schema.columns \
             WHERE table_name = 'users' AND column_name = 'tenant_id'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(default, None, "no default tenant for new users");
        assert!(store.delete_user(user).await.unwrap());
        assert_eq!(store.session(user, session, T0 + 55).await.unwrap(), None);
    }

    #[tokio::test]
    async fn deleting_a_user_deletes_their_sessions() {
        let db = TempDatabase::create().await;
        let store = open(&db, PostgresOptions::default()).await;
        let user = store.create_user(new_user("ada@example.com")).await.unwrap();
        let session = new_session(user.id);
        let id = session.id;
        store.create_session(session).await.unwrap();

        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user.id.as_uuid())
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
    async fn a_large_backlog_is_purged_in_batches() {
        let db = TempDatabase::create().await;
        let store = open(&db, PostgresOptions::default()).await;
        let user = store.create_user(new_user("ada@example.com")).await.unwrap();
        let live = new_session(user.id);
        let live_id = live.id;
        store.create_session(live).await.unwrap();
        let backlog = 2 * PostgresStore::PURGE_BATCH + 500;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, \
             current_jti, current_access_jti, current_issued_at) \
             SELECT gen_random_uuid(), $1, 0, 0, 100 + n, gen_random_uuid(), gen_random_uuid(), 0 \
             FROM generate_series(1, $2) AS n",
        )
        .bind(user.id.as_uuid())
        .bind(backlog)
        .execute(store.pool())
        .await
        .unwrap();

        assert_eq!(store.purge_expired(T0).await.unwrap(), backlog.unsigned_abs());
        assert_eq!(store.purge_expired(T0).await.unwrap(), 0);
        assert!(store.session(user.id, live_id, T0).await.unwrap().is_some());
    }

    // ---- concurrency ----

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fifty_refreshes_on_two_instances_rotate_exactly_once_per_round() {
        const RACERS: usize = 50;
        let db = TempDatabase::create().await;
        // Enough connections that every racer reaches the row at once,
        // through two instances.
        let wide = PostgresOptions {
            max_connections: 25,
            ..PostgresOptions::default()
        };
        let instances: [Arc<dyn SessionStore>; 2] =
            [Arc::new(open(&db, wide.clone()).await), Arc::new(open(&db, wide).await)];
        let store = open(&db, PostgresOptions::default()).await;
        let user = store.create_user(new_user("ada@example.com")).await.unwrap();
        let session = new_session(user.id);
        let id = session.id;
        let mut current = session.refresh;
        store.create_session(session).await.unwrap();

        for round in 0..5 {
            let now = T0 + 100 * (round + 1);
            let start = Arc::new(Barrier::new(RACERS));
            let tasks: Vec<_> = (0..RACERS)
                .map(|i| {
                    let sessions = Arc::clone(&instances[i % 2]);
                    let start = Arc::clone(&start);
                    let rotation = Rotation {
                        user: user.id,
                        session: id,
                        presented_jti: current.jti,
                        next: refresh(now),
                        now,
                        grace_secs: 10,
                    };
                    tokio::spawn(async move {
                        start.wait().await;
                        sessions.rotate(rotation).await.unwrap()
                    })
                })
                .collect();
            let mut rotated = Vec::new();
            for task in tasks {
                match task.await.unwrap() {
                    RotationOutcome::Rotated(session) => rotated.push(session.current),
                    RotationOutcome::Grace(_) => {}
                    other => panic!("round {round}: expected Rotated or Grace, got {other:?}"),
                }
            }
            assert_eq!(rotated.len(), 1, "round {round}: {} rotated", rotated.len());
            current = rotated[0];
            let stored = store.session(user.id, id, now).await.unwrap().unwrap();
            assert_eq!(stored.current, current);
        }
    }

    // ---- faults ----

    #[tokio::test]
    async fn a_closed_port_is_unavailable_within_the_acquire_timeout() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap().port()
        };
        let started = Instant::now();
        let result = PostgresStore::connect(&format!("postgres://postgres@127.0.0.1:{port}/test")).await;
        let why = assert_unavailable(result);
        let took = started.elapsed();
        assert!(
            took < PostgresOptions::DEFAULT_ACQUIRE_TIMEOUT + Duration::from_secs(2),
            "{took:?}"
        );
        assert!(why.contains("PostgreSQL"), "{why}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_unavailable_not_a_hang() {
        // Accepts connections and never says a word.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let started = Instant::now();
        let result = PostgresStore::connect(&format!("postgres://postgres@{addr}/test")).await;
        assert_unavailable(result);
        let took = started.elapsed();
        assert!(
            took < PostgresOptions::DEFAULT_ACQUIRE_TIMEOUT + Duration::from_secs(2),
            "{took:?}"
        );
        silent.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_that_stops_answering_is_given_up_at_the_deadline() {
        let db = TempDatabase::create().await;
        let proxy = super::freezable_proxy().await;
        let options = quick();
        let store = PostgresStore::connect_with(&db.url_via(&proxy.addr.to_string()), options.clone())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let user = store.create_user(new_user("ada@example.com")).await.unwrap();

        // The network goes silent mid-call, after the pool checked the
        // connection: the server never even sees the query, so its statement
        // timeout cannot help.
        proxy.freeze_on(b"FROM users WHERE id = $1");
        let started = Instant::now();
        let why = assert_unavailable(store.find_user(user.id).await);
        let took = started.elapsed();
        let deadline = options.statement_timeout + PostgresStore::DEADLINE_MARGIN;
        assert!(took >= deadline / 2, "{took:?}");
        assert!(took < deadline + Duration::from_secs(2), "{took:?}");
        assert!(why.contains("did not answer"), "{why}");
        // Meanwhile nothing else gets through either (the pool's check of an
        // idle connection, or opening a new one, runs into the acquire
        // timeout), and nothing hangs.
        let started = Instant::now();
        assert_unavailable(store.ping().await);
        assert!(started.elapsed() < deadline + Duration::from_secs(2));

        // Once the network is back, so is the store.
        proxy.freeze(false);
        assert_eq!(store.find_user(user.id).await.unwrap(), Some(user));
    }

    /// A rotation held up on its way to the server just past the caller's
    /// deadline (the caller answered 503) reaches PostgreSQL soon after: it
    /// must change nothing, so the client's retry with the same token is an
    /// ordinary rotation and not a replay that ends the session.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rotation_that_reaches_the_server_after_the_caller_gave_up_changes_nothing() {
        let db = TempDatabase::create().await;
        let direct = open(&db, quick()).await;
        let proxy = super::freezable_proxy().await;
        // One connection, whose first rotation prepares the statement: the
        // held one is then a single write of Bind and Execute, as it is
        // almost always in production.
        let options = PostgresOptions {
            max_connections: 1,
            ..quick()
        };
        let through_proxy = PostgresStore::connect_with(&db.url_via(&proxy.addr.to_string()), options.clone())
            .await
            .unwrap();
        let user = direct.create_user(new_user("ada@example.com")).await.unwrap();
        let warm_up = new_session(user.id);
        let (warm_id, warm_refresh) = (warm_up.id, warm_up.refresh);
        direct.create_session(warm_up).await.unwrap();
        let warmed = through_proxy
            .rotate(Rotation {
                user: user.id,
                session: warm_id,
                presented_jti: warm_refresh.jti,
                next: refresh(T0 + 1),
                now: T0 + 1,
                grace_secs: 10,
            })
            .await
            .unwrap();
        assert!(matches!(warmed, RotationOutcome::Rotated(_)), "{warmed:?}");
        let new = new_session(user.id);
        let (id, first) = (new.id, new.refresh);
        direct.create_session(new).await.unwrap();
        let rotation = |now: i64| Rotation {
            user: user.id,
            session: id,
            presented_jti: first.jti,
            next: refresh(now),
            now,
            grace_secs: 10,
        };

        // The Bind carries the presented jti, as 16 bytes.
        proxy.freeze_on(first.jti.as_bytes());
        let started = Instant::now();
        assert_unavailable(through_proxy.rotate(rotation(T0 + 1)).await);
        let deadline = options.statement_timeout + PostgresStore::DEADLINE_MARGIN;
        assert!(started.elapsed() >= deadline, "{:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
        proxy.freeze(false);
        // Time for the held statement to reach the server and run.
        tokio::time::sleep(Duration::from_millis(500)).await;

        let session = direct.session(user.id, id, T0 + 2).await.unwrap().unwrap();
        assert_eq!(session.current, first, "the late rotation changed the session");
        let outcome = direct.rotate(rotation(T0 + 2)).await.unwrap();
        assert!(matches!(outcome, RotationOutcome::Rotated(_)), "{outcome:?}");
    }

    /// A connection of its own holding the row lock of `user` in an open
    /// transaction, as a stuck writer would.
    async fn lock_user_row(db: &TempDatabase, user: UserId) -> sqlx::PgConnection {
        let mut locker = db.connect().await;
        locker.execute("BEGIN").await.unwrap();
        sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
            .bind(user.as_uuid())
            .execute(&mut locker)
            .await
            .unwrap();
        locker
    }

    #[tokio::test]
    async fn a_statement_stuck_past_the_statement_timeout_is_unavailable() {
        let db = TempDatabase::create().await;
        let options = quick();
        let store = open(&db, options.clone()).await;
        let user = store.create_user(new_user("ada@example.com")).await.unwrap();
        let mut locker = lock_user_row(&db, user.id).await;

        let started = Instant::now();
        let why = assert_unavailable(store.set_password_hash(user.id, "$argon2id$new").await);
        let took = started.elapsed();
        // PostgreSQL cancelled it, before the client-side deadline.
        assert!(why.contains("statement timeout"), "{why}");
        assert!(took >= options.statement_timeout, "{took:?}");
        assert!(
            took < options.statement_timeout + PostgresStore::DEADLINE_MARGIN,
            "{took:?}"
        );

        locker.execute("ROLLBACK").await.unwrap();
        store.set_password_hash(user.id, "$argon2id$new").await.unwrap();
        locker.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_terminated_connection_is_unavailable_and_the_pool_recovers() {
        let db = TempDatabase::create().await;
        let store = open(&db, PostgresOptions::default()).await;
        let user = store.create_user(new_user("ada@example.com")).await.unwrap();
        let mut locker = lock_user_row(&db, user.id).await;

        // A write waits on the lock; an operator (or a failover) ends its
        // backend meanwhile.
        let waiting = {
            let store = store.clone();
            tokio::spawn(async move { store.set_password_hash(user.id, "$argon2id$new").await })
        };
        let mut admin = super::admin_connection().await;
        let mut terminated = false;
        for _ in 0..100 {
            let (count,): (i64,) = sqlx::query_as(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = $1 AND application_name = 'tessera' AND wait_event_type = 'Lock'",
            )
            .bind(&db.name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
            if count > 0 {
                terminated = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(terminated, "the store's write never waited on the lock");
        let why = assert_unavailable(waiting.await.unwrap());
        assert!(why.contains("administrator command"), "{why}");

        locker.execute("ROLLBACK").await.unwrap();
        store.set_password_hash(user.id, "$argon2id$new").await.unwrap();
        store.ping().await.unwrap();
        locker.close().await.unwrap();
        admin.close().await.unwrap();
    }

    #[tokio::test]
    async fn an_exhausted_pool_is_unavailable() {
        let db = TempDatabase::create().await;
        let options = quick();
        let store = open(&db, options.clone()).await;
        let mut held = Vec::new();
        for _ in 0..options.max_connections {
            held.push(store.pool().acquire().await.unwrap());
        }
        let started = Instant::now();
        assert_unavailable(store.find_user(UserId::random()).await);
        assert!(started.elapsed() < options.acquire_timeout + Duration::from_secs(1));
        drop(held);
        store.find_user(UserId::random()).await.unwrap();
    }

    #[tokio::test]
    async fn ping_answers_until_the_pool_closes() {
        let db = TempDatabase::create().await;
        let store = open(&db, PostgresOptions::default()).await;
        store.ping().await.unwrap();
        store.pool().close().await;
        assert_unavailable(store.ping().await);
    }

    #[tokio::test]
    async fn bad_options_urls_and_databases_are_refused() {
        let db = TempDatabase::create().await;
        for options in [
            PostgresOptions {
                max_connections: 0,
                ..PostgresOptions::default()
            },
            PostgresOptions {
                statement_timeout: Duration::ZERO,
                ..PostgresOptions::default()
            },
            PostgresOptions {
                acquire_timeout: Duration::ZERO,
                ..PostgresOptions::default()
            },
        ] {
            assert_unavailable(PostgresStore::connect_with(&db.url, options).await);
        }
        for url in [
            "postgres://postgres@127.0.0.1:notaport/test".to_owned(),
            super::url_for(&super::admin_url(), None, "tessera_no_such_database"),
        ] {
            let started = Instant::now();
            assert_unavailable(PostgresStore::connect(&url).await);
            assert!(started.elapsed() < Duration::from_secs(5), "{url}");
        }
    }

    #[tokio::test]
    async fn the_statement_timeout_is_set_on_every_connection() {
        let db = TempDatabase::create().await;
        let store = open(&db, quick()).await;
        let mut conns = Vec::new();
        for _ in 0..quick().max_connections {
            conns.push(store.pool().acquire().await.unwrap());
        }
        for conn in &mut conns {
            let (timeout,): (String,) = sqlx::query_as("SHOW statement_timeout")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(timeout, "1s");
            let (name,): (String,) = sqlx::query_as("SHOW application_name")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(name, "tessera");
        }
    }

    #[tokio::test]
    async fn debug_output_never_shows_the_password() {
        let db = TempDatabase::create().await;
        let user = PgConnectOptions::from_str(&db.url).unwrap().get_username().to_owned();
        let userinfo = db
            .url
            .split_once("://")
            .and_then(|(_, rest)| rest.rsplit_once('@'))
            .map(|(u, _)| u);
        // A URL without a password reaches a server that does not ask for
        // one, which then ignores one that is given.
        let (url, password) = match userinfo.and_then(|u| u.split_once(':')) {
            Some((_, password)) => (db.url.clone(), password.to_owned()),
            None => {
                let with = db
                    .url
                    .replacen(&format!("://{user}@"), &format!("://{user}:hunter2-secret@"), 1);
                (with, "hunter2-secret".to_owned())
            }
        };
        assert!(
            url.contains(&password),
            "the test URL names no user to add a password to"
        );
        let store = PostgresStore::connect(&url).await.unwrap();
        let debug = format!("{store:?}");
        assert!(!debug.contains(&password), "{debug}");
        assert!(debug.contains(&db.name), "{debug}");
    }

    // ---- key change notifications ----

    fn new_tenant() -> NewTenant {
        NewTenant {
            id: TenantId::random(),
            slug: TenantSlug::parse(&format!("t-{}", &Uuid::new_v4().simple().to_string()[..12])).unwrap(),
            name: TenantName::parse("Acme").unwrap(),
            api_key_hash: None,
            created_at: T0,
        }
    }

    fn new_key(tenant: TenantId, kind: KeyKind, state: KeyState) -> NewKey {
        NewKey {
            kid: format!("{kind}-{}", Uuid::new_v4().simple()),
            tenant,
            kind,
            state,
            master_key_id: "master-1".to_owned(),
            sealed: vec![1, 2, 3],
            created_at: T0,
        }
    }

    fn key_set(tenant: TenantId) -> Vec<NewKey> {
        KeyKind::ALL
            .iter()
            .flat_map(|kind| {
                [
                    new_key(tenant, *kind, KeyState::Active),
                    new_key(tenant, *kind, KeyState::Next),
                ]
            })
            .collect()
    }

    fn rotation(tenant: TenantId, mode: RotationMode) -> KeyRotation {
        let new_keys = match mode {
            RotationMode::Graceful => KeyKind::ALL
                .iter()
                .map(|kind| new_key(tenant, *kind, KeyState::Next))
                .collect(),
            RotationMode::Revoke => key_set(tenant),
        };
        KeyRotation {
            tenant,
            mode,
            now: T0 + 100,
            access_verify_until: T0 + 1000,
            refresh_verify_until: T0 + 2000,
            new_keys,
            expect_active_access: None,
        }
    }

    async fn next_change(listener: &mut Box<dyn KeyChangeListener>, within: Duration) -> Option<TenantId> {
        tokio::time::timeout(within, listener.next())
            .await
            .unwrap_or_else(|_| panic!("no key change announced within {within:?}"))
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn key_changes_on_one_instance_reach_another_within_a_second() {
        const SECOND: Duration = Duration::from_secs(1);
        let db = TempDatabase::create().await;
        let writer = open(&db, PostgresOptions::default()).await;
        let reader = open(&db, PostgresOptions::default()).await;
        let mut listener = reader.listen_key_changes().await.unwrap().unwrap();

        let tenant = new_tenant();
        let id = tenant.id;
        writer.create_tenant(tenant, key_set(id), None).await.unwrap();
        assert_eq!(next_change(&mut listener, SECOND).await, Some(id));

        writer.rotate_keys(rotation(id, RotationMode::Graceful)).await.unwrap();
        assert_eq!(next_change(&mut listener, SECOND).await, Some(id));

        // What changes no key announces nothing: a tenant without keys, a
        // rotation that fails (its transaction rolls back, with its NOTIFY),
        // an install that finds keys. So the next announcement is the next
        // real change's.
        let bare = writer.create_tenant(new_tenant(), Vec::new(), None).await.unwrap().id;
        let err = writer
            .rotate_keys(rotation(bare, RotationMode::Graceful))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(Conflict::NoNextKey)), "{err:?}");
        let installed = writer
            .install_keys_if_absent(TenantId::DEFAULT, key_set(TenantId::DEFAULT))
            .await
            .unwrap();
        assert_eq!(next_change(&mut listener, SECOND).await, Some(TenantId::DEFAULT));
        assert_eq!(
            writer
                .install_keys_if_absent(TenantId::DEFAULT, key_set(TenantId::DEFAULT))
                .await
                .unwrap(),
            installed
        );

        let kid = &installed[0].kid;
        assert!(writer
            .reseal_key(kid, "master-1", "master-2", vec![4, 5])
            .await
            .unwrap());
        assert_eq!(next_change(&mut listener, SECOND).await, Some(TenantId::DEFAULT));
        assert!(!writer.reseal_key(kid, "master-1", "master-3", vec![6]).await.unwrap());

        writer.rotate_keys(rotation(id, RotationMode::Revoke)).await.unwrap();
        assert_eq!(next_change(&mut listener, SECOND).await, Some(id));

        // Nothing else is pending.
        assert!(tokio::time::timeout(Duration::from_millis(300), listener.next())
            .await
            .is_err());
    }

    /// Ends, from the server's side, the one connection of `db` that is
    /// listening, as a restart or an administrator would.
    async fn terminate_the_listener(db: &TempDatabase) {
        let mut admin = super::admin_connection().await;
        let (terminated,): (i64,) = sqlx::query_as(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND query LIKE 'LISTEN%'",
        )
        .bind(&db.name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert_eq!(terminated, 1);
        admin.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listener_whose_connection_is_terminated_says_so_and_listens_again() {
        let db = TempDatabase::create().await;
        let store = open(&db, PostgresOptions::default()).await;
        let mut listener = store.listen_key_changes().await.unwrap().unwrap();

        terminate_the_listener(&db).await;

        // "Changes may have been missed", then announcements again.
        assert_eq!(next_change(&mut listener, Duration::from_secs(5)).await, None);
        let tenant = new_tenant();
        let id = tenant.id;
        store.create_tenant(tenant, key_set(id), None).await.unwrap();
        assert_eq!(next_change(&mut listener, Duration::from_secs(1)).await, Some(id));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listener_whose_network_goes_silent_notices_and_recovers() {
        let db = TempDatabase::create().await;
        let proxy = super::freezable_proxy().await;
        let options = quick();
        let writer = open(&db, options.clone()).await;
        let through_proxy = PostgresStore::connect_with(&db.url_via(&proxy.addr.to_string()), options.clone())
            .await
            .unwrap();
        let mut listener = through_proxy.listen_key_changes().await.unwrap().unwrap();

        // A partition: no error, no bytes. The listener's ping on a quiet
        // connection gets no answer within the deadline, and connecting
        // anew runs into the acquire timeout.
        proxy.freeze(true);
        let started = Instant::now();
        let limit = PostgresStore::LISTENER_PING_EVERY
            + options.statement_timeout
            + PostgresStore::DEADLINE_MARGIN
            + options.acquire_timeout
            + Duration::from_secs(3);
        let result = tokio::time::timeout(limit, listener.next())
            .await
            .unwrap_or_else(|_| panic!("the listener did not notice within {limit:?}"));
        let took = started.elapsed();
        assert_unavailable(result);
        assert!(took >= PostgresStore::LISTENER_PING_EVERY, "{took:?}");

        // Once the network is back, it says it may have missed changes,
        // and hears the next one.
        proxy.freeze(false);
        assert_eq!(next_change(&mut listener, Duration::from_secs(5)).await, None);
        let tenant = new_tenant();
        let id = tenant.id;
        writer.create_tenant(tenant, key_set(id), None).await.unwrap();
        assert_eq!(next_change(&mut listener, Duration::from_secs(1)).await, Some(id));
    }

    // ---- revocations ----

    async fn next_revocation(
        listener: &mut Box<dyn RevocationListener>,
        within: Duration,
    ) -> Result<RevocationEvent, StoreError> {
        tokio::time::timeout(within, listener.next())
            .await
            .unwrap_or_else(|_| panic!("no answer from the revocation listener within {within:?}"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn revocations_are_announced_at_commit_on_their_channel() {
        let db = TempDatabase::create().await;
        let writer = open(&db, PostgresOptions::default()).await;
        let reader = open(&db, PostgresOptions::default()).await;
        let mut listener = reader.listen_revocations().await.unwrap().unwrap();
        let ids: Vec<SessionId> = (0..3).map(|_| SessionId::random()).collect();
        writer.record_revocations(&ids, T0, T0 + 900).await.unwrap();
        let RevocationEvent::Revoked(heard) = next_revocation(&mut listener, Duration::from_secs(2)).await.unwrap()
        else {
            panic!("expected the revocation")
        };
        assert_eq!(heard.iter().map(|r| r.session).collect::<Vec<_>>(), ids);

        // Anyone may NOTIFY the channel: something unreadable means "read
        // the record", never a crash or a made-up session.
        let mut admin = db.connect().await;
        sqlx::query("SELECT pg_notify('tessera_revocations', 'hello')")
            .execute(&mut admin)
            .await
            .unwrap();
        assert_eq!(
            next_revocation(&mut listener, Duration::from_secs(2)).await.unwrap(),
            RevocationEvent::Missed
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revocation_listener_whose_connection_is_terminated_says_so_and_listens_again() {
        let db = TempDatabase::create().await;
        let store = open(&db, PostgresOptions::default()).await;
        let mut listener = store.listen_revocations().await.unwrap().unwrap();

        terminate_the_listener(&db).await;

        // "Revocations may have been missed" (possibly after an error), then
        // announcements again.
        let deadline = Instant::now() + Duration::from_secs(10);
        while next_revocation(&mut listener, Duration::from_secs(10)).await.ok() != Some(RevocationEvent::Missed) {
            assert!(Instant::now() < deadline, "the listener did not come back");
        }
        let id = SessionId::random();
        store.record_revocations(&[id], T0, T0 + 900).await.unwrap();
        let heard = next_revocation(&mut listener, Duration::from_secs(2)).await.unwrap();
        assert!(
            matches!(heard, RevocationEvent::Revoked(ref r) if r[0].session == id),
            "{heard:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revocation_listener_whose_network_goes_silent_notices_and_recovers() {
        let db = TempDatabase::create().await;
        let proxy = super::freezable_proxy().await;
        let options = quick();
        let writer = open(&db, options.clone()).await;
        let through_proxy = PostgresStore::connect_with(&db.url_via(&proxy.addr.to_string()), options.clone())
            .await
            .unwrap();
        let mut listener = through_proxy.listen_revocations().await.unwrap().unwrap();

        // A partition: no error, no bytes. The ping on a quiet connection
        // gets no answer within the deadline.
        proxy.freeze(true);
        let started = Instant::now();
        let limit = REVOCATION_LISTENER_PING_EVERY
            + options.statement_timeout
            + PostgresStore::DEADLINE_MARGIN
            + Duration::from_secs(3);
        assert_unavailable(next_revocation(&mut listener, limit).await);
        assert!(
            started.elapsed() >= REVOCATION_LISTENER_PING_EVERY,
            "{:?}",
            started.elapsed()
        );

        proxy.freeze(false);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match next_revocation(&mut listener, Duration::from_secs(15)).await {
                Ok(RevocationEvent::Missed) => break,
                other => assert!(Instant::now() < deadline, "the listener did not come back: {other:?}"),
            }
        }
        let id = SessionId::random();
        writer.record_revocations(&[id], T0, T0 + 900).await.unwrap();
        let heard = next_revocation(&mut listener, Duration::from_secs(2)).await.unwrap();
        assert!(
            matches!(heard, RevocationEvent::Revoked(ref r) if r[0].session == id),
            "{heard:?}"
        );
    }
}
