//! Scale-out: several `tessera serve` processes on one PostgreSQL database
//! and one Redis, and what happens when either goes away.

use crate::helpers::*;
use crate::process::{start, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tessera_core::MasterKey;
use tessera_server::secrets::SecretValue;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn post(http: &reqwest::Client, server: &Server, path: &str, body: Value) -> reqwest::Response {
    http.post(server.url(path)).json(&body).send().await.unwrap()
}

fn tokens(body: &Value) -> (String, String) {
    (
        body["accessToken"].as_str().unwrap().to_owned(),
        body["refreshToken"].as_str().unwrap().to_owned(),
    )
}

/// Deletes every Redis key under `prefix`: Redis losing this deployment's data.
pub(crate) fn forget_redis_keys(prefix: &str) {
    let url = redis_url();
    let keys = Command::new("redis-cli")
        .args(["-u", &url, "--scan", "--pattern", &format!("{prefix}*")])
        .output()
        .unwrap();
    for key in String::from_utf8_lossy(&keys.stdout).lines().filter(|k| !k.is_empty()) {
        let out = Command::new("redis-cli")
            .args(["-u", &url, "DEL", key])
            .output()
            .unwrap();
        assert!(out.status.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_users_sessions_and_keys() {
    let db = TestDatabase::create().await;
    let prefix = format!("tessera-it-{}", uuid::Uuid::new_v4().simple());
    let master = MasterKey::generate_base64();
    let env = [
        ("TESSERA_DATABASE_URL", db.url.clone()),
        ("TESSERA_REDIS_URL", redis_url()),
        ("TESSERA_REDIS_KEY_PREFIX", prefix.clone()),
        ("TESSERA_MASTER_KEY", master),
        ("TESSERA_ISSUER", "https://auth.example".to_owned()),
        ("TESSERA_REFRESH_REUSE_GRACE", "0s".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // Started at the same moment: they must agree on one generated keyring.
    let servers: Vec<Server> = std::thread::scope(|scope| {
        let handles: Vec<_> = dirs.iter().map(|d| scope.spawn(|| start(d.path(), &env))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (a, b, c) = (&servers[0], &servers[1], &servers[2]);
    let http = client();
    let email = unique_email();

    let res = post(
        &http,
        a,
        "/api/auth/register",
        json!({"email": email, "password": PASSWORD, "firstName": "Ada", "lastName": ""}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let (access_a, refresh_a) = tokens(&res.json().await.unwrap());
    for server in [b, c] {
        let res = http
            .get(server.url("/api/auth/verify"))
            .bearer_auth(&access_a)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "a token signed on one instance verifies on every other"
        );
    }

    // Log in on B, refresh A's session on C, read it back on A.
    let res = post(
        &http,
        b,
        "/api/auth/login",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let (access_b, _) = tokens(&res.json().await.unwrap());
    let res = post(&http, c, "/api/auth/refresh", json!({"refreshToken": refresh_a})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (access_a2, refresh_a2) = tokens(&res.json().await.unwrap());
    assert_eq!(
        http.get(a.url("/api/auth/me"))
            .bearer_auth(&access_a2)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let res = http
        .get(b.url("/api/auth/sessions"))
        .bearer_auth(&access_b)
        .send()
        .await
        .unwrap();
    let sessions: Value = res.json().await.unwrap();
    assert_eq!(sessions["sessions"].as_array().unwrap().len(), 2);
    // The rotated-away token replayed on yet another instance: theft, seen everywhere.
    let res = post(&http, a, "/api/auth/refresh", json!({"refreshToken": refresh_a})).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
    let res = post(&http, b, "/api/auth/refresh", json!({"refreshToken": refresh_a2})).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;

    // A burst of refreshes of one token spread over the instances: exactly one wins.
    let res = post(
        &http,
        c,
        "/api/auth/login",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    let (_, burst_token) = tokens(&res.json().await.unwrap());
    let attempts = futures::future::join_all((0..30).map(|i| {
        let server = &servers[i % 3];
        post(&http, server, "/api/auth/refresh", json!({"refreshToken": burst_token}))
    }))
    .await;
    let wins = attempts.iter().filter(|r| r.status() == StatusCode::OK).count();
    assert_eq!(
        wins, 1,
        "exactly one of 30 concurrent refreshes across 3 instances may succeed"
    );
    assert!(attempts
        .iter()
        .all(|r| r.status() == StatusCode::OK || r.status() == StatusCode::UNAUTHORIZED));

    // Global logout on C ends B's session too.
    let res = http
        .post(c.url("/api/auth/logout"))
        .bearer_auth(&access_b)
        .json(&json!({"scope": "global"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = http
        .get(a.url("/api/auth/sessions"))
        .bearer_auth(&access_b)
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;

    // Redis losing its data ends the sessions it held, nothing else.
    let res = post(
        &http,
        a,
        "/api/auth/login",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    let (_, live_refresh) = tokens(&res.json().await.unwrap());
    forget_redis_keys(&prefix);
    let res = post(&http, b, "/api/auth/refresh", json!({"refreshToken": live_refresh})).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let res = post(
        &http,
        c,
        "/api/auth/login",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK, "users live in PostgreSQL and survive");

    for dir in &dirs {
        assert!(
            !dir.path().join("secrets.json").exists(),
            "with PostgreSQL the keys live in the database"
        );
    }
    for server in servers {
        let (status, _) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
        assert!(status.success());
    }
    forget_redis_keys(&prefix);
    db.drop_now().await;
}

struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    async fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "the private redis-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self { child, port }
    }

    fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_ready(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if app.client.get(app.url("/readyz")).send().await.unwrap().status() == StatusCode::OK {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not become ready again by itself"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_503_and_verify_stays_up_then_recovers() {
    let redis = PrivateRedis::start(free_port()).await;
    let port = redis.port;
    let app = spawn_app_with(|c| c.redis_url = Some(format!("redis://127.0.0.1:{port}"))).await;
    let user = app.new_user().await;

    // Traffic that keeps going while Redis dies underneath it: no answer may
    // be a 5xx other than 503, and verify must never fail.
    let stop_traffic = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (client, base, access, refresh, stop) = (
            app.client.clone(),
            app.base.clone(),
            user.access.clone(),
            user.refresh.clone(),
            stop_traffic.clone(),
        );
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let verify = client
                    .get(format!("{base}/api/auth/verify"))
                    .bearer_auth(&access)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(verify.status(), StatusCode::OK, "verify needs no store");
                let res = client
                    .post(format!("{base}/api/auth/refresh"))
                    .json(&json!({"refreshToken": refresh}))
                    .send()
                    .await
                    .unwrap();
                seen.push(res.status());
            }
            seen
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let port = redis.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop_traffic.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = traffic.await.unwrap();
    assert!(
        seen.contains(&StatusCode::SERVICE_UNAVAILABLE),
        "the outage was seen: {seen:?}"
    );
    assert!(
        seen.iter().all(|s| [
            StatusCode::OK,
            StatusCode::UNAUTHORIZED,
            StatusCode::SERVICE_UNAVAILABLE
        ]
        .contains(s)),
        "only 200 (grace), 401 or 503 during the outage: {seen:?}"
    );

    let started = Instant::now();
    let res = app.refresh(&user.refresh).await;
    assert_error(res, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    let res = app.login(&user.email, &user.password).await;
    let body = assert_error(res, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    assert!(body.get("accessToken").is_none(), "a store failure never mints a token");
    let newcomer = unique_email();
    let res = app.register(&newcomer, PASSWORD).await;
    assert_error(res, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "store faults answer in bounded time: {:?}",
        started.elapsed()
    );
    assert_eq!(
        app.get_auth("/api/auth/verify", &user.access).await.status(),
        StatusCode::OK
    );
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_error(res, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;

    let _redis = PrivateRedis::start(port).await;
    wait_ready(&app).await;
    // The restarted Redis kept nothing: its sessions ended, nothing else did.
    assert_error(
        app.refresh(&user.refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    let (_, refresh) = app.new_session(&user).await;
    assert_eq!(app.refresh(&refresh).await.status(), StatusCode::OK);
    // The registration refused during the outage left no account behind: the
    // retry the 503 asked for succeeds.
    assert_eq!(app.register(&newcomer, PASSWORD).await.status(), StatusCode::CREATED);
}

/// A server whose PostgreSQL (a database of its own) is reached through a
/// proxy the test can cut.
async fn app_behind_a_cuttable_postgres() -> (TestDatabase, CuttableProxy, TestApp) {
    let db = TestDatabase::create().await;
    let authority = db
        .url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    let target = tokio::net::lookup_host(&authority).await.unwrap().next().unwrap();
    let proxy = CuttableProxy::start(target).await;
    let proxied = db.url.replace(&authority, &proxy.addr.to_string());
    let app = spawn_app_with(|c| {
        c.database_url = Some(proxied);
        c.master_key = Some(SecretValue::new(MasterKey::generate_base64()));
    })
    .await;
    (db, proxy, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_is_503_and_verify_stays_up_then_recovers() {
    let (db, proxy, app) = app_behind_a_cuttable_postgres().await;
    let user = app.new_user().await;
    proxy.cut();

    let started = Instant::now();
    assert_error(
        app.login(&user.email, &user.password).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    )
    .await;
    assert_error(
        app.refresh(&user.refresh).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    )
    .await;
    let res = app.get_auth("/api/auth/me", &user.access).await;
    assert_error(res, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "store faults answer in bounded time: {:?}",
        started.elapsed()
    );
    assert_eq!(
        app.get_auth("/api/auth/verify", &user.access).await.status(),
        StatusCode::OK
    );
    let res = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);

    proxy.restore();
    wait_ready(&app).await;
    assert_eq!(
        app.refresh(&user.refresh).await.status(),
        StatusCode::OK,
        "the session survived the outage"
    );
    assert_eq!(app.login(&user.email, &user.password).await.status(), StatusCode::OK);
    drop(app);
    db.drop_now().await;
}

/// A private three-master Redis Cluster, shut down on drop.
struct PrivateCluster {
    nodes: Vec<Child>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl PrivateCluster {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for port in &ports {
            let p = port.to_string();
            nodes.push(
                Command::new("redis-server")
                    .current_dir(dir.path())
                    .args(["--port", &p, "--bind", "127.0.0.1", "--cluster-enabled", "yes"])
                    .args([
                        "--cluster-config-file",
                        &format!("nodes-{p}.conf"),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ])
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap(),
            );
        }
        for port in &ports {
            let deadline = Instant::now() + Duration::from_secs(10);
            while tokio::net::TcpStream::connect(("127.0.0.1", *port)).await.is_err() {
                assert!(Instant::now() < deadline, "a cluster node did not start");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let info = Command::new("redis-cli")
                .args(["-p", &ports[0].to_string(), "CLUSTER", "INFO"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                break;
            }
            assert!(Instant::now() < deadline, "the cluster did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            nodes,
            ports,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_work_on_a_redis_cluster() {
    let cluster = PrivateCluster::start().await;
    let url = cluster.url();
    let app = spawn_app_with(|c| c.redis_url = Some(url)).await;
    let mut users = Vec::new();
    for _ in 0..6 {
        users.push(app.new_user().await);
    }
    for user in &users {
        let res = app.refresh(&user.refresh).await;
        assert_eq!(res.status(), StatusCode::OK);
        let (_, second) = app.new_session(user).await;
        let res = app.get_auth("/api/auth/sessions", &user.access).await;
        assert_eq!(
            res.json::<Value>().await.unwrap()["sessions"].as_array().unwrap().len(),
            2
        );
        let res = app
            .client
            .post(app.url("/api/auth/logout"))
            .bearer_auth(&user.access)
            .json(&json!({"scope": "others"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_error(app.refresh(&second).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    // The users' session keys are spread over the masters, each user's in one slot.
    let mut populated = 0;
    for port in &cluster.ports {
        let keys = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "DBSIZE"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&keys.stdout).trim() != "0" {
            populated += 1;
        }
    }
    assert!(
        populated >= 2,
        "sessions of 6 users should land on more than one master"
    );
    assert_eq!(
        app.client.get(app.url("/readyz")).send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_while_idle_are_replaced_before_a_request_needs_them() {
    let (db, proxy, app) = app_behind_a_cuttable_postgres().await;
    let user = app.new_user().await;
    // A restart or failover while nobody is asking: every pooled connection dies.
    proxy.cut();
    proxy.restore();
    tokio::time::sleep(Duration::from_secs(6)).await;
    // The first requests afterwards find fresh connections, none fails.
    assert_eq!(app.login(&user.email, &user.password).await.status(), StatusCode::OK);
    assert_eq!(app.refresh(&user.refresh).await.status(), StatusCode::OK);
    assert_eq!(
        app.get_auth("/api/auth/me", &user.access).await.status(),
        StatusCode::OK
    );
    drop(app);
    db.drop_now().await;
}

/// A forgot-password request and a resend made while PostgreSQL is down are
/// answered 202 as always, and their mail is not lost (nor the registration's,
/// whose background work the outage may catch too): once the database is
/// back, the links arrive and work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_asked_for_during_an_outage_arrives_once_the_store_returns() {
    let (db, proxy, app) = app_behind_a_cuttable_postgres().await;
    let user = app.new_user().await;
    proxy.cut();
    for (path, email) in [
        ("/api/auth/password/forgot", user.email.as_str()),
        ("/api/auth/email/resend", user.email.as_str()),
    ] {
        let res = app.post_json(path, &json!({ "email": email })).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED, "{path}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restore();

    // The registration's verification link and the resend's arrive (before
    // the reset, which verifies the email and so stops a resend), then the
    // reset link, which works.
    crate::accounts::wait_for_token(&app, &user.email, "tev_", 1).await;
    crate::accounts::reset_by_mail(&app, &user.email, 0).await;
    assert_eq!(
        app.login(&user.email, crate::accounts::NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    drop(app);
    db.drop_now().await;
}
