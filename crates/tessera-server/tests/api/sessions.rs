use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;

async fn list(app: &TestApp, access: &str) -> Vec<Value> {
    let res = app.get_auth("/api/auth/sessions", access).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.unwrap()["sessions"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn sessions_list_every_device_and_mark_the_current_one() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let res = app
        .client
        .post(app.url("/api/auth/login"))
        .header("user-agent", "tessera-test-phone/1.0")
        .json(&serde_json::json!({"email": user.email, "password": user.password}))
        .send()
        .await
        .unwrap();
    let phone: Value = res.json().await.unwrap();
    let phone_access = phone["accessToken"].as_str().unwrap();

    let sessions = list(&app, phone_access).await;
    assert_eq!(sessions.len(), 2);
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    let (_, claims) = decode_parts(phone_access);
    assert_eq!(current[0]["id"], claims["sid"]);
    assert_eq!(current[0]["userAgent"], "tessera-test-phone/1.0");
    assert_eq!(current[0]["ip"], "127.0.0.1");
    for s in &sessions {
        for field in ["id", "createdAt", "lastUsedAt", "expiresAt"] {
            assert!(s[field].is_string(), "{field} in {s}");
        }
        assert_eq!(s.as_object().unwrap().len(), 7, "{s}");
    }
    // Another user sees only their own.
    let stranger = app.new_user().await;
    assert_eq!(list(&app, &stranger.access).await.len(), 1);
}

#[tokio::test]
async fn deleting_a_session_ends_it_and_only_the_owner_can() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let stranger = app.new_user().await;
    let (phone_access, phone_refresh) = app.new_session(&user).await;
    let (_, phone) = decode_parts(&phone_access);
    let sid = phone["sid"].as_str().unwrap();
    let path = format!("/api/auth/sessions/{sid}");

    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&stranger.access)
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(
        app.refresh(&phone_refresh).await.status(),
        StatusCode::OK,
        "the stranger changed nothing"
    );

    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(list(&app, &user.access).await.len(), 1);
    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::NOT_FOUND, "not_found").await;

    for garbage in ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "%27%20OR%201%3D1"] {
        let res = app
            .client
            .delete(app.url(&format!("/api/auth/sessions/{garbage}")))
            .bearer_auth(&user.access)
            .send()
            .await
            .unwrap();
        assert_error(res, StatusCode::NOT_FOUND, "not_found").await;
    }
    let res = app.client.delete(app.url(&path)).send().await.unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "missing_token").await;
}

#[tokio::test]
async fn refresh_updates_last_used() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let before = list(&app, &user.access).await[0]["lastUsedAt"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(app.refresh(&user.refresh).await.status(), StatusCode::OK);
    let after = list(&app, &user.access).await[0]["lastUsedAt"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(after > before, "{before} -> {after}");
}
