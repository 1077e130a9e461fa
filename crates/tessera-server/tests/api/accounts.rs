//! Passwords and email addresses over HTTP: forgot and reset, change,
//! verification, with the mail read back from the embedded default's outbox
//! (`<data dir>/outbox/`) and its token taken from the link.

use crate::helpers::*;
use crate::smtp_sink::readable;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The messages in `app`'s outbox addressed to `to`, oldest first, as
/// [`readable`] shows them (headers, then the decoded bodies).
fn mails_to(app: &TestApp, to: &str) -> Vec<String> {
    let dir: PathBuf = app.data_dir.path().join("data").join("outbox");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| (e.metadata().and_then(|m| m.modified()).ok(), e.path()))
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|(_, path)| std::fs::read(path).ok())
        .map(|raw| readable(&raw))
        .filter(|mail| {
            mail.lines()
                .any(|l| l.to_ascii_lowercase().starts_with("to:") && l.contains(to))
        })
        .collect()
}

/// Every token with `prefix` (`tpr_`, `tev_`) in `mail`.
fn tokens_in(mail: &str, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = mail;
    while let Some(at) = rest.find(prefix) {
        let candidate: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if candidate.len() == prefix.len() + 43 && !found.contains(&candidate) {
            found.push(candidate);
        }
        rest = &rest[at + prefix.len()..];
    }
    found
}

