//! What a service pays per request: `Verifier::verify` with a warm JWKS
//! cache (EdDSA, ES256, RS256 keys fetched once from a real HTTP server on
//! loopback), and in shared-secret mode, beside `jsonwebtoken::decode` with
//! a `DecodingKey` made once from the same JWK, in the same run.
//!
//! Run with: `cargo bench -p tessera-verify --bench verify`

#![allow(clippy::unwrap_used)] // a bench that cannot set up should stop loudly

use std::borrow::Cow;
use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::routing::get;
use criterion::{criterion_group, criterion_main, Criterion};
use serde::Deserialize;
use tessera_token::{
    generate_private_key, AccessClaims, Algorithm, JwkSet, Key, SigningKeys, TokenKind, DEFAULT_TENANT,
};
use tessera_verify::Verifier;
use uuid::Uuid;

const ISS: &str = "http://tessera.bench";
const AUD: &str = "tessera";
const SECRET: &[u8] = b"bench-access-secret-0123456789abcdef";

#[derive(Deserialize)]
#[allow(dead_code)]
struct JwtClaims {
    sub: Uuid,
    sid: Uuid,
    tid: Uuid,
    email: String,
    role: String,
    exp: i64,
    jti: Uuid,
}

fn claims() -> AccessClaims<'static> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    AccessClaims {
        iss: Cow::Borrowed(ISS),
        aud: Cow::Borrowed(AUD),
        sub: Uuid::new_v4(),
        sid: Uuid::new_v4(),
        tid: DEFAULT_TENANT,
        email: Cow::Borrowed("ada.lovelace@example.com"),
        role: Cow::Borrowed("user"),
        iat: now,
        nbf: now,
        exp: now + 3600,
        jti: Uuid::new_v4(),
    }
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let refresh = Key::with_kid(TokenKind::Refresh, "refresh", &[7u8; 32]).unwrap();
    let mut group = c.benchmark_group("verifier");
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let der = generate_private_key(alg, &mut rand::rngs::OsRng).unwrap();
        let key = Key::from_pkcs8(alg, TokenKind::Access, "bench", &der).unwrap();
        let jwks = serde_json::to_string(&JwkSet {
            keys: vec![key.public_jwk().unwrap()],
        })
        .unwrap();
        let token = SigningKeys::new(key.clone(), refresh.clone())
            .unwrap()
            .sign_access(&claims());
        let url = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let body = jwks.clone();
            let app = axum::Router::new().route(
                "/jwks.json",
                get(move || {
                    let body = body.clone();
                    async move { ([("cache-control", "public, max-age=3600")], body) }
                }),
            );
            tokio::spawn(async move { axum::serve(listener, app).await });
            format!("http://{addr}/jwks.json")
        });
        let verifier = rt.block_on(Verifier::builder(ISS, AUD).jwks_url(url).build()).unwrap();
        assert!(rt.block_on(verifier.verify(&token)).is_ok());
        let their_jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(serde_json::to_value(key.public_jwk().unwrap()).unwrap()).unwrap();
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&their_jwk).unwrap();
        let their_alg = match alg {
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            _ => jsonwebtoken::Algorithm::RS256,
        };
        let mut validation = jsonwebtoken::Validation::new(their_alg);
        validation.set_issuer(&[ISS]);
        validation.set_audience(&[AUD]);
        assert!(jsonwebtoken::decode::<JwtClaims>(&token, &decoding, &validation).is_ok());

        group.bench_function(format!("{alg}/tessera-verify_warm_jwks"), |b| {
            b.iter(|| rt.block_on(verifier.verify(black_box(&token))).map(|c| c.exp))
        });
        group.bench_function(format!("{alg}/jsonwebtoken"), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<JwtClaims>(black_box(&token), &decoding, &validation).map(|d| d.claims.exp)
            })
        });
    }

    let key = Key::from_secret(TokenKind::Access, SECRET).unwrap();
    let token = SigningKeys::new(key, refresh).unwrap().sign_access(&claims());
    let verifier = rt.block_on(Verifier::builder(ISS, AUD).secret(SECRET).build()).unwrap();
    assert!(rt.block_on(verifier.verify(&token)).is_ok());
    let decoding = jsonwebtoken::DecodingKey::from_secret(SECRET);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_issuer(&[ISS]);
    validation.set_audience(&[AUD]);
    group.bench_function("HS256/tessera-verify_secret", |b| {
        b.iter(|| rt.block_on(verifier.verify(black_box(&token))).map(|c| c.exp))
    });
    group.bench_function("HS256/jsonwebtoken", |b| {
        b.iter(|| jsonwebtoken::decode::<JwtClaims>(black_box(&token), &decoding, &validation).map(|d| d.claims.exp))
    });
    group.finish();
}

criterion_group! {
    name = verify;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}
criterion_main!(verify);
