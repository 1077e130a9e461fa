//! What only the Redis session store has: key layout and time to live, data
//! loss, unreachable and recovering servers, Redis Cluster slots, users read
//! live from the user store, damaged data. The contract it shares with the
//! other backends is the generic suite in `store.rs`.
//!
//! Tests that kill, pause or flush a Redis get a private `redis-server` of
//! their own; the rest use the shared one under a key prefix of their own.

// `cfg(test)` so that clippy applies the test allowances of clippy.toml
// (unwrap, panic) to the helpers as well as to the tests.
#![cfg(test)]

#[path = "support/redis.rs"]
mod redis_support;

#[path = "support/proxy.rs"]
mod proxy;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis_support::{Cleanup, PrivateRedis};
use tessera_core::{Email, PersonName, Role, SessionId, TenantId, UserId};
use tessera_store::{
    Health, NewSession, NewUser, RedisOptions, RedisSessionStore, RefreshState, RevocationEvent, RevocationStore,
    Rotation, RotationOutcome, SessionStore, SqliteStore, StoreError, UserStore, REVOCATION_LISTENER_PING_EVERY,
};
use uuid::Uuid;

const T0: i64 = 1_700_000_000;
const HOUR: i64 = 3600;

fn unix_now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap()
}

fn refresh(issued_at: i64, lifetime: i64) -> RefreshState {
    RefreshState {
        jti: Uuid::new_v4(),
        access_jti: Uuid::new_v4(),
        issued_at,
        expires_at: issued_at + lifetime,
    }
}

fn new_session(user: UserId, at: i64, lifetime: i64) -> NewSession {
    NewSession {
        id: SessionId::random(),
        user_id: user,
        created_at: at,
        user_agent: Some("curl/8.5.0".to_owned()),
        ip: Some("198.51.100.4".to_owned()),
        refresh: refresh(at, lifetime),
    }
}

fn rotation(user: UserId, session: SessionId, presented: &RefreshState, now: i64, lifetime: i64) -> Rotation {
    Rotation {
        user,
        session,
        presented_jti: presented.jti,
        next: refresh(now, lifetime),
        now,
        grace_secs: 10,
    }
}

/// A user store with one user in it, and the user.
struct Users {
    sql: SqliteStore,
    user: UserId,
    _dir: tempfile::TempDir,
}

impl Users {
    async fn new() -> Self {
        let (sql, dir) = redis_support::sqlite_users().await;
        let user = sql
            .create_user(NewUser {
                id: UserId::random(),
                tenant: TenantId::DEFAULT,
                email: Email::parse(&format!("ada-{}@example.com", Uuid::new_v4().simple())).unwrap(),
                password_hash: "$argon2id$v=19$hash".to_owned(),
                first_name: PersonName::parse("Ada").unwrap(),
                last_name: PersonName::parse("Lovelace").unwrap(),
                role: Role::user(),
                created_at: T0,
            })
            .await
            .unwrap()
            .id;
        Self { sql, user, _dir: dir }
    }

    fn store(&self) -> Arc<dyn UserStore> {
        Arc::new(self.sql.clone())
    }
}

/// A store on the shared Redis with a prefix of its own (deleted afterwards).
async fn shared(users: &Users) -> (RedisSessionStore, Cleanup) {
    let prefix = redis_support::unique_prefix();
    let store = redis_support::connect_shared(users.store(), &prefix).await;
    let cleanup = Cleanup {
        url: redis_support::url(),
        prefix,
    };
    (store, cleanup)
}

async fn private(users: &Users, redis: &PrivateRedis) -> RedisSessionStore {
    RedisSessionStore::connect_with(&redis.url(), users.store(), redis_support::options("tessera:"))
        .await
        .unwrap()
}

fn ttl(conn: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("TTL").arg(key).query(conn).unwrap()
}

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{what}: {result:?}");
}

/// Runs `call` and checks it took at most `limit`.
async fn timed<T>(limit: Duration, call: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = call.await;
    assert!(started.elapsed() <= limit, "took {:?}", started.elapsed());
    out
}

// ---- keys and time to live ----

