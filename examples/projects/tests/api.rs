//! The project service over real HTTP: the router served on 127.0.0.1,
//! tokens signed with tessera-token as tessera signs them, called with
//! reqwest.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_token::{
    generate_private_key, AccessClaims, Algorithm, JwkSet, Key, Keyring, SigningKeys, TokenKind, Uuid, DEFAULT_TENANT,
};
use tessera_verify::Verifier;

const ISSUER: &str = "http://127.0.0.1:8080";
const AUDIENCE: &str = "tessera";
const JWT_SECRET: &str = "the JWT_SECRET tessera and this service share, 32+ bytes";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

struct User {
    id: Uuid,
    token: String,
}

/// Plays tessera: signs access tokens.
struct Tessera {
    keys: SigningKeys,
}

impl Tessera {
    fn hs256() -> Self {
        let keyring = Keyring::new(
            Key::from_secret(TokenKind::Access, JWT_SECRET.as_bytes()).unwrap(),
            Key::from_secret(TokenKind::Refresh, &[3u8; 32]).unwrap(),
        )
        .unwrap();
        Self {
            keys: keyring.signing().clone(),
        }
    }

    fn claims(&self, role: &'static str) -> AccessClaims<'static> {
        let now = now();
        AccessClaims {
            iss: Cow::Borrowed(ISSUER),
            aud: Cow::Borrowed(AUDIENCE),
            sub: Uuid::new_v4(),
            sid: Uuid::new_v4(),
            tid: self.keys.tenant(),
            email: Cow::Borrowed("someone@example.com"),
            role: Cow::Borrowed(role),
            iat: now,
            nbf: now,
            exp: now + 900,
            jti: Uuid::new_v4(),
        }
    }

    fn user(&self, role: &'static str) -> User {
        let claims = self.claims(role);
        User {
            id: claims.sub,
            token: self.keys.sign_access(&claims),
        }
    }
}

struct Service {
    base: String,
    client: reqwest::Client,
}

impl Service {
    async fn start(router: axum::Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
        }
    }

    async fn secret_mode() -> Self {
        let verifier = Verifier::builder(ISSUER, AUDIENCE)
            .secret(JWT_SECRET)
            .build()
            .await
            .unwrap();
        Self::start(projects_example::router(verifier)).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn get(&self, path: &str, user: Option<&User>) -> (StatusCode, Value) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(user) = user {
            request = request.bearer_auth(&user.token);
        }
        self.send(request).await
    }

    async fn create(&self, user: &User, body: Value) -> (StatusCode, Value) {
        self.send(
            self.client
                .post(format!("{}/api/projects", self.base))
                .bearer_auth(&user.token)
                .json(&body),
        )
        .await
    }

    async fn post_raw(
        &self,
        user: &User,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .post(format!("{}/api/projects", self.base))
            .bearer_auth(&user.token)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        self.send(request).await
    }
}

