//! What the integration tests share: keys and tokens made with
//! tessera-token the way tessera makes them, and a real HTTP server on
//! 127.0.0.1 that serves a JWKS like tessera's and can be told to change
//! it, fail, hang or stop.

// Helpers outside #[test] functions: a failed unwrap is a failed test here too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tessera_token::{generate_private_key, AccessClaims, Algorithm, Jwk, JwkSet, Key, SigningKeys, TokenKind, Uuid};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ISSUER: &str = "http://tessera.test";
pub const AUDIENCE: &str = "tessera";

/// One tenant's signing pair with a public-key access key, and its JWK.
pub struct TestKey {
    pub signing: SigningKeys,
    pub jwk: Jwk,
    pub tenant: Uuid,
}

impl TestKey {
    /// A new `alg` key named `kid`, of `tenant`.
    pub fn new(alg: Algorithm, kid: &str, tenant: Uuid) -> Self {
        let der = generate_private_key(alg, &mut rand::rngs::OsRng).unwrap();
        let access = Key::from_pkcs8(alg, TokenKind::Access, kid, &der)
            .unwrap()
            .for_tenant(tenant);
        Self::from_access(access)
    }

    pub fn from_access(access: Key) -> Self {
        let tenant = access.tenant();
        let refresh_kid = if access.kid() == "r" { "r2" } else { "r" };
        let refresh = Key::with_kid(TokenKind::Refresh, refresh_kid, &[7u8; 32])
            .unwrap()
            .for_tenant(tenant);
        let jwk = access.public_jwk().unwrap();
        Self {
            signing: SigningKeys::new(access, refresh).unwrap(),
            jwk,
            tenant,
        }
    }

    pub fn eddsa(kid: &str) -> Self {
        Self::new(Algorithm::EdDSA, kid, tessera_token::DEFAULT_TENANT)
    }

    pub fn kid(&self) -> &str {
        self.signing.access_kid()
    }

    /// Claims of a fresh token of this key's tenant.
    pub fn claims(&self) -> AccessClaims<'static> {
        claims(self.tenant)
    }

    pub fn sign(&self, claims: &AccessClaims<'_>) -> String {
        self.signing.sign_access(claims)
    }

    /// A fresh, valid token.
    pub fn token(&self) -> String {
        self.sign(&self.claims())
    }
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Claims as tessera issues them: valid for 15 minutes from now.
pub fn claims(tenant: Uuid) -> AccessClaims<'static> {
    let now = now();
    AccessClaims {
        iss: Cow::Borrowed(ISSUER),
        aud: Cow::Borrowed(AUDIENCE),
        sub: Uuid::new_v4(),
        sid: Uuid::new_v4(),
        tid: tenant,
        email: Cow::Borrowed("ada@example.com"),
        role: Cow::Borrowed("user"),
        iat: now,
        nbf: now,
        exp: now + 900,
        jti: Uuid::new_v4(),
    }
}

/// `token` with one character of its payload changed.
pub fn tamper(token: &str) -> String {
    let dot = token.find('.').unwrap();
    let mut bytes = token.as_bytes().to_vec();
    let at = dot + 5;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// What the JWKS server does with the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// Serves the key set (or 304 to its ETag).
    Serve,
    /// 500 with a text body.
    Fail500,
    /// 200 with an HTML page.
    NotJson,
    /// Never answers.
    Hang,
    /// 200 with a JSON body of 2 MiB.
    Oversized,
}

struct ServerState {
    /// The document and its version (the ETag is `"v<version>"`).
    document: Mutex<(u64, serde_json::Value)>,
    behavior: Mutex<Behavior>,
    max_age: Mutex<u64>,
    delay: Mutex<Duration>,
    requests: AtomicUsize,
    not_modified: AtomicUsize,
    if_none_match: Mutex<Vec<Option<String>>>,
}

/// A JWKS server on 127.0.0.1, port 0.
pub struct JwksServer {
    pub url: String,
    state: Arc<ServerState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl JwksServer {
    /// Serves the JWKs of `keys`, `Cache-Control: public, max-age=300`.
    pub async fn start(keys: &[&TestKey]) -> Self {
        let state = Arc::new(ServerState {
            document: Mutex::new((1, key_set(keys))),
            behavior: Mutex::new(Behavior::Serve),
            max_age: Mutex::new(300),
            delay: Mutex::new(Duration::ZERO),
            requests: AtomicUsize::new(0),
            not_modified: AtomicUsize::new(0),
            if_none_match: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            url: format!("http://{addr}/.well-known/jwks.json"),
            state,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Publishes `keys` instead (a new ETag).
    pub fn set_keys(&self, keys: &[&TestKey]) {
        self.set_document(key_set(keys));
    }

    /// Publishes `document` as it is (a new ETag).
    pub fn set_document(&self, document: serde_json::Value) {
        let mut slot = self.state.document.lock().unwrap();
        *slot = (slot.0 + 1, document);
    }

    pub fn set_behavior(&self, behavior: Behavior) {
        *self.state.behavior.lock().unwrap() = behavior;
    }

    pub fn set_max_age(&self, secs: u64) {
        *self.state.max_age.lock().unwrap() = secs;
    }

    /// Every answer waits `delay` first.
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// 304s answered so far.
    pub fn not_modified(&self) -> usize {
        self.state.not_modified.load(Ordering::SeqCst)
    }

    /// The `If-None-Match` of each request, in order.
    pub fn if_none_match(&self) -> Vec<Option<String>> {
        self.state.if_none_match.lock().unwrap().clone()
    }

    /// The ETag of the current document.
    pub fn etag(&self) -> String {
        format!("\"v{}\"", self.state.document.lock().unwrap().0)
    }

    /// Waits (up to 5 s) until the server has had `n` requests.
    pub async fn wait_for_requests(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.requests() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} requests, got {}",
                self.requests()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the server: from now on connections are refused.
    pub async fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("the JWKS server did not stop")
                .unwrap();
        }
    }
}

pub fn key_set(keys: &[&TestKey]) -> serde_json::Value {
    let set = JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone()).collect(),
    };
    serde_json::to_value(set).unwrap()
}

async fn jwks(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state.if_none_match.lock().unwrap().push(if_none_match.clone());
    let delay = *state.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let behavior = *state.behavior.lock().unwrap();
    match behavior {
        Behavior::Hang => std::future::pending().await,
        Behavior::Fail500 => (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
        Behavior::NotJson => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>down for maintenance</body></html>",
        )
            .into_response(),
        Behavior::Oversized => {
            let body = format!("{{\"keys\":[],\"padding\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Behavior::Serve => {
            let (version, document) = state.document.lock().unwrap().clone();
            let etag = format!("\"v{version}\"");
            let cache_control = format!("public, max-age={}", *state.max_age.lock().unwrap());
            let mut response = if if_none_match.as_deref() == Some(etag.as_str()) {
                state.not_modified.fetch_add(1, Ordering::SeqCst);
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                axum::Json(document).into_response()
            };
            let headers = response.headers_mut();
            headers.insert(header::ETAG, HeaderValue::from_str(&etag).unwrap());
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_str(&cache_control).unwrap());
            response
        }
    }
}

/// A URL on which nothing listens.
pub async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/.well-known/jwks.json")
}
