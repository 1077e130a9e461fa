use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Instant;

#[tokio::test]
async fn register_returns_the_user_and_a_token_pair() {
    let app = spawn_app().await;
    let email = unique_email();
    let res = app.register(&email, PASSWORD).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    let user = &body["user"];
    assert_eq!(user["email"], email.as_str());
    assert_eq!(user["emailVerified"], false);
    assert_eq!(user["firstName"], "Ada");
    assert_eq!(user["lastName"], "Lovelace");
    assert_eq!(user["role"], "user");
    assert!(user["createdAt"].as_str().unwrap().ends_with('Z'));
    let keys: Vec<&String> = user.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 7, "user has exactly the contract's fields: {keys:?}");
    assert!(!body.to_string().contains("argon2"), "no hash may leak: {body}");
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 900);

    let (header, claims) = decode_parts(body["accessToken"].as_str().unwrap());
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["typ"], "at+jwt");
    assert!(header["kid"].as_str().is_some_and(|k| !k.is_empty()));
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(claims["aud"], "tessera");
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(claims["email"], email.as_str());
    assert_eq!(claims["role"], "user");
    for c in ["sid", "jti"] {
        assert_eq!(claims[c].as_str().unwrap().len(), 36, "{c} is a uuid");
    }
    let iat = claims["iat"].as_i64().unwrap();
    assert!((iat - now()).abs() <= 5);
    assert_eq!(claims["nbf"].as_i64().unwrap(), iat);
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 900);

    let (rheader, rclaims) = decode_parts(body["refreshToken"].as_str().unwrap());
    assert_eq!(rheader["typ"], "rt+jwt");
    assert_ne!(rheader["kid"], header["kid"], "refresh tokens use a different key");
    assert_eq!(rclaims["sid"], claims["sid"]);
    assert_eq!(rclaims["sub"], claims["sub"]);
    assert_eq!(rclaims["exp"].as_i64().unwrap(), iat + 7 * 86400);
    assert!(rclaims.get("aud").is_none() && rclaims.get("email").is_none());
}

