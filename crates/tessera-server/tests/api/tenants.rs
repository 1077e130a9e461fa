//! Tenants: signup, isolation, key rotation, the audit log, keys at rest.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tessera_core::MasterKey;
use tessera_server::config::Config;
use tessera_server::secrets::{SecretValue, SecretsSource};

pub struct Tenant {
    pub id: String,
    pub slug: String,
    pub api_key: String,
    pub owner_access: String,
    pub owner_refresh: String,
}

pub async fn signup(app: &TestApp, name: &str) -> Tenant {
    let res = app
        .post_json(
            "/api/auth/signup",
            &json!({"email": unique_email(), "password": PASSWORD, "firstName": "Grace",
                    "lastName": "Hopper", "tenantName": name}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    Tenant {
        id: body["tenant"]["id"].as_str().unwrap().to_owned(),
        slug: body["tenant"]["slug"].as_str().unwrap().to_owned(),
        api_key: body["apiKey"].as_str().unwrap().to_owned(),
        owner_access: body["accessToken"].as_str().unwrap().to_owned(),
        owner_refresh: body["refreshToken"].as_str().unwrap().to_owned(),
    }
}

fn path(tenant: &Tenant, rest: &str) -> String {
    format!("/api/tenants/{}/auth{rest}", tenant.slug)
}

async fn register_in(app: &TestApp, tenant: &Tenant, email: &str) -> reqwest::Response {
    app.post_json(
        &path(tenant, "/register"),
        &json!({"email": email, "password": PASSWORD, "firstName": "Ada", "lastName": "L"}),
    )
    .await
}

async fn tokens_of(res: reqwest::Response) -> (String, String) {
    let body: Value = res.json().await.unwrap();
    (
        body["accessToken"].as_str().unwrap().to_owned(),
        body["refreshToken"].as_str().unwrap().to_owned(),
    )
}

async fn rotate(app: &TestApp, tenant: &Tenant, mode: &str) -> Value {
    let res = app
        .client
        .post(app.url(&format!("/api/tenants/{}/keys/rotate", tenant.slug)))
        .header("X-Api-Key", &tenant.api_key)
        .json(&json!({"mode": mode}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

async fn audit(app: &TestApp, tenant: &Tenant, query: &str) -> Value {
    let res = app
        .client
        .get(app.url(&format!("/api/tenants/{}/audit{query}", tenant.slug)))
        .header("X-Api-Key", &tenant.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

#[tokio::test]
async fn signup_creates_a_tenant_its_owner_and_a_key_shown_once() {
    let app = spawn_app().await;
    let email = unique_email();
    let res = app
        .post_json(
            "/api/auth/signup",
            &json!({"email": email, "password": PASSWORD, "firstName": "Grace", "lastName": "Hopper",
                    "tenantName": "Acme Corp."}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert!(body["tenant"]["slug"].as_str().unwrap().starts_with("acme-corp"));
    assert_eq!(body["tenant"]["name"], "Acme Corp.");
    assert_eq!(body["user"]["role"], "owner");
    assert_eq!(body["user"]["email"], email);
    assert_eq!(body["tokenType"], "Bearer");
    assert!(body["apiKey"].as_str().unwrap().starts_with("tsk_"));
    assert!(body["user"].get("passwordHash").is_none());

    let tid = body["tenant"]["id"].as_str().unwrap();
    let (header, claims) = decode_parts(body["accessToken"].as_str().unwrap());
    assert_eq!(claims["tid"], tid);
    assert_eq!(header["alg"], "HS256");
    let (refresh_header, refresh_claims) = decode_parts(body["refreshToken"].as_str().unwrap());
    assert_eq!(refresh_claims["tid"], tid);
    assert_ne!(header["kid"], refresh_header["kid"]);

    // The same tenant name again gets its own slug.
    let second = signup(&app, "Acme Corp.").await;
    assert_ne!(second.slug, body["tenant"]["slug"].as_str().unwrap());
    assert!(second.slug.starts_with("acme-corp-"));

    // The forward-auth endpoint takes every tenant's tokens and says whose.
    let res = app
        .get_auth("/api/auth/verify", body["accessToken"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-auth-tenant-id"], tid);
    assert_eq!(res.headers()["x-auth-user-role"], "owner");
    let verified: Value = res.json().await.unwrap();
    assert_eq!(verified["tid"], tid);

    // A default-tenant token reports the nil tenant.
    let user = app.new_user().await;
    let res = app.get_auth("/api/auth/verify", &user.access).await;
    assert_eq!(
        res.headers()["x-auth-tenant-id"],
        "00000000-0000-0000-0000-000000000000"
    );
}

#[tokio::test]
async fn signup_validates_every_field_and_can_be_turned_off() {
    let app = spawn_app().await;
    let res = app
        .post_json(
            "/api/auth/signup",
            &json!({"email": "nope", "password": "short", "firstName": "", "tenantName": " "}),
        )
        .await;
    let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    for field in ["email", "password", "firstName", "lastName", "tenantName"] {
        assert!(body["fields"][field].is_string(), "{field}: {body}");
    }

    // An algorithm tessera does not sign with is refused, not silently
    // replaced by another.
    let with_alg = |alg: Value| {
        json!({"email": unique_email(), "password": PASSWORD, "firstName": "A", "lastName": "",
               "tenantName": "Algo", "signingAlg": alg})
    };
    for alg in [json!("HS512"), json!("none"), json!(5)] {
        let res = app.post_json("/api/auth/signup", &with_alg(alg)).await;
        let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert!(body["fields"]["signingAlg"].is_string());
    }
    let res = app.post_json("/api/auth/signup", &with_alg(json!("HS256"))).await;
    assert_eq!(res.status(), StatusCode::CREATED);

    let closed = spawn_app_with(|c| c.signup = false).await;
    let res = closed
        .post_json(
            "/api/auth/signup",
            &json!({"email": unique_email(), "password": PASSWORD, "firstName": "A", "lastName": "",
                    "tenantName": "Closed"}),
        )
        .await;
    assert_error(res, StatusCode::FORBIDDEN, "forbidden").await;
}

#[tokio::test]
async fn the_same_email_lives_in_two_tenants_as_two_accounts() {
    let app = spawn_app().await;
    let (a, b) = (signup(&app, "Alpha").await, signup(&app, "Beta").await);
    let email = unique_email();
    let res = register_in(&app, &a, &email).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let in_a: Value = res.json().await.unwrap();
    let res = register_in(&app, &b, &email).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let in_b: Value = res.json().await.unwrap();
    assert_ne!(in_a["user"]["id"], in_b["user"]["id"]);
    // And in the default tenant too.
    assert_eq!(app.register(&email, PASSWORD).await.status(), StatusCode::CREATED);
    // Within one tenant it is taken.
    assert_error(register_in(&app, &a, &email).await, StatusCode::CONFLICT, "email_taken").await;

    // Logging in finds the account of the route's tenant.
    let res = app
        .post_json(&path(&b, "/login"), &json!({"email": email, "password": PASSWORD}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let (access, _) = tokens_of(res).await;
    let res = app.get_auth(&path(&b, "/me"), &access).await;
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["id"], in_b["user"]["id"]);
}

#[tokio::test]
async fn a_tenants_token_is_refused_on_every_other_tenants_routes() {
    let app = spawn_app().await;
    let (a, b) = (signup(&app, "Alpha").await, signup(&app, "Beta").await);
    let default_user = app.new_user().await;

    for route in ["/me", "/verify", "/sessions"] {
        // A's token on B's routes and on the default tenant's.
        let res = app.get_auth(&path(&b, route), &a.owner_access).await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
        if route != "/verify" {
            let res = app.get_auth(&format!("/api/auth{route}"), &a.owner_access).await;
            assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
        }
        // The default tenant's token on A's routes.
        let res = app.get_auth(&path(&a, route), &default_user.access).await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
        // A's token on A's routes.
        let res = app.get_auth(&path(&a, route), &a.owner_access).await;
        assert_eq!(res.status(), StatusCode::OK, "{route}");
    }
    // `/api/tenants/default/...` is the default tenant's, `verify` included:
    // only the bare `/api/auth/verify` takes every tenant's tokens.
    for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
        let res = app
            .client
            .request(method, app.url("/api/tenants/default/auth/verify"))
            .bearer_auth(&a.owner_access)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = app
        .get_auth("/api/tenants/default/auth/verify", &default_user.access)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // Refresh and logout with A's refresh token on B's routes.
    let res = app
        .post_json(&path(&b, "/refresh"), &json!({"refreshToken": a.owner_refresh}))
        .await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let res = app
        .post_json(&path(&b, "/logout"), &json!({"refreshToken": a.owner_refresh}))
        .await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let res = app.refresh(&a.owner_refresh).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // The refresh token still works where it belongs.
    let res = app
        .post_json(&path(&a, "/refresh"), &json!({"refreshToken": a.owner_refresh}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // Admin routes: A's owner cannot administer B.
    let res = app
        .client
        .post(app.url(&format!("/api/tenants/{}/keys/rotate", b.slug)))
        .bearer_auth(&a.owner_access)
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let res = app
        .client
        .get(app.url(&format!("/api/tenants/{}/audit", b.slug)))
        .header("X-Api-Key", &a.api_key)
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
}

#[tokio::test]
async fn a_token_whose_tid_and_kid_disagree_is_refused() {
    let app = spawn_app().await;
    let a = signup(&app, "Alpha").await;
    let user = app.new_user().await;
    // A genuine default-tenant token, re-signed with the default key (the
    // test knows it) after claiming tenant A: the key is the default
    // tenant's, the claim says A.
    let (header, mut claims) = decode_parts(&user.access);
    claims["tid"] = json!(a.id);
    let forged = forge(&header.to_string(), &claims.to_string(), app.jwt_secret.as_bytes());
    for route in ["/api/auth/verify".to_owned(), path(&a, "/verify"), path(&a, "/me")] {
        let res = app.get_auth(&route, &forged).await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    // A default-tenant token with no tid at all (issued before tenants
    // existed) is still the default tenant's.
    let (header, mut claims) = decode_parts(&user.access);
    claims.as_object_mut().unwrap().remove("tid");
    let legacy = forge(&header.to_string(), &claims.to_string(), app.jwt_secret.as_bytes());
    let res = app.get_auth("/api/auth/me", &legacy).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.get_auth(&path(&a, "/verify"), &legacy).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[tokio::test]
async fn unknown_or_malformed_tenants_are_404_and_change_nothing() {
    let app = spawn_app().await;
    // (`..` and `%2e%2e` are not here: HTTP clients resolve them before sending.)
    for slug in ["nope-nope", "UPPER", "a", "%FF%FE", "default--x", "acme%2Fx"] {
        let res = app
            .post_json(
                &format!("/api/tenants/{slug}/auth/register"),
                &json!({"email": unique_email(), "password": PASSWORD, "firstName": "A", "lastName": ""}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{slug}");
    }
    // `default` names the default tenant.
    let user = app.new_user().await;
    let res = app.get_auth("/api/tenants/default/auth/me", &user.access).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn graceful_rotation_keeps_every_session_and_new_tokens_use_the_new_keys() {
    let app = spawn_app().await;
    let a = signup(&app, "Alpha").await;
    let email = unique_email();
    let (access, refresh) = tokens_of(register_in(&app, &a, &email).await).await;
    let (old_header, _) = decode_parts(&access);

    let rotated = rotate(&app, &a, "graceful").await;
    let new_access_kid = rotated["accessKid"].as_str().unwrap();
    assert_ne!(old_header["kid"], new_access_kid);

    // Old tokens keep working.
    assert_eq!(app.get_auth(&path(&a, "/me"), &access).await.status(), StatusCode::OK);
    assert_eq!(app.get_auth("/api/auth/verify", &access).await.status(), StatusCode::OK);
    let res = app
        .post_json(&path(&a, "/refresh"), &json!({"refreshToken": refresh}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let (new_access, new_refresh) = tokens_of(res).await;
    // ...and what is issued now is signed by the new keys.
    assert_eq!(decode_parts(&new_access).0["kid"], new_access_kid);
    assert_eq!(decode_parts(&new_refresh).0["kid"], rotated["refreshKid"]);
    let res = app
        .post_json(&path(&a, "/login"), &json!({"email": email, "password": PASSWORD}))
        .await;
    assert_eq!(decode_parts(&tokens_of(res).await.0).0["kid"], new_access_kid);

    // A second graceful rotation: tokens of both earlier keys still verify.
    rotate(&app, &a, "graceful").await;
    assert_eq!(app.get_auth(&path(&a, "/me"), &access).await.status(), StatusCode::OK);
    assert_eq!(
        app.get_auth(&path(&a, "/me"), &new_access).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn revoking_rotation_ends_every_token_and_session_of_the_tenant_only() {
    let app = spawn_app().await;
    let (a, b) = (signup(&app, "Alpha").await, signup(&app, "Beta").await);
    let email = unique_email();
    let (access, refresh) = tokens_of(register_in(&app, &a, &email).await).await;
    let (b_access, _) = tokens_of(register_in(&app, &b, &unique_email()).await).await;

    let rotated = rotate(&app, &a, "revoke").await;
    for token in [&access, &a.owner_access] {
        let res = app.get_auth("/api/auth/verify", token).await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
        let res = app.get_auth(&path(&a, "/me"), token).await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    let res = app
        .post_json(&path(&a, "/refresh"), &json!({"refreshToken": refresh}))
        .await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // Tenant B never noticed.
    assert_eq!(app.get_auth(&path(&b, "/me"), &b_access).await.status(), StatusCode::OK);
    // Logging in again works, with the new keys, and the old sessions are gone.
    let res = app
        .post_json(&path(&a, "/login"), &json!({"email": email, "password": PASSWORD}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let (fresh, _) = tokens_of(res).await;
    assert_eq!(decode_parts(&fresh).0["kid"], rotated["accessKid"]);
    let sessions: Value = app.get_auth(&path(&a, "/sessions"), &fresh).await.json().await.unwrap();
    assert_eq!(sessions["sessions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn only_the_owner_or_the_api_key_may_rotate_or_read_the_audit_log() {
    let app = spawn_app().await;
    let a = signup(&app, "Alpha").await;
    let (member, _) = tokens_of(register_in(&app, &a, &unique_email()).await).await;
    let rotate_url = app.url(&format!("/api/tenants/{}/keys/rotate", a.slug));
    let audit_url = app.url(&format!("/api/tenants/{}/audit", a.slug));

    let res = app.client.post(&rotate_url).send().await.unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "missing_token").await;
    let res = app.client.post(&rotate_url).bearer_auth(&member).send().await.unwrap();
    assert_error(res, StatusCode::FORBIDDEN, "forbidden").await;
    let res = app.client.get(&audit_url).bearer_auth(&member).send().await.unwrap();
    assert_error(res, StatusCode::FORBIDDEN, "forbidden").await;
    for bad in ["tsk_wrong", "", &a.api_key[..a.api_key.len() - 1]] {
        let res = app
            .client
            .post(&rotate_url)
            .header("X-Api-Key", bad)
            .send()
            .await
            .unwrap();
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
    }
    let res = app
        .client
        .post(&rotate_url)
        .header("X-Api-Key", &a.api_key)
        .json(&json!({"mode": "sideways"}))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    // The owner's token, with an empty body (graceful).
    let res = app
        .client
        .post(&rotate_url)
        .bearer_auth(&a.owner_access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .client
        .get(&audit_url)
        .bearer_auth(&a.owner_access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // The default tenant's keys come from the environment here: not rotatable.
    let res = app
        .client
        .post(app.url("/api/tenants/default/keys/rotate"))
        .header("X-Api-Key", "tsk_anything")
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
}

#[tokio::test]
async fn the_audit_log_records_what_happened_and_pages_with_a_cursor() {
    let app = spawn_app().await;
    let (a, b) = (signup(&app, "Alpha").await, signup(&app, "Beta").await);
    let email = unique_email();
    let (_, refresh) = tokens_of(register_in(&app, &a, &email).await).await;
    let res = app
        .post_json(
            &path(&a, "/login"),
            &json!({"email": email, "password": "wrong password!"}),
        )
        .await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let res = app
        .post_json(
            &path(&a, "/login"),
            &json!({"email": "nobody@example.com", "password": "wrong password!"}),
        )
        .await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let res = app
        .client
        .post(app.url(&path(&a, "/refresh")))
        .header("User-Agent", "audit-test/1.0")
        .json(&json!({"refreshToken": refresh}))
        .send()
        .await
        .unwrap();
    let (access, _) = tokens_of(res).await;
    let res = app
        .post_json(&path(&a, "/refresh"), &json!({"refreshToken": refresh}))
        .await;
    assert_eq!(res.status(), StatusCode::OK, "within the grace window");
    let res = app
        .client
        .post(app.url(&path(&a, "/logout")))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    rotate(&app, &a, "graceful").await;

    let page = audit(&app, &a, "?limit=500").await;
    let events = page["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for expected in [
        "tenant.created",
        "user.registered",
        "login.failed",
        "token.refreshed",
        "logout",
        "keys.rotated",
    ] {
        assert!(types.contains(&expected), "{expected} missing from {types:?}");
    }
    assert_eq!(types.iter().filter(|t| **t == "login.failed").count(), 2);
    assert_eq!(types[0], "keys.rotated", "newest first");
    assert!(page["next"].is_null());
    // Two refreshes (the second within the grace window); the first sent a user agent.
    assert_eq!(types.iter().filter(|t| **t == "token.refreshed").count(), 2);
    let refreshed = events
        .iter()
        .find(|e| e["type"] == "token.refreshed" && !e["userAgent"].is_null())
        .unwrap();
    assert_eq!(refreshed["userAgent"], "audit-test/1.0");
    assert_eq!(refreshed["ip"], "127.0.0.1");
    assert!(refreshed["sessionId"].is_string() && refreshed["userId"].is_string());
    assert!(refreshed["at"].as_str().unwrap().ends_with('Z'));
    // No secret, password or attempted email anywhere in the log.
    let text = page.to_string();
    for secret in ["wrong password!", "nobody@example.com", &a.api_key, &refresh] {
        assert!(!text.contains(secret), "the audit log shows {secret:?}");
    }
    // Tenant B's log holds only B's own events.
    let b_page = audit(&app, &b, "").await;
    let b_types: Vec<&str> = b_page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(b_types, ["user.registered", "tenant.created"]);

    // Paging two at a time walks the same events, newest first, no repeats.
    let mut walked = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = audit(&app, &a, &query).await;
        let batch = page["events"].as_array().unwrap();
        assert!(batch.len() <= 2);
        walked.extend(batch.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => query = format!("?limit=2&before={next}"),
            None => break,
        }
    }
    let all: Vec<String> = events.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(walked, all);

    for bad in ["?limit=0", "?limit=501", "?limit=x", "?before=-1", "?before=abc"] {
        let res = app
            .client
            .get(app.url(&format!("/api/tenants/{}/audit{bad}", a.slug)))
            .header("X-Api-Key", &a.api_key)
            .send()
            .await
            .unwrap();
        assert_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
}

/// Every sealed key in the database, opened with the master key the test
/// knows, must appear nowhere in the database file in plaintext; and the
/// opened key really is the one that signs (so the scan looked for the
/// right bytes).
#[tokio::test]
async fn the_sqlite_file_holds_no_plaintext_key() {
    let app = spawn_app_with(|c| {
        // Generated default keys, stored like every tenant's.
        c.secrets = SecretsSource::Generated;
    })
    .await;
    let a = signup(&app, "Alpha").await;
    rotate(&app, &a, "graceful").await;
    let user = app.new_user().await;

    let data = app.data_dir.path().join("data");
    let master = tessera_server::master::MasterKeys::load_or_generate(&data).unwrap();
    let store = tessera_store::SqliteStore::connect(&format!("sqlite://{}", data.join("tessera.db").display()))
        .await
        .unwrap();
    use tessera_store::TenantStore as _;
    let rows = store.live_keys().await.unwrap();
    assert!(rows.len() >= 8, "default and tenant keys: {}", rows.len());
    // Checkpoint so the scan also covers what is still in the WAL.
    let mut db_bytes = std::fs::read(data.join("tessera.db")).unwrap();
    if let Ok(wal) = std::fs::read(data.join("tessera.db-wal")) {
        db_bytes.extend(wal);
    }
    let mut signing_key_found = false;
    for row in &rows {
        let plain = tessera_server::keys::open_stored_key(&master, row).unwrap();
        assert!(plain.len() >= 32);
        assert!(
            !contains(&db_bytes, &plain),
            "key {} is in the file in plaintext",
            row.kid
        );
        assert!(
            !contains(&db_bytes, b64(&plain).as_bytes()),
            "key {} is in the file in base64",
            row.kid
        );
        let (header, _) = decode_parts(&user.access);
        if header["kid"] == row.kid.as_str() {
            let (signing_input, signature) = user.access.rsplit_once('.').unwrap();
            assert_eq!(hs256(signing_input, &plain), signature);
            signing_key_found = true;
        }
    }
    assert!(signing_key_found, "the default signing key is stored sealed");
    assert!(!data.join("secrets.json").exists());
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Two instances on one PostgreSQL, the way scale-out runs them.
async fn pg_instance(
    db: &TestDatabase,
    master: &str,
    previous: Option<&str>,
    env_secrets: &(String, String),
) -> TestApp {
    let (url, master, previous, secrets) = (
        db.url.clone(),
        master.to_owned(),
        previous.map(str::to_owned),
        env_secrets.clone(),
    );
    spawn_app_with(move |c: &mut Config| {
        c.database_url = Some(url);
        c.master_key = Some(SecretValue::new(master));
        c.previous_master_keys = previous.into_iter().map(SecretValue::new).collect();
        c.issuer = Some("https://auth.test".to_owned());
        c.secrets = SecretsSource::from_env_values(Some(secrets.0), Some(secrets.1)).unwrap();
    })
    .await
}

async fn eventually(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what} did not happen within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_sees_tenants_and_rotations_within_a_second() {
    let db = TestDatabase::create().await;
    let master = MasterKey::generate_base64();
    let secrets = (
        tessera_server::secrets::generate_secret(),
        tessera_server::secrets::generate_secret(),
    );
    let one = pg_instance(&db, &master, None, &secrets).await;
    let two = pg_instance(&db, &master, None, &secrets).await;

    // A tenant made on one is served by the other at once (its kid is
    // looked up on first sight if the notification has not arrived yet).
    let a = signup(&one, "Alpha").await;
    let res = two.get_auth(&path(&a, "/me"), &a.owner_access).await;
    assert_eq!(res.status(), StatusCode::OK);
    let email = unique_email();
    let (access, _) = tokens_of(register_in(&one, &a, &email).await).await;

    // Graceful on one: two signs with the new key within a second.
    let rotated = rotate(&one, &a, "graceful").await;
    let new_kid = rotated["accessKid"].as_str().unwrap().to_owned();
    let took = eventually("instance two signing with the new key", Duration::from_secs(1), || {
        let (two, a, email, new_kid) = (&two, &a, &email, &new_kid);
        async move {
            let res = two
                .post_json(&path(a, "/login"), &json!({"email": email, "password": PASSWORD}))
                .await;
            let (fresh, _) = tokens_of(res).await;
            decode_parts(&fresh).0["kid"] == new_kid.as_str()
        }
    })
    .await;
    eprintln!("graceful rotation seen by the second instance after {took:?}");
    assert_eq!(two.get_auth(&path(&a, "/me"), &access).await.status(), StatusCode::OK);

    // Revoke on two: one refuses the old tokens within a second.
    rotate(&two, &a, "revoke").await;
    let took = eventually("instance one refusing revoked keys", Duration::from_secs(1), || {
        let (one, access) = (&one, &access);
        async move { one.get_auth("/api/auth/verify", access).await.status() == StatusCode::UNAUTHORIZED }
    })
    .await;
    eprintln!("revocation seen by the first instance after {took:?}");
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_key_rotation_reseals_everything_without_logging_anyone_out() {
    let db = TestDatabase::create().await;
    let (old, new) = (MasterKey::generate_base64(), MasterKey::generate_base64());
    let secrets = (
        tessera_server::secrets::generate_secret(),
        tessera_server::secrets::generate_secret(),
    );
    let before = pg_instance(&db, &old, None, &secrets).await;
    let a = signup(&before, "Alpha").await;
    let (access, refresh) = tokens_of(register_in(&before, &a, &unique_email()).await).await;

    // Step 1: an instance with the new key current and the old one previous.
    let during = pg_instance(&db, &new, Some(&old), &secrets).await;
    assert_eq!(
        during.get_auth(&path(&a, "/me"), &access).await.status(),
        StatusCode::OK
    );
    let b = signup(&during, "Beta").await;
    // Step 2: re-seal (what `tessera master-key rotate` runs).
    let mut config = Config::embedded(tempfile::tempdir().unwrap().path().to_owned());
    config.database_url = Some(db.url.clone());
    config.master_key = Some(SecretValue::new(new.clone()));
    config.previous_master_keys = vec![SecretValue::new(old.clone())];
    config.secrets = SecretsSource::from_env_values(Some(secrets.0.clone()), Some(secrets.1.clone())).unwrap();
    let op = tessera_server::ops::Operator::open(config).await.unwrap();
    let (resealed, stuck, current) = op.rotate_master_key().await.unwrap();
    assert!(resealed >= 4, "tenant A's keys at least: {resealed}");
    assert_eq!(stuck, 0);
    assert_eq!(current, MasterKey::from_base64(&new).unwrap().id());
    // Every stored key is sealed by the new key now.
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT master_key_id FROM tenant_keys WHERE sealed IS NOT NULL")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(ids, std::slice::from_ref(&current));
    // Step 3: an instance with the new key alone serves everyone.
    let after = pg_instance(&db, &new, None, &secrets).await;
    assert_eq!(after.get_auth(&path(&a, "/me"), &access).await.status(), StatusCode::OK);
    assert_eq!(
        after.get_auth(&path(&b, "/me"), &b.owner_access).await.status(),
        StatusCode::OK
    );
    let res = after
        .post_json(&path(&a, "/refresh"), &json!({"refreshToken": refresh}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // The raw rows hold no plaintext key.
    let master = tessera_server::master::MasterKeys::from_config(&SecretValue::new(new), &[]).unwrap();
    let rows: Vec<(String, Option<Vec<u8>>)> = sqlx::query_as("SELECT kid, sealed FROM tenant_keys")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    use tessera_store::TenantStore as _;
    let store = tessera_store::PostgresStore::connect(&db.url).await.unwrap();
    for row in store.live_keys().await.unwrap() {
        let plain = tessera_server::keys::open_stored_key(&master, &row).unwrap();
        for (_, sealed) in &rows {
            if let Some(sealed) = sealed {
                assert!(!contains(sealed, &plain));
            }
        }
    }
    drop(conn);
    db.drop_now().await;
}

#[tokio::test]
async fn garbage_kids_are_refused_quickly_and_the_server_stays_ready() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (_, claims) = decode_parts(&user.access);
    let started = Instant::now();
    for i in 0..300 {
        let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": format!("garbage-kid-{i}")});
        let token = forge(&header.to_string(), &claims.to_string(), app.jwt_secret.as_bytes());
        let res = app.get_auth("/api/auth/verify", &token).await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    eprintln!("300 unknown kids refused in {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        app.get_auth("/api/auth/verify", &user.access).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.client.get(app.url("/readyz")).send().await.unwrap().status(),
        StatusCode::OK
    );
}
