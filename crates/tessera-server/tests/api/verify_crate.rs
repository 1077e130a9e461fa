//! Services verifying tessera's tokens on their own, through the
//! `tessera-verify` crate: across scheduled key rotations, and as the
//! design notes' projects service (`examples/projects`) beside tessera.

use crate::helpers::*;
use crate::jwks::spawn_signing;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tessera_verify::Verifier;

async fn verifier_for(app: &TestApp, path: &str) -> Verifier {
    Verifier::builder(app.issuer.clone(), "tessera")
        .jwks_url(app.url(path))
        .min_refetch_interval(Duration::from_secs(1))
        .build()
        .await
        .unwrap()
}

fn kid_of(token: &str) -> String {
    decode_parts(token).0["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_caching_verifier_accepts_every_token_across_two_scheduled_rotations() {
    let app = spawn_signing("EdDSA", |c| {
        c.keys.rotation = Some(Duration::from_secs(4));
        c.keys.jwks_max_age = Duration::from_secs(2);
    })
    .await;
    let user = app.new_user().await;
    let verifier = verifier_for(&app, "/.well-known/jwks.json").await;
    let mut refresh = user.refresh.clone();
    let mut tokens = vec![user.access.clone()];
    let mut checks = 0;
    // Two rotations (at about 4 s and 8 s) and a bit: a token is asked for
    // every 100 ms, and every token so far is verified each time.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let res = app.refresh(&refresh).await;
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        refresh = body["refreshToken"].as_str().unwrap().to_owned();
        tokens.push(body["accessToken"].as_str().unwrap().to_owned());
        for token in &tokens {
            let claims = verifier
                .verify(token)
                .await
                .unwrap_or_else(|e| panic!("token of key {} refused after {checks} checks: {e}", kid_of(token)));
            assert_eq!(claims.sub.to_string(), user.id);
            checks += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kids: BTreeSet<String> = tokens.iter().map(|t| kid_of(t)).collect();
    assert!(kids.len() >= 3, "two rotations make three signing keys: {kids:?}");
    assert!(checks > 1000, "{checks}");
}

#[tokio::test]
async fn the_projects_example_serves_tessera_users_without_calling_tessera() {
    let app = spawn_signing("ES256", |_| {}).await;
    let verifier = verifier_for(&app, "/.well-known/jwks.json").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let projects = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, projects_example::router(verifier)).await });

    let (ada, grace) = (app.new_user().await, app.new_user().await);
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{projects}/api/projects"))
        .bearer_auth(&ada.access)
        .json(&json!({"name": "Analytical Engine", "description": "Bernoulli numbers"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["ownerId"], ada.id);
    let list = |token: String| {
        let client = client.clone();
        let url = format!("{projects}/api/projects");
        async move { client.get(url).bearer_auth(token).send().await.unwrap() }
    };
    let mine: Value = list(ada.access.clone()).await.json().await.unwrap();
    assert_eq!(mine.to_string().matches("Analytical Engine").count(), 1, "{mine}");
    let theirs: Value = list(grace.access.clone()).await.json().await.unwrap();
    assert!(!theirs.to_string().contains("Analytical Engine"), "{theirs}");

    // A forged token is refused with tessera's error body.
    let (_, mut claims) = decode_parts(&ada.access);
    claims["sub"] = json!(grace.id);
    let p: Vec<&str> = ada.access.split('.').collect();
    let forged = format!("{}.{}.{}", p[0], b64(claims.to_string().as_bytes()), p[2]);
    let res = list(forged).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_token");

    // With tessera gone the service goes on: it never asked tessera per request.
    drop(app.stop().await);
    let res = list(ada.access.clone()).await;
    assert_eq!(res.status(), StatusCode::OK);
}
