//! Sign and verify an access token, tessera against `jsonwebtoken`, with two
//! reference points: a bare pre-keyed HMAC-SHA256 over a signing input of
//! the same length (the floor for any verifier), and base64url-decode plus
//! serde_json parse of the same payload.
//!
//! Run with: `cargo bench -p tessera-token --bench tokens`

#![allow(clippy::unwrap_used)] // a bench that cannot set up should stop loudly

use std::borrow::Cow;
use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tessera_token::{AccessClaims, HmacKey, Keyring, TokenBuf, TokenKind, Validation};
use uuid::Uuid;

const ACCESS_SECRET: &[u8] = b"bench-access-secret-0123456789abcdef";
const REFRESH_SECRET: &[u8] = b"bench-refresh-secret-0123456789abcde";
const ISS: &str = "https://auth.example.com";
const AUD: &str = "tessera";

/// The same claims, the way a `jsonwebtoken` user would declare them.
#[derive(Serialize, Deserialize)]
struct JwtClaims {
    iss: String,
    aud: String,
    sub: Uuid,
    sid: Uuid,
    email: String,
    role: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: Uuid,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn benches(c: &mut Criterion) {
    let access = HmacKey::from_secret(TokenKind::Access, ACCESS_SECRET).unwrap();
    let refresh = HmacKey::from_secret(TokenKind::Refresh, REFRESH_SECRET).unwrap();
    let keyring = Keyring::new(access, refresh).unwrap();
    let validation = Validation::new(ISS, AUD);

    // jsonwebtoken checks `exp` against the system clock: use real times,
    // valid for the whole run.
    let now = now();
    let claims = AccessClaims {
        iss: Cow::Borrowed(ISS),
        aud: Cow::Borrowed(AUD),
        sub: Uuid::new_v4(),
        sid: Uuid::new_v4(),
        email: Cow::Borrowed("ada.lovelace@example.com"),
        role: Cow::Borrowed("user"),
        iat: now,
        nbf: now,
        exp: now + 3600,
        jti: Uuid::new_v4(),
    };
    let jwt_claims = JwtClaims {
        iss: ISS.to_owned(),
        aud: AUD.to_owned(),
        sub: claims.sub,
        sid: claims.sid,
        email: claims.email.to_string(),
        role: claims.role.to_string(),
        iat: claims.iat,
        nbf: claims.nbf,
        exp: claims.exp,
        jti: claims.jti,
    };

    let mut jwt_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    jwt_header.typ = Some("at+jwt".to_owned());
    jwt_header.kid = Some(keyring.access_kid().to_owned());
    let encoding_key = jsonwebtoken::EncodingKey::from_secret(ACCESS_SECRET);
    let decoding_key = jsonwebtoken::DecodingKey::from_secret(ACCESS_SECRET);
    let mut jwt_validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    jwt_validation.set_issuer(&[ISS]);
    jwt_validation.set_audience(&[AUD]);
    jwt_validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
    jwt_validation.validate_nbf = true;
    jwt_validation.leeway = validation.leeway_secs;

    let token = keyring.sign_access(&claims);
    // Both verifiers must accept the token they are timed on.
    let mut buf = TokenBuf::new();
    assert!(keyring.verify_access(&token, &validation, now, &mut buf).is_ok());
    assert!(jsonwebtoken::decode::<JwtClaims>(&token, &decoding_key, &jwt_validation).is_ok());

    let mut group = c.benchmark_group("access_token");

    group.bench_function("sign/tessera", |b| b.iter(|| keyring.sign_access(black_box(&claims))));
    group.bench_function("sign/jsonwebtoken", |b| {
        b.iter(|| jsonwebtoken::encode(&jwt_header, black_box(&jwt_claims), &encoding_key))
    });

    group.bench_function("verify/tessera", |b| {
        let mut buf = TokenBuf::new();
        b.iter(|| {
            keyring
                .verify_access(black_box(&token), &validation, now, &mut buf)
                .map(|c| c.exp)
        })
    });
    group.bench_function("verify/jsonwebtoken", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<JwtClaims>(black_box(&token), &decoding_key, &jwt_validation).map(|d| d.claims.exp)
        })
    });

    let signing_input = token.rsplit_once('.').map(|(i, _)| i).unwrap_or_default();
    let prekeyed = Hmac::<Sha256>::new_from_slice(ACCESS_SECRET).unwrap();
    group.bench_function("reference/hmac_sha256_prekeyed", |b| {
        b.iter(|| {
            let mut mac = prekeyed.clone();
            mac.update(black_box(signing_input.as_bytes()));
            mac.finalize().into_bytes()
        })
    });

    let payload_b64 = token.split('.').nth(1).unwrap_or_default();
    group.bench_function("reference/b64_decode_and_serde_json_parse", |b| {
        b.iter(|| {
            let json = URL_SAFE_NO_PAD.decode(black_box(payload_b64)).unwrap();
            serde_json::from_slice::<JwtClaims>(&json).map(|c| c.exp)
        })
    });

    group.finish();
}

criterion_group! {
    name = tokens;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(tokens);
