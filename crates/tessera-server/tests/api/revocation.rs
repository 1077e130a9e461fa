//! `TESSERA_REVOCATION_CHECK=on`: access tokens of sessions that ended are
//! refused by `/verify` and every bearer route, on every instance, within a
//! second, and still after a restart; and what happens when the store that
//! carries the news goes away.

use crate::accounts::wait_for_token;
use crate::helpers::*;
use crate::scale::forget_redis_keys;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tessera_core::MasterKey;
use tessera_server::config::Config;
use tessera_server::secrets::{SecretValue, SecretsSource};

async fn spawn_checked() -> TestApp {
    spawn_app_with(|c| c.revocation_check = true).await
}

async fn logout(app: &TestApp, access: &str, scope: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/auth/logout"))
        .bearer_auth(access)
        .json(&json!({"scope": scope}))
        .send()
        .await
        .unwrap()
}

async fn verify_status(app: &TestApp, access: &str) -> StatusCode {
    app.get_auth("/api/auth/verify", access).await.status()
}

/// The token is refused as the token of an ended session: by `/verify`
/// (with the RFC 6750 challenge) and by a bearer route.
async fn assert_refused(app: &TestApp, access: &str) {
    let res = app.get_auth("/api/auth/verify", access).await;
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(
        challenge,
        r#"Bearer realm="tessera", error="invalid_token", error_description="the session of this token has ended""#
    );
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_error(
        app.get_auth("/api/auth/sessions", access).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
}

async fn assert_accepted(app: &TestApp, access: &str) {
    assert_eq!(verify_status(app, access).await, StatusCode::OK);
}

fn sid(access: &str) -> String {
    decode_parts(access).1["sid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn logout_of_every_scope_refuses_the_ended_sessions_tokens() {
    let app = spawn_checked().await;
    let user = app.new_user().await;
    let (second, _) = app.new_session(&user).await;
    let (third, _) = app.new_session(&user).await;
    let (fourth, _) = app.new_session(&user).await;
    let stranger = app.new_user().await;

    assert_eq!(
        logout(&app, &user.access, "local").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_refused(&app, &user.access).await;
    assert_accepted(&app, &second).await;

    assert_eq!(logout(&app, &second, "others").await.status(), StatusCode::NO_CONTENT);
    assert_refused(&app, &third).await;
    assert_refused(&app, &fourth).await;
    assert_accepted(&app, &second).await;

    assert_eq!(logout(&app, &second, "global").await.status(), StatusCode::NO_CONTENT);
    assert_refused(&app, &second).await;
    assert_accepted(&app, &stranger.access).await;

    // Logging out of a session that has ended is still a 204, not a 401.
    assert_eq!(
        logout(&app, &user.access, "local").await.status(),
        StatusCode::NO_CONTENT
    );
    // But its token reaches nobody else's sessions.
    assert_error(
        logout(&app, &user.access, "global").await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn deleting_a_session_refuses_its_tokens() {
    let app = spawn_checked().await;
    let user = app.new_user().await;
    let (lost_device, _) = app.new_session(&user).await;
    let res = app
        .client
        .delete(app.url(&format!("/api/auth/sessions/{}", sid(&lost_device))))
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_refused(&app, &lost_device).await;
    assert_accepted(&app, &user.access).await;
}

#[tokio::test]
async fn password_change_and_reset_refuse_the_ended_sessions_tokens() {
    let app = spawn_checked().await;
    let user = app.new_user().await;
    let (other, _) = app.new_session(&user).await;

    // A change ends every other session.
    let new_password = "a brand new passphrase";
    let res = app
        .client
        .post(app.url("/api/auth/password/change"))
        .bearer_auth(&user.access)
        .json(&json!({"currentPassword": user.password, "newPassword": new_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_refused(&app, &other).await;
    assert_accepted(&app, &user.access).await;

    // A reset ends every one.
    let res = app
        .post_json("/api/auth/password/forgot", &json!({"email": user.email}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let token = wait_for_token(&app, &user.email, "tpr_", 0).await;
    let res = app
        .post_json(
            "/api/auth/password/reset",
            &json!({"token": token, "password": "yet another passphrase"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_refused(&app, &user.access).await;
    // A login right after (even within the same second) is a new session.
    let res = app.login(&user.email, "yet another passphrase").await;
    assert_eq!(res.status(), StatusCode::OK);
    let fresh: Value = res.json().await.unwrap();
    assert_accepted(&app, fresh["accessToken"].as_str().unwrap()).await;
}

#[tokio::test]
async fn a_reused_refresh_token_refuses_the_sessions_tokens() {
    let app = spawn_app_with(|c| {
        c.revocation_check = true;
        c.refresh_reuse_grace = Duration::ZERO;
    })
    .await;
    let user = app.new_user().await;
    let res = app.refresh(&user.refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    let rotated: Value = res.json().await.unwrap();
    let current = rotated["accessToken"].as_str().unwrap().to_owned();
    assert_accepted(&app, &current).await;

    // The rotated-away token comes back: theft. Every access token of the
    // session, old and new, dies with it.
    assert_error(
        app.refresh(&user.refresh).await,
        StatusCode::UNAUTHORIZED,
        "refresh_token_reused",
    )
    .await;
    assert_refused(&app, &user.access).await;
    assert_refused(&app, &current).await;

    // The same through logout with a rotated refresh token in the body.
    let (access, refresh) = app.new_session(&user).await;
    assert_eq!(app.refresh(&refresh).await.status(), StatusCode::OK);
    let res = app
        .post_json("/api/auth/logout", &json!({"refreshToken": refresh}))
        .await;
    assert_error(res, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
    assert_refused(&app, &access).await;
}

#[tokio::test]
async fn with_the_check_off_ended_sessions_tokens_verify_until_they_expire() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (other, _) = app.new_session(&user).await;
    assert_eq!(
        logout(&app, &user.access, "global").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_accepted(&app, &user.access).await;
    assert_accepted(&app, &other).await;
    // Routes that read the session anyway refuse them, as always.
    assert_error(
        app.get_auth("/api/auth/me", &other).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
}

/// The embedded default with its keys stored in its SQLite file (not from
/// the environment) and a fixed issuer, so a restart verifies the same
/// tokens.
fn restartable(c: &mut Config) {
    c.revocation_check = true;
    c.secrets = SecretsSource::Generated;
    c.issuer = Some("https://auth.test".to_owned());
}

#[tokio::test]
async fn a_restarted_instance_still_refuses_a_revoked_token() {
    let app = spawn_app_with(restartable).await;
    let user = app.new_user().await;
    let (other, _) = app.new_session(&user).await;
    assert_eq!(
        logout(&app, &user.access, "local").await.status(),
        StatusCode::NO_CONTENT
    );
    let dir = app.stop().await;

    let app = spawn_app_in(dir, restartable).await;
    assert_refused(&app, &user.access).await;
    assert_accepted(&app, &other).await;
}

#[tokio::test]
async fn sessions_the_cli_ends_are_refused_by_a_running_server() {
    let app = spawn_app_with(restartable).await;
    let user = app.new_user().await;
    let (other, _) = app.new_session(&user).await;
    let stranger = app.new_user().await;

    // What `tessera user revoke-sessions` does, from another process: it
    // shares only the data directory.
    let mut config = Config::embedded(app.data_dir.path().join("data"));
    config.secrets = SecretsSource::Generated;
    let operator = tessera_server::ops::Operator::open(config).await.unwrap();
    assert_eq!(operator.revoke_sessions("default", &user.email).await.unwrap(), 2);

    // SQLite has no announcements: the server reads the record every second.
    let started = Instant::now();
    while verify_status(&app, &other).await == StatusCode::OK {
        assert!(started.elapsed() < Duration::from_secs(5), "not refused after 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_refused(&app, &user.access).await;
    assert_refused(&app, &other).await;
    assert_accepted(&app, &stranger.access).await;
}

// ---- several instances ----

/// Instances sharing a PostgreSQL database (a fresh one) and, with Redis,
/// a key prefix of their own on the shared Redis.
struct Deployment {
    db: TestDatabase,
    master: String,
    redis_prefix: Option<String>,
}

impl Deployment {
    async fn new(with_redis: bool) -> Self {
        Self {
            db: TestDatabase::create().await,
            master: MasterKey::generate_base64(),
            redis_prefix: with_redis.then(|| format!("tessera-it-{}", uuid::Uuid::new_v4().simple())),
        }
    }

    async fn spawn(&self) -> TestApp {
        self.spawn_via(None, None).await
    }

    /// An instance whose database and Redis may be reached at other URLs
    /// (through a proxy a test can cut).
    async fn spawn_via(&self, database_via: Option<String>, redis_via: Option<String>) -> TestApp {
        let database_url = database_via.unwrap_or_else(|| self.db.url.clone());
        let redis = self
            .redis_prefix
            .clone()
            .map(|prefix| (redis_via.unwrap_or_else(redis_url), prefix));
        let master = self.master.clone();
        spawn_app_with(move |c| {
            c.revocation_check = true;
            c.database_url = Some(database_url);
            c.master_key = Some(SecretValue::new(master));
            c.secrets = SecretsSource::Generated;
            c.issuer = Some("https://auth.test".to_owned());
            if let Some((url, prefix)) = redis {
                c.redis_url = Some(url);
                c.redis_key_prefix = prefix;
            }
        })
        .await
    }

    async fn drop_now(self) {
        if let Some(prefix) = &self.redis_prefix {
            forget_redis_keys(prefix);
        }
        self.db.drop_now().await;
    }
}

/// Polls `/verify` on `app` until it refuses `access`; how long that took
/// and how many requests.
async fn time_until_refused(app: &TestApp, access: &str, limit: Duration) -> (Duration, usize) {
    let started = Instant::now();
    let mut polls = 0;
    loop {
        let status = verify_status(app, access).await;
        polls += 1;
        if status == StatusCode::UNAUTHORIZED {
            return (started.elapsed(), polls);
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            started.elapsed() < limit,
            "{} still accepts the token of an ended session after {limit:?}",
            app.base
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Logs out on each instance in turn and measures how long every other one
/// takes to refuse the token: within a second, as the issue asks.
async fn logouts_reach_every_instance_within_a_second(apps: &[TestApp], label: &str) {
    let user = apps[0].new_user().await;
    let mut times = Vec::new();
    let mut refused_at_once = 0;
    let rounds = 12;
    for round in 0..rounds {
        let origin = &apps[round % apps.len()];
        let (access, _) = origin.new_session(&user).await;
        for app in apps {
            assert_accepted(app, &access).await;
        }
        assert_eq!(logout(origin, &access, "local").await.status(), StatusCode::NO_CONTENT);
        for app in apps {
            if std::ptr::eq(app, origin) {
                // The instance that ended it refuses at once.
                assert_refused(app, &access).await;
                continue;
            }
            let (took, polls) = time_until_refused(app, &access, Duration::from_secs(1)).await;
            if polls == 1 {
                refused_at_once += 1;
            }
            times.push(took);
        }
    }
    times.sort();
    eprintln!(
        "{label}: logout → refused by /verify on another instance: min {:?}, median {:?}, max {:?} \
         ({} of {} refused by the first request after the logout answered)",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1],
        refused_at_once,
        times.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_and_redis_every_instance_refuses_within_a_second() {
    let deployment = Deployment::new(true).await;
    let apps = vec![
        deployment.spawn().await,
        deployment.spawn().await,
        deployment.spawn().await,
    ];
    logouts_reach_every_instance_within_a_second(&apps, "PostgreSQL + Redis, 3 instances").await;

    // "Others" and "global" too, and an instance started afterwards loads
    // what was revoked before it existed.
    let user = apps[0].new_user().await;
    let (second, _) = apps[1].new_session(&user).await;
    assert_eq!(
        logout(&apps[2], &user.access, "others").await.status(),
        StatusCode::NO_CONTENT
    );
    time_until_refused(&apps[0], &second, Duration::from_secs(1)).await;
    assert_eq!(
        logout(&apps[0], &user.access, "global").await.status(),
        StatusCode::NO_CONTENT
    );
    time_until_refused(&apps[1], &user.access, Duration::from_secs(1)).await;
    let late = deployment.spawn().await;
    assert_refused(&late, &user.access).await;
    assert_refused(&late, &second).await;
    drop(apps);
    drop(late);
    deployment.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_alone_every_instance_refuses_within_a_second() {
    let deployment = Deployment::new(false).await;
    let apps = vec![deployment.spawn().await, deployment.spawn().await];
    logouts_reach_every_instance_within_a_second(&apps, "PostgreSQL, 2 instances").await;

    // A restarted instance (a new one on the same database) still refuses.
    let user = apps[0].new_user().await;
    assert_eq!(
        logout(&apps[0], &user.access, "local").await.status(),
        StatusCode::NO_CONTENT
    );
    let restarted = deployment.spawn().await;
    assert_refused(&restarted, &user.access).await;
    drop(apps);
    drop(restarted);
    deployment.drop_now().await;
}

// ---- faults ----

async fn wait_ready(app: &TestApp, ready: bool, limit: Duration) {
    let started = Instant::now();
    let wanted = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    loop {
        if app.client.get(app.url("/readyz")).send().await.unwrap().status() == wanted {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "/readyz did not answer {wanted} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The address a `redis://host:port` or `postgres://...@host:port/db` URL
/// points at.
async fn target_of(url: &str) -> std::net::SocketAddr {
    let authority = url
        .split("://")
        .nth(1)
        .unwrap()
        .rsplit('@')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    tokio::net::lookup_host(authority).await.unwrap().next().unwrap()
}

/// One instance reaches the store directly, the other through a proxy that
/// the test cuts: the cut one cannot hear of a logout on the first. It keeps
/// serving from what it knows (`/verify` answers), says it is not ready,
/// and once the store is back it reads what it missed and refuses the token.
async fn an_instance_cut_off_catches_up_when_the_store_returns(with_redis: bool) {
    let deployment = Deployment::new(with_redis).await;
    let direct = deployment.spawn().await;
    let proxy = if with_redis {
        CuttableProxy::start(target_of(&redis_url()).await).await
    } else {
        CuttableProxy::start(target_of(&deployment.db.url).await).await
    };
    let cut_off = if with_redis {
        deployment
            .spawn_via(None, Some(format!("redis://{}", proxy.addr)))
            .await
    } else {
        let authority = deployment.db.url.split('@').nth(1).unwrap().split('/').next().unwrap();
        let proxied = deployment.db.url.replace(authority, &proxy.addr.to_string());
        deployment.spawn_via(Some(proxied), None).await
    };
    let user = direct.new_user().await;
    let (other, _) = direct.new_session(&user).await;
    wait_ready(&cut_off, true, Duration::from_secs(10)).await;

    proxy.cut();
    wait_ready(&cut_off, false, Duration::from_secs(15)).await;
    assert_eq!(
        logout(&direct, &user.access, "local").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_refused(&direct, &user.access).await;
    // Documented: while cut off it answers from what it knows.
    assert_eq!(verify_status(&cut_off, &other).await, StatusCode::OK);

    proxy.restore();
    wait_ready(&cut_off, true, Duration::from_secs(20)).await;
    let started = Instant::now();
    while verify_status(&cut_off, &user.access).await == StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the revocation made while cut off was not honoured after reconnecting"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_refused(&cut_off, &user.access).await;
    assert_accepted(&cut_off, &other).await;
    // And the feed works again: a logout now arrives within a second.
    assert_eq!(logout(&direct, &other, "local").await.status(), StatusCode::NO_CONTENT);
    time_until_refused(&cut_off, &other, Duration::from_secs(1)).await;
    drop(direct);
    drop(cut_off);
    deployment.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_cut_off_from_redis_catches_up_when_it_returns() {
    an_instance_cut_off_catches_up_when_the_store_returns(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_cut_off_from_postgres_catches_up_when_it_returns() {
    an_instance_cut_off_catches_up_when_the_store_returns(false).await;
}

/// The session ended, but its revocation cannot be recorded (the table is
/// locked past the statement timeout): the logout answers 503, the instance
/// that ended it refuses the token at once, and records it by itself once
/// the store takes writes again, when every other instance hears of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_that_cannot_be_recorded_is_503_and_retried() {
    use sqlx::Connection as _;
    let deployment = Deployment::new(false).await;
    let (a, b) = (deployment.spawn().await, deployment.spawn().await);
    let user = a.new_user().await;
    assert_accepted(&b, &user.access).await;

    let mut locker = sqlx::PgConnection::connect(&deployment.db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE revoked_sessions IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let res = logout(&a, &user.access, "local").await;
    assert_eq!(res.headers()["retry-after"], "1");
    assert_error(res, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    assert_refused(&a, &user.access).await;

    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    drop(locker);
    // Retried every second, then announced.
    time_until_refused(&b, &user.access, Duration::from_secs(10)).await;
    // The client's retry of its logout is a plain 204.
    assert_eq!(logout(&a, &user.access, "local").await.status(), StatusCode::NO_CONTENT);
    drop(a);
    drop(b);
    deployment.drop_now().await;
}
