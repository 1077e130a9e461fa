//! Verifying a token tessera issued does no heap allocation.
//!
//! This file is its own test binary with a counting global allocator and a
//! single test, so nothing else allocates while it measures.

use std::alloc::System;
use std::borrow::Cow;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tessera_token::{AccessClaims, HmacKey, Keyring, RefreshClaims, TokenBuf, TokenKind, Uuid, Validation};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn verification_of_issued_tokens_does_not_allocate() {
    let ring = Keyring::new(
        HmacKey::from_secret(TokenKind::Access, b"no-alloc-access-secret-0123456789ab").unwrap(),
        HmacKey::from_secret(TokenKind::Refresh, b"no-alloc-refresh-secret-0123456789a").unwrap(),
    )
    .unwrap();
    let now = 1_700_000_000;
    let access = ring.sign_access(&AccessClaims {
        iss: Cow::Borrowed("https://auth.example.com"),
        aud: Cow::Borrowed("tessera"),
        sub: Uuid::from_u128(1),
        sid: Uuid::from_u128(2),
        email: Cow::Borrowed("ada+tag@example.co.uk"),
        role: Cow::Borrowed("admin"),
        iat: now,
        nbf: now,
        exp: now + 900,
        jti: Uuid::from_u128(3),
    });
    let refresh = ring.sign_refresh(&RefreshClaims {
        iss: Cow::Borrowed("https://auth.example.com"),
        sub: Uuid::from_u128(1),
        sid: Uuid::from_u128(2),
        jti: Uuid::from_u128(4),
        iat: now,
        exp: now + 86_400,
    });
    let validation = Validation::new("https://auth.example.com", "tessera");
    let mut buf = TokenBuf::new();
    let mut buf2 = TokenBuf::new();

    // The harness's main thread may allocate while this test starts, and
    // the counter is process-wide; an allocation per verification would show
    // in every round, so one clean round out of five proves the point.
    let mut rounds = Vec::with_capacity(5);
    for _ in 0..5 {
        let region = Region::new(GLOBAL);
        for _ in 0..100 {
            let a = ring.verify_access(&access, &validation, now, &mut buf);
            assert!(a.is_ok());
            let r = ring.verify_refresh(&refresh, &validation, now, &mut buf2);
            assert!(r.is_ok());
        }
        rounds.push(region.change());
    }
    assert!(
        rounds.iter().any(|s| s.allocations == 0 && s.reallocations == 0),
        "{rounds:#?}"
    );
}