#[tokio::test]
async fn emails_are_trimmed_and_case_insensitive() {
    let app = spawn_app().await;
    let local = uuid::Uuid::new_v4().simple().to_string();
    let res = app.register(&format!("  {local}@Example.COM "), PASSWORD).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["email"], format!("{local}@example.com"));

    let again = app
        .register(&format!("{}@EXAMPLE.com", local.to_uppercase()), PASSWORD)
        .await;
    assert_error(again, StatusCode::CONFLICT, "email_taken").await;

    let login = app
        .login(&format!(" {}@example.COM", local.to_uppercase()), PASSWORD)
        .await;
    assert_eq!(login.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_address_mixing_scripts_is_no_second_account_that_looks_the_same() {
    let app = spawn_app().await;
    let local = format!("admin{}", uuid::Uuid::new_v4().simple());
    let latin = format!("{local}@example.com");
    assert_eq!(app.register(&latin, PASSWORD).await.status(), StatusCode::CREATED);
    // A Cyrillic "а" in the local part, or in the domain.
    for lookalike in [
        format!("\u{430}{}@example.com", &local[1..]),
        format!("{local}@ex\u{430}mple.com"),
    ] {
        let res = app.register(&lookalike, PASSWORD).await;
        let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert!(body["fields"]["email"].is_string(), "{body}");
        // Logging in with it finds nothing, like any unknown address.
        assert_error(
            app.login(&lookalike, PASSWORD).await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }
}

#[tokio::test]
async fn password_length_is_enforced_in_characters_without_truncation() {
    let app = spawn_app().await;
    let body = assert_error(
        app.register(&unique_email(), "1234567").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(body["fields"]["password"], "must be at least 8 characters");
    let body = assert_error(
        app.register(&unique_email(), &"a".repeat(129)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(body["fields"]["password"], "must be at most 128 characters");

    // 128 characters of 4 bytes each is allowed; a different 129th character
    // would have been ignored by a truncating hash, here it matters.
    let email = unique_email();
    let long = "🔑".repeat(127) + "a";
    assert_eq!(app.register(&email, &long).await.status(), StatusCode::CREATED);
    assert_eq!(app.login(&email, &long).await.status(), StatusCode::OK);
    let almost = "🔑".repeat(127) + "b";
    assert_error(
        app.login(&email, &almost).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn every_invalid_field_is_named_in_one_422() {
    let app = spawn_app().await;
    let res = app
        .post_json(
            "/api/auth/register",
            &json!({"email": "nope", "password": 12345678, "lastName": "x"}),
        )
        .await;
    let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let fields = body["fields"].as_object().unwrap();
    assert_eq!(fields["email"], "must look like name@example.com");
    assert_eq!(fields["password"], "must be a string");
    assert_eq!(fields["firstName"], "is required");
    assert!(!fields.contains_key("lastName"));

    let res = app.post_json("/api/auth/login", &json!({})).await;
    let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(body["fields"]["email"], "is required");
    assert_eq!(body["fields"]["password"], "is required");
}

#[tokio::test]
async fn a_failed_register_changes_nothing() {
    let app = spawn_app().await;
    let email = unique_email();
    assert_eq!(
        app.register(&email, "short").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_error(
        app.login(&email, "short").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(app.register(&email, PASSWORD).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn login_failures_are_indistinguishable() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let wrong = app.login(&user.email, "not the password").await;
    assert_eq!(wrong.headers()["www-authenticate"], r#"Bearer realm="tessera""#);
    let wrong = assert_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let unknown = assert_error(
        app.login(&unique_email(), "not the password").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let malformed = assert_error(
        app.login("not-an-email", "not the password").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, malformed);
}

#[tokio::test]
async fn unknown_emails_cost_a_password_hash_too() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        app.login(&user.email, "wrong password").await;
        known.push(t.elapsed());
        let t = Instant::now();
        app.login(&unique_email(), "wrong password").await;
        unknown.push(t.elapsed());
    }
    known.sort();
    unknown.sort();
    let (k, u) = (known[2].as_secs_f64(), unknown[2].as_secs_f64());
    // Not a benchmark: only that the unknown path also runs Argon2 (a
    // skipped hash would be ~100x faster), with a wide margin for noise.
    assert!(u > k / 3.0 && u < k * 3.0, "median known {k:.4}s vs unknown {u:.4}s");
}

#[tokio::test]
async fn each_login_is_a_new_session_and_me_returns_the_user() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (access2, _) = app.new_session(&user).await;
    let (_, c1) = decode_parts(&user.access);
    let (_, c2) = decode_parts(&access2);
    assert_ne!(c1["sid"], c2["sid"]);

    let res = app.get_auth("/api/auth/me", &access2).await;
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["id"], user.id.as_str());
    assert_eq!(me["email"], user.email.as_str());

    let res = app.client.get(app.url("/api/auth/me")).send().await.unwrap();
    assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="tessera""#);
    assert_error(res, StatusCode::UNAUTHORIZED, "missing_token").await;
}

#[tokio::test]
async fn mononyms_may_leave_the_last_name_empty() {
    let app = spawn_app().await;
    let res = app
        .post_json(
            "/api/auth/register",
            &json!({"email": unique_email(), "password": PASSWORD, "firstName": "Plato", "lastName": ""}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = app
        .post_json(
            "/api/auth/register",
            &json!({"email": unique_email(), "password": PASSWORD, "firstName": " ", "lastName": "x"}),
        )
        .await;
    let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(body["fields"]["firstName"], "is required");
}

#[tokio::test]
async fn unicode_look_alikes_are_one_account_and_invisible_characters_are_refused() {
    let app = spawn_app().await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let decomposed = format!("rene\u{301}-{tag}@example.com");
    let composed = format!("ren\u{e9}-{tag}@example.com");
    let res = app.register(&decomposed, "pa\u{308}sswo\u{308}rd-decomposed").await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_error(
        app.register(&composed, PASSWORD).await,
        StatusCode::CONFLICT,
        "email_taken",
    )
    .await;
    assert_eq!(
        app.login(&composed, "p\u{e4}ssw\u{f6}rd-decomposed").await.status(),
        StatusCode::OK
    );

    for hidden in [
        format!("a\u{200b}{tag}@example.com"),
        format!("a\u{202e}{tag}@example.com"),
    ] {
        let body = assert_error(
            app.register(&hidden, PASSWORD).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert!(body["fields"]["email"].is_string());
    }
    let res = app
        .post_json(
            "/api/auth/register",
            &json!({"email": unique_email(), "password": PASSWORD, "firstName": "Ada\u{202e}", "lastName": ""}),
        )
        .await;
    let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert!(body["fields"]["firstName"].is_string());
}