#[tokio::test]
async fn keys_expire_with_the_session_and_rotation_moves_the_expiry() {
    let users = Users::new().await;
    let (store, _cleanup) = shared(&users).await;
    let mut conn = redis_support::raw(&redis_support::url());
    let now = unix_now();

    let new = new_session(users.user, now, HOUR);
    let (id, first) = (new.id, new.refresh);
    store.create_session(new).await.unwrap();
    let session_key = store.session_key(users.user, id);
    let index_key = store.index_key(users.user);
    // One session key, one index, one queue: nothing else, nothing without a TTL.
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!(
            "{}*",
            store.session_key(users.user, id).split('{').next().unwrap()
        ))
        .query(&mut conn)
        .unwrap();
    keys.sort();
    let mut expected = vec![session_key.clone(), index_key.clone(), store.expiring_key()];
    expected.sort();
    assert_eq!(keys, expected);
    for key in &keys {
        let left = ttl(&mut conn, key);
        assert!((HOUR - 1..=HOUR).contains(&left), "{key}: TTL {left}");
    }
    let score: i64 = redis::cmd("ZSCORE")
        .arg(&index_key)
        .arg(id.to_string())
        .query(&mut conn)
        .unwrap();
    assert_eq!(score, first.expires_at);

    // A rotation gives the session the next token's lifetime, from now.
    let rot = rotation(users.user, id, &first, now, 2 * HOUR);
    assert!(matches!(store.rotate(rot).await.unwrap(), RotationOutcome::Rotated(_)));
    let left = ttl(&mut conn, &session_key);
    assert!((2 * HOUR - 1..=2 * HOUR).contains(&left), "TTL {left}");
    let left = ttl(&mut conn, &index_key);
    assert!((2 * HOUR - 1..=2 * HOUR).contains(&left), "index TTL {left}");
    let score: i64 = redis::cmd("ZSCORE")
        .arg(&index_key)
        .arg(id.to_string())
        .query(&mut conn)
        .unwrap();
    assert_eq!(score, rot.next.expires_at);

    // The hash holds what the module docs say, and no email or role.
    let mut fields: Vec<String> = redis::cmd("HKEYS").arg(&session_key).query(&mut conn).unwrap();
    fields.sort();
    assert_eq!(
        fields,
        [
            "access_jti",
            "created_at",
            "expires_at",
            "ip",
            "issued_at",
            "jti",
            "last_used_at",
            "previous_jti",
            "rotated_at",
            "user",
            "user_agent"
        ]
    );
}

