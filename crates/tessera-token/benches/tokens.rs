//! Sign and verify an access token, tessera against `jsonwebtoken`, with two
//! reference points: a bare pre-keyed HMAC-SHA256 over a signing input of
//! the same length (the floor for any verifier), and base64url-decode plus
//! serde_json parse of the same payload.
//!
//! Then tenants (`tenant_keyset`): verifying access tokens of random
//! tenants in one `KeySet` of 1, 1,000 and 100,000 tenants, each with 4 keys
//! (access and refresh, current and next) with 64-byte random secrets and
//! random 22-character kids, as the server makes them. Each iteration
//! verifies the next of 1,024 tokens of random tenants, so the big set is
//! not measured on one hot key; `default_keyring` runs the same rotation
//! through a single-tenant `Keyring` for comparison.
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
use tessera_token::{AccessClaims, Key, KeySet, Keyring, SigningKeys, TokenBuf, TokenKind, Validation, DEFAULT_TENANT};
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
    tid: Uuid,
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
    let access = Key::from_secret(TokenKind::Access, ACCESS_SECRET).unwrap();
    let refresh = Key::from_secret(TokenKind::Refresh, REFRESH_SECRET).unwrap();
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

/// The process's resident memory, where Linux tells it: to estimate what the
/// key set costs a tenant (the difference, less the bench's own signing
/// pairs, is the set, the 1,024 tokens and allocator slack).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// How many tokens each tenant benchmark rotates through.
const SAMPLE: usize = 1024;

/// splitmix64: deterministic, fast, and good enough for secrets and kids
/// that only need to look like the server's.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes()[..chunk.len()]);
        }
        out
    }

    /// 22 base64url characters: 16 random bytes, as the server makes kids.
    fn kid(&mut self) -> String {
        URL_SAFE_NO_PAD.encode(self.bytes::<16>())
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A tenant's current signing pair, with its next pair also in `set`.
fn add_tenant(set: &mut KeySet, rng: &mut Rng, tenant: uuid::Uuid) -> SigningKeys {
    let key = |rng: &mut Rng, kind| {
        Key::with_kid(kind, &rng.kid(), &rng.bytes::<64>())
            .unwrap()
            .for_tenant(tenant)
    };
    let current = SigningKeys::new(key(rng, TokenKind::Access), key(rng, TokenKind::Refresh)).unwrap();
    set.insert(current.access_key().clone()).unwrap();
    set.insert(current.refresh_key().clone()).unwrap();
    set.insert(key(rng, TokenKind::Access)).unwrap();
    set.insert(key(rng, TokenKind::Refresh)).unwrap();
    current
}

fn tenant_claims(rng: &mut Rng, tenant: uuid::Uuid, now: i64) -> AccessClaims<'static> {
    AccessClaims {
        iss: Cow::Borrowed(ISS),
        aud: Cow::Borrowed(AUD),
        sub: Uuid::from_u128(u128::from_le_bytes(rng.bytes())),
        sid: Uuid::from_u128(u128::from_le_bytes(rng.bytes())),
        tid: tenant,
        email: Cow::Borrowed("ada.lovelace@example.com"),
        role: Cow::Borrowed("user"),
        iat: now,
        nbf: now,
        exp: now + 3600,
        jti: Uuid::from_u128(u128::from_le_bytes(rng.bytes())),
    }
}

fn tenant_benches(c: &mut Criterion) {
    let validation = Validation::new(ISS, AUD);
    let now = now();
    let mut rng = Rng(0x7e55_e7a0);
    let mut group = c.benchmark_group("tenant_keyset");

    // The single-tenant keyring on the same rotation of 1,024 tokens.
    let keyring = Keyring::new(
        Key::from_secret(TokenKind::Access, ACCESS_SECRET).unwrap(),
        Key::from_secret(TokenKind::Refresh, REFRESH_SECRET).unwrap(),
    )
    .unwrap();
    let tokens: Vec<String> = (0..SAMPLE)
        .map(|_| keyring.sign_access(&tenant_claims(&mut rng, DEFAULT_TENANT, now)))
        .collect();
    group.bench_function("verify/default_keyring", |b| {
        let mut buf = TokenBuf::new();
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % SAMPLE;
            keyring
                .verify_access(black_box(&tokens[i]), &validation, now, &mut buf)
                .map(|c| c.exp)
                .unwrap()
        })
    });

    for tenants in [1usize, 1_000, 100_000] {
        let started = std::time::Instant::now();
        let rss_before = resident_bytes();
        let mut set = KeySet::with_capacity(4 * tenants);
        let signing: Vec<(uuid::Uuid, SigningKeys)> = (0..tenants)
            .map(|_| {
                let tenant = Uuid::from_u128(u128::from_le_bytes(rng.bytes()));
                (tenant, add_tenant(&mut set, &mut rng, tenant))
            })
            .collect();
        let sample: Vec<(uuid::Uuid, String)> = (0..SAMPLE)
            .map(|_| {
                let (tenant, keys) = &signing[rng.below(tenants)];
                (*tenant, keys.sign_access(&tenant_claims(&mut rng, *tenant, now)))
            })
            .collect();
        // The signing pairs are the bench's, not the set's: not counted.
        let signing_bytes = (signing.capacity() * std::mem::size_of::<(uuid::Uuid, SigningKeys)>()) as u64;
        let per_tenant = match (rss_before, resident_bytes()) {
            (Some(before), Some(after)) if tenants >= 1_000 => {
                let set_bytes = after.saturating_sub(before).saturating_sub(signing_bytes);
                format!(", ~{} bytes a tenant", set_bytes / tenants as u64)
            }
            _ => String::new(),
        };
        drop(signing);
        eprintln!(
            "tenant_keyset: {tenants} tenants, {} keys, set up in {:?}{per_tenant}",
            set.len(),
            started.elapsed()
        );
        group.bench_function(format!("verify_for/{tenants}_tenants"), |b| {
            let mut buf = TokenBuf::new();
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % SAMPLE;
                let (tenant, token) = &sample[i];
                set.verify_access_for(black_box(token), *tenant, &validation, now, &mut buf)
                    .map(|c| c.exp)
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = tokens;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches, tenant_benches
}
criterion_main!(tokens);
