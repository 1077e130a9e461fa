//! Sign and verify an access token with every algorithm, tessera against
//! `jsonwebtoken` (its RustCrypto backend, the same curve and RSA crates)
//! in the same run, on the same claims and keys. `jsonwebtoken` verifies
//! with a `DecodingKey` made once from tessera's published JWK, as a
//! service would.
//!
//! Run with: `cargo bench -p tessera-token --bench algorithms`

#![allow(clippy::unwrap_used)] // a bench that cannot set up should stop loudly

use std::borrow::Cow;
use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use serde::{Deserialize, Serialize};
use tessera_token::{
    generate_private_key, AccessClaims, Algorithm, Key, KeySet, SigningKeys, TokenBuf, TokenKind, Validation,
    DEFAULT_TENANT,
};
use uuid::Uuid;

const ISS: &str = "https://auth.example.com";
const AUD: &str = "tessera";
const SECRET: &[u8] = b"bench-access-secret-0123456789abcdef";
const REFRESH_SECRET: &[u8] = b"bench-refresh-secret-0123456789abcde";

#[derive(Serialize, Deserialize)]
struct JwtClaims {
    iss: String,
    aud: String,
    sub: Uuid,
    sid: Uuid,
    tid: Uuid,
    email: String,
    role: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: Uuid,
}

/// The cheapest honest cache: one remembered digest.
#[derive(Default)]
struct OneEntry(std::sync::Mutex<Option<[u8; 32]>>);

impl tessera_token::SignatureCache for OneEntry {
    fn contains(&self, digest: &[u8; 32]) -> bool {
        self.0.lock().unwrap().as_ref() == Some(digest)
    }
    fn insert(&self, digest: [u8; 32]) {
        *self.0.lock().unwrap() = Some(digest);
    }
}

fn benches(c: &mut Criterion) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = AccessClaims {
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
    };
    let jwt_claims = JwtClaims {
        iss: ISS.to_owned(),
        aud: AUD.to_owned(),
        sub: claims.sub,
        sid: claims.sid,
        tid: claims.tid,
        email: claims.email.to_string(),
        role: claims.role.to_string(),
        iat: claims.iat,
        nbf: claims.nbf,
        exp: claims.exp,
        jti: claims.jti,
    };
    let validation = Validation::new(ISS, AUD);
    let refresh = Key::with_kid(TokenKind::Refresh, "refresh", REFRESH_SECRET).unwrap();

    let mut group = c.benchmark_group("algorithm");
    for alg in Algorithm::ALL {
        let (key, encoding, decoding, their_alg) = match alg {
            Algorithm::HS256 => (
                Key::with_kid(TokenKind::Access, "k", SECRET).unwrap(),
                jsonwebtoken::EncodingKey::from_secret(SECRET),
                jsonwebtoken::DecodingKey::from_secret(SECRET),
                jsonwebtoken::Algorithm::HS256,
            ),
            _ => {
                let der = generate_private_key(alg, &mut rand::rngs::OsRng).unwrap();
                let key = Key::from_pkcs8(alg, TokenKind::Access, "k", &der).unwrap();
                let jwk: jsonwebtoken::jwk::Jwk =
                    serde_json::from_value(serde_json::to_value(key.public_jwk().unwrap()).unwrap()).unwrap();
                let (encoding, their_alg) = match alg {
                    Algorithm::EdDSA => (
                        jsonwebtoken::EncodingKey::from_ed_der(&der),
                        jsonwebtoken::Algorithm::EdDSA,
                    ),
                    Algorithm::ES256 => (
                        jsonwebtoken::EncodingKey::from_ec_der(&der),
                        jsonwebtoken::Algorithm::ES256,
                    ),
                    _ => {
                        use rsa::pkcs1::EncodeRsaPrivateKey as _;
                        use rsa::pkcs8::DecodePrivateKey as _;
                        let pkcs1 = rsa::RsaPrivateKey::from_pkcs8_der(&der)
                            .unwrap()
                            .to_pkcs1_der()
                            .unwrap();
                        (
                            jsonwebtoken::EncodingKey::from_rsa_der(pkcs1.as_bytes()),
                            jsonwebtoken::Algorithm::RS256,
                        )
                    }
                };
                (
                    key,
                    encoding,
                    jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
                    their_alg,
                )
            }
        };
        let mut set = KeySet::new();
        set.insert(key.clone()).unwrap();
        let signer = SigningKeys::new(key, refresh.clone()).unwrap();
        let token = signer.sign_access(&claims);

        let mut header = jsonwebtoken::Header::new(their_alg);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some("k".to_owned());
        let mut their_validation = jsonwebtoken::Validation::new(their_alg);
        their_validation.set_issuer(&[ISS]);
        their_validation.set_audience(&[AUD]);
        their_validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        their_validation.validate_nbf = true;
        // Both accept the token they are timed on.
        let mut buf = TokenBuf::new();
        assert!(set.verify_access(&token, &validation, now, &mut buf).is_ok(), "{alg}");
        assert!(
            jsonwebtoken::decode::<JwtClaims>(&token, &decoding, &their_validation).is_ok(),
            "{alg}"
        );

        group.bench_function(format!("{alg}/sign/tessera"), |b| {
            b.iter(|| signer.sign_access(black_box(&claims)))
        });
        group.bench_function(format!("{alg}/sign/jsonwebtoken"), |b| {
            b.iter(|| jsonwebtoken::encode(&header, black_box(&jwt_claims), &encoding).unwrap())
        });
        group.bench_function(format!("{alg}/verify/tessera"), |b| {
            let mut buf = TokenBuf::new();
            b.iter(|| {
                set.verify_access(black_box(&token), &validation, now, &mut buf)
                    .map(|c| c.exp)
            })
        });
        if alg.is_asymmetric() {
            // A token presented again: the server's verified-signature cache.
            let cache = OneEntry::default();
            group.bench_function(format!("{alg}/verify/tessera_cached"), |b| {
                let mut buf = TokenBuf::new();
                b.iter(|| {
                    set.verify_access_cached(black_box(&token), None, &validation, now, &mut buf, &cache)
                        .map(|c| c.exp)
                })
            });
        }
        group.bench_function(format!("{alg}/verify/jsonwebtoken"), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<JwtClaims>(black_box(&token), &decoding, &their_validation).map(|d| d.claims.exp)
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = algorithms;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}
criterion_main!(algorithms);