#[tokio::test]
async fn a_session_redis_expired_is_gone_and_leaves_no_index_entry() {
    let users = Users::new().await;
    let (store, _cleanup) = shared(&users).await;
    let mut conn = redis_support::raw(&redis_support::url());
    let now = unix_now();

    // A session whose lifetime is one second runs out in Redis by itself.
    let short = new_session(users.user, now, 1);
    let short_id = short.id;
    store.create_session(short).await.unwrap();
    let long = new_session(users.user, now, HOUR);
    let long_id = long.id;
    store.create_session(long).await.unwrap();
    let key = store.session_key(users.user, short_id);
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis::cmd("EXISTS").arg(&key).query::<i64>(&mut conn).unwrap() == 1 {
        assert!(Instant::now() < deadline, "Redis did not expire the session");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Even for a "now" before its end, it is gone (unlike an expired SQL row).
    assert_eq!(store.session(users.user, short_id, now).await.unwrap(), None);
    let listed = store.list_sessions(users.user, now).await.unwrap();
    assert_eq!(listed.iter().map(|s| s.id).collect::<Vec<_>>(), vec![long_id]);
    // Listing dropped the dead index entry.
    let indexed: Vec<String> = redis::cmd("ZRANGE")
        .arg(store.index_key(users.user))
        .arg(0)
        .arg(-1)
        .query(&mut conn)
        .unwrap();
    assert_eq!(indexed, vec![long_id.to_string()]);
    // Expired by Redis is not "removed" by a revoke.
    assert_eq!(store.revoke_all_sessions(users.user).await.unwrap(), vec![long_id]);
}

#[tokio::test]
async fn purge_follows_rotations_and_counts_only_what_it_deletes() {
    let users = Users::new().await;
    let (store, _cleanup) = shared(&users).await;
    let mut conn = redis_support::raw(&redis_support::url());

    let new = new_session(users.user, T0, 100);
    let (id, first) = (new.id, new.refresh);
    store.create_session(new).await.unwrap();
    let revoked = new_session(users.user, T0, 100);
    let revoked_id = revoked.id;
    store.create_session(revoked).await.unwrap();
    assert!(store.revoke_session(users.user, revoked_id).await.unwrap());
    // Rotated at T0 + 50: it now ends at T0 + 150, not T0 + 100.
    let rot = rotation(users.user, id, &first, T0 + 50, 100);
    assert!(matches!(store.rotate(rot).await.unwrap(), RotationOutcome::Rotated(_)));

    // The revoked one leaves the queue uncounted; the rotated one is requeued.
    assert_eq!(store.purge_expired(T0 + 100).await.unwrap(), 0);
    let queued: Vec<(String, i64)> = redis::cmd("ZRANGE")
        .arg(store.expiring_key())
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(&mut conn)
        .unwrap();
    assert_eq!(queued, vec![(format!("{}:{id}", users.user), T0 + 150)]);
    assert!(store.session(users.user, id, T0 + 149).await.unwrap().is_some());

    assert_eq!(store.purge_expired(T0 + 150).await.unwrap(), 1);
    assert_eq!(store.session(users.user, id, T0 + 1).await.unwrap(), None);
    // Nothing of the user is left; the queue went with its last entry.
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", store.index_key(users.user).split('{').next().unwrap()))
        .query(&mut conn)
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_on_separate_connections_rotate_a_token_once() {
    const INSTANCES: usize = 5;
    const PER_INSTANCE: usize = 10;
    let users = Users::new().await;
    let (first_store, _cleanup) = shared(&users).await;
    let prefix = first_store.session_key(users.user, SessionId::random());
    let prefix = prefix.split('{').next().unwrap().to_owned();
    // Five "tessera instances": five stores, five connections, one Redis.
    let mut instances = vec![Arc::new(first_store)];
    for _ in 1..INSTANCES {
        instances.push(Arc::new(redis_support::connect_shared(users.store(), &prefix).await));
    }
    let new = new_session(users.user, T0, HOUR);
    let (id, first) = (new.id, new.refresh);
    instances[0].create_session(new).await.unwrap();

    let start = Arc::new(tokio::sync::Barrier::new(INSTANCES * PER_INSTANCE));
    let mut tasks = Vec::new();
    for store in &instances {
        for _ in 0..PER_INSTANCE {
            let (store, start) = (Arc::clone(store), Arc::clone(&start));
            let rot = rotation(users.user, id, &first, T0 + 60, HOUR);
            tasks.push(tokio::spawn(async move {
                start.wait().await;
                store.rotate(rot).await.unwrap()
            }));
        }
    }
    let mut rotated = Vec::new();
    let mut grace = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            RotationOutcome::Rotated(session) => rotated.push(session.current),
            RotationOutcome::Grace(session) => grace.push(session.current),
            other => panic!("expected Rotated or Grace, got {other:?}"),
        }
    }
    assert_eq!(rotated.len(), 1, "exactly one refresh may rotate");
    assert!(grace.iter().all(|current| *current == rotated[0]));
    for store in &instances {
        assert_eq!(
            store.session(users.user, id, T0 + 61).await.unwrap().unwrap().current,
            rotated[0]
        );
    }
}

// ---- users live in the user store ----

#[tokio::test]
async fn email_and_role_are_read_from_the_user_store_every_time() {
    let users = Users::new().await;
    let (store, _cleanup) = shared(&users).await;
    let new = new_session(users.user, T0, HOUR);
    let (id, first) = (new.id, new.refresh);
    store.create_session(new).await.unwrap();
    assert_eq!(
        store.session(users.user, id, T0).await.unwrap().unwrap().role,
        Role::user()
    );

    sqlx::query("UPDATE users SET role = 'admin', email = 'ada.admin@example.com' WHERE id = ?1")
        .bind(users.user.to_string())
        .execute(users.sql.pool())
        .await
        .unwrap();
    let session = store.session(users.user, id, T0 + 1).await.unwrap().unwrap();
    assert_eq!(session.role.as_str(), "admin");
    assert_eq!(session.email.as_str(), "ada.admin@example.com");
    let RotationOutcome::Rotated(rotated) = store
        .rotate(rotation(users.user, id, &first, T0 + 2, HOUR))
        .await
        .unwrap()
    else {
        panic!("expected Rotated");
    };
    assert_eq!(rotated.role.as_str(), "admin");
    assert_eq!(
        store.list_sessions(users.user, T0 + 3).await.unwrap()[0].role.as_str(),
        "admin"
    );
}

