//! Faults of the machinery behind the API: a store that cannot answer and a
//! saturated password hasher give 503 `unavailable` with `Retry-After`, never
//! a 500 or a 401, `/verify` keeps answering, and service recovers by itself.

use crate::helpers::*;
use reqwest::StatusCode;
use sqlx::Connection as _;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_locked_database_is_503_then_recovers_by_itself() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let db = app.data_dir.path().join("data").join("tessera.db");

    // Another process holding SQLite's write lock: every write waits out the
    // busy timeout, then fails.
    let mut locker = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut locker).await.unwrap();

    let started = Instant::now();
    let res = app.refresh(&user.refresh).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a store fault must answer in bounded time"
    );
    assert_eq!(res.headers()["retry-after"], "1");
    assert_error(res, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    let res = app.register(&unique_email(), PASSWORD).await;
    assert_error(res, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;

    // The hot path needs no store.
    assert_eq!(
        app.get_auth("/api/auth/verify", &user.access).await.status(),
        StatusCode::OK
    );

    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    drop(locker);

    // No restart: the same refresh token (not consumed by the failed attempt) works.
    let res = app.refresh(&user.refresh).await;
    assert_eq!(res.status(), StatusCode::OK, "the session survived the fault");
    assert_eq!(
        app.register(&unique_email(), PASSWORD).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_login_flood_beyond_the_hashing_queue_gets_503_not_unbounded_memory() {
    let app = spawn_app_with(|c| {
        c.hash_concurrency = 1;
        c.hash_queue = 2;
    })
    .await;
    let user = app.new_user().await;
    let attempts = futures::future::join_all((0..16).map(|_| app.login(&user.email, "wrong password"))).await;
    let mut refused = 0;
    for res in attempts {
        match res.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(res.headers()["retry-after"], "1");
                assert_error(res, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused > 0, "a flood past the queue must be refused");
    // Once the flood has passed, logins work again.
    assert_eq!(app.login(&user.email, &user.password).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_body_trickled_forever_is_cut_off_with_408() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = spawn_app_with(|c| c.request_timeout = Duration::from_secs(2)).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let started = Instant::now();
    let mut response = Vec::new();
    // Trickle nothing more; the server must answer on its own.
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    assert!(read.is_ok(), "the server kept the slow request open past its deadline");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains(r#""error":"request_timeout""#), "{text}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "cut off too early: {:?}",
        started.elapsed()
    );
}
