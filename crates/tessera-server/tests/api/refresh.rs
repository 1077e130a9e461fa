use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

async fn pair(res: reqwest::Response) -> (String, String) {
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tokenType"], "Bearer");
    assert!(body["expiresIn"].as_i64().unwrap() > 890);
    (
        body["accessToken"].as_str().unwrap().to_owned(),
        body["refreshToken"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn refresh_rotates_the_pair_and_keeps_the_session() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (access, refresh) = pair(app.refresh(&user.refresh).await).await;
    assert_ne!(refresh, user.refresh);
    assert_ne!(access, user.access);
    let (_, old) = decode_parts(&user.refresh);
    let (_, new) = decode_parts(&refresh);
    assert_eq!(old["sid"], new["sid"]);
    assert_ne!(old["jti"], new["jti"]);
    assert_eq!(app.get_auth("/api/auth/me", &access).await.status(), StatusCode::OK);
    let (_, refresh2) = pair(app.refresh(&refresh).await).await;
    pair(app.refresh(&refresh2).await).await;
}

#[tokio::test]
async fn replaying_a_rotated_token_revokes_the_session() {
    let app = spawn_app_with(|c| c.refresh_reuse_grace = Duration::ZERO).await;
    let user = app.new_user().await;
    let (_, current) = pair(app.refresh(&user.refresh).await).await;
    assert_error(
        app.refresh(&user.refresh).await,
        StatusCode::UNAUTHORIZED,
        "refresh_token_reused",
    )
    .await;
    // The thief's replay ended the session: the legitimate successor is dead too.
    assert_error(app.refresh(&current).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // Another session of the same user is untouched.
    let (_, other) = app.new_session(&user).await;
    pair(app.refresh(&other).await).await;
}

#[tokio::test]
async fn the_immediate_parent_gets_the_same_pair_within_the_grace_window() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let first = pair(app.refresh(&user.refresh).await).await;
    let again = pair(app.refresh(&user.refresh).await).await;
    assert_eq!(first, again, "two tabs refreshing at once get the same pair");
    // The current token still rotates normally afterwards.
    let next = pair(app.refresh(&first.1).await).await;
    // Now the original token is a grandparent: theft, even within the window.
    assert_error(
        app.refresh(&user.refresh).await,
        StatusCode::UNAUTHORIZED,
        "refresh_token_reused",
    )
    .await;
    assert_error(app.refresh(&next.1).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[tokio::test]
async fn concurrent_refreshes_never_mint_two_successors() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let results = futures::future::join_all((0..24).map(|_| app.refresh(&user.refresh))).await;
    let mut pairs = Vec::new();
    for res in results {
        pairs.push(pair(res).await);
    }
    pairs.sort();
    pairs.dedup();
    assert_eq!(pairs.len(), 1, "every concurrent refresh returns the one successor");
    pair(app.refresh(&pairs[0].1).await).await;
}

#[tokio::test]
async fn without_grace_exactly_one_concurrent_refresh_wins() {
    let app = spawn_app_with(|c| c.refresh_reuse_grace = Duration::ZERO).await;
    let user = app.new_user().await;
    let results = futures::future::join_all((0..24).map(|_| app.refresh(&user.refresh))).await;
    let mut ok = 0;
    for res in results {
        match res.status() {
            StatusCode::OK => ok += 1,
            StatusCode::UNAUTHORIZED => {
                let body: Value = res.json().await.unwrap();
                assert!(
                    body["error"] == "refresh_token_reused" || body["error"] == "invalid_token",
                    "{body}"
                );
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn tokens_of_the_wrong_kind_are_refused() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    assert_error(
        app.refresh(&user.access).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_error(
        app.get_auth("/api/auth/me", &user.refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_error(
        app.get_auth("/api/auth/verify", &user.refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    // The refresh token still works: the failed attempts changed nothing.
    pair(app.refresh(&user.refresh).await).await;
}

#[tokio::test]
async fn expired_and_foreign_refresh_tokens_are_refused() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (header, mut claims) = decode_parts(&user.refresh);
    claims["exp"] = json!(now() - 60);
    let expired = forge(&header.to_string(), &claims.to_string(), app.refresh_secret.as_bytes());
    let body = assert_error(app.refresh(&expired).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert!(body["message"].as_str().is_some());

    let (_, claims) = decode_parts(&user.refresh);
    let other_key = forge(
        &header.to_string(),
        &claims.to_string(),
        b"another-secret-another-secret-another-secret",
    );
    assert_error(app.refresh(&other_key).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_error(
        app.refresh("not.a.token").await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    let res = app.post_json("/api/auth/refresh", &json!({"refreshToken": 42})).await;
    assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    pair(app.refresh(&user.refresh).await).await;
}

#[tokio::test]
async fn refresh_after_logout_is_refused() {
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
    assert_error(
        app.refresh(&user.refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
}