#[tokio::test]
async fn sessions_of_a_deleted_user_are_gone() {
    let users = Users::new().await;
    let (store, _cleanup) = shared(&users).await;
    let new = new_session(users.user, T0, HOUR);
    let (id, first) = (new.id, new.refresh);
    store.create_session(new).await.unwrap();

    sqlx::query("DELETE FROM users WHERE id = ?1")
        .bind(users.user.to_string())
        .execute(users.sql.pool())
        .await
        .unwrap();
    assert_eq!(store.session(users.user, id, T0 + 1).await.unwrap(), None);
    assert!(store.list_sessions(users.user, T0 + 1).await.unwrap().is_empty());
    let outcome = store
        .rotate(rotation(users.user, id, &first, T0 + 2, HOUR))
        .await
        .unwrap();
    assert_eq!(outcome, RotationOutcome::Unknown);
}

// ---- data loss, outages, recovery ----

#[tokio::test]
async fn flushall_ends_every_session_and_the_store_keeps_working() {
    let redis = PrivateRedis::start();
    let users = Users::new().await;
    let store = private(&users, &redis).await;
    let new = new_session(users.user, T0, HOUR);
    let (id, first) = (new.id, new.refresh);
    store.create_session(new).await.unwrap();

    let _: () = redis::cmd("FLUSHALL")
        .query(&mut redis_support::raw(&redis.url()))
        .unwrap();

    assert_eq!(store.session(users.user, id, T0 + 1).await.unwrap(), None);
    let outcome = store
        .rotate(rotation(users.user, id, &first, T0 + 1, HOUR))
        .await
        .unwrap();
    assert_eq!(outcome, RotationOutcome::Unknown);
    assert!(store.list_sessions(users.user, T0 + 1).await.unwrap().is_empty());
    assert_eq!(store.revoke_all_sessions(users.user).await.unwrap(), vec![]);
    assert_eq!(store.purge_expired(T0 + 2 * HOUR).await.unwrap(), 0);

    // The scripts went with the data (SCRIPT FLUSH does too): EVALSHA falls
    // back to loading them, and new logins work as before.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut redis_support::raw(&redis.url()))
        .unwrap();
    let again = new_session(users.user, T0 + 2, HOUR);
    let (id, token) = (again.id, again.refresh);
    store.create_session(again).await.unwrap();
    let outcome = store
        .rotate(rotation(users.user, id, &token, T0 + 3, HOUR))
        .await
        .unwrap();
    assert!(matches!(outcome, RotationOutcome::Rotated(_)), "{outcome:?}");
}

#[tokio::test]
async fn a_closed_port_is_unavailable_within_the_connect_timeout() {
    let users = Users::new().await;
    let port = redis_support::free_port();
    let result = timed(
        Duration::from_secs(3),
        RedisSessionStore::connect(&format!("redis://127.0.0.1:{port}"), users.store()),
    )
    .await;
    assert_unavailable(result, "closed port");
}

#[tokio::test]
async fn a_server_that_never_answers_is_unavailable_in_bounded_time() {
    // Accepts connections and reads nothing: no reply ever comes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let users = Users::new().await;
    let result = timed(Duration::from_secs(5), RedisSessionStore::connect(&url, users.store())).await;
    assert_unavailable(result, "silent server");
    drop(listener);
}

