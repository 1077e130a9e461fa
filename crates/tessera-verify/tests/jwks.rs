//! JWKS mode against a real HTTP server serving keys made with
//! tessera-token: verification, the cache, refetches, failures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::borrow::Cow;
use std::time::{Duration, Instant};

use common::{dead_url, tamper, Behavior, JwksServer, TestKey, AUDIENCE, ISSUER};
use tessera_token::{Algorithm, Key, TokenError, TokenKind, Uuid, DEFAULT_TENANT};
use tessera_verify::{BuildError, FetchError, Verifier, VerifierBuilder, VerifyError};

fn builder(server: &JwksServer) -> VerifierBuilder {
    Verifier::builder(ISSUER, AUDIENCE).jwks_url(&server.url)
}

async fn verifier(server: &JwksServer) -> Verifier {
    builder(server).build().await.unwrap()
}

#[tokio::test]
async fn accepts_tokens_of_every_public_key_algorithm() {
    let eddsa = TestKey::new(Algorithm::EdDSA, "ed", DEFAULT_TENANT);
    let es256 = TestKey::new(Algorithm::ES256, "es", DEFAULT_TENANT);
    let rs256 = TestKey::new(Algorithm::RS256, "rs", DEFAULT_TENANT);
    let server = JwksServer::start(&[&eddsa, &es256, &rs256]).await;
    let verifier = verifier(&server).await;
    assert_eq!(verifier.key_count(), 3);

    for key in [&eddsa, &es256, &rs256] {
        let claims = key.claims();
        let verified = verifier.verify(&key.sign(&claims)).await.unwrap();
        assert_eq!(verified.sub, claims.sub);
        assert_eq!(verified.sid, claims.sid);
        assert_eq!(verified.tid, DEFAULT_TENANT);
        assert_eq!(verified.email, "ada@example.com");
        assert_eq!(verified.role, "user");
        assert_eq!((verified.iat, verified.exp), (claims.iat, claims.exp));
        assert_eq!(verified.jti, claims.jti);
    }
    // Only the fetch at build time.
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn refuses_tampered_expired_and_misaddressed_tokens() {
    let key = TestKey::eddsa("ed");
    let server = JwksServer::start(&[&key]).await;
    let verifier = verifier(&server).await;

    let tampered = verifier.verify(&tamper(&key.token())).await.unwrap_err();
    assert_eq!(tampered, VerifyError::Invalid(TokenError::BadSignature));
    assert!(!tampered.is_expired());

    // Same kid, another key: a forgery.
    let forger = TestKey::eddsa("ed");
    let forged = verifier.verify(&forger.token()).await.unwrap_err();
    assert_eq!(forged, VerifyError::Invalid(TokenError::BadSignature));

    let mut claims = key.claims();
    claims.iat -= 3600;
    claims.nbf -= 3600;
    claims.exp = claims.iat + 900;
    let expired = verifier.verify(&key.sign(&claims)).await.unwrap_err();
    assert_eq!(expired, VerifyError::Expired);
    assert!(expired.is_expired());
    assert_eq!(expired.description(), "the token has expired");

    let mut claims = key.claims();
    claims.iss = Cow::Borrowed("http://another-issuer.test");
    let wrong_issuer = verifier.verify(&key.sign(&claims)).await.unwrap_err();
    assert_eq!(wrong_issuer, VerifyError::Invalid(TokenError::WrongIssuer));
    assert!(!wrong_issuer.is_expired());

    let mut claims = key.claims();
    claims.aud = Cow::Borrowed("another-service");
    let wrong_audience = verifier.verify(&key.sign(&claims)).await.unwrap_err();
    assert_eq!(wrong_audience, VerifyError::Invalid(TokenError::WrongAudience));

    for garbage in ["", "abc", "a.b.c", "Bearer x.y.z"] {
        let err = verifier.verify(garbage).await.unwrap_err();
        assert!(err.is_invalid(), "{garbage:?}: {err:?}");
    }
    // None of that needed a fetch.
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn a_verifier_for_one_tenant_refuses_other_tenants_tokens() {
    let (acme, globex) = (Uuid::new_v4(), Uuid::new_v4());
    let acme_key = TestKey::new(Algorithm::EdDSA, "acme", acme);
    let globex_key = TestKey::new(Algorithm::ES256, "globex", globex);
    let server = JwksServer::start(&[&acme_key, &globex_key]).await;

    let for_acme = builder(&server).tenant(acme).build().await.unwrap();
    assert_eq!(for_acme.verify(&acme_key.token()).await.unwrap().tid, acme);
    assert_eq!(
        for_acme.verify(&globex_key.token()).await,
        Err(VerifyError::Invalid(TokenError::WrongTenant))
    );

    // Without .tenant(), each token is its key's tenant's.
    let any = verifier(&server).await;
    assert_eq!(any.verify(&acme_key.token()).await.unwrap().tid, acme);
    assert_eq!(any.verify(&globex_key.token()).await.unwrap().tid, globex);

    // A key of globex cannot sign for acme.
    let mut claims = globex_key.claims();
    claims.tid = acme;
    assert_eq!(
        any.verify(&globex_key.sign(&claims)).await,
        Err(VerifyError::Invalid(TokenError::TenantMismatch))
    );
}

#[tokio::test]
async fn an_unknown_kid_triggers_one_refetch_and_then_verifies_a_new_key() {
    let old = TestKey::eddsa("old");
    let server = JwksServer::start(&[&old]).await;
    let verifier = verifier(&server).await;
    assert_eq!(server.requests(), 1);

    // tessera rotates: the new key is published.
    let new = TestKey::new(Algorithm::ES256, "new", DEFAULT_TENANT);
    server.set_keys(&[&old, &new]);
    let claims = new.claims();
    assert_eq!(verifier.verify(&new.sign(&claims)).await.unwrap().sub, claims.sub);
    assert_eq!(server.requests(), 2);
    // The refetch asked conditionally, with the ETag of what it had.
    assert_eq!(server.if_none_match()[1].as_deref(), Some("\"v1\""));

    // Both keys verify from memory now.
    verifier.verify(&old.token()).await.unwrap();
    verifier.verify(&new.token()).await.unwrap();
    // A kid nobody published: no fetch within the interval.
    let stranger = TestKey::eddsa("stranger");
    assert_eq!(
        verifier.verify(&stranger.token()).await,
        Err(VerifyError::Invalid(TokenError::UnknownKey))
    );
    assert_eq!(server.requests(), 2);
}

/// Tokens of `n` made-up kids, signed by one key nobody published.
fn garbage_tokens(n: usize, prefix: &str) -> Vec<String> {
    let der = tessera_token::generate_private_key(Algorithm::EdDSA, &mut rand::rngs::OsRng).unwrap();
    (0..n)
        .map(|i| {
            let key = Key::from_pkcs8(Algorithm::EdDSA, TokenKind::Access, &format!("{prefix}{i}"), &der).unwrap();
            TestKey::from_access(key).token()
        })
        .collect()
}

async fn verify_all(verifier: &Verifier, tokens: Vec<String>) -> Vec<Result<tessera_verify::Claims, VerifyError>> {
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let verifier = verifier.clone();
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_garbage_kids_costs_at_most_one_fetch_per_interval() {
    let key = TestKey::eddsa("real");
    let server = JwksServer::start(&[&key]).await;
    let interval = Duration::from_millis(700);
    let verifier = builder(&server).min_refetch_interval(interval).build().await.unwrap();
    assert_eq!(server.requests(), 1);

    let started = Instant::now();
    let results = verify_all(&verifier, garbage_tokens(1000, "garbage-a-")).await;
    assert!(results
        .iter()
        .all(|r| r == &Err(VerifyError::Invalid(TokenError::UnknownKey))));
    let first_burst = server.requests() - 1;
    assert_eq!(first_burst, 1, "the 1,000 unknown kids shared one fetch");

    // Another burst within the interval: no fetch at all.
    let results = verify_all(&verifier, garbage_tokens(1000, "garbage-b-")).await;
    assert!(results.iter().all(Result::is_err));
    if started.elapsed() < interval {
        assert_eq!(server.requests(), 2);
    }

    // Genuine tokens kept verifying, from memory.
    verifier.verify(&key.token()).await.unwrap();

    // After the interval, one more.
    tokio::time::sleep(interval).await;
    let before = server.requests();
    let results = verify_all(&verifier, garbage_tokens(1000, "garbage-c-")).await;
    assert!(results.iter().all(Result::is_err));
    assert_eq!(server.requests() - before, 1);
}

#[tokio::test]
async fn cached_keys_keep_verifying_when_tessera_is_down() {
    let key = TestKey::eddsa("ed");
    let mut server = JwksServer::start(&[&key]).await;
    // Stale at once, refetch allowed at once: every call wants to fetch.
    server.set_max_age(0);
    let verifier = builder(&server)
        .min_refetch_interval(Duration::ZERO)
        .build()
        .await
        .unwrap();
    server.shut_down().await;

    for _ in 0..3 {
        verifier.verify(&key.token()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(verifier.key_count(), 1);

    // A kid it does not know, while tessera cannot be asked: not "invalid".
    let unknown = TestKey::eddsa("new");
    let err = verifier.verify(&unknown.token()).await.unwrap_err();
    assert_eq!(err, VerifyError::KeysUnavailable);
    assert!(!err.is_expired() && !err.is_invalid());
    // A bad token of a known key is still plainly invalid.
    assert_eq!(
        verifier.verify(&tamper(&key.token())).await,
        Err(VerifyError::Invalid(TokenError::BadSignature))
    );
    verifier.verify(&key.token()).await.unwrap();
}

#[tokio::test]
async fn errors_and_garbage_from_tessera_keep_the_cache() {
    let key = TestKey::eddsa("ed");
    let server = JwksServer::start(&[&key]).await;
    server.set_max_age(0);
    let verifier = builder(&server)
        .min_refetch_interval(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let new = TestKey::eddsa("new");
    server.set_keys(&[&new]);

    for behavior in [Behavior::Fail500, Behavior::NotJson, Behavior::Oversized] {
        server.set_behavior(behavior);
        let before = server.requests();
        // Stale: the call verifies from the cache and refreshes in the background.
        verifier.verify(&key.token()).await.unwrap();
        server.wait_for_requests(before + 1).await;
        // An unknown kid waits for a fetch, which fails.
        assert_eq!(
            verifier.verify(&new.token()).await,
            Err(VerifyError::KeysUnavailable),
            "{behavior:?}"
        );
        verifier.verify(&key.token()).await.unwrap();
        assert_eq!(verifier.key_count(), 1, "{behavior:?}");
    }

    // A document none of whose keys is usable is no better.
    server.set_behavior(Behavior::Serve);
    server.set_document(serde_json::json!({"keys": [{"kty": "oct", "kid": "h", "alg": "HS256", "k": "c2VjcmV0"}]}));
    assert_eq!(verifier.verify(&new.token()).await, Err(VerifyError::KeysUnavailable));
    verifier.verify(&key.token()).await.unwrap();
    // (Let the refresh that call started finish before the document changes.)
    tokio::time::sleep(Duration::from_millis(200)).await;

    // tessera is back, with the rotated key set.
    server.set_keys(&[&new]);
    verifier.verify(&new.token()).await.unwrap();
    // The old key was retired: the cache is the new document.
    let before = server.requests();
    let refused = verifier.verify(&key.token()).await;
    assert_eq!(refused, Err(VerifyError::Invalid(TokenError::UnknownKey)));
    assert!(server.requests() > before);
}

#[tokio::test]
async fn max_age_is_honoured_and_a_304_keeps_the_keys() {
    let key = TestKey::eddsa("ed");
    let server = JwksServer::start(&[&key]).await;
    server.set_max_age(1);
    let verifier = builder(&server)
        .min_refetch_interval(Duration::from_millis(500))
        .build()
        .await
        .unwrap();

    // Fresh: no request.
    verifier.verify(&key.token()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    verifier.verify(&key.token()).await.unwrap();
    assert_eq!(server.requests(), 1);

    // Stale after a second: one conditional request, answered 304.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    verifier.verify(&key.token()).await.unwrap();
    server.wait_for_requests(2).await;
    assert_eq!(server.if_none_match()[1], Some(server.etag()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.not_modified(), 1);
    // The keys are kept, and fresh again for a second.
    verifier.verify(&key.token()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    verifier.verify(&key.token()).await.unwrap();
    assert_eq!(server.requests(), 2);
    assert_eq!(verifier.key_count(), 1);

    // tessera retires the key; once the cache expires the change is seen.
    let new = TestKey::eddsa("new");
    server.set_keys(&[&new]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    verifier.verify(&key.token()).await.unwrap(); // still cached; refreshes behind
    server.wait_for_requests(3).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        verifier.verify(&key.token()).await,
        Err(VerifyError::Invalid(TokenError::UnknownKey))
    );
    verifier.verify(&new.token()).await.unwrap();
}

#[tokio::test]
async fn max_cache_age_caps_max_age() {
    let key = TestKey::eddsa("ed");
    let server = JwksServer::start(&[&key]).await;
    server.set_max_age(86_400);
    let verifier = builder(&server)
        .max_cache_age(Duration::from_millis(200))
        .min_refetch_interval(Duration::ZERO)
        .build()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    verifier.verify(&key.token()).await.unwrap();
    server.wait_for_requests(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifications_go_on_during_a_slow_fetch() {
    let key = TestKey::eddsa("ed");
    let server = JwksServer::start(&[&key]).await;
    let verifier = builder(&server)
        .min_refetch_interval(Duration::from_secs(60))
        .max_cache_age(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let new = TestKey::eddsa("new");
    server.set_keys(&[&key, &new]);
    server.set_delay(Duration::from_millis(1500));

    // The first call finds the keys stale and starts the (slow) refresh.
    let started = Instant::now();
    verifier.verify(&key.token()).await.unwrap();
    server.wait_for_requests(2).await;

    // The new key's token waits for that very fetch...
    let waiting = {
        let verifier = verifier.clone();
        let token = new.token();
        tokio::spawn(async move { verifier.verify(&token).await })
    };
    // ...while known keys verify at once, 200 times.
    let quick = Instant::now();
    let tokens: Vec<String> = (0..200).map(|_| key.token()).collect();
    for result in verify_all(&verifier, tokens).await {
        result.unwrap();
    }
    assert!(quick.elapsed() < Duration::from_millis(700), "{:?}", quick.elapsed());
    assert!(!waiting.is_finished());

    let claims = waiting.await.unwrap().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert_eq!(claims.email, "ada@example.com");
    // One fetch served them all.
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn a_hanging_tessera_times_out_and_the_cache_serves() {
    let key = TestKey::eddsa("ed");
    let server = JwksServer::start(&[&key]).await;
    server.set_max_age(0);
    let verifier = builder(&server)
        .min_refetch_interval(Duration::ZERO)
        .http_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    server.set_behavior(Behavior::Hang);

    let started = Instant::now();
    verifier.verify(&key.token()).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(200));
    let unknown = TestKey::eddsa("new");
    let started = Instant::now();
    assert_eq!(
        verifier.verify(&unknown.token()).await,
        Err(VerifyError::KeysUnavailable)
    );
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    verifier.verify(&key.token()).await.unwrap();

    // Building against it fails, within the timeout.
    let started = Instant::now();
    let err = builder(&server)
        .http_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::Fetch {
                source: FetchError::Timeout,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn unusable_jwks_are_skipped_one_by_one() {
    let good = TestKey::eddsa("good");
    let other = TestKey::new(Algorithm::ES256, "es", DEFAULT_TENANT);
    let mut no_alg = other.jwk.clone();
    no_alg.kid = "no-alg".into();
    no_alg.alg = None;
    let mut wrong_curve = other.jwk.clone();
    wrong_curve.kid = "p384".into();
    wrong_curve.crv = Some("P-384".into());
    let mut encryption = other.jwk.clone();
    encryption.kid = "enc".into();
    encryption.use_ = Some("enc".into());
    let server = JwksServer::start(&[]).await;
    server.set_document(serde_json::json!({"keys": [
        {"kty": "oct", "kid": "hmac", "alg": "HS256", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"},
        {"kty": "RSA", "kid": "weak", "alg": "RS256", "n": "AQAB", "e": "AQAB"},
        {"kty": "OKP", "kid": "bad-x", "alg": "EdDSA", "crv": "Ed25519", "x": "not base64!"},
        {"kty": "EC", "kid": "ps", "alg": "PS256"},
        "not an object",
        {"kid": 12},
        no_alg,
        wrong_curve,
        encryption,
        good.jwk,
        good.jwk,
    ]}));
    let verifier = verifier(&server).await;
    assert_eq!(verifier.key_count(), 1);
    verifier.verify(&good.token()).await.unwrap();
}

#[tokio::test]
async fn build_fails_saying_what_went_wrong() {
    let key = TestKey::eddsa("ed");
    let server = JwksServer::start(&[&key]).await;

    // Nothing listens.
    let url = dead_url().await;
    let err = Verifier::builder(ISSUER, AUDIENCE)
        .jwks_url(&url)
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::Fetch {
                source: FetchError::Request(_),
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&url) && message.contains("check that tessera is running"),
        "{message}"
    );

    server.set_behavior(Behavior::Fail500);
    let err = verifier_error(&server).await;
    assert!(
        matches!(
            err,
            BuildError::Fetch {
                source: FetchError::Status { status: 500 },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("HTTP 500"), "{err}");

    server.set_behavior(Behavior::NotJson);
    assert!(matches!(
        verifier_error(&server).await,
        BuildError::Fetch {
            source: FetchError::NotJson(_),
            ..
        }
    ));
    server.set_behavior(Behavior::Oversized);
    assert!(matches!(
        verifier_error(&server).await,
        BuildError::Fetch {
            source: FetchError::TooLarge,
            ..
        }
    ));

    // An HMAC tenant publishes no keys.
    server.set_behavior(Behavior::Serve);
    server.set_document(serde_json::json!({"keys": []}));
    let err = verifier_error(&server).await;
    assert!(matches!(err, BuildError::NoKeys { .. }), "{err:?}");
    assert!(err.to_string().contains("JWT_SECRET"), "{err}");
    server.set_document(serde_json::json!({"not": "a key set"}));
    assert!(matches!(
        verifier_error(&server).await,
        BuildError::Fetch {
            source: FetchError::NotAJwkSet,
            ..
        }
    ));

    // 404: a wrong path.
    let wrong_path = server.url.replace("jwks.json", "nothing.json");
    let err = Verifier::builder(ISSUER, AUDIENCE)
        .jwks_url(wrong_path)
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::Fetch {
                source: FetchError::Status { status: 404 },
                ..
            }
        ),
        "{err:?}"
    );

    // Bad configuration.
    for url in ["not a url", "ftp://127.0.0.1/jwks.json", "/.well-known/jwks.json"] {
        let err = Verifier::builder(ISSUER, AUDIENCE)
            .jwks_url(url)
            .build()
            .await
            .unwrap_err();
        assert!(matches!(err, BuildError::InvalidUrl { .. }), "{url}: {err:?}");
    }
    let err = Verifier::builder(ISSUER, AUDIENCE)
        .jwks_url("http://user:hunter2-password@127.0.0.1:1/jwks.json")
        .build()
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(matches!(
        Verifier::builder("", AUDIENCE).jwks_url(&server.url).build().await,
        Err(BuildError::EmptyIssuer)
    ));
    assert!(matches!(
        Verifier::builder(ISSUER, " ").jwks_url(&server.url).build().await,
        Err(BuildError::EmptyAudience)
    ));
}

async fn verifier_error(server: &JwksServer) -> BuildError {
    builder(server).build().await.unwrap_err()
}

#[tokio::test]
async fn debug_output_shows_the_configuration() {
    let key = TestKey::eddsa("ed");
    let server = JwksServer::start(&[&key]).await;
    let verifier = verifier(&server).await;
    let debug = format!("{verifier:?}");
    assert!(
        debug.contains("jwks") && debug.contains(&server.url) && debug.contains("keys: 1"),
        "{debug}"
    );
}

#[tokio::test]
async fn a_token_of_a_withdrawn_key_is_expired_once_its_exp_has_passed() {
    let old = TestKey::eddsa("old");
    let server = JwksServer::start(&[&old]).await;
    let verifier = builder(&server)
        .min_refetch_interval(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let mut past = old.claims();
    past.iat = common::now() - 1000;
    past.nbf = past.iat;
    past.exp = common::now() - 600;
    let expired = old.sign(&past);
    let live = old.token();
    assert_eq!(verifier.verify(&expired).await, Err(VerifyError::Expired));

    // tessera drops the key once every token it signed has expired.
    let new = TestKey::eddsa("new");
    server.set_keys(&[&new]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    verifier.verify(&new.token()).await.unwrap();
    // Its expired tokens still say so: the client refreshes.
    assert_eq!(verifier.verify(&expired).await, Err(VerifyError::Expired));
    // One whose exp has not passed (a revoked key's) is invalid.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        verifier.verify(&live).await,
        Err(VerifyError::Invalid(TokenError::UnknownKey))
    );
    // And a kid tessera never published is invalid, whatever its exp says.
    let stranger = TestKey::eddsa("stranger");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        verifier.verify(&stranger.sign(&past)).await,
        Err(VerifyError::Invalid(TokenError::UnknownKey))
    );
}
