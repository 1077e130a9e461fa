//! Public-key tenants: EdDSA, ES256 and RS256 access tokens, the JWKS and
//! discovery documents, their caching, and key rotation as a verifier that
//! caches the JWKS sees it.

use crate::helpers::*;
use crate::tenants::Tenant;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use tessera_server::config::Config;
use tessera_server::secrets::SecretsSource;
use tessera_token::{Algorithm, Jwk, Key, KeySet, TokenBuf, TokenKind, Validation};

pub const ASYMMETRIC: [&str; 3] = ["EdDSA", "ES256", "RS256"];

/// A server whose default tenant signs with `alg` (its keys generated and
/// stored, as public-key signing requires).
pub async fn spawn_signing(alg: &str, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let alg = Algorithm::from_name(alg).unwrap();
    spawn_app_with(|c| {
        c.secrets = SecretsSource::Generated;
        c.keys.default_alg = alg;
        tweak(c);
    })
    .await
}

pub async fn signup_with(app: &TestApp, name: &str, alg: &str) -> (Tenant, Value) {
    let res = app
        .post_json(
            "/api/auth/signup",
            &json!({"email": unique_email(), "password": PASSWORD, "firstName": "Grace",
                    "lastName": "Hopper", "tenantName": name, "signingAlg": alg}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    let tenant = Tenant {
        id: body["tenant"]["id"].as_str().unwrap().to_owned(),
        slug: body["tenant"]["slug"].as_str().unwrap().to_owned(),
        api_key: body["apiKey"].as_str().unwrap().to_owned(),
        owner_access: body["accessToken"].as_str().unwrap().to_owned(),
        owner_refresh: body["refreshToken"].as_str().unwrap().to_owned(),
    };
    (tenant, body)
}

pub async fn get_jwks(app: &TestApp, path: &str) -> Vec<Jwk> {
    let res = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    let body: Value = res.json().await.unwrap();
    serde_json::from_value(body["keys"].clone()).unwrap()
}

/// Rotates `tenant`'s keys with its API key; `body` as the route takes it.
pub async fn rotate(app: &TestApp, tenant: &Tenant, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/tenants/{}/keys/rotate", tenant.slug)))
        .header("x-api-key", &tenant.api_key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A new user of `tenant`, and the access token registering gave it.
async fn register_in(app: &TestApp, tenant: &Tenant) -> String {
    let res = app
        .post_json(
            &format!("/api/tenants/{}/auth/register", tenant.slug),
            &json!({"email": unique_email(), "password": PASSWORD, "firstName": "A", "lastName": "B"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json::<Value>().await.unwrap()["accessToken"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A well-known document (JSON) at `path`.
async fn get_json(app: &TestApp, path: &str) -> Value {
    let res = app.client.get(app.url(path)).send().await.unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap()
}

fn kid_of(token: &str) -> String {
    decode_parts(token).0["kid"].as_str().unwrap().to_owned()
}

/// Verifies `token` as a service would: with the published keys only.
fn verify_with(jwks: &[Jwk], token: &str, issuer: &str) -> Result<String, tessera_token::TokenError> {
    let mut set = KeySet::new();
    for jwk in jwks {
        set.insert(Key::from_jwk(TokenKind::Access, jwk).unwrap()).unwrap();
    }
    let mut buf = TokenBuf::new();
    set.verify_access(token, &Validation::new(issuer, "tessera"), now(), &mut buf)
        .map(|c| c.sub.to_string())
}

#[tokio::test]
async fn an_hmac_tenant_publishes_an_empty_key_set_with_cache_headers() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "public, max-age=300");
    assert_eq!(res.headers()["content-type"], "application/json");
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"keys": []}));
    let discovery = get_json(&app, "/.well-known/openid-configuration").await;
    assert_eq!(discovery["issuer"], app.issuer);
    assert_eq!(discovery["id_token_signing_alg_values_supported"], json!(["HS256"]));
}

#[tokio::test]
async fn every_algorithm_signs_the_default_tenants_tokens_and_publishes_its_keys() {
    for alg in ASYMMETRIC {
        let app = spawn_signing(alg, |_| {}).await;
        let user = app.new_user().await;
        let (header, _) = decode_parts(&user.access);
        assert_eq!(header["alg"], alg);
        assert_eq!(header["typ"], "at+jwt");
        // Refresh tokens stay HMAC: only tessera reads them.
        assert_eq!(decode_parts(&user.refresh).0["alg"], "HS256");

        let keys = get_jwks(&app, "/.well-known/jwks.json").await;
        // The active key and the next one, published before it signs.
        assert_eq!(keys.len(), 2, "{alg}: {keys:?}");
        assert!(keys
            .iter()
            .all(|k| k.alg.as_deref() == Some(alg) && k.use_.as_deref() == Some("sig")));
        assert!(keys.iter().any(|k| k.kid == kid_of(&user.access)));
        let raw = get_json(&app, "/.well-known/jwks.json").await;
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(raw["keys"][0].get(private).is_none(), "{alg} leaks {private}");
        }
        assert_eq!(verify_with(&keys, &user.access, &app.issuer), Ok(user.id.clone()));

        // tessera's own verification agrees.
        let res = app.get_auth("/api/auth/verify", &user.access).await;
        assert_eq!(res.status(), StatusCode::OK);
        // The refresh token refreshes, and the new access token is signed alike.
        let res = app.refresh(&user.refresh).await;
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        assert_eq!(decode_parts(body["accessToken"].as_str().unwrap()).0["alg"], alg);

        let discovery = get_json(&app, "/.well-known/openid-configuration").await;
        assert_eq!(discovery["jwks_uri"], format!("{}/.well-known/jwks.json", app.issuer));
        assert_eq!(discovery["id_token_signing_alg_values_supported"], json!([alg]));
        assert_eq!(discovery["audience"], "tessera");
    }
}

#[tokio::test]
async fn if_none_match_gets_a_304_until_the_keys_change() {
    let app = spawn_signing("EdDSA", |c| c.keys.jwks_max_age = Duration::from_secs(1)).await;
    let first = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(first.headers()["cache-control"], "public, max-age=1");
    for tag in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        "*".to_owned(),
    ] {
        let res = app
            .client
            .get(app.url("/.well-known/jwks.json"))
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{tag}");
        assert_eq!(res.headers()["etag"], etag.as_str());
        assert_eq!(res.headers()["cache-control"], "public, max-age=1");
        assert!(res.bytes().await.unwrap().is_empty());
    }
    let res = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .header("if-none-match", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // A rotation changes the document and its ETag.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (tenant, _) = signup_with(&app, "Etag Co", "EdDSA").await;
    let path = format!("/api/tenants/{}/.well-known/jwks.json", tenant.slug);
    let before = app.client.get(app.url(&path)).send().await.unwrap();
    let tenant_etag = before.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(tenant_etag, etag);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let res = rotate(&app, &tenant, json!({})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let after = app
        .client
        .get(app.url(&path))
        .header("if-none-match", &tenant_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::OK);
    assert_ne!(after.headers()["etag"].to_str().unwrap(), tenant_etag);
}

#[tokio::test]
async fn tenants_choose_their_algorithm_and_publish_only_their_own_keys() {
    let app = spawn_app().await;
    let mut published = Vec::new();
    for alg in ["HS256", "EdDSA", "ES256", "RS256"] {
        let (tenant, body) = signup_with(&app, &format!("{alg} Inc"), alg).await;
        let access = body["accessToken"].as_str().unwrap();
        assert_eq!(decode_parts(access).0["alg"], alg);
        let keys = get_jwks(&app, &format!("/api/tenants/{}/.well-known/jwks.json", tenant.slug)).await;
        if alg == "HS256" {
            assert!(keys.is_empty());
        } else {
            assert_eq!(keys.len(), 2);
            assert!(keys
                .iter()
                .all(|k| k.tid.map(|t| t.to_string()) == Some(tenant.id.clone())));
            assert!(verify_with(&keys, access, &app.issuer).is_ok());
        }
        let res = app
            .get_auth(&format!("/api/tenants/{}/auth/me", tenant.slug), access)
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{alg}");
        let discovery = get_json(
            &app,
            &format!("/api/tenants/{}/.well-known/openid-configuration", tenant.slug),
        )
        .await;
        assert_eq!(
            discovery["jwks_uri"],
            format!("{}/api/tenants/{}/.well-known/jwks.json", app.issuer, tenant.slug)
        );
        assert_eq!(discovery["tenant_id"], tenant.id);
        assert_eq!(discovery["id_token_signing_alg_values_supported"], json!([alg]));
        published.push((tenant, keys, access.to_owned()));
    }
    // The default tenant (HS256 here) publishes none of theirs, and one
    // tenant's keys verify none of another's tokens.
    assert!(get_jwks(&app, "/.well-known/jwks.json").await.is_empty());
    for (i, (_, keys, _)) in published.iter().enumerate() {
        for (j, (_, _, token)) in published.iter().enumerate() {
            if i != j && !keys.is_empty() {
                assert!(verify_with(keys, token, &app.issuer).is_err());
            }
        }
    }
    // An unknown slug is a 404 with the error body; a bad algorithm a 422.
    let res = app
        .client
        .get(app.url("/api/tenants/nope/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::NOT_FOUND, "not_found").await;
    for bad in [json!("HS512"), json!("none"), json!("eddsa"), json!(7)] {
        let res = app
            .post_json(
                "/api/auth/signup",
                &json!({"email": unique_email(), "password": PASSWORD, "firstName": "G", "lastName": "H",
                        "tenantName": "Bad Alg", "signingAlg": bad}),
            )
            .await;
        let body = assert_error(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert!(body["fields"]["signingAlg"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn graceful_rotation_signs_with_a_key_published_a_max_age_before() {
    let app = spawn_app_with(|c| c.keys.jwks_max_age = Duration::from_secs(2)).await;
    let (tenant, body) = signup_with(&app, "Rotating", "ES256").await;
    let old_access = body["accessToken"].as_str().unwrap().to_owned();
    let cached = get_jwks(&app, &format!("/api/tenants/{}/.well-known/jwks.json", tenant.slug)).await;

    // The next key was published a moment ago: a verifier caching the JWKS
    // for its max-age may not have it, so a graceful rotation waits.
    let res = rotate(&app, &tenant, json!({"mode": "graceful"})).await;
    // A whole max-age in whole seconds: 3 s, or 2 if a second just turned.
    let retry_after = res.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap();
    assert!((2..=3).contains(&retry_after), "{retry_after}");
    let refused = assert_error(res, StatusCode::CONFLICT, "conflict").await;
    assert!(refused["message"].as_str().unwrap().contains("retry in"), "{refused}");

    tokio::time::sleep(Duration::from_millis(3100)).await;
    let res = rotate(&app, &tenant, json!({"mode": "graceful"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let rotated: Value = res.json().await.unwrap();
    // The new signing key is the one the cached JWKS already had.
    let new_kid = rotated["accessKid"].as_str().unwrap();
    assert!(cached.iter().any(|k| k.kid == new_kid), "{new_kid} not in {cached:?}");
    let new_access = register_in(&app, &tenant).await;
    assert_eq!(kid_of(&new_access), new_kid);
    assert!(verify_with(&cached, &new_access, &app.issuer).is_ok());
    // The old key is retired, still published and still verifying.
    let keys = get_jwks(&app, &format!("/api/tenants/{}/.well-known/jwks.json", tenant.slug)).await;
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().any(|k| k.kid == kid_of(&old_access)));
    let me = format!("/api/tenants/{}/auth/me", tenant.slug);
    assert_eq!(app.get_auth(&me, &old_access).await.status(), StatusCode::OK);

    // Revoke needs no wait: everything signed so far dies at once.
    let res = rotate(&app, &tenant, json!({"mode": "revoke"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let keys = get_jwks(&app, &format!("/api/tenants/{}/.well-known/jwks.json", tenant.slug)).await;
    assert_eq!(keys.len(), 2);
    assert!(!keys.iter().any(|k| k.kid == kid_of(&old_access) || k.kid == new_kid));
    assert_error(
        app.get_auth(&me, &old_access).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_error(
        app.get_auth(&me, &new_access).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn a_rotation_can_switch_a_tenants_algorithm() {
    let app = spawn_app_with(|c| c.keys.jwks_max_age = Duration::from_secs(1)).await;
    let (tenant, body) = signup_with(&app, "Switching", "HS256").await;
    let hs_access = body["accessToken"].as_str().unwrap().to_owned();
    let jwks_path = format!("/api/tenants/{}/.well-known/jwks.json", tenant.slug);
    // The first rotation publishes an RS256 key as next; HS256 still signs.
    assert_eq!(
        rotate(&app, &tenant, json!({"signingAlg": "RS256"})).await.status(),
        StatusCode::OK
    );
    let keys = get_jwks(&app, &jwks_path).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].alg.as_deref(), Some("RS256"));
    // The second, once it has been published for a max-age, signs with it.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let res = rotate(&app, &tenant, json!({"signingAlg": "RS256"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let rotated: Value = res.json().await.unwrap();
    assert_eq!(rotated["accessKid"], keys[0].kid.as_str());
    let rs_access = register_in(&app, &tenant).await;
    assert_eq!(decode_parts(&rs_access).0["alg"], "RS256");
    let me = format!("/api/tenants/{}/auth/me", tenant.slug);
    assert_eq!(app.get_auth(&me, &hs_access).await.status(), StatusCode::OK);
    assert_eq!(app.get_auth(&me, &rs_access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn changing_the_signing_algorithm_logs_no_one_out() {
    let app = spawn_signing("HS256", |_| {}).await;
    let user = app.new_user().await;
    assert_eq!(decode_parts(&user.access).0["alg"], "HS256");
    let issuer = app.issuer.clone();
    let data_dir = app.stop().await;
    let app = spawn_app_in(data_dir, |c| {
        c.secrets = SecretsSource::Generated;
        c.keys.default_alg = Algorithm::EdDSA;
        c.issuer = Some(issuer);
    })
    .await;
    // The HS256 token and session still work, and new tokens are EdDSA.
    assert_eq!(
        app.get_auth("/api/auth/me", &user.access).await.status(),
        StatusCode::OK
    );
    let res = app.refresh(&user.refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let access = body["accessToken"].as_str().unwrap();
    assert_eq!(decode_parts(access).0["alg"], "EdDSA");
    let keys = get_jwks(&app, "/.well-known/jwks.json").await;
    assert!(verify_with(&keys, access, &app.issuer).is_ok());
}

#[tokio::test]
async fn scheduled_rotation_rotates_each_tenant_once_across_instances() {
    use sqlx::Connection as _;
    let db = TestDatabase::create().await;
    let master = tessera_core::MasterKey::generate_base64();
    let start = |db_url: String, master: String| async move {
        spawn_app_with(move |c| {
            c.database_url = Some(db_url);
            c.master_key = Some(tessera_server::secrets::SecretValue::new(master));
            c.secrets = SecretsSource::Generated;
            c.issuer = Some("https://auth.test".to_owned());
            c.keys.default_alg = Algorithm::EdDSA;
            c.keys.rotation = Some(Duration::from_secs(4));
            c.keys.jwks_max_age = Duration::from_secs(2);
        })
        .await
    };
    let a = start(db.url.clone(), master.clone()).await;
    let b = start(db.url.clone(), master.clone()).await;
    let user = a.new_user().await;
    let first = kid_of(&user.access);
    // Two intervals and a bit: two rotations, whichever instance made them
    // (a third is due only at 12 s).
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut kids = Vec::new();
    for app in [&a, &b] {
        let (access, _) = app.new_session(&user).await;
        kids.push(kid_of(&access));
    }
    assert_eq!(kids[0], kids[1], "both instances sign with the same key");
    assert_ne!(kids[0], first);
    let keys = get_jwks(&b, "/.well-known/jwks.json").await;
    assert!(
        keys.iter().any(|k| k.kid == first),
        "the first key is retired and still published"
    );
    assert!(keys.iter().any(|k| k.kid == kids[0]));

    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let states: Vec<String> = sqlx::query_scalar(
        "SELECT state FROM tenant_keys WHERE tenant_id = '00000000-0000-0000-0000-000000000000' \
         AND kind = 'access' ORDER BY created_at",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    // The first key and two rotations' worth, not four (each instance
    // rotating on its own would have made two each).
    assert_eq!(states, ["retired", "retired", "active", "next"], "{states:?}");
    let rotations: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE type = 'keys.rotated'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rotations, 2);
    drop(conn);
    drop((a, b));
    db.drop_now().await;
}

#[tokio::test]
async fn a_retired_key_leaves_the_jwks_once_its_last_token_has_expired() {
    let app = spawn_app_with(|c| {
        c.access_ttl = Duration::from_secs(30);
        c.leeway = Duration::from_secs(0);
        c.keys.jwks_max_age = Duration::from_secs(1);
    })
    .await;
    let (tenant, body) = signup_with(&app, "Sweeping", "EdDSA").await;
    let old_token = body["accessToken"].as_str().unwrap().to_owned();
    let old_kid = kid_of(&old_token);
    let jwks_path = format!("/api/tenants/{}/.well-known/jwks.json", tenant.slug);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let res = rotate(&app, &tenant, json!({})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let rotated_at = std::time::Instant::now();
    assert!(get_jwks(&app, &jwks_path).await.iter().any(|k| k.kid == old_kid));
    // Published while a token it signed can be valid (30 s), then gone.
    loop {
        let present = get_jwks(&app, &jwks_path).await.iter().any(|k| k.kid == old_kid);
        let elapsed = rotated_at.elapsed();
        if !present {
            assert!(
                elapsed >= Duration::from_secs(29),
                "gone after {elapsed:?}, before its tokens expired"
            );
            break;
        }
        assert!(
            elapsed < Duration::from_secs(40),
            "still published {elapsed:?} after the rotation"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(get_jwks(&app, &jwks_path).await.len(), 2);
    // Its tokens have all expired, and say so: a client refreshes on
    // `token_expired`, and would send its user to log in on `invalid_token`.
    let me = format!("/api/tenants/{}/auth/me", tenant.slug);
    assert_error(
        app.get_auth(&me, &old_token).await,
        StatusCode::UNAUTHORIZED,
        "token_expired",
    )
    .await;
    assert_eq!(
        app.refresh_in(&tenant.slug, &tenant.owner_refresh).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn instances_switching_algorithm_at_once_rotate_the_default_tenant_twice_in_all() {
    use sqlx::Connection as _;
    let db = TestDatabase::create().await;
    let master = tessera_core::MasterKey::generate_base64();
    let config = |alg: Algorithm| {
        let (url, master) = (db.url.clone(), master.clone());
        move |c: &mut Config| {
            c.database_url = Some(url);
            c.master_key = Some(tessera_server::secrets::SecretValue::new(master));
            c.secrets = SecretsSource::Generated;
            c.issuer = Some("https://auth.test".to_owned());
            c.keys.default_alg = alg;
        }
    };
    let first = spawn_app_with(config(Algorithm::HS256)).await;
    let user = first.new_user().await;
    drop(first.stop().await);
    let (a, b) = tokio::join!(
        spawn_app_with(config(Algorithm::ES256)),
        spawn_app_with(config(Algorithm::ES256))
    );
    for app in [&a, &b] {
        assert_eq!(
            app.get_auth("/api/auth/me", &user.access).await.status(),
            StatusCode::OK
        );
        let (access, _) = app.new_session(&user).await;
        assert_eq!(decode_parts(&access).0["alg"], "ES256");
    }
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let states: Vec<String> = sqlx::query_scalar(
        "SELECT state FROM tenant_keys WHERE tenant_id = '00000000-0000-0000-0000-000000000000' \
         AND kind = 'access' ORDER BY created_at, state",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    // The HS256 pair retired, one ES256 key active and one next: two
    // rotations, not one pair per instance.
    assert_eq!(states.len(), 4, "{states:?}");
    assert_eq!(states.iter().filter(|s| *s == "retired").count(), 2, "{states:?}");
    drop(conn);
    drop((a, b));
    db.drop_now().await;
}

#[tokio::test]
async fn graceful_rotations_arriving_together_rotate_once() {
    let app = spawn_app_with(|c| c.keys.jwks_max_age = Duration::from_secs(1)).await;
    let (tenant, _) = signup_with(&app, "Racing", "EdDSA").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let url = app.url(&format!("/api/tenants/{}/keys/rotate", tenant.slug));
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(6));
    let racers: Vec<_> = (0..6)
        .map(|_| {
            let (client, url, key, barrier) =
                (app.client.clone(), url.clone(), tenant.api_key.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                client.post(url).header("x-api-key", key).send().await.unwrap()
            })
        })
        .collect();
    let mut ok = 0;
    for racer in racers {
        let res = racer.await.unwrap();
        match res.status() {
            StatusCode::OK => ok += 1,
            StatusCode::CONFLICT => {
                assert!(res.headers().contains_key("retry-after"));
                assert_error(res, StatusCode::CONFLICT, "conflict").await;
            }
            other => panic!("{other}"),
        }
    }
    // One rotation: a second would have signed with a key published a moment ago.
    assert_eq!(ok, 1);
    assert_eq!(
        get_jwks(&app, &format!("/api/tenants/{}/.well-known/jwks.json", tenant.slug))
            .await
            .len(),
        3
    );
}

#[tokio::test]
async fn discovery_lists_every_algorithm_a_valid_token_may_carry() {
    let app = spawn_app_with(|c| c.keys.jwks_max_age = Duration::from_secs(1)).await;
    let (tenant, body) = signup_with(&app, "Switch Discovery", "EdDSA").await;
    let old = body["accessToken"].as_str().unwrap().to_owned();
    let algs = || async {
        let doc = get_json(
            &app,
            &format!("/api/tenants/{}/.well-known/openid-configuration", tenant.slug),
        )
        .await;
        doc["id_token_signing_alg_values_supported"].clone()
    };
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        rotate(&app, &tenant, json!({"signingAlg": "ES256"})).await.status(),
        StatusCode::OK
    );
    assert_eq!(algs().await, json!(["EdDSA", "ES256"]));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(rotate(&app, &tenant, json!({})).await.status(), StatusCode::OK);
    // ES256 signs now, and EdDSA tokens such as `old` are still valid.
    assert_eq!(algs().await, json!(["ES256", "EdDSA"]));
    let me = format!("/api/tenants/{}/auth/me", tenant.slug);
    assert_eq!(app.get_auth(&me, &old).await.status(), StatusCode::OK);
}