#[tokio::test]
async fn malformed_urls_and_prefixes_with_braces_are_refused() {
    let users = Users::new().await;
    for url in ["", "http://127.0.0.1:6379", "redis://127.0.0.1:notaport"] {
        assert_unavailable(RedisSessionStore::connect(url, users.store()).await, url);
    }
    let options = RedisOptions {
        key_prefix: "tessera:{x}:".to_owned(),
        ..RedisOptions::default()
    };
    assert_unavailable(
        RedisSessionStore::connect_with(&redis_support::url(), users.store(), options).await,
        "braces",
    );

    // A prefix gets its separator; an empty one stays empty.
    let (store, _cleanup) = shared(&users).await;
    let prefix = store
        .expiring_key()
        .strip_suffix(":expiring-sessions")
        .unwrap()
        .to_owned();
    for (given, keys_start) in [
        (prefix.clone(), format!("{prefix}:")),
        (format!("{prefix}:"), format!("{prefix}:")),
    ] {
        let options = RedisOptions {
            key_prefix: given,
            ..RedisOptions::default()
        };
        let store = RedisSessionStore::connect_with(&redis_support::url(), users.store(), options)
            .await
            .unwrap();
        assert_eq!(
            store.index_key(users.user),
            format!("{keys_start}{{u:{}}}:sessions", users.user)
        );
    }
    let options = RedisOptions {
        key_prefix: String::new(),
        ..RedisOptions::default()
    };
    let store = RedisSessionStore::connect_with(&redis_support::url(), users.store(), options)
        .await
        .unwrap();
    assert_eq!(store.expiring_key(), "expiring-sessions");
}

#[tokio::test]
async fn a_paused_redis_times_out_and_then_answers_again() {
    let redis = PrivateRedis::start();
    let users = Users::new().await;
    let options = RedisOptions {
        command_timeout: Duration::from_millis(500),
        ..redis_support::options("tessera:")
    };
    let store = RedisSessionStore::connect_with(&redis.url(), users.store(), options)
        .await
        .unwrap();
    let new = new_session(users.user, T0, HOUR);
    let id = new.id;
    store.create_session(new).await.unwrap();

    // Redis holds every client's commands for two seconds.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2000)
        .query(&mut redis_support::raw(&redis.url()))
        .unwrap();
    let result = timed(Duration::from_secs(1), store.session(users.user, id, T0 + 1)).await;
    assert_unavailable(result, "paused");
    assert_unavailable(timed(Duration::from_secs(1), store.ping()).await, "paused ping");

    tokio::time::sleep(Duration::from_millis(2000)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "the store did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(store.session(users.user, id, T0 + 1).await.unwrap().is_some());
}

#[tokio::test]
async fn a_killed_redis_is_unavailable_quickly_and_the_same_store_recovers() {
    let mut redis = PrivateRedis::start();
    let users = Users::new().await;
    let store = private(&users, &redis).await;
    let new = new_session(users.user, T0, HOUR);
    let (id, first) = (new.id, new.refresh);
    store.create_session(new).await.unwrap();
    store.ping().await.unwrap();

    redis.kill();
    let limit = Duration::from_secs(3);
    assert_unavailable(timed(limit, store.ping()).await, "ping");
    assert_unavailable(timed(limit, store.session(users.user, id, T0 + 1)).await, "session");
    assert_unavailable(
        timed(limit, store.rotate(rotation(users.user, id, &first, T0 + 1, HOUR))).await,
        "rotate",
    );
    assert_unavailable(timed(limit, store.list_sessions(users.user, T0 + 1)).await, "list");
    assert_unavailable(
        timed(limit, store.create_session(new_session(users.user, T0 + 1, HOUR))).await,
        "create",
    );
    // Still down a while later: still a quick answer, never a hang.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_unavailable(timed(limit, store.revoke_all_sessions(users.user)).await, "revoke");
    assert_unavailable(timed(limit, store.purge_expired(T0)).await, "purge");

    // Back on the same port, empty (no persistence): the same store object
    // reconnects by itself; the lost session is simply gone.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(err) = store.ping().await {
        assert!(Instant::now() < deadline, "the store did not reconnect: {err:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(store.session(users.user, id, T0 + 2).await.unwrap(), None);
    let outcome = store
        .rotate(rotation(users.user, id, &first, T0 + 2, HOUR))
        .await
        .unwrap();
    assert_eq!(outcome, RotationOutcome::Unknown);
    let again = new_session(users.user, T0 + 3, HOUR);
    let (id, token) = (again.id, again.refresh);
    store.create_session(again).await.unwrap();
    let outcome = store
        .rotate(rotation(users.user, id, &token, T0 + 4, HOUR))
        .await
        .unwrap();
    assert!(matches!(outcome, RotationOutcome::Rotated(_)), "{outcome:?}");
}

// ---- revocations ----

#[tokio::test]
async fn the_revocation_record_is_a_stream_that_expires_and_trims_itself() {
    let users = Users::new().await;
    let (store, _cleanup) = shared(&users).await;
    let mut conn = redis_support::raw(&redis_support::url());
    let now = unix_now();
    let ids: Vec<SessionId> = (0..3).map(|_| SessionId::random()).collect();
    store.record_revocations(&ids, now, now + 905).await.unwrap();

    let key = store.revocations_key();
    let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).unwrap();
    assert_eq!(kind, "stream");
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .unwrap();
    assert_eq!(entries.len(), 1, "one entry per announcement");
    let joined = ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    assert_eq!(entries[0].1, vec!["r".to_owned(), format!("{} {joined}", now + 905)]);
    // It lives as long as its newest revocation, plus a margin for clocks.
    let pttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).unwrap();
    assert!((905_000..=965_000).contains(&pttl), "{pttl}");

    // An entry older than a revocation's lifetime is trimmed when the next
    // is added (by Redis's clock: forge one from a long time ago).
    let stale_id = "1000-0";
    let _: String = redis::cmd("XADD")
        .arg(&key)
        .arg(stale_id)
        .arg("r")
        .arg(format!("{} {}", now + 905, SessionId::random()))
        .query(&mut conn)
        .unwrap_or_default();
    store
        .record_revocations(&[SessionId::random()], now, now + 905)
        .await
        .unwrap();
    let first: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query(&mut conn)
        .unwrap();
    assert_ne!(first[0].0, stale_id);
}

