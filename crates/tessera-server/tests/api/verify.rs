use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn verify_reports_the_subject_in_body_and_headers() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let res = app.get_auth("/api/auth/verify", &user.access).await;
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h["x-auth-user-id"], user.id.as_str());
    assert_eq!(h["x-auth-user-email"], user.email.as_str());
    assert_eq!(h["x-auth-user-role"], "user");
    assert_eq!(h["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    let (_, claims) = decode_parts(&user.access);
    assert_eq!(
        body,
        json!({"sub": user.id, "sid": claims["sid"], "tid": "00000000-0000-0000-0000-000000000000",
               "email": user.email, "role": "user", "exp": claims["exp"]})
    );
    assert_eq!(h["x-auth-session-id"], claims["sid"].as_str().unwrap());
    assert_eq!(h["x-auth-tenant-id"], "00000000-0000-0000-0000-000000000000");
}

#[tokio::test]
async fn verify_answers_head_requests_like_a_proxy_sends() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let res = app
        .client
        .head(app.url("/api/auth/verify"))
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-auth-user-id"], user.id.as_str());
    let res = app
        .client
        .head(app.url("/api/auth/verify"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn verify_distinguishes_missing_invalid_and_expired() {
    let app = spawn_app().await;
    let user = app.new_user().await;

    let res = app.client.get(app.url("/api/auth/verify")).send().await.unwrap();
    assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="tessera""#);
    assert_error(res, StatusCode::UNAUTHORIZED, "missing_token").await;

    let res = app.get_auth("/api/auth/verify", "abc.def.ghi").await;
    let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.starts_with(r#"Bearer realm="tessera", error="invalid_token", error_description=""#),
        "{challenge}"
    );
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;

    let (header, mut claims) = decode_parts(&user.access);
    claims["exp"] = json!(now() - 120);
    claims["iat"] = json!(now() - 1000);
    claims["nbf"] = json!(now() - 1000);
    let expired = forge(&header.to_string(), &claims.to_string(), app.jwt_secret.as_bytes());
    let res = app.get_auth("/api/auth/verify", &expired).await;
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains(r#"error="invalid_token""#));
    assert_error(res, StatusCode::UNAUTHORIZED, "token_expired").await;

    // Within the leeway (5 s by default) it still passes.
    claims["exp"] = json!(now() - 2);
    let just_expired = forge(&header.to_string(), &claims.to_string(), app.jwt_secret.as_bytes());
    assert_eq!(
        app.get_auth("/api/auth/verify", &just_expired).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn tokens_keep_verifying_after_logout_until_they_expire() {
    // Documented behaviour: /verify reads no storage, so a logged-out
    // session's access token lives out its (short) lifetime.
    let app = spawn_app().await;
    let user = app.new_user().await;
    let res = app
        .client
        .post(app.url("/api/auth/logout"))
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_auth("/api/auth/verify", &user.access).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_server_with_another_issuer_or_audience_refuses_the_token() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let other_aud = spawn_app_with(|c| c.audience = "billing".to_owned()).await;
    // Same secrets as `app` would be needed to isolate the claim check; forge instead.
    let (header, mut claims) = decode_parts(&user.access);
    claims["aud"] = json!("billing");
    let wrong_aud = forge(&header.to_string(), &claims.to_string(), app.jwt_secret.as_bytes());
    assert_error(
        app.get_auth("/api/auth/verify", &wrong_aud).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    let (_, mut claims) = decode_parts(&user.access);
    claims["iss"] = json!("https://evil.example");
    let wrong_iss = forge(&header.to_string(), &claims.to_string(), app.jwt_secret.as_bytes());
    assert_error(
        app.get_auth("/api/auth/verify", &wrong_iss).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    // A server with other secrets refuses it outright.
    assert_error(
        other_aud.get_auth("/api/auth/verify", &user.access).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
}