/// Waits (up to 10 s) for the `nth` (0-based) mail to `to` carrying a token
/// with `prefix`, and returns that token.
pub(crate) async fn wait_for_token(app: &TestApp, to: &str, prefix: &str, nth: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let tokens: Vec<String> = mails_to(app, to).iter().flat_map(|m| tokens_in(m, prefix)).collect();
        if let Some(token) = tokens.get(nth) {
            return token.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no mail #{nth} with a {prefix} token reached {to}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `count` mails have reached `to`.
async fn wait_for_mails(app: &TestApp, to: &str, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mails = mails_to(app, to);
        if mails.len() >= count {
            return mails;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {count} mails reached {to}",
            mails.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn forgot(app: &TestApp, prefix: &str, email: &str) -> reqwest::Response {
    app.post_json(&format!("{prefix}/password/forgot"), &json!({"email": email}))
        .await
}

async fn reset(app: &TestApp, prefix: &str, token: &str, password: &str) -> reqwest::Response {
    app.post_json(
        &format!("{prefix}/password/reset"),
        &json!({"token": token, "password": password}),
    )
    .await
}

async fn change(app: &TestApp, access: &str, current: &str, new: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/auth/password/change"))
        .bearer_auth(access)
        .json(&json!({"currentPassword": current, "newPassword": new}))
        .send()
        .await
        .unwrap()
}

async fn me(app: &TestApp, access: &str) -> Value {
    let res = app.get_auth("/api/auth/me", access).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

pub(crate) const NEW_PASSWORD: &str = "a brand new passphrase";

/// Follows the `nth` reset link mailed to `email`: the password becomes
/// [`NEW_PASSWORD`].
pub(crate) async fn reset_by_mail(app: &TestApp, email: &str, nth: usize) {
    let token = wait_for_token(app, email, "tpr_", nth).await;
    let res = reset(app, "/api/auth", &token, NEW_PASSWORD).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn reset_sets_the_password_ends_every_session_and_works_once() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (_, second_refresh) = app.new_session(&user).await;

    let res = forgot(&app, "/api/auth", &user.email).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let token = wait_for_token(&app, &user.email, "tpr_", 0).await;

    let res = reset(&app, "/api/auth", &token, NEW_PASSWORD).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    // Every session ended: both refresh tokens are dead.
    for refresh in [&user.refresh, &second_refresh] {
        assert_error(app.refresh(refresh).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    assert_error(
        app.login(&user.email, PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let res = app.login(&user.email, NEW_PASSWORD).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["user"]["emailVerified"], true,
        "the reset link reached the mailbox"
    );

    // Single use.
    assert_error(
        reset(&app, "/api/auth", &token, "yet another passphrase").await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_eq!(app.login(&user.email, NEW_PASSWORD).await.status(), StatusCode::OK);

    // The user hears that the password changed.
    let mails = wait_for_mails(&app, &user.email, 3).await;
    assert!(
        mails
            .iter()
            .filter(|m| tokens_in(m, "tpr_").is_empty() && tokens_in(m, "tev_").is_empty())
            .count()
            >= 1,
        "a password-changed notice without a token"
    );
}

/// Logins with the old password that are still waiting for their hash
/// when a reset (or a change) lands must not leave a session behind, even
/// though they finish after the reset ended every session.
#[tokio::test]
async fn logins_racing_a_reset_or_change_with_the_old_password_keep_no_session() {
    let app = spawn_app_with(|c| {
        c.hash_concurrency = 1;
        c.rate_limits = tessera_server::ratelimit::RateLimitSettings::off();
    })
    .await;
    let user = app.new_user().await;
    let mut password = user.password.clone();
    let spawn_post = |path: &str, bearer: Option<String>, body: Value| {
        let (client, url) = (app.client.clone(), app.url(path));
        tokio::spawn(async move {
            let mut req = client.post(url).json(&body);
            if let Some(token) = bearer {
                req = req.bearer_auth(token);
            }
            req.send().await
        })
    };
    let mut survivors = 0;
    for round in 0..4 {
        let next = format!("a new passphrase number {round}");
        let change_token = if round % 2 == 1 {
            let res = app.login(&user.email, &password).await;
            assert_eq!(res.status(), StatusCode::OK, "round {round}");
            Some(
                res.json::<Value>().await.unwrap()["accessToken"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        } else {
            assert_eq!(
                forgot(&app, "/api/auth", &user.email).await.status(),
                StatusCode::ACCEPTED
            );
            None
        };
        let reset_token = match change_token {
            None => Some(wait_for_token(&app, &user.email, "tpr_", round / 2).await),
            Some(_) => None,
        };
        // Logins of nobody fill the one hashing slot. The replacement queues
        // its hashing next; the old-password logins read the account before
        // it lands, and check the password it had after.
        let junk: Vec<_> = (0..4)
            .map(|_| {
                spawn_post(
                    "/api/auth/login",
                    None,
                    json!({"email": unique_email(), "password": "not it"}),
                )
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let replacement = match (&reset_token, &change_token) {
            (Some(token), _) => spawn_post(
                "/api/auth/password/reset",
                None,
                json!({"token": token, "password": next}),
            ),
            (None, access) => spawn_post(
                "/api/auth/password/change",
                access.clone(),
                json!({"currentPassword": password, "newPassword": next}),
            ),
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let racing: Vec<_> = (0..3)
            .map(|_| {
                spawn_post(
                    "/api/auth/login",
                    None,
                    json!({"email": user.email, "password": password}),
                )
            })
            .collect();
        let res = replacement.await.unwrap().unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "round {round}");
        for j in junk {
            j.await.unwrap().unwrap();
        }
        for login in racing {
            let res = login.await.unwrap().unwrap();
            if res.status() == StatusCode::OK {
                let refresh = res.json::<Value>().await.unwrap()["refreshToken"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                if app.refresh(&refresh).await.status() == StatusCode::OK {
                    survivors += 1;
                }
            } else {
                assert_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
            }
        }
        password = next;
    }
    assert_eq!(survivors, 0, "sessions opened with a replaced password survived");
}

/// The notice that a password changed goes only to an address its owner
/// has shown they read, and only so many an hour: an account made with a
/// stranger's address cannot turn password changes into mail to them.
#[tokio::test]
async fn password_changed_notices_go_to_verified_addresses_a_few_an_hour() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let notices = |app: &TestApp| {
        mails_to(app, &user.email)
            .iter()
            .filter(|m| m.contains("Your password was changed"))
            .count()
    };
    // Unverified: the changes go through, no notice is mailed.
    let mut password = user.password.clone();
    for i in 0..2 {
        let next = format!("a passphrase of round {i}");
        assert_eq!(
            change(&app, &user.access, &password, &next).await.status(),
            StatusCode::NO_CONTENT
        );
        password = next;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(notices(&app), 0);
    // Verified: a notice per change, three an hour, then none.
    let token = wait_for_token(&app, &user.email, "tev_", 0).await;
    let res = app.post_json("/api/auth/email/verify", &json!({"token": token})).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for i in 0..5 {
        let next = format!("a passphrase of the verified round {i}");
        assert_eq!(
            change(&app, &user.access, &password, &next).await.status(),
            StatusCode::NO_CONTENT
        );
        password = next;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while notices(&app) < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(notices(&app), 3);
}

#[tokio::test]
async fn forgot_answers_alike_for_unknown_and_malformed_addresses_are_422() {
    let app = spawn_app().await;
    let unknown = unique_email();
    let res = forgot(&app, "/api/auth", &unknown).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let body = res.bytes().await.unwrap();
    let user = app.new_user().await;
    let known = forgot(&app, "/api/auth", &user.email).await;
    assert_eq!(known.status(), StatusCode::ACCEPTED);
    assert_eq!(known.bytes().await.unwrap(), body, "the same body for both");
    wait_for_token(&app, &user.email, "tpr_", 0).await;
    // Past the second within which each request's work starts.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        mails_to(&app, &unknown).is_empty(),
        "nothing is mailed to an unknown address"
    );

    for bad in [json!({"email": "not an email"}), json!({}), json!({"email": 42})] {
        let res = app.post_json("/api/auth/password/forgot", &bad).await;
        assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
}

#[tokio::test]
async fn forged_malformed_and_wrong_kind_tokens_are_invalid_and_change_nothing() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let verification = wait_for_token(&app, &user.email, "tev_", 0).await;
    let forged = format!("tpr_{}", "A".repeat(43));
    let long = "x".repeat(10_000);
    for token in [
        forged.as_str(),
        verification.as_str(),
        "",
        "tpr_",
        long.as_str(),
        "tpr_../../etc/passwd",
        "' OR 1=1 --",
    ] {
        let res = reset(&app, "/api/auth", token, NEW_PASSWORD).await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    for body in [
        json!({"token": 1, "password": NEW_PASSWORD}),
        json!({"password": NEW_PASSWORD}),
    ] {
        let res = app.post_json("/api/auth/password/reset", &body).await;
        assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    }
    assert_eq!(app.login(&user.email, PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(app.refresh(&user.refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_weak_new_password_is_422_and_keeps_the_token() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    forgot(&app, "/api/auth", &user.email).await;
    let token = wait_for_token(&app, &user.email, "tpr_", 0).await;
    let res = reset(&app, "/api/auth", &token, "short").await;
    let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert!(body["fields"]["password"].is_string());
    assert_eq!(
        reset(&app, "/api/auth", &token, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn a_reset_link_dies_when_the_password_changes() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    forgot(&app, "/api/auth", &user.email).await;
    let token = wait_for_token(&app, &user.email, "tpr_", 0).await;
    assert_eq!(
        change(&app, &user.access, PASSWORD, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_error(
        reset(&app, "/api/auth", &token, "the attacker's password").await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_eq!(app.login(&user.email, NEW_PASSWORD).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn concurrent_resets_with_one_link_succeed_once() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    forgot(&app, "/api/auth", &user.email).await;
    let token = wait_for_token(&app, &user.email, "tpr_", 0).await;
    let attempts = (0..6).map(|i| {
        let (app, token) = (&app, &token);
        async move {
            reset(app, "/api/auth", token, &format!("racing passphrase {i}"))
                .await
                .status()
        }
    });
    let statuses = futures::future::join_all(attempts).await;
    let won = statuses.iter().filter(|s| **s == StatusCode::NO_CONTENT).count();
    assert_eq!(won, 1, "{statuses:?}");
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::NO_CONTENT || *s == StatusCode::UNAUTHORIZED));
}

#[tokio::test]
async fn tokens_are_scoped_to_their_tenant() {
    let app = spawn_app().await;
    let signup = |name: &'static str| {
        let app = &app;
        async move {
            let res = app
                .post_json(
                    "/api/auth/signup",
                    &json!({"email": unique_email(), "password": PASSWORD, "firstName": "Owner",
                            "lastName": "", "tenantName": name}),
                )
                .await;
            assert_eq!(res.status(), StatusCode::CREATED);
            let body: Value = res.json().await.unwrap();
            body["tenant"]["slug"].as_str().unwrap().to_owned()
        }
    };
    let (acme, globex) = (signup("Acme Mail").await, signup("Globex Mail").await);
    // The same email in both tenants.
    let email = unique_email();
    for slug in [&acme, &globex] {
        let res = app
            .post_json(
                &format!("/api/tenants/{slug}/auth/register"),
                &json!({"email": email, "password": PASSWORD, "firstName": "Ada", "lastName": ""}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let acme_prefix = format!("/api/tenants/{acme}/auth");
    let globex_prefix = format!("/api/tenants/{globex}/auth");
    assert_eq!(forgot(&app, &acme_prefix, &email).await.status(), StatusCode::ACCEPTED);
    let token = wait_for_token(&app, &email, "tpr_", 0).await;
    let link_mail = mails_to(&app, &email).into_iter().find(|m| m.contains(&token)).unwrap();
    assert!(
        link_mail.contains(&format!("tenant={acme}")),
        "the link names its tenant"
    );

    for prefix in [globex_prefix.as_str(), "/api/auth"] {
        assert_error(
            reset(&app, prefix, &token, NEW_PASSWORD).await,
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        )
        .await;
    }
    assert_eq!(
        reset(&app, &acme_prefix, &token, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
    let login = |prefix: String, password: &'static str| {
        let (app, email) = (&app, &email);
        async move {
            app.post_json(
                &format!("{prefix}/login"),
                &json!({"email": email, "password": password}),
            )
            .await
            .status()
        }
    };
    assert_eq!(login(acme_prefix.clone(), NEW_PASSWORD).await, StatusCode::OK);
    assert_eq!(
        login(globex_prefix.clone(), PASSWORD).await,
        StatusCode::OK,
        "the other tenant's account is untouched"
    );
}

#[tokio::test]
async fn change_password_needs_the_current_one_and_ends_every_other_session() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let (_, other_refresh) = app.new_session(&user).await;

    assert_error(
        change(&app, &user.access, "not my password", NEW_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let res = change(&app, &user.access, PASSWORD, "short").await;
    let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert!(body["fields"]["newPassword"].is_string());
    let res = app
        .client
        .post(app.url("/api/auth/password/change"))
        .json(&json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "missing_token").await;
    // Nothing changed so far.
    assert_eq!(app.refresh(&other_refresh).await.status(), StatusCode::OK);
    let (_, other_refresh) = app.new_session(&user).await;

    assert_eq!(
        change(&app, &user.access, PASSWORD, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_error(
        app.refresh(&other_refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_eq!(
        app.refresh(&user.refresh).await.status(),
        StatusCode::OK,
        "this session stays"
    );
    assert_error(
        app.login(&user.email, PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(app.login(&user.email, NEW_PASSWORD).await.status(), StatusCode::OK);

    // A token of an ended session cannot change the password.
    let ended = app.new_user().await;
    let logout = app
        .client
        .post(app.url("/api/auth/logout"))
        .bearer_auth(&ended.access)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_error(
        change(&app, &ended.access, PASSWORD, NEW_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn registration_mails_a_link_that_verifies_the_email_once() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    assert_eq!(me(&app, &user.access).await["emailVerified"], false);
    let token = wait_for_token(&app, &user.email, "tev_", 0).await;
    let verify = |token: String| {
        let app = &app;
        async move { app.post_json("/api/auth/email/verify", &json!({"token": token})).await }
    };
    assert_eq!(verify(token.clone()).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(me(&app, &user.access).await["emailVerified"], true);
    assert_error(verify(token).await, StatusCode::UNAUTHORIZED, "invalid_token").await;
    assert_error(
        verify(format!("tev_{}", "B".repeat(43))).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn with_verification_required_login_waits_for_the_link() {
    let app = spawn_app_with(|c| c.require_email_verification = true).await;
    let email = unique_email();
    let res = app.register(&email, PASSWORD).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["emailVerificationRequired"], true);
    assert!(body.get("accessToken").is_none() && body.get("refreshToken").is_none());
    assert_eq!(body["user"]["emailVerified"], false);

    assert_error(
        app.login(&email, PASSWORD).await,
        StatusCode::FORBIDDEN,
        "email_not_verified",
    )
    .await;
    // A wrong password says nothing about verification.
    assert_error(
        app.login(&email, "not the password").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;

    // A lost link: ask again; only the newest need work.
    let res = app.post_json("/api/auth/email/resend", &json!({"email": email})).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let second = wait_for_token(&app, &email, "tev_", 1).await;
    let res = app.post_json("/api/auth/email/verify", &json!({"token": second})).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.login(&email, PASSWORD).await;
    assert_eq!(res.status(), StatusCode::OK);

    // Verified: resend mails nothing more.
    let before = mails_to(&app, &email).len();
    let res = app.post_json("/api/auth/email/resend", &json!({"email": email})).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let unknown = app
        .post_json("/api/auth/email/resend", &json!({"email": unique_email()}))
        .await;
    assert_eq!(unknown.status(), StatusCode::ACCEPTED);
    // Past the second within which a resend starts its work.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(mails_to(&app, &email).len(), before);
}

/// The median of `samples`, in microseconds.
fn median(samples: &mut [u128]) -> u128 {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Times `count` interleaved pairs of requests and returns the medians (µs).
async fn interleaved_medians<F, Fut>(count: usize, mut request: F) -> (u128, u128)
where
    F: FnMut(bool) -> Fut,
    Fut: std::future::Future<Output = StatusCode>,
{
    let (mut known, mut unknown) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for i in 0..count * 2 {
        // Alternate which goes first, so drift hits both alike.
        let is_known = (i % 2 == 0) == (i % 4 < 2);
        let started = Instant::now();
        let _status = request(is_known).await;
        let took = started.elapsed().as_micros();
        if is_known {
            known.push(took);
        } else {
            unknown.push(took);
        }
    }
    (median(&mut known), median(&mut unknown))
}

/// An observer timing forgot-password and failed logins cannot tell known
/// emails from unknown ones: medians over a few hundred samples each stay
/// within noise.
#[tokio::test]
async fn forgot_and_login_take_as_long_for_unknown_emails_as_for_known_ones() {
    // A thousand requests from one client, hundreds for one email and
    // failed logins of one account: the limits stay in the path (they must
    // take as long for both kinds of email) but are raised out of the way.
    let app = spawn_app_with(|c| {
        use tessera_server::ratelimit::Quota;
        c.rate_limits.per_client = Some(Quota::new(50_000, 60));
        c.rate_limits.forgot_per_email = Some(Quota::new(100_000, 3600));
        c.rate_limits.login_failures = Some(Quota::new(100_000, 900));
    })
    .await;
    let user = app.new_user().await;

    let (known, unknown) = interleaved_medians(300, |is_known| {
        let email = if is_known { user.email.clone() } else { unique_email() };
        let app = &app;
        async move {
            let status = forgot(app, "/api/auth", &email).await.status();
            assert_eq!(status, StatusCode::ACCEPTED);
            status
        }
    })
    .await;
    let gap = known.abs_diff(unknown);
    println!("forgot medians: known {known} µs, unknown {unknown} µs");
    assert!(
        gap <= 1_000 || gap * 5 <= known.max(unknown),
        "forgot-password: known {known} µs vs unknown {unknown} µs"
    );

    let (known, unknown) = interleaved_medians(200, |is_known| {
        let email = if is_known { user.email.clone() } else { unique_email() };
        let app = &app;
        async move {
            let status = app.login(&email, "a wrong password").await.status();
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            status
        }
    })
    .await;
    let gap = known.abs_diff(unknown);
    println!("failed-login medians: known {known} µs, unknown {unknown} µs");
    assert!(
        gap * 5 <= known.max(unknown),
        "login: known {known} µs vs unknown {unknown} µs"
    );
}