#[tokio::test]
async fn a_foreign_entry_in_the_record_is_corrupt() {
    let users = Users::new().await;
    let (store, _cleanup) = shared(&users).await;
    let mut conn = redis_support::raw(&redis_support::url());
    let _: String = redis::cmd("XADD")
        .arg(store.revocations_key())
        .arg("*")
        .arg("r")
        .arg("not a revocation")
        .query(&mut conn)
        .unwrap();
    let err = store.revocations_since(None, T0).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(
        !format!("{err}").contains("not a revocation"),
        "stored values are never quoted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_listener_of_a_killed_redis_says_so_and_listens_again() {
    let mut redis = PrivateRedis::start();
    let users = Users::new().await;
    let store = private(&users, &redis).await;
    let mut listener = store.listen_revocations().await.unwrap().unwrap();
    let first = SessionId::random();
    store.record_revocations(&[first], T0, T0 + 900).await.unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(5), listener.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        heard,
        RevocationEvent::Revoked(vec![tessera_store::Revocation {
            session: first,
            expires_at: T0 + 900
        }])
    );

    redis.kill();
    let limit = REVOCATION_LISTENER_PING_EVERY + Duration::from_secs(5);
    let down = tokio::time::timeout(limit, listener.next()).await.unwrap();
    assert_unavailable(down, "listen");
    // While Redis is down, asking again is a quick error, never a hang.
    assert_unavailable(timed(Duration::from_secs(5), listener.next()).await, "listen again");

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match listener.next().await {
            Ok(RevocationEvent::Missed) => break,
            Ok(other) => panic!("nothing was announced yet: {other:?}"),
            Err(err) => assert!(Instant::now() < deadline, "the listener did not come back: {err:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "the store did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = SessionId::random();
    store.record_revocations(&[second], T0, T0 + 900).await.unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(5), listener.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(heard, RevocationEvent::Revoked(ref r) if r[0].session == second),
        "{heard:?}"
    );
}

// ---- damaged data ----

#[tokio::test]
async fn damaged_session_data_is_corrupt_and_not_quoted() {
    let users = Users::new().await;
    let (store, _cleanup) = shared(&users).await;
    let mut conn = redis_support::raw(&redis_support::url());
    let new = new_session(users.user, T0, HOUR);
    let (id, first) = (new.id, new.refresh);
    store.create_session(new).await.unwrap();
    let key = store.session_key(users.user, id);

    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("jti")
        .arg("secret-not-a-uuid")
        .query(&mut conn)
        .unwrap();
    let err = store.session(users.user, id, T0 + 1).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(!err.to_string().contains("secret-not-a-uuid"), "{err}");

    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("expires_at")
        .arg("secret-soon")
        .query(&mut conn)
        .unwrap();
    let err = store
        .rotate(rotation(users.user, id, &first, T0 + 1, HOUR))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(!err.to_string().contains("secret-soon"), "{err}");

    // A key of the wrong type.
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("secret-string")
        .query(&mut conn)
        .unwrap();
    let err = store.session(users.user, id, T0 + 1).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    let err = store
        .rotate(rotation(users.user, id, &first, T0 + 1, HOUR))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(!err.to_string().contains("secret-string"), "{err}");
}

#[tokio::test]
async fn the_eviction_policy_is_reported() {
    let redis = PrivateRedis::start();
    let users = Users::new().await;
    let store = private(&users, &redis).await;
    assert_eq!(store.eviction_policy().await.unwrap().as_deref(), Some("noeviction"));
}

// ---- Redis Cluster ----

/// Whether the cluster node behind `conn` holds `key`; a node that does not
/// own its slot answers MOVED.
fn holds(conn: &mut redis::Connection, key: &str) -> bool {
    match redis::cmd("EXISTS").arg(key).query::<i64>(conn) {
        Ok(n) => n == 1,
        Err(err) if err.kind() == redis::ErrorKind::Moved => false,
        Err(err) => panic!("EXISTS {key}: {err:?}"),
    }
}

/// The generic suite runs on a three-master cluster too (`store.rs`,
/// `redis_cluster`); this shows that the cluster really spreads users over
/// its nodes, that all of one user's keys sit in one slot on the node that
/// owns it, and that the scripts work there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_keys_share_a_slot_and_users_spread_over_the_nodes() {
    let nodes = tokio::task::spawn_blocking(redis_support::cluster).await.unwrap();
    let users = Users::new().await;
    let seeds: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let store = RedisSessionStore::connect_cluster(&seeds, users.store(), redis_support::options("tessera:"))
        .await
        .unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.eviction_policy().await.unwrap().as_deref(), Some("noeviction"));
    let mut node_conns: Vec<redis::Connection> = nodes.iter().map(|url| redis_support::raw(url)).collect();

    let new = new_session(users.user, T0, HOUR);
    let (id, first) = (new.id, new.refresh);
    store.create_session(new).await.unwrap();
    let rot = rotation(users.user, id, &first, T0 + 1, HOUR);
    assert!(matches!(store.rotate(rot).await.unwrap(), RotationOutcome::Rotated(_)));

    let slot = |conn: &mut redis::Connection, key: &str| -> i64 {
        redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(conn).unwrap()
    };
    let tag_slot = slot(&mut node_conns[0], &format!("u:{}", users.user));
    for key in [store.session_key(users.user, id), store.index_key(users.user)] {
        assert_eq!(slot(&mut node_conns[0], &key), tag_slot, "{key}");
        // On exactly one node: the one that owns the slot.
        let holders = node_conns
            .iter_mut()
            .map(|conn| holds(conn, &key))
            .filter(|&held| held)
            .count();
        assert_eq!(holders, 1, "{key}");
    }

    // Many users' sessions land on every master.
    let mut per_node = vec![0; node_conns.len()];
    for _ in 0..30 {
        let user = users
            .sql
            .create_user(NewUser {
                id: UserId::random(),
                tenant: TenantId::DEFAULT,
                email: Email::parse(&format!("u-{}@example.com", Uuid::new_v4().simple())).unwrap(),
                password_hash: "h".to_owned(),
                first_name: PersonName::parse("A").unwrap(),
                last_name: PersonName::parse("B").unwrap(),
                role: Role::user(),
                created_at: T0,
            })
            .await
            .unwrap()
            .id;
        let session = new_session(user, T0, HOUR);
        let key = store.session_key(user, session.id);
        store.create_session(session).await.unwrap();
        for (n, conn) in node_conns.iter_mut().enumerate() {
            if holds(conn, &key) {
                per_node[n] += 1;
            }
        }
    }
    assert_eq!(per_node.iter().sum::<i32>(), 30);
    assert!(per_node.iter().all(|&n| n > 0), "sessions per node: {per_node:?}");

    // A script handed keys of two slots is refused by the cluster: the check
    // the scripts pass above is real.
    let other = loop {
        let other = UserId::random();
        if slot(&mut node_conns[0], &format!("u:{other}")) != tag_slot {
            break other;
        }
    };
    for conn in &mut node_conns {
        let err = redis::cmd("EVAL")
            .arg("return redis.call('EXISTS', KEYS[1]) + redis.call('EXISTS', KEYS[2])")
            .arg(2)
            .arg(store.index_key(users.user))
            .arg(store.index_key(other))
            .query::<i64>(conn)
            .unwrap_err();
        assert!(matches!(err.kind(), redis::ErrorKind::CrossSlot), "{err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_first_request_already_works() {
    let mut redis = PrivateRedis::start();
    let users = Users::new().await;
    let store = private(&users, &redis).await;
    store.ping().await.unwrap();
    redis.restart();
    // No request in between: the keepalive, not a user's request, finds the
    // broken connection and replaces it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    store.create_session(new_session(users.user, T0, HOUR)).await.unwrap();
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_redis_runs_after_the_caller_gave_up_changes_nothing() {
    let redis = PrivateRedis::start();
    let users = Users::new().await;
    let store = private(&users, &redis).await;
    let new = new_session(users.user, T0, HOUR);
    let (id, first) = (new.id, new.refresh);
    store.create_session(new).await.unwrap();

    // Redis stalls with the rotation in its input buffer; the caller gives
    // up (503 to the client), and Redis wakes up well after that.
    signal(redis.pid(), "-STOP");
    let stalled = timed(
        Duration::from_secs(5),
        store.rotate(rotation(users.user, id, &first, T0 + 1, HOUR)),
    )
    .await;
    assert_unavailable(stalled, "rotate during a stall");
    tokio::time::sleep(Duration::from_secs(5)).await;
    signal(redis.pid(), "-CONT");
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "Redis did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The late rotation changed nothing, so the client's retry with the same
    // token is an ordinary rotation, not a replay.
    let session = store.session(users.user, id, T0 + 2).await.unwrap().unwrap();
    assert_eq!(session.current, first);
    let outcome = store
        .rotate(rotation(users.user, id, &first, T0 + 2, HOUR))
        .await
        .unwrap();
    assert!(matches!(outcome, RotationOutcome::Rotated(_)), "{outcome:?}");
}

/// A rotation held up on its way to Redis just past the caller's deadline
/// (the caller has read Redis's clock, sent the rotation, waited its command
/// timeout and answered 503) reaches Redis soon after: it must change
/// nothing, however short the delay past the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_that_reaches_redis_just_after_the_caller_gave_up_changes_nothing() {
    let redis = PrivateRedis::start();
    let users = Users::new().await;
    let upstream = redis.url().trim_start_matches("redis://").parse().unwrap();
    let proxy = proxy::FreezableProxy::start(upstream).await;
    let options = redis_support::options("tessera:");
    let timeout = options.command_timeout;
    let store = RedisSessionStore::connect_with(&format!("redis://{}", proxy.addr), users.store(), options)
        .await
        .unwrap();
    // A first rotation loads the scripts, so the held one is a plain EVALSHA
    // (not one that would fail for want of its script).
    let warm_up = new_session(users.user, T0, HOUR);
    let (warm_id, warm_refresh) = (warm_up.id, warm_up.refresh);
    store.create_session(warm_up).await.unwrap();
    let outcome = store
        .rotate(rotation(users.user, warm_id, &warm_refresh, T0 + 1, HOUR))
        .await
        .unwrap();
    assert!(matches!(outcome, RotationOutcome::Rotated(_)), "{outcome:?}");
    let new = new_session(users.user, T0, HOUR);
    let (id, first) = (new.id, new.refresh);
    store.create_session(new).await.unwrap();

    // The network holds the rotation (it carries the presented jti) and
    // everything after it, and lets it through 100 ms after the caller
    // stopped waiting.
    proxy.freeze_on(first.jti.to_string().as_bytes());
    let started = Instant::now();
    let stalled = timed(
        timeout + Duration::from_secs(2),
        store.rotate(rotation(users.user, id, &first, T0 + 1, HOUR)),
    )
    .await;
    assert_unavailable(stalled, "rotate held up in the network");
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
    tokio::time::sleep(Duration::from_millis(100)).await;
    proxy.freeze(false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "Redis did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let session = store.session(users.user, id, T0 + 2).await.unwrap().unwrap();
    assert_eq!(session.current, first, "the late rotation changed the session");
    let outcome = store
        .rotate(rotation(users.user, id, &first, T0 + 2, HOUR))
        .await
        .unwrap();
    assert!(matches!(outcome, RotationOutcome::Rotated(_)), "{outcome:?}");
}
