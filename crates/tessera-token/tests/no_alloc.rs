//! Verifying a token tessera issued does no heap allocation.
//!
//! This file is its own test binary with a counting global allocator and a
//! single test, so nothing else allocates while it measures.

use std::alloc::System;
use std::borrow::Cow;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tessera_token::{
    AccessClaims, Key, KeySet, Keyring, RefreshClaims, SigningKeys, TokenBuf, TokenKind, Uuid, Validation,
    DEFAULT_TENANT,
};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn verification_of_issued_tokens_does_not_allocate() {
    let ring = Keyring::new(
        Key::from_secret(TokenKind::Access, b"no-alloc-access-secret-0123456789ab").unwrap(),
        Key::from_secret(TokenKind::Refresh, b"no-alloc-refresh-secret-0123456789a").unwrap(),
    )
    .unwrap();
    let now = 1_700_000_000;
    let access = ring.sign_access(&AccessClaims {
        iss: Cow::Borrowed("https://auth.example.com"),
        aud: Cow::Borrowed("tessera"),
        sub: Uuid::from_u128(1),
        sid: Uuid::from_u128(2),
        tid: DEFAULT_TENANT,
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
        tid: DEFAULT_TENANT,
        jti: Uuid::from_u128(4),
        iat: now,
        exp: now + 86_400,
    });
    let validation = Validation::new("https://auth.example.com", "tessera");
    let mut buf = TokenBuf::new();
    let mut buf2 = TokenBuf::new();

    // One key set of many tenants, each with 22-character kids, and a token
    // of one of them.
    let mut set = KeySet::with_capacity(2_000);
    let mut tenant_keys = None;
    for n in 0..1_000u32 {
        let tenant = Uuid::from_u128(u128::from(n) + 1);
        let secret = format!("no-alloc-tenant-secret-{n:010}-0123456789");
        let key = |kind, suffix| {
            Key::with_kid(kind, &format!("tenant{n:010}kid{suffix}xx"), secret.as_bytes())
                .unwrap()
                .for_tenant(tenant)
        };
        let keys = SigningKeys::new(key(TokenKind::Access, 'a'), key(TokenKind::Refresh, 'r')).unwrap();
        set.insert(keys.access_key().clone()).unwrap();
        set.insert(keys.refresh_key().clone()).unwrap();
        if n == 617 {
            tenant_keys = Some(keys);
        }
    }
    let tenant_keys = tenant_keys.unwrap();
    let tenant = tenant_keys.tenant();
    let tenant_access = tenant_keys.sign_access(&AccessClaims {
        iss: Cow::Borrowed("https://auth.example.com"),
        aud: Cow::Borrowed("tessera"),
        sub: Uuid::from_u128(5),
        sid: Uuid::from_u128(6),
        tid: tenant,
        email: Cow::Borrowed("grace@tenant.example"),
        role: Cow::Borrowed("owner"),
        iat: now,
        nbf: now,
        exp: now + 900,
        jti: Uuid::from_u128(7),
    });
    let tenant_refresh = tenant_keys.sign_refresh(&RefreshClaims {
        iss: Cow::Borrowed("https://auth.example.com"),
        sub: Uuid::from_u128(5),
        sid: Uuid::from_u128(6),
        tid: tenant,
        jti: Uuid::from_u128(8),
        iat: now,
        exp: now + 86_400,
    });

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
            let a = set.verify_access_for(&tenant_access, tenant, &validation, now, &mut buf);
            assert!(a.is_ok_and(|c| c.tid == tenant));
            let r = set.verify_refresh_for(&tenant_refresh, tenant, &validation, now, &mut buf2);
            assert!(r.is_ok());
            // Refusals do not allocate either.
            let other = set.verify_access_for(&tenant_access, DEFAULT_TENANT, &validation, now, &mut buf);
            assert!(other.is_err());
            let kid = tessera_token::header_kid(&tenant_access, &mut buf);
            assert!(kid.is_ok());
        }
        rounds.push(region.change());
    }
    assert!(
        rounds.iter().any(|s| s.allocations == 0 && s.reallocations == 0),
        "{rounds:#?}"
    );
}
