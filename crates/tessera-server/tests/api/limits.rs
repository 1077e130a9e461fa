//! Rate limits: brute force against an account, floods from one client,
//! forgot-password per email, across instances sharing Redis, with Redis
//! gone, and turned off.
//!
//! Limits are on by default (`spawn_app()`); tests here set short ones.
//! Clients other than 127.0.0.1 are played through `X-Forwarded-For` with
//! 127.0.0.1 as a trusted proxy.

use crate::helpers::*;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tessera_core::MasterKey;
use tessera_server::client_ip::TrustedProxies;
use tessera_server::config::Config;
use tessera_server::ratelimit::{Quota, RateLimitSettings};
use tessera_server::secrets::{generate_secret, SecretValue, SecretsSource};

/// The loopback client is a proxy whose `X-Forwarded-For` is believed.
fn behind_a_proxy(c: &mut Config) {
    c.trusted_proxies = TrustedProxies::parse("127.0.0.1").unwrap();
}

async fn post_as(app: &TestApp, client: &str, path: &str, body: &Value) -> Response {
    app.client
        .post(app.url(path))
        .header("X-Forwarded-For", client)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// A login of `email` from `client` (through the trusted proxy).
async fn login_from(app: &TestApp, client: &str, email: &str, password: &str) -> Response {
    post_as(
        app,
        client,
        "/api/auth/login",
        &json!({"email": email, "password": password}),
    )
    .await
}

/// The cheapest limited request: an email verification with a made-up token.
async fn verify_as(app: &TestApp, client: &str) -> Response {
    post_as(app, client, "/api/auth/email/verify", &json!({"token": "tev_made-up"})).await
}

/// Asserts a 429 `rate_limited` and returns its `Retry-After`.
async fn assert_limited(res: Response) -> u64 {
    let retry_after: u64 = res
        .headers()
        .get("retry-after")
        .expect("a 429 carries Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(retry_after >= 1);
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    retry_after
}

async fn sleep_past(retry_after: u64) {
    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(250)).await;
}

#[tokio::test]
async fn an_account_stops_taking_guesses_then_backs_off_exponentially_up_to_a_cap() {
    // 10 free failures (the default), then locks of 3 s, 6 s capped at 5 s.
    let app = spawn_app_with(|c| {
        c.rate_limits.login_backoff = Duration::from_secs(3);
        c.rate_limits.login_backoff_max = Duration::from_secs(5);
    })
    .await;
    let user = app.new_user().await;
    for _ in 0..10 {
        let res = app.login(&user.email, "a wrong password").await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // Locked: even the right password is refused, and so is a guess.
    let first = assert_limited(app.login(&user.email, &user.password).await).await;
    assert!(first <= 3, "the first lock is 3 s: {first}");
    assert_limited(app.login(&user.email, "another guess").await).await;

    // After the lock, one guess is checked; failing, it locks for longer.
    sleep_past(first).await;
    let res = app.login(&user.email, "a wrong password").await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let second = assert_limited(app.login(&user.email, &user.password).await).await;
    assert!(
        (4..=5).contains(&second),
        "the second lock doubles 3 s, capped at 5 s: {second}"
    );

    // After the backoff the right password works, and clears the count.
    sleep_past(second).await;
    assert_eq!(app.login(&user.email, &user.password).await.status(), StatusCode::OK);
    for _ in 0..10 {
        let res = app.login(&user.email, "a wrong password").await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    assert_limited(app.login(&user.email, &user.password).await).await;
}

#[tokio::test]
async fn a_locked_account_still_lets_its_owner_in_from_a_client_it_knows() {
    let app = spawn_app_with(|c| {
        behind_a_proxy(c);
        c.rate_limits.login_failures = Some(Quota::new(5, 900));
        c.rate_limits.login_backoff = Duration::from_secs(60);
    })
    .await;
    let user = app.new_user().await;
    let login_as = |client: &'static str, password: &str| {
        let body = json!({"email": user.email, "password": password});
        let app = &app;
        async move { post_as(app, client, "/api/auth/login", &body).await }
    };
    // The owner logs in from home (an IPv4 address) and from a phone (an
    // IPv6 network): both become known to the account.
    assert_eq!(login_as("198.51.100.7", &user.password).await.status(), StatusCode::OK);
    assert_eq!(
        login_as("2001:db8:1:2::5", &user.password).await.status(),
        StatusCode::OK
    );

    // An attacker spends the account's budget for strangers and locks it.
    for _ in 0..5 {
        let res = login_as("203.0.113.66", "a guess").await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    assert_limited(login_as("203.0.113.66", &user.password).await).await;
    // Every stranger waits, the right password included...
    assert_limited(login_as("192.0.2.5", &user.password).await).await;
    // ...but the owner gets in from where they did before, the phone's
    // whole /64 included, and their success does not free the attacker.
    assert_eq!(login_as("198.51.100.7", &user.password).await.status(), StatusCode::OK);
    assert_eq!(
        login_as("2001:db8:1:2::99", &user.password).await.status(),
        StatusCode::OK
    );
    assert_limited(login_as("203.0.113.66", &user.password).await).await;

    // A known client has a budget of its own, not a free pass.
    for _ in 0..5 {
        let res = login_as("198.51.100.7", "a typo").await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    assert_limited(login_as("198.51.100.7", &user.password).await).await;
    assert_eq!(
        login_as("2001:db8:1:2::5", &user.password).await.status(),
        StatusCode::OK
    );
}

/// Whoever logged in with a password that has since been replaced (or
/// whose sessions were all ended) is a stranger again: a reset and a change
/// forget every client the account knew.
#[tokio::test]
async fn a_password_reset_or_change_forgets_the_known_clients() {
    let app = spawn_app_with(|c| {
        behind_a_proxy(c);
        c.rate_limits.login_failures = Some(Quota::new(3, 900));
        c.rate_limits.login_backoff = Duration::from_secs(60);
    })
    .await;
    let user = app.new_user().await;
    let login_as = |client: &'static str, password: String| {
        let body = json!({"email": user.email, "password": password});
        let app = &app;
        async move { post_as(app, client, "/api/auth/login", &body).await }
    };
    // An intruder logged in from two networks while the password was theirs.
    for client in ["203.0.113.1", "203.0.113.2"] {
        assert_eq!(login_as(client, user.password.clone()).await.status(), StatusCode::OK);
    }
    // The owner resets the password.
    let res = app
        .post_json("/api/auth/password/forgot", &json!({"email": user.email}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    crate::accounts::reset_by_mail(&app, &user.email, 0).await;
    // Each former network now shares the strangers' budget: 3 guesses in all.
    for client in ["203.0.113.1", "203.0.113.2", "203.0.113.1"] {
        let res = login_as(client, "a guess".to_owned()).await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    assert_limited(login_as("203.0.113.2", "another guess".to_owned()).await).await;

    // A change forgets them too: the owner's phone logged in, the owner
    // changes the password from the laptop, and the phone is a stranger.
    let app = spawn_app_with(|c| {
        behind_a_proxy(c);
        c.rate_limits.login_failures = Some(Quota::new(3, 900));
    })
    .await;
    let user = app.new_user().await;
    let res = login_from(&app, "198.51.100.9", &user.email, &user.password).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .client
        .post(app.url("/api/auth/password/change"))
        .bearer_auth(&user.access)
        .json(&json!({"currentPassword": user.password, "newPassword": "a brand new passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for _ in 0..3 {
        let res = login_from(&app, "203.0.113.50", &user.email, "guess").await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    let phone = login_from(&app, "198.51.100.9", &user.email, "a brand new passphrase").await;
    assert_limited(phone).await;
}

/// A wrong current password from a known client counts against that
/// client's own budget, as its logins do: a stolen access token used from
/// there cannot lock strangers out, nor the other way round.
#[tokio::test]
async fn a_wrong_current_password_from_a_known_client_counts_as_that_clients_failure() {
    let app = spawn_app_with(|c| {
        behind_a_proxy(c);
        c.rate_limits.login_failures = Some(Quota::new(3, 900));
        c.rate_limits.login_backoff = Duration::from_secs(60);
    })
    .await;
    let user = app.new_user().await;
    let res = login_from(&app, "198.51.100.7", &user.email, &user.password).await;
    assert_eq!(res.status(), StatusCode::OK);
    let access = res.json::<Value>().await.unwrap()["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..3 {
        let res = app
            .client
            .post(app.url("/api/auth/password/change"))
            .header("X-Forwarded-For", "198.51.100.7")
            .bearer_auth(&access)
            .json(&json!({"currentPassword": "not it", "newPassword": "a brand new passphrase"}))
            .send()
            .await
            .unwrap();
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // That client is locked; strangers are not.
    let res = login_from(&app, "198.51.100.7", &user.email, &user.password).await;
    assert_limited(res).await;
    let res = login_from(&app, "192.0.2.1", &user.email, &user.password).await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// A login refused for load (503) checked no password, so it must not count
/// against the account: a user retrying through an overload, as
/// `Retry-After` tells them to, would lock themselves out.
#[tokio::test]
async fn logins_refused_for_load_do_not_count_against_the_account() {
    let app = spawn_app_with(|c| {
        c.hash_concurrency = 1;
        c.hash_queue = 1;
        c.rate_limits.per_client = None;
        c.rate_limits.login_failures = Some(Quota::new(3, 900));
    })
    .await;
    let user = app.new_user().await;
    // Eight clients logging in back to back keep the one hashing slot and
    // the one queue place taken.
    right_password_through_a_login_flood(&app, &user, 8, "the overload refused").await;
}

/// `user` logging in with the right password while `flooders` clients log
/// in back to back with made-up emails, until the overload has refused the
/// user five times (on a loaded machine that takes longer) or 20 s passed.
/// Every answer must be 200 or 503, more than three of them 503 (`refused_how`
/// says how, for the message), and afterwards the user logs in: none of
/// the refusals counted against the account.
async fn right_password_through_a_login_flood(app: &TestApp, user: &TestUser, flooders: usize, refused_how: &str) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood: Vec<_> = (0..flooders)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.url("/api/auth/login"));
            let stop = stop.clone();
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = client
                        .post(&url)
                        .json(&json!({"email": unique_email(), "password": "not it"}))
                        .send()
                        .await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut refused = 0;
    let started = Instant::now();
    while refused < 5 && started.elapsed() < Duration::from_secs(20) {
        match app.login(&user.email, &user.password).await.status() {
            StatusCode::SERVICE_UNAVAILABLE => refused += 1,
            StatusCode::OK => {}
            other => panic!("a right password during an overload got {other}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for client in flood {
        client.await.unwrap();
    }
    assert!(
        refused > 3,
        "only {refused} logins {refused_how}; the test proves nothing"
    );
    let res = app.login(&user.email, &user.password).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the user locked themselves out by retrying"
    );
}

/// Anyone may create tenants, so the mail an address receives is counted
/// across them: registrations and signups in tenants made for the purpose,
/// and forgot-password requests in each, cannot flood a stranger's mailbox.
#[tokio::test]
async fn mail_to_one_address_is_counted_across_tenants() {
    let app = spawn_app_with(|c| {
        c.rate_limits.per_client = None;
    })
    .await;
    let victim = unique_email();
    for i in 0..6 {
        let res = app
            .post_json(
                "/api/auth/signup",
                &json!({"email": victim, "password": PASSWORD, "firstName": "V", "lastName": "",
                        "tenantName": format!("Bomb {i} {}", uuid::Uuid::new_v4().simple())}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED, "signup {i}");
    }
    // Three verification mails an hour, then the rest are left out.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outbox = app.data_dir.path().join("data").join("outbox");
    let mails = std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0);
    assert_eq!(mails, 3, "verification mails to one address from six tenants");

    // Forgot-password is counted per address too, whatever the tenant.
    let other = json!({"email": unique_email(), "password": PASSWORD, "firstName": "A", "lastName": "",
                       "tenantName": format!("Other {}", uuid::Uuid::new_v4().simple())});
    let body: Value = app.post_json("/api/auth/signup", &other).await.json().await.unwrap();
    let slugs = [
        "default".to_owned(),
        body["tenant"]["slug"].as_str().unwrap().to_owned(),
    ];
    let target = unique_email();
    for i in 0..3 {
        let slug = &slugs[i % 2];
        let res = app
            .post_json(
                &format!("/api/tenants/{slug}/auth/password/forgot"),
                &json!({"email": target}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
    }
    let res = app
        .post_json(
            &format!("/api/tenants/{}/auth/password/forgot", slugs[1]),
            &json!({"email": target}),
        )
        .await;
    assert_limited(res).await;
}

/// A reset proves the mailbox: the lock that guesses at the old password
/// set is lifted, and the owner logs in with the new one at once.
#[tokio::test]
async fn a_password_reset_lifts_the_lock_of_the_account() {
    let app = spawn_app_with(|c| {
        c.rate_limits.login_failures = Some(Quota::new(3, 900));
        c.rate_limits.login_backoff = Duration::from_secs(600);
    })
    .await;
    let user = app.new_user().await;
    for _ in 0..3 {
        let res = app.login(&user.email, "a guess").await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    assert_limited(app.login(&user.email, &user.password).await).await;
    let res = app
        .post_json("/api/auth/password/forgot", &json!({"email": user.email}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    crate::accounts::reset_by_mail(&app, &user.email, 0).await;
    assert_eq!(
        app.login(&user.email, crate::accounts::NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
}

/// The same for a login that waited in the queue past its limit: it never
/// held a slot, so it checked nothing and counts for nothing.
#[tokio::test]
async fn logins_that_wait_too_long_for_a_hashing_slot_do_not_count() {
    let app = spawn_app_with(|c| {
        c.hash_concurrency = 1;
        c.hash_max_wait = Duration::from_millis(100);
        c.rate_limits.per_client = None;
        c.rate_limits.login_failures = Some(Quota::new(3, 900));
    })
    .await;
    let user = app.new_user().await;
    // Many clients logging in back to back: the queue is never full, but a
    // place in it waits longer than 100 ms for the one slot.
    right_password_through_a_login_flood(&app, &user, 12, "waited too long and were refused").await;
}

#[tokio::test]
async fn concurrent_guesses_get_no_more_than_the_budget() {
    let app = spawn_app_with(|c| {
        c.rate_limits.login_failures = Some(Quota::new(5, 900));
    })
    .await;
    let user = app.new_user().await;
    let guesses = futures::future::join_all((0..20).map(|_| app.login(&user.email, "a wrong password"))).await;
    let checked = guesses
        .iter()
        .filter(|r| r.status() == StatusCode::UNAUTHORIZED)
        .count();
    let refused = guesses
        .iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(
        (checked, refused),
        (5, 15),
        "of 20 guesses at once, exactly the budget is checked"
    );
}

/// The answers to `wrong` failed logins and then one more, for `email`.
async fn lockout_answers(app: &TestApp, path: &str, email: &str, wrong: usize) -> Vec<(u16, String, Option<String>)> {
    let mut answers = Vec::new();
    for _ in 0..=wrong {
        let res = app
            .post_json(path, &json!({"email": email, "password": "a wrong password"}))
            .await;
        let status = res.status().as_u16();
        let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        let body: Value = res.json().await.unwrap();
        answers.push((status, body["error"].as_str().unwrap().to_owned(), retry));
    }
    answers
}

#[tokio::test]
async fn an_unknown_email_is_limited_exactly_like_a_known_one() {
    let app = spawn_app_with(|c| {
        c.rate_limits.login_failures = Some(Quota::new(3, 900));
    })
    .await;
    let user = app.new_user().await;
    let known = lockout_answers(&app, "/api/auth/login", &user.email, 3).await;
    let unknown = lockout_answers(&app, "/api/auth/login", &unique_email(), 3).await;
    let malformed = lockout_answers(&app, "/api/auth/login", "not an email at all", 3).await;
    let expected: Vec<(u16, String, Option<String>)> = [
        (401, "invalid_credentials", None),
        (401, "invalid_credentials", None),
        (401, "invalid_credentials", None),
        (429, "rate_limited", Some("60".to_owned())),
    ]
    .into_iter()
    .map(|(s, e, r)| (s, e.to_owned(), r))
    .collect();
    assert_eq!(known, expected);
    assert_eq!(unknown, expected);
    assert_eq!(malformed, expected);
    // The same email written otherwise is the same account.
    let shouted = user.email.to_uppercase();
    assert_limited(app.login(&format!("  {shouted} "), &user.password).await).await;
}

#[tokio::test]
async fn lockouts_are_audited_without_the_attempted_email() {
    let app = spawn_app_with(|c| {
        c.rate_limits.login_failures = Some(Quota::new(2, 900));
    })
    .await;
    let tenant = crate::tenants::signup(&app, "Locksmiths").await;
    let login = format!("/api/tenants/{}/auth/login", tenant.slug);
    let email = unique_email();
    let res = app
        .post_json(
            &format!("/api/tenants/{}/auth/register", tenant.slug),
            &json!({"email": email, "password": PASSWORD, "firstName": "Ada", "lastName": "L"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let user_id = res.json::<Value>().await.unwrap()["user"]["id"].clone();
    let nobody = unique_email();
    for who in [&email, &nobody] {
        let answers = lockout_answers(&app, &login, who, 2).await;
        assert_eq!(answers[2].0, 429, "{answers:?}");
    }
    let res = app
        .client
        .get(app.url(&format!("/api/tenants/{}/audit?limit=500", tenant.slug)))
        .header("X-Api-Key", &tenant.api_key)
        .send()
        .await
        .unwrap();
    let page: Value = res.json().await.unwrap();
    let locked: Vec<&Value> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "login.locked")
        .collect();
    assert_eq!(locked.len(), 2, "one lockout each: {page}");
    assert!(locked.iter().any(|e| e["userId"] == user_id));
    assert!(locked.iter().any(|e| e["userId"].is_null()));
    for event in &locked {
        assert_eq!(event["detail"]["lockedForSecs"], 60);
        assert_eq!(event["ip"], "127.0.0.1");
    }
    let text = page.to_string();
    assert!(!text.contains(&nobody) && !text.contains(&email), "{text}");
}

#[tokio::test]
async fn a_flood_from_one_client_is_cut_while_other_clients_get_through() {
    let app = spawn_app_with(|c| {
        behind_a_proxy(c);
        c.rate_limits.per_client = Some(Quota::new(5, 60));
    })
    .await;
    for _ in 0..5 {
        let res = verify_as(&app, "203.0.113.7").await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    // 5 a minute: the next slot is 12 s away.
    let retry = assert_limited(verify_as(&app, "203.0.113.7").await).await;
    assert!((1..=12).contains(&retry), "{retry}");
    // Another client, and the proxy itself, are not affected.
    assert_error(
        verify_as(&app, "203.0.113.8").await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    let res = app
        .post_json("/api/auth/email/verify", &json!({"token": "tev_made-up"}))
        .await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;

    // One budget for every unauthenticated POST but refresh, under both prefixes.
    let account = json!({"email": unique_email(), "password": PASSWORD, "firstName": "A", "lastName": "B"});
    let signup = json!({"email": unique_email(), "password": PASSWORD, "firstName": "A", "lastName": "B",
                        "tenantName": "Flooders"});
    for prefix in ["/api/auth", "/api/tenants/default/auth"] {
        for (route, body) in [
            ("/register", account.clone()),
            ("/login", json!({"email": unique_email(), "password": PASSWORD})),
            ("/password/forgot", json!({"email": unique_email()})),
            ("/password/reset", json!({"token": "tpr_made-up", "password": PASSWORD})),
            ("/email/verify", json!({"token": "tev_made-up"})),
            ("/email/resend", json!({"email": unique_email()})),
        ] {
            let res = post_as(&app, "203.0.113.7", &format!("{prefix}{route}"), &body).await;
            assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{prefix}{route}");
        }
        let res = post_as(
            &app,
            "203.0.113.7",
            &format!("{prefix}/refresh"),
            &json!({"refreshToken": "x"}),
        )
        .await;
        assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    let res = post_as(&app, "203.0.113.7", "/api/auth/signup", &signup).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);

    // IPv6 clients are counted by their /64.
    for i in 1..=5 {
        let res = verify_as(&app, &format!("2001:db8:1:2::{i}")).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_limited(verify_as(&app, "2001:db8:1:2:ffff:ffff:ffff:ffff").await).await;
    assert_eq!(
        verify_as(&app, "2001:db8:1:3::1").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_client_address_behind_a_trusted_proxy_is_the_sessions_and_the_audits() {
    let app = spawn_app_with(behind_a_proxy).await;
    let user = app.new_user().await;
    let res = login_from(&app, "192.0.2.1, 198.51.100.23", &user.email, &user.password).await;
    assert_eq!(res.status(), StatusCode::OK);
    let access = res.json::<Value>().await.unwrap()["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let sessions: Value = app.get_auth("/api/auth/sessions", &access).await.json().await.unwrap();
    let current = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap();
    assert_eq!(current["ip"], "198.51.100.23", "the rightmost untrusted entry");
}

#[tokio::test]
async fn an_untrusted_peers_forwarded_for_is_ignored() {
    // No trusted proxies: X-Forwarded-For is whatever a client wants it to be.
    let app = spawn_app_with(|c| c.rate_limits.per_client = Some(Quota::new(5, 60))).await;
    for i in 1..=5 {
        let res = verify_as(&app, &format!("203.0.113.{i}")).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    assert_limited(verify_as(&app, "203.0.113.99").await).await;
    assert_limited(verify_as(&app, "2001:db8::1").await).await;
}

#[tokio::test]
async fn forgot_password_takes_three_an_hour_per_email_alike_for_unknown_emails() {
    let app = spawn_app().await;
    let user = app.new_user().await;
    let nobody = unique_email();
    for (path, email) in [
        ("/api/auth/password/forgot", &user.email),
        ("/api/auth/password/forgot", &nobody),
        ("/api/auth/email/resend", &user.email),
        ("/api/auth/email/resend", &nobody),
    ] {
        for _ in 0..3 {
            let res = app.post_json(path, &json!({"email": email})).await;
            assert_eq!(res.status(), StatusCode::ACCEPTED, "{path}");
        }
        let res = app.post_json(path, &json!({"email": email})).await;
        let retry = assert_limited(res).await;
        // 3 an hour: the next one in 20 minutes, known or not.
        assert!((1199..=1200).contains(&retry), "{path}: {retry}");
    }
    // Another address is not affected; the same one in another tenant is:
    // the count is the address's.
    let res = app
        .post_json("/api/auth/password/forgot", &json!({"email": unique_email()}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let tenant = crate::tenants::signup(&app, "Elsewhere").await;
    let res = app
        .post_json(
            &format!("/api/tenants/{}/auth/password/forgot", tenant.slug),
            &json!({"email": user.email}),
        )
        .await;
    assert_limited(res).await;
}

#[tokio::test]
async fn a_wrong_current_password_on_change_counts_as_a_failed_login() {
    let app = spawn_app_with(|c| c.rate_limits.login_failures = Some(Quota::new(3, 900))).await;
    let user = app.new_user().await;
    let change = |current: &'static str| {
        app.client
            .post(app.url("/api/auth/password/change"))
            .bearer_auth(&user.access)
            .json(&json!({"currentPassword": current, "newPassword": "a brand new password"}))
            .send()
    };
    for _ in 0..3 {
        assert_error(
            change("not my password").await.unwrap(),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }
    // A stolen access token is no password oracle: the account is locked.
    assert_limited(change(PASSWORD).await.unwrap()).await;
    assert_limited(app.login(&user.email, &user.password).await).await;
}

#[tokio::test]
async fn with_rate_limits_off_a_flood_gets_through() {
    let app = spawn_app_with(|c| c.rate_limits = RateLimitSettings::off()).await;
    let user = app.new_user().await;
    let floods = futures::future::join_all((0..150).map(|_| verify_as(&app, "203.0.113.7"))).await;
    assert!(floods.iter().all(|r| r.status() == StatusCode::UNAUTHORIZED));
    for _ in 0..10 {
        let res = app
            .post_json("/api/auth/password/forgot", &json!({"email": user.email}))
            .await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
    }
    for _ in 0..15 {
        assert_eq!(
            app.login(&user.email, "a wrong password").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(app.login(&user.email, &user.password).await.status(), StatusCode::OK);
}

/// Two instances on one PostgreSQL database and one Redis, with the same
/// keys and a key prefix of this test's own.
async fn two_instances(db: &TestDatabase, prefix: &str, tweak: fn(&mut Config)) -> (TestApp, TestApp) {
    let master = MasterKey::generate_base64();
    let (access, refresh) = (generate_secret(), generate_secret());
    let mut apps = Vec::new();
    for _ in 0..2 {
        let (url, prefix, master) = (db.url.clone(), prefix.to_owned(), master.clone());
        let (access, refresh) = (access.clone(), refresh.clone());
        apps.push(
            spawn_app_with(move |c| {
                c.database_url = Some(url);
                c.redis_url = Some(redis_url());
                c.redis_key_prefix = prefix;
                c.master_key = Some(SecretValue::new(master));
                c.secrets = SecretsSource::from_env_values(Some(access), Some(refresh)).unwrap();
                c.issuer = Some("https://auth.example".to_owned());
                tweak(c);
            })
            .await,
        );
    }
    let b = apps.pop().unwrap();
    (apps.pop().unwrap(), b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_count_guesses_and_floods_together() {
    let db = TestDatabase::create().await;
    let prefix = format!("tessera-it-{}", uuid::Uuid::new_v4().simple());
    let (a, b) = two_instances(&db, &prefix, |c| {
        behind_a_proxy(c);
        c.rate_limits.login_failures = Some(Quota::new(4, 900));
        c.rate_limits.per_client = Some(Quota::new(10, 60));
    })
    .await;
    let user = a.new_user().await;

    // Guesses spread over both instances count against one budget.
    for (i, app) in [&a, &b, &a, &b].into_iter().enumerate() {
        let res = app.login(&user.email, "a wrong password").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "guess {i}");
    }
    assert_limited(a.login(&user.email, &user.password).await).await;
    assert_limited(b.login(&user.email, &user.password).await).await;
    // A client that logged in before the lock, on the other instance, is
    // known on both.
    let other = b.new_user().await;
    let res = login_from(&a, "198.51.100.20", &other.email, &other.password).await;
    assert_eq!(res.status(), StatusCode::OK);
    for _ in 0..4 {
        login_from(&b, "203.0.113.70", &other.email, "wrong guess").await;
    }
    let strangers = login_from(&a, "203.0.113.71", &other.email, &other.password).await;
    assert_limited(strangers).await;
    let owner = login_from(&b, "198.51.100.20", &other.email, &other.password).await;
    assert_eq!(owner.status(), StatusCode::OK);

    // So does one client's flood.
    for i in 0..10 {
        let app = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            verify_as(app, "203.0.113.60").await.status(),
            StatusCode::UNAUTHORIZED,
            "request {i}"
        );
    }
    assert_limited(verify_as(&a, "203.0.113.60").await).await;
    assert_limited(verify_as(&b, "203.0.113.60").await).await;
    assert_eq!(verify_as(&b, "203.0.113.61").await.status(), StatusCode::UNAUTHORIZED);
    drop((a, b));
    forget_keys(&prefix);
    db.drop_now().await;
}

/// Deletes this test's keys from the shared Redis.
fn forget_keys(prefix: &str) {
    let out = std::process::Command::new("redis-cli")
        .args(["-u", &redis_url(), "--scan", "--pattern", &format!("{prefix}*")])
        .output()
        .unwrap();
    for key in String::from_utf8_lossy(&out.stdout).lines().filter(|k| !k.is_empty()) {
        let _ = std::process::Command::new("redis-cli")
            .args(["-u", &redis_url(), "DEL", key])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_login_and_password_reset_fail_closed_then_recover_by_themselves() {
    let redis: std::net::SocketAddr = redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let proxy = CuttableProxy::start(redis).await;
    let prefix = format!("tessera-it-{}", uuid::Uuid::new_v4().simple());
    let (url, key_prefix) = (format!("redis://{}", proxy.addr), prefix.clone());
    let app = spawn_app_with(move |c| {
        c.redis_url = Some(url);
        c.redis_key_prefix = key_prefix;
    })
    .await;
    let user = app.new_user().await;
    proxy.cut();

    let started = Instant::now();
    for res in [
        app.login(&user.email, &user.password).await,
        app.post_json("/api/auth/password/forgot", &json!({"email": user.email}))
            .await,
        app.post_json(
            "/api/auth/password/reset",
            &json!({"token": "tpr_made-up", "password": PASSWORD}),
        )
        .await,
        app.post_json("/api/auth/email/resend", &json!({"email": user.email}))
            .await,
    ] {
        assert_eq!(res.headers()["retry-after"], "1");
        let body = assert_error(res, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
        assert!(body.get("accessToken").is_none());
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused within the Redis timeouts: {:?}",
        started.elapsed()
    );
    // Email verification guesses nothing: it goes on without its limit.
    let res = app
        .post_json("/api/auth/email/verify", &json!({"token": "tev_made-up"}))
        .await;
    assert_error(res, StatusCode::UNAUTHORIZED, "invalid_token").await;

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let res = app.login(&user.email, &user.password).await;
        if res.status() == StatusCode::OK {
            break;
        }
        assert_error(res, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
        assert!(Instant::now() < deadline, "logins did not come back by themselves");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let res = app
        .post_json("/api/auth/password/forgot", &json!({"email": user.email}))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    drop(app);
    forget_keys(&prefix);
}
