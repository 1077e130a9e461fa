//! Roles and the admin API: the first admin from the command line, who may
//! administer whom, role changes that end sessions, and bad input.

use crate::helpers::*;
use crate::process::run;
use crate::tenants::signup;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use std::collections::HashSet;

/// Runs `tessera ARGS` on `app`'s data directory (beside the running
/// server, as an operator would); stdout, or a panic with stderr.
fn cli_ok(app: &TestApp, args: &[&str]) -> String {
    let out = run(&app.data_dir.path().join("data"), &[], args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tessera {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn get_with(app: &TestApp, path: &str, token: &str) -> Response {
    app.get_auth(path, token).await
}

async fn put_role(app: &TestApp, prefix: &str, token: &str, user: &str, role: &str) -> Response {
    app.client
        .put(app.url(&format!("{prefix}/users/{user}/role")))
        .bearer_auth(token)
        .json(&json!({ "role": role }))
        .send()
        .await
        .unwrap()
}

async fn revoke(app: &TestApp, prefix: &str, token: &str, user: &str) -> Response {
    app.client
        .post(app.url(&format!("{prefix}/users/{user}/revoke-sessions")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn role_of(access: &str) -> String {
    decode_parts(access).1["role"].as_str().unwrap().to_owned()
}

async fn user_page(app: &TestApp, path: &str, token: &str) -> Value {
    let res = get_with(app, path, token).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    res.json().await.unwrap()
}

#[tokio::test]
async fn the_first_admin_comes_from_the_cli_and_administers_the_default_tenant() {
    let app = spawn_app().await;
    let ada = app.new_user().await;
    let bob = app.new_user().await;

    let res = app.client.get(app.url("/api/admin/users")).send().await.unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "missing_token").await;
    let res = get_with(&app, "/api/admin/users", &ada.access).await;
    assert_error(res, StatusCode::FORBIDDEN, "forbidden").await;

    let out = cli_ok(&app, &["user", "set-role", &ada.email, "admin"]);
    assert!(out.contains("is now admin (was user)"), "{out}");
    // The role is read from the store, so ada's token from before works at
    // once; a promotion ends no session.
    let page = user_page(&app, "/api/admin/users", &ada.access).await;
    let emails: Vec<&str> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert!(
        emails.contains(&ada.email.as_str()) && emails.contains(&bob.email.as_str()),
        "{page}"
    );
    assert!(page["next"].is_null());
    for user in page["users"].as_array().unwrap() {
        let keys: HashSet<&str> = user.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            HashSet::from([
                "id",
                "email",
                "emailVerified",
                "firstName",
                "lastName",
                "role",
                "createdAt"
            ])
        );
    }
    let res = app.refresh(&ada.refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    let ada_access = res.json::<Value>().await.unwrap()["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(role_of(&ada_access), "admin");

    let one = user_page(
        &app,
        &format!("/api/admin/users?email={}", bob.email.to_uppercase()),
        &ada_access,
    )
    .await;
    assert_eq!(one["users"][0]["id"], bob.id.as_str());
    let one = user_page(&app, &format!("/api/admin/users/{}", bob.id), &ada_access).await;
    assert_eq!(one["email"], bob.email.as_str());

    // A custom role is not a promotion: bob's sessions end, and his next
    // login carries the role.
    let res = put_role(&app, "/api/admin", &ada_access, &bob.id, "editor").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["role"], "editor");
    assert_error(
        app.refresh(&bob.refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    let (bob_access, bob_refresh) = app.new_session(&bob).await;
    assert_eq!(role_of(&bob_access), "editor");

    // An admin may not make an owner.
    let res = put_role(&app, "/api/admin", &ada_access, &bob.id, "owner").await;
    assert_error(res, StatusCode::FORBIDDEN, "forbidden").await;

    let res = revoke(&app, "/api/admin", &ada_access, &bob.id).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_error(
        app.refresh(&bob_refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;

    let audit = user_page(&app, "/api/admin/audit?limit=20", &ada_access).await;
    let events = audit["events"].as_array().unwrap();
    let changed = events.iter().find(|e| e["type"] == "role.changed").unwrap();
    assert_eq!(changed["userId"], ada.id.as_str());
    assert_eq!(changed["detail"]["target"], bob.id.as_str());
    assert_eq!(changed["detail"]["from"], "user");
    assert_eq!(changed["detail"]["to"], "editor");
    assert_eq!(changed["detail"]["by"], "admin");
    assert_eq!(changed["detail"]["sessionsEnded"], 1);
    assert!(events
        .iter()
        .any(|e| e["type"] == "session.revoked" && e["detail"]["target"] == bob.id.as_str()));

    // The command line lists, revokes and demotes; a demoted admin is
    // refused at once.
    let listed = cli_ok(&app, &["user", "list"]);
    assert!(listed.contains(&ada.email) && listed.contains("editor"), "{listed}");
    let json_lines = cli_ok(&app, &["user", "list", "--json"]);
    let parsed: Vec<Value> = json_lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(parsed
        .iter()
        .any(|u| u["id"] == ada.id.as_str() && u["role"] == "admin"));
    let out = cli_ok(&app, &["user", "set-role", &ada.email, "user"]);
    assert!(out.contains("ended 1 session"), "{out}");
    assert_error(
        get_with(&app, "/api/admin/users", &ada_access).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    let (_, ada_refresh) = app.new_session(&ada).await;
    let out = cli_ok(&app, &["user", "revoke-sessions", &ada.email.to_uppercase()]);
    assert!(out.contains("ended 1 session"), "{out}");
    assert_error(
        app.refresh(&ada_refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;

    let out = run(
        &app.data_dir.path().join("data"),
        &[],
        &["user", "set-role", &bob.email, "owner"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the default tenant has no owner"));
    let out = run(
        &app.data_dir.path().join("data"),
        &[],
        &["user", "set-role", "nobody@example.com", "admin"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no account with the email"));
    let out = run(
        &app.data_dir.path().join("data"),
        &[],
        &["user", "set-role", &ada.email, "Not A Role"],
    );
    assert_eq!(out.status.code(), Some(2), "a bad role is a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a role"));
}

#[tokio::test]
async fn owners_admins_and_api_keys_administer_only_their_own_tenant() {
    let app = spawn_app().await;
    let acme = signup(&app, "Acme").await;
    let globex = signup(&app, "Globex").await;
    let prefix = format!("/api/tenants/{}/admin", acme.slug);
    let owner_id = decode_parts(&acme.owner_access).1["sub"].as_str().unwrap().to_owned();

    let email = unique_email();
    let res = app
        .post_json(
            &format!("/api/tenants/{}/auth/register", acme.slug),
            &json!({"email": email, "password": PASSWORD, "firstName": "Carol", "lastName": "Shaw"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    let carol = body["user"]["id"].as_str().unwrap().to_owned();
    let carol_access = body["accessToken"].as_str().unwrap().to_owned();
    let carol_refresh = body["refreshToken"].as_str().unwrap().to_owned();

    let page = user_page(&app, &format!("{prefix}/users"), &acme.owner_access).await;
    let ids: Vec<&str> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    // Both were made within a second or two: the order is checked by the paging test.
    assert_eq!(ids.len(), 2);
    assert!(
        ids.contains(&carol.as_str()) && ids.contains(&owner_id.as_str()),
        "{page}"
    );

    // Another tenant's routes, and the default tenant's, refuse the token.
    for path in [
        format!("/api/tenants/{}/admin/users", globex.slug),
        "/api/admin/users".to_owned(),
    ] {
        assert_error(
            get_with(&app, &path, &acme.owner_access).await,
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        )
        .await;
    }
    // The API key administers its own tenant only, and sees no one else's users.
    let with_key = |path: String, key: &str| app.client.get(app.url(&path)).header("x-api-key", key).send();
    let res = with_key(format!("{prefix}/users"), &acme.api_key).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = with_key(format!("{prefix}/users"), &globex.api_key).await.unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
    let res = with_key(
        format!("/api/tenants/{}/admin/users/{carol}", globex.slug),
        &globex.api_key,
    )
    .await
    .unwrap();
    assert_error(res, StatusCode::NOT_FOUND, "not_found").await;

    // A promotion keeps carol's session; an admin cannot touch owners.
    let res = put_role(&app, &prefix, &acme.owner_access, &carol, "admin").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        app.refresh_in(&acme.slug, &carol_refresh).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        get_with(&app, &format!("{prefix}/audit"), &carol_access).await.status(),
        StatusCode::OK
    );
    for (target, role) in [(owner_id.as_str(), "user"), (carol.as_str(), "owner")] {
        let res = put_role(&app, &prefix, &carol_access, target, role).await;
        assert_error(res, StatusCode::FORBIDDEN, "forbidden").await;
    }
    // Nor end an owner's sessions.
    let res = revoke(&app, &prefix, &carol_access, &owner_id).await;
    assert_error(res, StatusCode::FORBIDDEN, "forbidden").await;
    let res = app.refresh_in(&acme.slug, &acme.owner_refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    let owner_refresh = res.json::<Value>().await.unwrap()["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    // The keys stay the owner's.
    let res = app
        .client
        .post(app.url(&format!("/api/tenants/{}/keys/rotate", acme.slug)))
        .bearer_auth(&carol_access)
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::FORBIDDEN, "forbidden").await;

    // The last owner cannot step down; with a second owner it can, and its
    // sessions end.
    let res = put_role(&app, &prefix, &acme.owner_access, &owner_id, "user").await;
    assert_error(res, StatusCode::CONFLICT, "conflict").await;
    let res = app
        .client
        .put(app.url(&format!("{prefix}/users/{carol}/role")))
        .header("x-api-key", &acme.api_key)
        .json(&json!({"role": "owner"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = put_role(&app, &prefix, &acme.owner_access, &owner_id, "user").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_error(
        app.refresh_in(&acme.slug, &owner_refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    let page = user_page(&app, &format!("{prefix}/users"), &carol_access).await;
    let role_of_user = |id: &str| {
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["id"] == id)
            .unwrap()["role"]
            .clone()
    };
    assert_eq!(role_of_user(&carol), "owner");
    assert_eq!(role_of_user(&owner_id), "user");
}

/// A login waiting for its password hash while its user is demoted must
/// not come back with a token of the old role (with the revocation check
/// on, not one `/verify` accepts).
#[tokio::test]
async fn a_login_racing_a_demotion_never_yields_a_token_with_the_lost_role() {
    let app = spawn_app_with(|c| {
        c.hash_concurrency = 1;
        c.revocation_check = true;
        c.rate_limits = tessera_server::ratelimit::RateLimitSettings::off();
    })
    .await;
    let boss = app.new_user().await;
    cli_ok(&app, &["user", "set-role", &boss.email, "admin"]);
    let victim = app.new_user().await;
    for round in 0..4 {
        cli_ok(&app, &["user", "set-role", &victim.email, "admin"]);
        // Logins of nobody fill the one hashing slot, so the victim's login
        // waits behind them while the demotion goes through.
        let junk: Vec<_> = (0..6)
            .map(|_| {
                let (client, url) = (app.client.clone(), app.url("/api/auth/login"));
                tokio::spawn(async move {
                    client
                        .post(url)
                        .json(&json!({"email": unique_email(), "password": "not the password"}))
                        .send()
                        .await
                })
            })
            .collect();
        let login = {
            let (client, url) = (app.client.clone(), app.url("/api/auth/login"));
            let body = json!({"email": victim.email, "password": victim.password});
            tokio::spawn(async move { client.post(url).json(&body).send().await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let res = put_role(&app, "/api/admin", &boss.access, &victim.id, "user").await;
        assert_eq!(res.status(), StatusCode::OK, "round {round}");
        let res = login.await.unwrap().unwrap();
        for j in junk {
            j.await.unwrap().unwrap();
        }
        if res.status() != StatusCode::OK {
            // The session vanished while it was being opened: 409, log in again.
            assert_error(res, StatusCode::CONFLICT, "conflict").await;
            continue;
        }
        let body: Value = res.json().await.unwrap();
        let access = body["accessToken"].as_str().unwrap();
        let verdict = get_with(&app, "/api/auth/verify", access).await;
        if verdict.status() == StatusCode::OK {
            assert_eq!(
                role_of(access),
                "user",
                "round {round}: a live token kept the lost role"
            );
            assert_eq!(body["user"]["role"], "user");
        } else {
            assert_error(verdict, StatusCode::UNAUTHORIZED, "invalid_token").await;
        }
    }
}

#[tokio::test]
async fn the_user_list_pages_without_gaps_or_repeats() {
    let app = spawn_app().await;
    let admin = app.new_user().await;
    cli_ok(&app, &["user", "set-role", &admin.email, "admin"]);
    let mut made = HashSet::from([admin.id.clone()]);
    for _ in 0..6 {
        made.insert(app.new_user().await.id);
    }
    let mut seen = Vec::new();
    let mut path = "/api/admin/users?limit=3".to_owned();
    loop {
        let page = user_page(&app, &path, &admin.access).await;
        let users = page["users"].as_array().unwrap();
        assert!(users.len() <= 3);
        seen.extend(users.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => path = format!("/api/admin/users?limit=3&before={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), made);
    let created: Vec<String> = {
        let page = user_page(&app, "/api/admin/users", &admin.access).await;
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["createdAt"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "{created:?}");

    // The command line pages with the same cursors.
    let data = app.data_dir.path().join("data");
    let out = run(&data, &[], &["user", "list", "--limit", "4"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let cursor = stderr
        .lines()
        .find_map(|l| l.strip_prefix("more: --before "))
        .unwrap()
        .trim()
        .to_owned();
    let out = run(&data, &[], &["user", "list", "--limit", "4", "--before", &cursor]);
    let rest = String::from_utf8_lossy(&out.stdout);
    assert_eq!(rest.lines().count(), 1 + 3, "{rest}");
}

#[tokio::test]
async fn bad_admin_requests_are_4xx_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.new_user().await;
    let victim = app.new_user().await;
    cli_ok(&app, &["user", "set-role", &admin.email, "admin"]);

    for query in [
        "limit=0",
        "limit=501",
        "limit=abc",
        "limit=-1",
        "before=nope",
        "before=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "email=not-an-email",
        "email=%FF",
        // Given twice: which one would count is a guess.
        "limit=1&limit=2",
        "email=a%40example.com&email=b%40example.com",
    ] {
        let res = get_with(&app, &format!("/api/admin/users?{query}"), &admin.access).await;
        assert_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    let res = get_with(&app, "/api/admin/audit?limit=1&limit=2", &admin.access).await;
    assert_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    // A stranger is told who they are not, not what is wrong with the query.
    let res = get_with(&app, "/api/admin/users?limit=1&limit=2", &victim.access).await;
    assert_error(res, StatusCode::FORBIDDEN, "forbidden").await;
    for id in [
        "nope",
        "00000000-0000-0000-0000-000000000000",
        &uuid::Uuid::new_v4().to_string(),
    ] {
        let res = get_with(&app, &format!("/api/admin/users/{id}"), &admin.access).await;
        assert_error(res, StatusCode::NOT_FOUND, "not_found").await;
        let res = put_role(&app, "/api/admin", &admin.access, id, "admin").await;
        assert_error(res, StatusCode::NOT_FOUND, "not_found").await;
        let res = revoke(&app, "/api/admin", &admin.access, id).await;
        assert_error(res, StatusCode::NOT_FOUND, "not_found").await;
    }
    let role_path = app.url(&format!("/api/admin/users/{}/role", victim.id));
    for (body, field) in [
        (json!({"role": "Admin"}), "role"),
        (json!({"role": ""}), "role"),
        (json!({"role": "a".repeat(33)}), "role"),
        (json!({"role": 7}), "role"),
        (json!({}), "role"),
    ] {
        let res = app
            .client
            .put(&role_path)
            .bearer_auth(&admin.access)
            .json(&body)
            .send()
            .await
            .unwrap();
        let err = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert!(err["fields"][field].is_string(), "{err}");
    }
    let res = app
        .client
        .put(&role_path)
        .bearer_auth(&admin.access)
        .header("content-type", "text/plain")
        .body("role=admin")
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    let res = app
        .client
        .put(&role_path)
        .bearer_auth(&admin.access)
        .header("content-type", "application/json")
        .body("{\"role\":")
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    let res = app
        .client
        .get(&role_path)
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    // A forged admin token is refused before anything is read.
    let (header, payload) = decode_parts(&victim.access);
    let mut payload = payload;
    payload["role"] = json!("admin");
    let forged = forge(&header.to_string(), &payload.to_string(), b"not the key");
    let res = put_role(&app, "/api/admin", &forged, &victim.id, "admin").await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // A user's own token, however its claims read, does not make it admin.
    let res = put_role(&app, "/api/admin", &victim.access, &victim.id, "admin").await;
    assert_error(res, StatusCode::FORBIDDEN, "forbidden").await;

    // Nothing changed: the victim is still a user with its session.
    let page = user_page(&app, &format!("/api/admin/users/{}", victim.id), &admin.access).await;
    assert_eq!(page["role"], "user");
    assert_eq!(app.refresh(&victim.refresh).await.status(), StatusCode::OK);
}
