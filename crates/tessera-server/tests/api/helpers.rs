use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tessera_server::config::Config;
use tessera_server::secrets::{generate_secret, SecretsSource};
use tessera_server::Application;
use tokio::sync::oneshot;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub jwt_secret: String,
    pub refresh_secret: String,
    pub issuer: String,
    pub data_dir: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a server with the test's secrets (so attacks can forge tokens with
/// the real key) after `tweak` has adjusted the configuration.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_in(tempfile::tempdir().unwrap(), tweak).await
}

/// Like [`spawn_app_with`], in a data directory of the test's (so that a
/// second server can start on the same one, as after a restart).
pub async fn spawn_app_in(data_dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let jwt_secret = generate_secret();
    let refresh_secret = generate_secret();
    let mut config = Config::embedded(data_dir.path().join("data"));
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.secrets = SecretsSource::from_env_values(Some(jwt_secret.clone()), Some(refresh_secret.clone())).unwrap();
    tweak(&mut config);
    let app = Application::build(config).await.expect("the server must start");
    let base = format!("http://{}", app.local_addr());
    let issuer = app.issuer().to_owned();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        base,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            // The server closes keep-alive connections idle for its header
            // timeout (10 s); a pooled one reused at that moment fails.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
        jwt_secret,
        refresh_secret,
        issuer,
        data_dir,
        _stop: stop,
        served,
    }
}

static USER_COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn unique_email() -> String {
    format!(
        "user{}-{}@example.com",
        USER_COUNTER.fetch_add(1, Ordering::Relaxed),
        uuid::Uuid::new_v4().simple()
    )
}

pub const PASSWORD: &str = "correct horse battery staple";

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl TestApp {
    /// Stops the server, waits until it has let go of its data directory,
    /// and hands the directory back (to start another server on it).
    pub async fn stop(self) -> tempfile::TempDir {
        drop(self._stop);
        let _ = self.served.await;
        self.data_dir
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).json(body).send().await.unwrap()
    }

    pub async fn get_auth(&self, path: &str, token: &str) -> Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.unwrap()
    }

    pub async fn register(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/auth/register",
            &json!({"email": email, "password": password, "firstName": "Ada", "lastName": "Lovelace"}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json("/api/auth/login", &json!({"email": email, "password": password}))
            .await
    }

    pub async fn refresh_in(&self, slug: &str, token: &str) -> Response {
        self.post_json(
            &format!("/api/tenants/{slug}/auth/refresh"),
            &json!({"refreshToken": token}),
        )
        .await
    }

    pub async fn refresh(&self, token: &str) -> Response {
        self.post_json("/api/auth/refresh", &json!({"refreshToken": token}))
            .await
    }

    pub async fn new_user(&self) -> TestUser {
        let email = unique_email();
        let res = self.register(&email, PASSWORD).await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let body: Value = res.json().await.unwrap();
        TestUser {
            id: body["user"]["id"].as_str().unwrap().to_owned(),
            email,
            password: PASSWORD.to_owned(),
            access: body["accessToken"].as_str().unwrap().to_owned(),
            refresh: body["refreshToken"].as_str().unwrap().to_owned(),
        }
    }

    /// Logs `user` in again: a second session (device).
    pub async fn new_session(&self, user: &TestUser) -> (String, String) {
        let res = self.login(&user.email, &user.password).await;
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        (
            body["accessToken"].as_str().unwrap().to_owned(),
            body["refreshToken"].as_str().unwrap().to_owned(),
        )
    }
}

/// Asserts the contract's error body and returns it.
pub async fn assert_error(res: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(res.status(), status, "expected {status} {code}");
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(ct.starts_with("application/json"), "error content-type was {ct:?}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], code, "body: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "body: {body}");
    body
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64_decode(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

/// HS256 over `header.payload` with `key`, as an attacker holding (or
/// guessing) a key would.
pub fn hs256(signing_input: &str, key: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(signing_input.as_bytes());
    b64(&mac.finalize().into_bytes())
}

/// Builds and signs a token from raw header and payload JSON text.
pub fn forge(header: &str, payload: &str, key: &[u8]) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = hs256(&input, key);
    format!("{input}.{sig}")
}

/// The decoded header and claims of a token the server issued.
pub fn decode_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let header = serde_json::from_slice(&b64_decode(parts.next().unwrap())).unwrap();
    let claims = serde_json::from_slice(&b64_decode(parts.next().unwrap())).unwrap();
    (header, claims)
}

/// The PostgreSQL the tests use (`TESSERA_TEST_POSTGRES_URL`, default the
/// local server's `test` database).
pub fn postgres_admin_url() -> String {
    std::env::var("TESSERA_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

pub fn redis_url() -> String {
    std::env::var("TESSERA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A database of its own for one test, dropped by [`TestDatabase::drop_now`].
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        use sqlx::Connection as _;
        let admin = postgres_admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin} ({e}); start it with \
                 `pg_ctlcluster --skip-systemctl-redirect 15 main start` or set TESSERA_TEST_POSTGRES_URL"
            )
        });
        let name = format!("tessera_it_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .unwrap_or(admin.clone());
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }

    pub async fn drop_now(self) {
        use sqlx::Connection as _;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_admin_url()).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
                .execute(&mut conn)
                .await;
        }
    }
}

/// A TCP proxy in front of a server that a test can cut and restore, to
/// play a network failure between tessera and its store.
pub struct CuttableProxy {
    pub addr: std::net::SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl CuttableProxy {
    pub async fn start(target: std::net::SocketAddr) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (cut2, links2) = (cut.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if cut2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                links2.lock().unwrap().push(link);
            }
        });
        Self { addr, cut, links }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