#[tokio::test]
async fn healthz_needs_no_token() {
    let service = Service::secret_mode().await;
    assert_eq!(
        service.get("/healthz", None).await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
}

#[tokio::test]
async fn users_create_and_list_their_own_projects() {
    let service = Service::secret_mode().await;
    let tessera = Tessera::hs256();
    let (ada, grace) = (tessera.user("user"), tessera.user("user"));

    assert_eq!(
        service.get("/api/projects", Some(&ada)).await,
        (StatusCode::OK, json!({"projects": []}))
    );

    let (status, created) = service
        .create(
            &ada,
            json!({"name": "  Analytical Engine  ", "description": "Notes on the engine"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "Analytical Engine");
    assert_eq!(created["description"], "Notes on the engine");
    assert_eq!(created["ownerId"], json!(ada.id));
    assert!(Uuid::try_parse(created["id"].as_str().unwrap()).is_ok());
    let created_at = created["createdAt"].as_str().unwrap();
    assert!(time::OffsetDateTime::parse(created_at, &time::format_description::well_known::Rfc3339).is_ok());
    assert_eq!(created.as_object().unwrap().len(), 5, "{created}");

    // Description is optional.
    let (status, second) = service.create(&ada, json!({"name": "Difference Engine"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(second["description"], "");

    let (status, listed) = service.get("/api/projects", Some(&ada)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed, json!({"projects": [created, second]}));

    // Grace sees none of Ada's.
    let (status, body) = service.create(&grace, json!({"name": "COBOL"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, listed) = service.get("/api/projects", Some(&grace)).await;
    assert_eq!(listed, json!({"projects": [body]}));
}

#[tokio::test]
async fn bad_bodies_get_tesseras_error_answers() {
    let service = Service::secret_mode().await;
    let ada = Tessera::hs256().user("user");
    let failed = |fields: Value| json!({"error": "validation_failed", "message": "request fields are missing or invalid", "fields": fields});

    for (body, fields) in [
        (json!({}), json!({"name": "is required"})),
        (json!({"name": null}), json!({"name": "is required"})),
        (json!({"name": ""}), json!({"name": "must not be empty"})),
        (json!({"name": " \t\n "}), json!({"name": "must not be empty"})),
        (
            json!({"name": "x".repeat(101)}),
            json!({"name": "must be at most 100 characters"}),
        ),
        (json!({"name": 42}), json!({"name": "must be a string"})),
        (
            json!({"name": ["a"], "description": 7}),
            json!({"name": "must be a string", "description": "must be a string"}),
        ),
        (
            json!({"name": "ok", "description": "d".repeat(2001)}),
            json!({"description": "must be at most 2000 characters"}),
        ),
        (json!(["name"]), json!({"body": "must be a JSON object"})),
        (json!("a string"), json!({"body": "must be a JSON object"})),
    ] {
        let (status, answer) = service.create(&ada, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(answer, failed(fields), "{body}");
    }

    // 100 characters (counted as characters, after trimming) is fine.
    let name = format!("  {}  ", "é".repeat(100));
    assert_eq!(
        service.create(&ada, json!({ "name": name })).await.0,
        StatusCode::CREATED
    );

    let (status, answer) = service.post_raw(&ada, Some("text/plain"), r#"{"name":"x"}"#).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(answer["error"], "unsupported_media_type");
    let (status, answer) = service.post_raw(&ada, None, r#"{"name":"x"}"#).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(answer["error"], "unsupported_media_type");

    let (status, answer) = service.post_raw(&ada, Some("application/json"), r#"{"name": "#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "invalid_request");
    assert!(answer["message"].as_str().unwrap().contains("not valid JSON"));
    let (status, _) = service
        .post_raw(&ada, Some("application/json; charset=utf-8"), r#"{"name":"charset"}"#)
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let huge = format!(r#"{{"name":"x","description":"{}"}}"#, "y".repeat(70 * 1024));
    let (status, answer) = service.post_raw(&ada, Some("application/json"), huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["error"], "payload_too_large");

    // Nothing bad was stored.
    let (_, listed) = service.get("/api/projects", Some(&ada)).await;
    assert_eq!(listed["projects"].as_array().unwrap().len(), 2);

    let (status, answer) = service.get("/nowhere", None).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, answer) = service
        .send(service.client.delete(format!("{}/api/projects", service.base)))
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );
}

#[tokio::test]
async fn tokens_are_required_and_checked() {
    let service = Service::secret_mode().await;
    let tessera = Tessera::hs256();

    for path in ["/api/projects", "/api/admin/projects"] {
        let (status, body) = service.get(path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body["error"], "missing_token");
    }
    let (status, body) = service
        .send(
            service
                .client
                .post(format!("{}/api/projects", service.base))
                .json(&json!({"name": "x"})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_token"))
    );

    let mut expired = tessera.claims("user");
    expired.iat -= 2000;
    expired.nbf -= 2000;
    expired.exp = now() - 60;
    let user = User {
        id: expired.sub,
        token: tessera.keys.sign_access(&expired),
    };
    let (status, body) = service.get("/api/projects", Some(&user)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("token_expired"))
    );

    // A token signed with another secret (another tessera, or a forger).
    let other = Keyring::new(
        Key::from_secret(TokenKind::Access, b"someone else's secret, 32 bytes or more").unwrap(),
        Key::from_secret(TokenKind::Refresh, &[4u8; 32]).unwrap(),
    )
    .unwrap();
    let forged = User {
        id: Uuid::nil(),
        token: other.sign_access(&tessera.claims("admin")),
    };
    let (status, body) = service.get("/api/admin/projects", Some(&forged)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
}

#[tokio::test]
async fn only_admins_list_every_project() {
    let service = Service::secret_mode().await;
    let tessera = Tessera::hs256();
    let (ada, grace, admin) = (tessera.user("user"), tessera.user("user"), tessera.user("admin"));
    let (_, first) = service.create(&ada, json!({"name": "one"})).await;
    let (_, second) = service.create(&grace, json!({"name": "two"})).await;

    let (status, body) = service.get("/api/admin/projects", Some(&ada)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({"error": "forbidden", "message": "your role does not allow this"})
    );
    assert_eq!(
        service.get("/api/admin/projects", Some(&tessera.user("owner"))).await.0,
        StatusCode::FORBIDDEN
    );

    let (status, body) = service.get("/api/admin/projects", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"projects": [first, second]}));
    // The admin's own list is still only the admin's.
    assert_eq!(
        service.get("/api/projects", Some(&admin)).await.1,
        json!({"projects": []})
    );
}

#[tokio::test]
async fn a_user_has_at_most_1000_projects() {
    let service = Service::secret_mode().await;
    let tessera = Tessera::hs256();
    let ada = tessera.user("user");
    for i in 0..projects_example::MAX_PROJECTS_PER_USER {
        let (status, body) = service.create(&ada, json!({ "name": format!("project {i}") })).await;
        assert_eq!(status, StatusCode::CREATED, "{i}: {body}");
    }
    let (status, body) = service.create(&ada, json!({"name": "one too many"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "conflict");
    assert!(body["message"].as_str().unwrap().contains("1000"));
    let (_, listed) = service.get("/api/projects", Some(&ada)).await;
    assert_eq!(listed["projects"].as_array().unwrap().len(), 1000);
    // Others are not affected.
    assert_eq!(
        service.create(&tessera.user("user"), json!({"name": "mine"})).await.0,
        StatusCode::CREATED
    );
}

/// JWKS mode: a local server publishes an EdDSA key as tessera does.
#[tokio::test]
async fn jwks_mode_verifies_public_key_tokens() {
    let der = generate_private_key(Algorithm::EdDSA, &mut rand::rngs::OsRng).unwrap();
    let access = Key::from_pkcs8(Algorithm::EdDSA, TokenKind::Access, "ed-1", &der).unwrap();
    let jwks = JwkSet {
        keys: vec![access.public_jwk().unwrap()],
    };
    let tessera = Tessera {
        keys: SigningKeys::new(access, Key::with_kid(TokenKind::Refresh, "r", &[7u8; 32]).unwrap()).unwrap(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
    let jwks_app = axum::Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, jwks_app).await.unwrap() });

    let verifier = Verifier::builder(ISSUER, AUDIENCE)
        .jwks_url(&jwks_url)
        .build()
        .await
        .unwrap();
    let service = Service::start(projects_example::router(verifier)).await;
    let ada = tessera.user("user");
    let (status, body) = service.create(&ada, json!({"name": "signed with EdDSA"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["ownerId"], json!(ada.id));
    assert_eq!(tessera.keys.tenant(), DEFAULT_TENANT);

    // An HS256 token is not accepted by a JWKS-mode service.
    let hs256 = Tessera::hs256().user("user");
    assert_eq!(
        service.get("/api/projects", Some(&hs256)).await.0,
        StatusCode::UNAUTHORIZED
    );
}
