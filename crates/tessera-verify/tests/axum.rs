//! The axum extractor and layers, on a real router served on 127.0.0.1
//! and called with reqwest: tessera's 401 and 403 bodies and challenges.

#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::borrow::Cow;

use axum::routing::get;
use axum::{Json, Router};
use common::{claims, tamper, JwksServer, TestKey, AUDIENCE, ISSUER};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_token::{AccessClaims, Key, Keyring, TokenKind, DEFAULT_TENANT};
use tessera_verify::{AuthRejection, Authenticated, Claims, RequireRole, Verifier, VerifyLayer};

const JWT_SECRET: &str = "0123456789abcdef0123456789abcdef-a-test-jwt-secret";

async fn me(Authenticated(claims): Authenticated) -> Json<Claims> {
    Json(claims)
}

async fn layered(claims: Claims) -> Json<Claims> {
    Json(claims)
}

async fn reports(user: Authenticated) -> Result<&'static str, AuthRejection> {
    RequireRole::any(["admin", "owner"]).check(&user)?;
    Ok("reports")
}

fn app(verifier: Verifier) -> Router {
    let admin = Router::new()
        .route("/admin", get(layered))
        .route_layer(RequireRole::new("admin"))
        .route_layer(VerifyLayer::new(verifier.clone()));
    let staff = Router::new()
        .route("/staff", get(layered))
        .route_layer(RequireRole::any(["admin", "owner"]))
        .route_layer(VerifyLayer::new(verifier.clone()));
    let layered_only = Router::new()
        .route("/layered", get(layered))
        .route_layer(VerifyLayer::new(verifier.clone()));
    // A mistake: RequireRole with no VerifyLayer in front of it.
    let misconfigured = Router::new()
        .route("/misconfigured", get(|| async { "reached" }))
        .route_layer(RequireRole::new("admin"));
    Router::new()
        .route("/me", get(me))
        .route("/reports", get(reports))
        .route("/open", get(|| async { "open" }))
        .merge(admin)
        .merge(staff)
        .merge(layered_only)
        .merge(misconfigured)
        .with_state(verifier)
}

struct App {
    base: String,
    client: reqwest::Client,
    tessera: Keyring,
}

impl App {
    async fn start() -> Self {
        let verifier = Verifier::builder(ISSUER, AUDIENCE)
            .secret(JWT_SECRET)
            .build()
            .await
            .unwrap();
        Self::serve(app(verifier)).await
    }

    async fn serve(router: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let tessera = Keyring::new(
            Key::from_secret(TokenKind::Access, JWT_SECRET.as_bytes()).unwrap(),
            Key::from_secret(TokenKind::Refresh, &[9u8; 32]).unwrap(),
        )
        .unwrap();
        Self {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            tessera,
        }
    }

    fn token(&self, role: &'static str) -> String {
        let mut claims = claims(DEFAULT_TENANT);
        claims.role = Cow::Borrowed(role);
        self.tessera.sign_access(&claims)
    }

    fn sign(&self, claims: &AccessClaims<'_>) -> String {
        self.tessera.sign_access(claims)
    }

