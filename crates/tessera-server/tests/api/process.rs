//! The `tessera` binary as an operator runs it: start-up refusals, restart
//! persistence, SIGTERM, and what ends up in the logs.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

fn command(data_dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TESSERA_DATA_DIR", data_dir)
        .env("TESSERA_BIND", "127.0.0.1:0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

pub(crate) struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

pub(crate) fn start(data_dir: &Path, env: &[(&str, &str)]) -> Server {
    let mut child = command(data_dir, env)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("tessera is listening") {
                let _ = tx.send(line.clone());
            }
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no listening line; log:\n{}", log.lock().unwrap()));
    let port: String = line
        .split("127.0.0.1:")
        .nth(1)
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let addr = format!("127.0.0.1:{port}");
    Server {
        child,
        base: format!("http://{addr}"),
        log,
    }
}

impl Server {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The server's process id (for /proc).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn terminate(mut self) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                let log = self.log.lock().unwrap().clone();
                return (status, log);
            }
            assert!(Instant::now() < deadline, "the server did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn register(client: &reqwest::Client, server: &Server, email: &str) -> Value {
    let res = client
        .post(server.url("/api/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD, "firstName": "Ada", "lastName": "L"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

pub(crate) fn run(data_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    command(data_dir, env).args(args).output().unwrap()
}

#[test]
fn keygen_prints_a_pair_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &[], &["keygen"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let pairs: Vec<(&str, &str)> = text.lines().map(|l| l.split_once('=').unwrap()).collect();
    assert_eq!(
        pairs.iter().map(|p| p.0).collect::<Vec<_>>(),
        ["JWT_SECRET", "REFRESH_TOKEN_SECRET", "TESSERA_MASTER_KEY"]
    );
    let server = start(dir.path(), &pairs);
    let (status, _) = server.terminate();
    assert!(status.success());
    assert!(
        !dir.path().join("secrets.json").exists(),
        "configured secrets are not written to disk"
    );
}

#[test]
fn weak_or_half_configured_settings_stop_startup_naming_the_variable() {
    let strong = tessera_server::secrets::generate_secret();
    let strong2 = tessera_server::secrets::generate_secret();
    let pg = "postgres://postgres@127.0.0.1:5432/test";
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("JWT_SECRET", "secret"), ("REFRESH_TOKEN_SECRET", &strong)],
            "JWT_SECRET",
        ),
        (vec![("JWT_SECRET", &strong)], "REFRESH_TOKEN_SECRET"),
        (vec![("REFRESH_TOKEN_SECRET", &strong)], "JWT_SECRET"),
        (
            vec![("JWT_SECRET", &strong), ("REFRESH_TOKEN_SECRET", &strong)],
            "REFRESH_TOKEN_SECRET",
        ),
        (
            vec![
                ("JWT_SECRET", "your-secret-key-change-this-in-production"),
                ("REFRESH_TOKEN_SECRET", &strong),
            ],
            "JWT_SECRET",
        ),
        (
            vec![
                ("JWT_SECRET", &strong),
                ("REFRESH_TOKEN_SECRET", "changeme-changeme-changeme-changeme-42"),
            ],
            "REFRESH_TOKEN_SECRET",
        ),
        (vec![("TESSERA_LEEWAY", "31s")], "TESSERA_LEEWAY"),
        (vec![("TESSERA_ACCESS_TTL", "fifteen minutes")], "TESSERA_ACCESS_TTL"),
        (
            vec![("TESSERA_REDIS_URL", "http://127.0.0.1:6379")],
            "TESSERA_REDIS_URL",
        ),
        (vec![("TESSERA_DATABASE_URL", "mysql://x")], "TESSERA_DATABASE_URL"),
        (vec![("TESSERA_DATABASE_URL", pg)], "TESSERA_MASTER_KEY"),
        (
            vec![("TESSERA_DATABASE_URL", pg), ("TESSERA_MASTER_KEY", "c2hvcnQ=")],
            "TESSERA_MASTER_KEY",
        ),
        (vec![("TESSERA_BIND", "notanaddr")], "TESSERA_BIND"),
        (vec![("TESSERA_LOG_FORMAT", "xml")], "TESSERA_LOG_FORMAT"),
        (vec![("TESSERA_HASH_QUEUE", "-1")], "TESSERA_HASH_QUEUE"),
        (vec![("TESSERA_ARGON2_ITERATIONS", "1")], "TESSERA_ARGON2_ITERATIONS"),
        (
            vec![
                ("TESSERA_ARGON2_MEMORY_KIB", "1024"),
                ("JWT_SECRET", &strong),
                ("REFRESH_TOKEN_SECRET", &strong2),
            ],
            "TESSERA_ARGON2_MEMORY_KIB",
        ),
    ];
    for (env, var) in cases {
        let dir = tempfile::tempdir().unwrap();
        let out = run(dir.path(), &env, &["serve"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{env:?} must stop start-up as a configuration error: {stderr}"
        );
        assert!(stderr.contains(var), "{env:?}: stderr must name {var}: {stderr}");
        for (_, value) in &env {
            if value.len() >= 32 && !value.contains("change") {
                assert!(!stderr.contains(value), "the error message must not print the secret");
            }
        }
        assert!(!dir.path().join("secrets.json").exists());
    }
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &[("JWT_SECRET", "short")], &["serve"]);
    assert_eq!(out.status.code(), Some(2), "configuration errors exit with 2");
}

#[tokio::test]
async fn restart_keeps_users_sessions_and_generated_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let http = client();
    // Port 0 gives another port after the restart; the issuer must not move.
    let env = [("TESSERA_ISSUER", "https://auth.example")];
    let server = start(&data, &env);
    let email = unique_email();
    let body = register(&http, &server, &email).await;
    let access = body["accessToken"].as_str().unwrap().to_owned();
    let refresh = body["refreshToken"].as_str().unwrap().to_owned();
    let (status, _) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(status.success(), "SIGTERM is a clean exit: {status:?}");

    for file in ["master.key", "tessera.db"] {
        let mode = std::fs::metadata(data.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} must be private");
    }
    assert!(
        !data.join("secrets.json").exists(),
        "generated keys live sealed in the database"
    );

    let server = start(&data, &env);
    let res = http
        .get(server.url("/api/auth/verify"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "tokens signed before the restart still verify"
    );
    let res = http
        .post(server.url("/api/auth/refresh"))
        .json(&json!({"refreshToken": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "sessions survive the restart");
    let res = http
        .post(server.url("/api/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "users survive the restart");
    let res = http
        .post(server.url("/api/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD, "firstName": "A", "lastName": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish() {
    let dir = tempfile::tempdir().unwrap();
    let http = client();
    let server = start(dir.path(), &[]);
    let email = unique_email();
    register(&http, &server, &email).await;
    let logins: Vec<_> = (0..4)
        .map(|_| {
            let req = http
                .post(server.url("/api/auth/login"))
                .json(&json!({"email": email, "password": PASSWORD}));
            tokio::spawn(async move { req.send().await.map(|r| r.status()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(15)).await;
    let (status, log) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    for login in logins {
        assert_eq!(login.await.unwrap().unwrap(), StatusCode::OK, "log:\n{log}");
    }
    assert!(status.success());
    assert!(log.contains("shutting down"), "{log}");
}

#[tokio::test]
async fn logs_never_contain_secrets_passwords_or_tokens() {
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let jwt = tessera_server::secrets::generate_secret();
        let refresh_secret = tessera_server::secrets::generate_secret();
        let env = [
            ("JWT_SECRET", jwt.as_str()),
            ("REFRESH_TOKEN_SECRET", refresh_secret.as_str()),
            ("TESSERA_LOG", "trace"),
            ("TESSERA_LOG_FORMAT", format),
            // Revocations are logged too (without the tokens).
            ("TESSERA_REVOCATION_CHECK", "on"),
        ];
        let http = client();
        let server = start(dir.path(), &env);
        let email = unique_email();
        let body = register(&http, &server, &email).await;
        let mut tokens = vec![
            body["accessToken"].as_str().unwrap().to_owned(),
            body["refreshToken"].as_str().unwrap().to_owned(),
        ];
        let wrong_password = "Tr0ub4dor&3-wrong-guess";
        let res = http
            .post(server.url("/api/auth/login"))
            .json(&json!({"email": email, "password": wrong_password}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let res = http
            .post(server.url("/api/auth/login"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        let login: Value = res.json().await.unwrap();
        tokens.push(login["accessToken"].as_str().unwrap().to_owned());
        let res = http
            .post(server.url("/api/auth/refresh"))
            .json(&json!({"refreshToken": tokens[1]}))
            .send()
            .await
            .unwrap();
        let refreshed: Value = res.json().await.unwrap();
        tokens.push(refreshed["refreshToken"].as_str().unwrap().to_owned());
        http.get(server.url("/api/auth/me"))
            .bearer_auth(&tokens[0])
            .send()
            .await
            .unwrap();
        http.get(server.url("/api/auth/verify"))
            .bearer_auth(&tokens[2])
            .send()
            .await
            .unwrap();
        let forged = format!(
            "{}.{}.AAAA",
            tokens[0].split('.').next().unwrap(),
            tokens[0].split('.').nth(1).unwrap()
        );
        http.get(server.url("/api/auth/verify"))
            .bearer_auth(&forged)
            .send()
            .await
            .unwrap();
        // The reused refresh token: a security event that is logged, without the token.
        http.post(server.url("/api/auth/refresh"))
            .json(&json!({"refreshToken": tokens[1]}))
            .send()
            .await
            .unwrap();
        http.post(server.url("/api/auth/logout"))
            .json(&json!({"refreshToken": tokens[3]}))
            .send()
            .await
            .unwrap();
        // The logged-out session's access token, refused as revoked.
        let res = http
            .get(server.url("/api/auth/verify"))
            .bearer_auth(&tokens[0])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        // A tenant: its API key, its tokens, a rotation and an audit read.
        let res = http
            .post(server.url("/api/auth/signup"))
            .json(
                &json!({"email": unique_email(), "password": PASSWORD, "firstName": "O", "lastName": "",
                          "tenantName": "Log Test"}),
            )
            .send()
            .await
            .unwrap();
        let signup: Value = res.json().await.unwrap();
        let api_key = signup["apiKey"].as_str().unwrap().to_owned();
        let slug = signup["tenant"]["slug"].as_str().unwrap().to_owned();
        tokens.push(signup["accessToken"].as_str().unwrap().to_owned());
        tokens.push(signup["refreshToken"].as_str().unwrap().to_owned());
        for path in [
            format!("/api/tenants/{slug}/keys/rotate"),
            format!("/api/tenants/{slug}/audit"),
        ] {
            let res = if path.ends_with("rotate") {
                http.post(server.url(&path))
                    .header("X-Api-Key", &api_key)
                    .send()
                    .await
                    .unwrap()
            } else {
                http.get(server.url(&path))
                    .header("X-Api-Key", &api_key)
                    .send()
                    .await
                    .unwrap()
            };
            assert_eq!(res.status(), StatusCode::OK);
        }
        let master = std::fs::read_to_string(dir.path().join("master.key")).unwrap();
        let (_, log) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();

        assert!(log.contains("tessera is listening"), "{log}");
        assert!(log.lines().count() > 10, "trace logging must say something:\n{log}");
        if format == "json" {
            for line in log.lines() {
                serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            }
        }
        let mut secrets: Vec<String> = vec![
            jwt.clone(),
            refresh_secret.clone(),
            PASSWORD.to_owned(),
            wrong_password.to_owned(),
            api_key.clone(),
            api_key.trim_start_matches("tsk_").to_owned(),
            master.trim().to_owned(),
        ];
        for token in &tokens {
            secrets.push(token.clone());
            secrets.extend(token.split('.').map(str::to_owned));
        }
        for secret in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "the {format} log contains a secret ({}...)",
                &secret[..8.min(secret.len())]
            );
        }
        assert!(!log.contains("eyJ"), "the {format} log contains something JWT-shaped");
    }
}

#[test]
fn migrate_creates_the_database_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = run(dir.path(), &[], &["migrate"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
    }
    assert!(dir.path().join("tessera.db").exists());
}

#[tokio::test]
async fn migrate_on_postgres_is_idempotent_and_needs_no_master_key() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = run(dir.path(), &[("TESSERA_DATABASE_URL", &db.url)], &["migrate"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
    }
    assert!(
        !dir.path().join("tessera.db").exists(),
        "nothing is written to the data directory"
    );
    db.drop_now().await;
}

#[tokio::test]
async fn skipping_migrations_on_an_unmigrated_database_refuses_to_start() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let master = tessera_core::MasterKey::generate_base64();
    let env = [
        ("TESSERA_DATABASE_URL", db.url.as_str()),
        ("TESSERA_MASTER_KEY", master.as_str()),
        ("TESSERA_SKIP_MIGRATIONS", "true"),
    ];
    let out = run(dir.path(), &env, &["serve"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("tessera migrate") && stderr.contains("TESSERA_SKIP_MIGRATIONS"),
        "{stderr}"
    );
    // After `tessera migrate`, the same settings start.
    assert!(run(dir.path(), &env[..2], &["migrate"]).status.success());
    let server = start(dir.path(), &env);
    let (status, _) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(status.success());
    db.drop_now().await;
}

#[tokio::test]
async fn master_key_mix_ups_stop_startup() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let first = tessera_core::MasterKey::generate_base64();
    let url = db.url.clone();
    let env = [
        ("TESSERA_DATABASE_URL", url.as_str()),
        ("TESSERA_MASTER_KEY", first.as_str()),
    ];
    let server = start(dir.path(), &env);
    let (status, _) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(status.success());

    // Another master key cannot open the keys the first one sealed.
    let other = tessera_core::MasterKey::generate_base64();
    let out = run(
        dir.path(),
        &[("TESSERA_DATABASE_URL", &url), ("TESSERA_MASTER_KEY", &other)],
        &["serve"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("TESSERA_MASTER_KEY") && stderr.contains("sealed with master key"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&other) && !stderr.contains(&first),
        "keys are never printed"
    );

    // A key file readable by others, or a file and a variable at once, are refused.
    let file = dir.path().join("master.key");
    std::fs::write(&file, &first).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let file_env = [
        ("TESSERA_DATABASE_URL", url.as_str()),
        ("TESSERA_MASTER_KEY_FILE", file.to_str().unwrap()),
    ];
    let out = run(dir.path(), &file_env, &["serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let both = [file_env[0], file_env[1], ("TESSERA_MASTER_KEY", first.as_str())];
    let out = run(dir.path(), &both, &["serve"]);
    assert_eq!(out.status.code(), Some(2));
    // The private file alone works.
    let server = start(dir.path(), &file_env);
    let (status, log) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(status.success(), "{log}");
    db.drop_now().await;
}

#[test]
fn bad_rate_limit_settings_stop_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("TESSERA_RATE_LIMITS", "sometimes"),
        ("TESSERA_IP_RATE_LIMIT", "100 a minute"),
        ("TESSERA_IP_RATE_LIMIT", "0/1m"),
        ("TESSERA_LOGIN_FAILURE_LIMIT", "10/15 m"),
        ("TESSERA_LOGIN_BACKOFF", "soon"),
        ("TESSERA_LOGIN_BACKOFF_MAX", "10s"),
        ("TESSERA_FORGOT_RATE_LIMIT", "3/0s"),
        ("TESSERA_RESEND_RATE_LIMIT", "/1h"),
        ("TESSERA_TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal"),
    ] {
        let out = run(dir.path(), &[(var, value)], &["serve"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
    }
    // Good values, and every limit off, start.
    let server = start(
        dir.path(),
        &[
            ("TESSERA_IP_RATE_LIMIT", "off"),
            ("TESSERA_LOGIN_FAILURE_LIMIT", "5/10m"),
            ("TESSERA_LOGIN_BACKOFF", "30s"),
            ("TESSERA_LOGIN_BACKOFF_MAX", "1h"),
            ("TESSERA_FORGOT_RATE_LIMIT", "2/1h"),
            ("TESSERA_TRUSTED_PROXIES", "10.0.0.0/8, 2001:db8::1"),
        ],
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(!log.contains("unknown setting"), "{log}");
    let server = start(dir.path(), &[("TESSERA_RATE_LIMITS", "off")]);
    let (status, log) = server.terminate();
    assert!(status.success() && log.contains("rate limits are off"), "{log}");
}

#[test]
fn typos_in_settings_are_warned_about_and_every_setting_of_the_contract_is_known() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &[
            ("TESSERA_REVOCATION_CHECK", "on"),
            ("TESSERA_RATE_LIMITS", "on"),
            ("TESSERA_TRUSTED_PROXIES", "10.0.0.1"),
            ("TESSERA_REDIS_ULR", "redis://x"),
        ],
    );
    let (_, log) = server.terminate();
    assert!(
        log.contains("TESSERA_REDIS_ULR") && log.contains("unknown setting"),
        "{log}"
    );
    assert_eq!(log.matches("unknown setting").count(), 1, "{log}");
}

/// An access token as an earlier version (before tenants) issued it: the kid
/// derived from the secret, no `tid`.
fn legacy_access_token(secret: &str, issuer: &str) -> String {
    let kid = tessera_token::Key::from_secret(tessera_token::TokenKind::Access, secret.as_bytes())
        .unwrap()
        .kid()
        .to_owned();
    let now = now();
    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid});
    let claims = json!({"iss": issuer, "aud": "tessera", "sub": uuid::Uuid::new_v4(), "sid": uuid::Uuid::new_v4(),
        "email": "old@example.com", "role": "user", "iat": now, "nbf": now, "exp": now + 600, "jti": uuid::Uuid::new_v4()});
    forge(&header.to_string(), &claims.to_string(), secret.as_bytes())
}

#[tokio::test]
async fn an_earlier_versions_generated_secrets_file_is_adopted_without_logging_anyone_out() {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (access, refresh) = (
        tessera_server::secrets::generate_secret(),
        tessera_server::secrets::generate_secret(),
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(data.join("secrets.json"))
        .unwrap();
    file.write_all(
        json!({"version": 1, "jwtSecret": access, "refreshTokenSecret": refresh})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    drop(file);
    let issuer = "https://auth.example";
    let token = legacy_access_token(&access, issuer);
    let env = [("TESSERA_ISSUER", issuer)];
    let http = client();
    for round in 0..2 {
        let server = start(&data, &env);
        let res = http
            .get(server.url("/api/auth/verify"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "round {round}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["tid"], "00000000-0000-0000-0000-000000000000");
        let (status, log) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
        assert!(status.success());
        assert!(!log.contains(&access) && !log.contains(&refresh));
        assert!(
            !data.join("secrets.json").exists(),
            "the plaintext file is gone once adopted"
        );
        assert!(data.join("master.key").exists());
    }
}

#[tokio::test]
async fn an_earlier_versions_shared_postgres_secrets_are_adopted() {
    use tessera_store::SecretStore as _;
    let db = TestDatabase::create().await;
    let master = tessera_core::MasterKey::generate_base64();
    let sealer = tessera_core::MasterKey::from_base64(&master).unwrap();
    let (access, refresh) = (
        tessera_server::secrets::generate_secret(),
        tessera_server::secrets::generate_secret(),
    );
    {
        // What the earlier version stored: the pair sealed with these contexts.
        let store = tessera_store::PostgresStore::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        store
            .default_secrets_or_insert(tessera_store::SealedSecrets {
                master_key_id: sealer.id().to_owned(),
                access: sealer.seal(access.as_bytes(), b"tessera/default-keyring/access/v1"),
                refresh: sealer.seal(refresh.as_bytes(), b"tessera/default-keyring/refresh/v1"),
                created_at: now(),
            })
            .await
            .unwrap();
    }
    let issuer = "https://auth.example";
    let token = legacy_access_token(&access, issuer);
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("TESSERA_DATABASE_URL", db.url.as_str()),
        ("TESSERA_MASTER_KEY", master.as_str()),
        ("TESSERA_ISSUER", issuer),
    ];
    let server = start(dir.path(), &env);
    let res = client()
        .get(server.url("/api/auth/verify"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (status, _) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(status.success());
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_manage_tenants_keys_and_the_master_key_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let text = |out: &std::process::Output| {
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let out = run(&data, &[], &["tenant", "create", "Acme Corp", "--slug", "acme"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let api_key = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("api key"))
        .map(|k| k.trim().to_owned())
        .unwrap();
    assert!(api_key.starts_with("tsk_"), "{stdout}");
    let out = run(&data, &[], &["tenant", "create", "Another", "--slug", "acme"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("taken"));
    let out = run(&data, &[], &["tenant", "create", "Bad", "--slug", "Not A Slug"]);
    assert!(!out.status.success());

    let (stdout, _) = text(&run(&data, &[], &["tenant", "list"]));
    assert!(stdout.lines().any(|l| l.starts_with("acme ")), "{stdout}");
    let (stdout, _) = text(&run(&data, &[], &["tenant", "show", "acme"]));
    assert_eq!(stdout.matches(" active ").count(), 2, "{stdout}");
    assert_eq!(stdout.matches(" next ").count(), 2, "{stdout}");
    assert!(!stdout.contains(&api_key));

    let server = start(&data, &[("TESSERA_ISSUER", "https://auth.example")]);
    let http = client();
    let email = unique_email();
    let res = http
        .post(server.url("/api/tenants/acme/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD, "firstName": "A", "lastName": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    let access = body["accessToken"].as_str().unwrap().to_owned();

    // A tenant created from the CLI beside the running server is served at
    // once (its keys are loaded when its slug is first seen).
    assert!(run(&data, &[], &["tenant", "create", "Live One", "--slug", "live-one"])
        .status
        .success());
    let res = http
        .post(server.url("/api/tenants/live-one/auth/register"))
        .json(&json!({"email": unique_email(), "password": PASSWORD, "firstName": "A", "lastName": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);

    // A graceful rotation from the CLI reaches the running server (it
    // re-reads changed keys every second on SQLite).
    let out = run(&data, &[], &["tenant", "rotate-keys", "acme"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let new_kid = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("access kid"))
        .map(|k| k.trim().to_owned())
        .unwrap();
    let started = Instant::now();
    loop {
        let res = http
            .post(server.url("/api/tenants/acme/auth/login"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        let body: Value = res.json().await.unwrap();
        let (header, _) = decode_parts(body["accessToken"].as_str().unwrap());
        if header["kid"] == new_kid.as_str() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the server never saw the rotation"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let res = http
        .get(server.url("/api/auth/verify"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "graceful: old tokens still verify");

    // The master key cannot be rotated under a running embedded server.
    let out = run(&data, &[], &["master-key", "rotate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("stop it first"), "{}", text(&out).1);

    // A revoking rotation ends the old tokens on the running server.
    assert!(run(&data, &[], &["tenant", "rotate-keys", "acme", "--mode", "revoke"])
        .status
        .success());
    let started = Instant::now();
    loop {
        let res = http
            .get(server.url("/api/auth/verify"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "revoked keys still verify");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(status.success());

    let (stdout, _) = text(&run(&data, &[], &["audit", "--tenant", "acme", "--json"]));
    let types: Vec<String> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(types.iter().filter(|t| *t == "keys.rotated").count(), 2, "{types:?}");
    assert!(types.contains(&"user.registered".to_owned()) && types.contains(&"tenant.created".to_owned()));

    // Stopped: the master key rotates, and everything still opens afterwards.
    let old_master = std::fs::read_to_string(data.join("master.key")).unwrap();
    let out = run(&data, &[], &["master-key", "rotate"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("re-sealed"), "{stdout}");
    let new_master = std::fs::read_to_string(data.join("master.key")).unwrap();
    assert_ne!(old_master.trim(), new_master.trim());
    assert_eq!(
        new_master.trim().lines().count(),
        1,
        "the old key is dropped once nothing needs it"
    );
    let server = start(&data, &[("TESSERA_ISSUER", "https://auth.example")]);
    let res = http
        .post(server.url("/api/tenants/acme/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = http
        .post(server.url("/api/auth/register"))
        .json(&json!({"email": unique_email(), "password": PASSWORD, "firstName": "A", "lastName": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "the default tenant's keys opened too"
    );
    let (status, _) = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn the_cli_makes_public_key_tenants_and_leaves_the_default_tenants_algorithm_to_its_setting() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let text = |out: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let out = run(
        &data,
        &[],
        &["tenant", "create", "Edwards", "--slug", "edwards", "--alg", "EdDSA"],
    );
    assert!(out.status.success(), "{}", text(&out));
    // Right after creation the next key is brand new: a graceful rotation waits.
    let out = run(
        &data,
        &[("TESSERA_JWKS_MAX_AGE", "1h")],
        &["tenant", "rotate-keys", "edwards"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("retry in"), "{}", text(&out));
    let out = run(
        &data,
        &[],
        &["tenant", "rotate-keys", "edwards", "--mode", "revoke", "--alg", "ES256"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&data, &[], &["tenant", "show", "edwards"]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    // The revoked EdDSA keys show no algorithm (their material is gone);
    // the new access keys are ES256, refresh keys HS256.
    let alg_of = |state: &str, kind: &str| -> Vec<String> {
        shown
            .lines()
            .filter(|l| l.contains(&format!(" {kind} ")) && l.contains(&format!(" {state} ")))
            .map(|l| l.split_whitespace().nth(2).unwrap().to_owned())
            .collect()
    };
    assert_eq!(alg_of("active", "access"), ["ES256"], "{shown}");
    assert_eq!(alg_of("next", "access"), ["ES256"], "{shown}");
    assert_eq!(alg_of("active", "refresh"), ["HS256"], "{shown}");
    assert!(alg_of("revoked", "access").iter().all(|a| a == "-"), "{shown}");
    let out = run(&data, &[], &["tenant", "create", "Bad", "--alg", "es256"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // The default tenant signs with TESSERA_SIGNING_ALG, not with a rotation's word.
    let out = run(&data, &[], &["tenant", "rotate-keys", "default", "--alg", "EdDSA"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("TESSERA_SIGNING_ALG=EdDSA"), "{}", text(&out));
}
