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
        // 16 guesses of one account: past its failed-login budget, which
        // would answer 429 before the hashing queue is reached.
        c.rate_limits.login_failures = None;
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

/// Slowloris: a connection that sends nothing, one that trickles its
/// headers, and an idle keep-alive connection are all closed by the server.
#[tokio::test]
async fn slow_or_silent_connections_are_closed() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = spawn_app_with(|c| c.header_timeout = Duration::from_secs(1)).await;
    let addr = app.base.trim_start_matches("http://").to_owned();

    async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Vec<u8> {
        let mut seen = Vec::new();
        let read = tokio::time::timeout(limit, stream.read_to_end(&mut seen)).await;
        assert!(read.is_ok(), "the server kept the connection open");
        seen
    }

    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut trickling = tokio::net::TcpStream::connect(&addr).await.unwrap();
    trickling
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();

    let started = Instant::now();
    let trickle = async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if trickling.write_all(b"X-Slow: 1\r\n").await.is_err() {
                break;
            }
        }
        closed_within(&mut trickling, Duration::from_secs(5)).await
    };
    let (silent_seen, trickle_seen, idle_seen) = tokio::join!(
        closed_within(&mut silent, Duration::from_secs(5)),
        trickle,
        closed_within(&mut idle, Duration::from_secs(5)),
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(silent_seen.is_empty() || String::from_utf8_lossy(&silent_seen).starts_with("HTTP/1.1 408"));
    assert!(
        !String::from_utf8_lossy(&trickle_seen).contains("200 OK"),
        "a trickled request must not be served"
    );
    let idle_text = String::from_utf8_lossy(&idle_seen);
    assert!(
        idle_text.starts_with("HTTP/1.1 200"),
        "the idle connection got its answer first: {idle_text}"
    );
    // The server itself is fine.
    assert_eq!(
        app.client.get(app.url("/healthz")).send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_instead_of_failing() {
    use tokio::io::AsyncWriteExt as _;
    let app = spawn_app_with(|c| {
        c.max_connections = 2;
        c.header_timeout = Duration::from_secs(2);
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut hogs = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        hogs.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A third client is queued, not refused: it is served once a hog times out.
    let started = Instant::now();
    let res = reqwest::Client::new().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "the cap did not hold: {:?}",
        started.elapsed()
    );
    drop(hogs);
}