    async fn get(&self, path: &str, authorization: &[&str]) -> (StatusCode, Option<String>, Value) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        for value in authorization {
            request = request.header("authorization", *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, challenge, body)
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

const MISSING: &str = r#"Bearer realm="tessera""#;

fn invalid(description: &str) -> String {
    format!(r#"Bearer realm="tessera", error="invalid_token", error_description="{description}""#)
}

#[tokio::test]
async fn the_extractor_answers_401_like_tessera() {
    let app = App::start().await;
    for path in ["/me", "/layered", "/admin", "/reports"] {
        let (status, challenge, body) = app.get(path, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(challenge.as_deref(), Some(MISSING), "{path}");
        assert_eq!(
            body,
            json!({"error": "missing_token", "message": "this route needs a bearer token"}),
            "{path}"
        );

        // Another scheme is no bearer token.
        let (status, challenge, body) = app.get(path, &["Basic YWRhOnB3"]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(challenge.as_deref(), Some(MISSING));
        assert_eq!(body["error"], "missing_token");

        let (status, challenge, body) = app.get(path, &["Bearer"]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge,
            Some(invalid("the Authorization header must be `Bearer <token>`"))
        );
        assert_eq!(
            body,
            json!({"error": "invalid_token", "message": "the token is invalid"})
        );

        let (_, challenge, body) = app.get(path, &["Bearer not-a-token"]).await;
        assert_eq!(challenge, Some(invalid("the token is malformed")));
        assert_eq!(body["error"], "invalid_token");

        let token = app.token("admin");
        let (_, challenge, body) = app.get(path, &[&bearer(&tamper(&token))]).await;
        assert_eq!(challenge, Some(invalid("the token signature is not valid")));
        assert_eq!(body["error"], "invalid_token");

        let (_, challenge, _) = app.get(path, &[&bearer(&token), &bearer(&token)]).await;
        assert_eq!(challenge, Some(invalid("send exactly one Authorization header")));

        let mut expired = claims(DEFAULT_TENANT);
        expired.role = Cow::Borrowed("admin");
        expired.iat -= 2000;
        expired.nbf -= 2000;
        expired.exp = common::now() - 100;
        let (status, challenge, body) = app.get(path, &[&bearer(&app.sign(&expired))]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(challenge, Some(invalid("the token has expired")));
        assert_eq!(
            body,
            json!({"error": "token_expired", "message": "the access token has expired; refresh it"})
        );

        let mut elsewhere = claims(DEFAULT_TENANT);
        elsewhere.iss = Cow::Borrowed("http://evil.test");
        let (_, challenge, _) = app.get(path, &[&bearer(&app.sign(&elsewhere))]).await;
        assert_eq!(challenge, Some(invalid("the token was not issued for this service")));
    }
    // Routes without auth are untouched.
    let (status, _, body) = app.get("/open", &[]).await;
    assert_eq!((status, body), (StatusCode::OK, Value::String("open".into())));
}

#[tokio::test]
async fn valid_tokens_get_their_claims() {
    let app = App::start().await;
    let mut claims = claims(DEFAULT_TENANT);
    claims.email = Cow::Borrowed("grace@example.com");
    let token = app.sign(&claims);
    let expected = json!({
        "sub": claims.sub, "sid": claims.sid, "tid": DEFAULT_TENANT,
        "email": "grace@example.com", "role": "user",
        "iat": claims.iat, "exp": claims.exp, "jti": claims.jti,
    });
    // The scheme is case-insensitive (RFC 6750 §2.1 via RFC 7235).
    for authorization in [bearer(&token), format!("bearer {token}"), format!("BEARER  {token}")] {
        for path in ["/me", "/layered"] {
            let (status, challenge, body) = app.get(path, &[&authorization]).await;
            assert_eq!(status, StatusCode::OK, "{path} {body}");
            assert_eq!(challenge, None);
            assert_eq!(body, expected);
        }
    }
}

#[tokio::test]
async fn require_role_answers_403_for_other_roles() {
    let app = App::start().await;
    let forbidden = json!({"error": "forbidden", "message": "your role does not allow this"});
    for (path, allowed) in [
        ("/admin", &["admin"][..]),
        ("/staff", &["admin", "owner"][..]),
        ("/reports", &["admin", "owner"][..]),
    ] {
        for role in ["user", "admin", "owner", "Admin", ""] {
            let (status, challenge, body) = app.get(path, &[&bearer(&app.token(role))]).await;
            if allowed.contains(&role) {
                assert_eq!(status, StatusCode::OK, "{path} {role}");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{path} {role:?}");
                assert_eq!(challenge, None);
                assert_eq!(body, forbidden);
            }
        }
    }
    let (status, _, body) = app.get("/admin", &[&bearer(&app.token("admin"))]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["role"], "admin");

    // RequireRole without VerifyLayer lets no one through.
    for authorization in [&[][..], &[bearer(&app.token("admin"))][..]] {
        let headers: Vec<&str> = authorization.iter().map(String::as_str).collect();
        let (status, _, body) = app.get("/misconfigured", &headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "missing_token");
    }
}

#[tokio::test]
async fn jwks_mode_behind_the_layers_and_unknown_keys_while_tessera_is_down() {
    let key = TestKey::eddsa("ed");
    let mut server = JwksServer::start(&[&key]).await;
    let verifier = Verifier::builder(ISSUER, AUDIENCE)
        .jwks_url(&server.url)
        .build()
        .await
        .unwrap();
    let app = App::serve(app(verifier)).await;

    let mut admin = key.claims();
    admin.role = Cow::Borrowed("admin");
    let (status, _, body) = app.get("/admin", &[&bearer(&key.sign(&admin))]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["sub"], json!(admin.sub));

    server.shut_down().await;
    let (status, _, _) = app.get("/me", &[&bearer(&key.token())]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, challenge, body) = app.get("/me", &[&bearer(&TestKey::eddsa("rotated").token())]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(challenge, None);
    assert_eq!(body["error"], "unavailable");
}
