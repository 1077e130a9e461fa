use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

async fn logout(app: &TestApp, bearer: Option<&str>, body: Option<serde_json::Value>) -> reqwest::Response {
    let mut req = app.client.post(app.url("/api/auth/logout"));
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

async fn alive(app: &TestApp, refresh: &str) -> bool {
    app.refresh(refresh).await.status() == StatusCode::OK
}

#[tokio::test]
async fn local_logout_ends_only_this_session() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (_, other) = app.new_session(&user).await;
    assert_eq!(
        logout(&app, Some(&user.access), None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(!alive(&app, &user.refresh).await);
    assert!(alive(&app, &other).await);
}

#[tokio::test]
async fn others_logout_keeps_only_this_session() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (_, second) = app.new_session(&user).await;
    let (_, third) = app.new_session(&user).await;
    let res = logout(&app, Some(&user.access), Some(json!({"scope": "others"}))).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(!alive(&app, &second).await);
    assert!(!alive(&app, &third).await);
    assert!(alive(&app, &user.refresh).await);
}

#[tokio::test]
async fn global_logout_ends_every_session_of_the_user_only() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let stranger = app.new_user().await;
    let (_, second) = app.new_session(&user).await;
    let res = logout(&app, Some(&user.access), Some(json!({"scope": "global"}))).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(!alive(&app, &user.refresh).await);
    assert!(!alive(&app, &second).await);
    assert!(alive(&app, &stranger.refresh).await);
}

#[tokio::test]
async fn logout_with_the_refresh_token_in_the_body() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (_, other) = app.new_session(&user).await;
    let res = logout(&app, None, Some(json!({"refreshToken": user.refresh}))).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(!alive(&app, &user.refresh).await);
    assert!(alive(&app, &other).await);
}

#[tokio::test]
async fn logout_with_a_rotated_refresh_token_is_a_replay() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let res = app.refresh(&user.refresh).await;
    let current = res.json::<serde_json::Value>().await.unwrap()["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = logout(
        &app,
        None,
        Some(json!({"refreshToken": user.refresh, "scope": "global"})),
    )
    .await;
    assert_error(res, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
    assert!(!alive(&app, &current).await, "the replay revoked the session");
}

#[tokio::test]
async fn logout_needs_credentials_and_a_valid_scope() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let res = logout(&app, None, None).await;
    assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="tessera""#);
    assert_error(res, StatusCode::UNAUTHORIZED, "missing_token").await;
    assert_error(
        logout(&app, None, Some(json!({"scope": "global"}))).await,
        StatusCode::UNAUTHORIZED,
        "missing_token",
    )
    .await;
    assert_error(
        logout(&app, Some("garbage"), None).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    let res = logout(&app, Some(&user.access), Some(json!({"scope": "everything"}))).await;
    let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(body["fields"]["scope"], "must be one of local, others, global");
    let res = app
        .client
        .post(app.url("/api/auth/logout"))
        .bearer_auth(&user.access)
        .header("content-type", "text/plain")
        .body("scope=global")
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    assert!(alive(&app, &user.refresh).await, "failed logouts changed nothing");
    // Logging out twice is not an error.
    assert_eq!(
        logout(&app, Some(&user.access), None).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        logout(&app, Some(&user.access), None).await.status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn a_token_of_an_ended_session_cannot_reach_other_sessions() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    assert_eq!(
        logout(&app, Some(&user.access), None).await.status(),
        StatusCode::NO_CONTENT
    );
    let (_, fresh) = app.new_session(&user).await;
    // The stolen-then-logged-out token cannot end the user's new session...
    let res = logout(&app, Some(&user.access), Some(json!({"scope": "others"}))).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let res = logout(&app, Some(&user.access), Some(json!({"scope": "global"}))).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert!(alive(&app, &fresh).await);
    // ...nor read the account or its sessions.
    assert_error(
        app.get_auth("/api/auth/me", &user.access).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_error(
        app.get_auth("/api/auth/sessions", &user.access).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
}
