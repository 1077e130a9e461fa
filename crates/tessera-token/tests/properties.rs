//! Property tests through the public API: round trips, tamper evidence, key
//! separation and tenant separation.

// Helpers outside #[test] functions: a failed unwrap is a failed test here too.
#![allow(clippy::unwrap_used)]

use std::borrow::Cow;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use sha2::Sha256;
use tessera_token::{
    AccessClaims, Key, KeySet, Keyring, RefreshClaims, SigningKeys, TokenBuf, TokenError, TokenKind, Uuid, Validation,
};

const NOW: i64 = 1_700_000_000;

/// A keyring of `tenant`, whose tokens say `tid: tenant`.
fn keyring(tenant: Uuid, access_secret: &[u8], refresh_secret: &[u8]) -> Keyring {
    Keyring::new(
        Key::from_secret(TokenKind::Access, access_secret)
            .unwrap()
            .for_tenant(tenant),
        Key::from_secret(TokenKind::Refresh, refresh_secret)
            .unwrap()
            .for_tenant(tenant),
    )
    .unwrap()
}

fn arb_uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn arb_secret() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 32..100)
}

/// Any strings, biased towards the characters JSON must escape.
fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\"\\\\/\u{0}-\u{1f}\u{7f}\u{2028}\u{2029}a-z😀é]{0,40}",
    ]
}

/// A tenant: often the default one, else any.
fn arb_tenant() -> impl Strategy<Value = Uuid> {
    prop_oneof![Just(tessera_token::DEFAULT_TENANT), arb_uuid()]
}

fn arb_access() -> impl Strategy<Value = AccessClaims<'static>> {
    (
        (arb_text(), arb_text(), arb_text(), arb_text()),
        (arb_uuid(), arb_uuid(), arb_tenant(), arb_uuid()),
        (any::<i64>(), any::<i64>(), any::<i64>()),
    )
        .prop_map(
            |((iss, aud, email, role), (sub, sid, tid, jti), (iat, nbf, exp))| AccessClaims {
                iss: Cow::Owned(iss),
                aud: Cow::Owned(aud),
                sub,
                sid,
                tid,
                email: Cow::Owned(email),
                role: Cow::Owned(role),
                iat,
                nbf,
                exp,
                jti,
            },
        )
}

fn arb_refresh() -> impl Strategy<Value = RefreshClaims<'static>> {
    (
        arb_text(),
        (arb_uuid(), arb_uuid(), arb_tenant(), arb_uuid()),
        any::<i64>(),
        any::<i64>(),
    )
        .prop_map(|(iss, (sub, sid, tid, jti), iat, exp)| RefreshClaims {
            iss: Cow::Owned(iss),
            sub,
            sid,
            tid,
            jti,
            iat,
            exp,
        })
}

/// A validation the claims pass, and a `now` inside their validity window
/// when there is one.
fn validation_for(iss: &str, aud: &str) -> Validation {
    Validation {
        issuer: iss.to_owned(),
        audience: aud.to_owned(),
        leeway_secs: 0,
    }
}

fn good_access_claims() -> impl Strategy<Value = AccessClaims<'static>> {
    arb_access().prop_map(|mut c| {
        c.iat = NOW - 10;
        c.nbf = NOW - 10;
        c.exp = NOW + 900;
        c
    })
}

proptest! {
    #[test]
    fn access_tokens_round_trip(
        claims in arb_access(),
        a in arb_secret(),
        r in arb_secret(),
    ) {
        let ring = keyring(claims.tid, &a, &r);
        let token = ring.sign_access(&claims);
        // Verify at a moment the token is valid, if it has one.
        let now = claims.nbf.max(claims.iat).max(i64::MIN + 1);
        let v = validation_for(&claims.iss, &claims.aud);
        let mut buf = TokenBuf::new();
        let result = ring.verify_access(&token, &v, now, &mut buf);
        if token.len() > tessera_token::MAX_TOKEN_BYTES {
            prop_assert_eq!(result, Err(TokenError::TooLong));
        } else if now > claims.exp {
            prop_assert_eq!(result, Err(TokenError::Expired));
        } else {
            prop_assert_eq!(result, Ok(claims.clone()));
        }
        // Signing is deterministic.
        prop_assert_eq!(ring.sign_access(&claims), token);
    }

    #[test]
    fn refresh_tokens_round_trip(claims in arb_refresh(), a in arb_secret(), r in arb_secret()) {
        let ring = keyring(claims.tid, &a, &r);
        let token = ring.sign_refresh(&claims);
        let now = claims.iat;
        let v = validation_for(&claims.iss, "unused");
        let mut buf = TokenBuf::new();
        let result = ring.verify_refresh(&token, &v, now, &mut buf);
        if token.len() > tessera_token::MAX_TOKEN_BYTES {
            prop_assert_eq!(result, Err(TokenError::TooLong));
        } else if now > claims.exp {
            prop_assert_eq!(result, Err(TokenError::Expired));
        } else {
            prop_assert_eq!(result, Ok(claims.clone()));
        }
    }

    #[test]
    fn any_single_byte_change_fails_verification(
        claims in good_access_claims(),
        position in any::<prop::sample::Index>(),
        replacement in 0u8..0x80,
    ) {
        let ring = keyring(claims.tid, b"prop-access-secret-0123456789abcdef", b"prop-refresh-secret-0123456789abcde");
        let token = ring.sign_access(&claims);
        prop_assume!(token.len() <= tessera_token::MAX_TOKEN_BYTES);
        let v = validation_for(&claims.iss, &claims.aud);
        let mut buf = TokenBuf::new();
        prop_assert!(ring.verify_access(&token, &v, NOW, &mut buf).is_ok());

        let mut bytes = token.into_bytes();
        let i = position.index(bytes.len());
        prop_assume!(bytes[i] != replacement);
        bytes[i] = replacement; // ASCII into ASCII: still a &str
        let mutated = String::from_utf8(bytes).unwrap();
        prop_assert!(ring.verify_access(&mutated, &v, NOW, &mut buf).is_err());
    }

    #[test]
    fn token_signed_by_key_a_never_verifies_under_key_b(
        claims in good_access_claims(),
        a in arb_secret(),
        b in arb_secret(),
        same_kid in any::<bool>(),
    ) {
        prop_assume!(a != b);
        let refresh = b"prop-refresh-secret-0123456789abcde";
        let make = |secret: &[u8]| {
            let key = if same_kid {
                Key::with_kid(TokenKind::Access, "shared-kid", secret).unwrap()
            } else {
                Key::from_secret(TokenKind::Access, secret).unwrap()
            };
            let refresh = Key::from_secret(TokenKind::Refresh, refresh).unwrap();
            Keyring::new(key.for_tenant(claims.tid), refresh.for_tenant(claims.tid)).unwrap()
        };
        let (ring_a, ring_b) = (make(&a), make(&b));
        let token = ring_a.sign_access(&claims);
        prop_assume!(token.len() <= tessera_token::MAX_TOKEN_BYTES);
        let v = validation_for(&claims.iss, &claims.aud);
        let mut buf = TokenBuf::new();
        prop_assert!(ring_a.verify_access(&token, &v, NOW, &mut buf).is_ok());
        let expected = if same_kid { TokenError::BadSignature } else { TokenError::UnknownKey };
        prop_assert_eq!(ring_b.verify_access(&token, &v, NOW, &mut buf), Err(expected));
    }

    #[test]
    fn arbitrary_text_never_verifies_or_panics(text in ".{0,300}", refresh in any::<bool>()) {
        let ring = keyring(tessera_token::DEFAULT_TENANT, b"prop-access-secret-0123456789abcdef", b"prop-refresh-secret-0123456789abcde");
        let v = validation_for("i", "a");
        let mut buf = TokenBuf::new();
        if refresh {
            prop_assert!(ring.verify_refresh(&text, &v, NOW, &mut buf).is_err());
        } else {
            prop_assert!(ring.verify_access(&text, &v, NOW, &mut buf).is_err());
        }
    }
}

// --- tenants --------------------------------------------------------------------------------

/// One tenant of a shared key set: its id, its signing pair, and the
/// secrets behind it (to forge with).
#[derive(Debug)]
struct Tenant {
    id: Uuid,
    keys: SigningKeys,
    access_secret: Vec<u8>,
    refresh_secret: Vec<u8>,
}

/// 2 to 7 tenants with distinct ids, distinct random 22-character kids (as
/// the server makes them) and random secrets.
fn arb_tenants() -> impl Strategy<Value = Vec<Tenant>> {
    (2usize..8).prop_flat_map(|n| {
        (
            proptest::collection::hash_set(any::<u128>(), n),
            proptest::collection::hash_set("[A-Za-z0-9_-]{22}", 2 * n),
            proptest::collection::vec((arb_secret(), arb_secret()), n),
        )
            .prop_map(|(ids, kids, secrets)| {
                let kids: Vec<String> = kids.into_iter().collect();
                ids.into_iter()
                    .zip(kids.chunks_exact(2))
                    .zip(secrets)
                    .map(|((id, kids), (access_secret, refresh_secret))| {
                        let id = Uuid::from_u128(id);
                        let access = Key::with_kid(TokenKind::Access, &kids[0], &access_secret)
                            .unwrap()
                            .for_tenant(id);
                        let refresh = Key::with_kid(TokenKind::Refresh, &kids[1], &refresh_secret)
                            .unwrap()
                            .for_tenant(id);
                        Tenant {
                            id,
                            keys: SigningKeys::new(access, refresh).unwrap(),
                            access_secret,
                            refresh_secret,
                        }
                    })
                    .collect()
            })
    })
}

/// Every key of `tenants`, except those of tenant `skip`.
fn key_set(tenants: &[Tenant], skip: Option<usize>) -> KeySet {
    let mut set = KeySet::new();
    for (_, t) in tenants.iter().enumerate().filter(|(i, _)| Some(*i) != skip) {
        set.insert(t.keys.access_key().clone()).unwrap();
        set.insert(t.keys.refresh_key().clone()).unwrap();
    }
    set
}

/// A token with the header of token `header_from` (so its kid) but signed
/// with `secret`, over that header and `claims`.
fn forged<T: serde::Serialize>(header_from: &str, secret: &[u8], claims: &T) -> String {
    let header = header_from.split('.').next().unwrap();
    let mut token = format!("{header}.");
    URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(claims).unwrap(), &mut token);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut token);
    token
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_token_signed_by_any_tenant_never_verifies_under_any_other_tenant(
        tenants in arb_tenants(),
        claims in good_access_claims(),
        signer in any::<prop::sample::Index>(),
    ) {
        let set = key_set(&tenants, None);
        let i = signer.index(tenants.len());
        let me = &tenants[i];
        let v = validation_for(&claims.iss, &claims.aud);
        let mut buf = TokenBuf::new();
        let mine = AccessClaims { tid: me.id, ..claims.clone() };
        let token = me.keys.sign_access(&mine);
        prop_assume!(token.len() <= tessera_token::MAX_TOKEN_BYTES);
        prop_assert_eq!(set.verify_access(&token, &v, NOW, &mut buf), Ok(mine.clone()));
        prop_assert_eq!(set.verify_access_for(&token, me.id, &v, NOW, &mut buf), Ok(mine.clone()));

        for (j, other) in tenants.iter().enumerate().filter(|(j, _)| *j != i) {
            // My genuine token is not theirs.
            prop_assert_eq!(
                set.verify_access_for(&token, other.id, &v, NOW, &mut buf),
                Err(TokenError::WrongTenant),
                "tenant {} as {}", i, j
            );
            // Their tid under my key: never, whoever asks.
            let claiming = AccessClaims { tid: other.id, ..claims.clone() };
            let lying = me.keys.sign_access(&claiming);
            prop_assert_eq!(set.verify_access(&lying, &v, NOW, &mut buf), Err(TokenError::TenantMismatch));
            prop_assert_eq!(
                set.verify_access_for(&lying, other.id, &v, NOW, &mut buf),
                Err(TokenError::TenantMismatch)
            );
            prop_assert_eq!(
                set.verify_access_for(&lying, me.id, &v, NOW, &mut buf),
                Err(TokenError::TenantMismatch)
            );
            // Their kid, my signature.
            for tid in [me.id, other.id] {
                let c = AccessClaims { tid, ..claims.clone() };
                let token = forged(&other.keys.sign_access(&c), &me.access_secret, &c);
                prop_assert_eq!(set.verify_access(&token, &v, NOW, &mut buf), Err(TokenError::BadSignature));
                prop_assert_eq!(
                    set.verify_access_for(&token, other.id, &v, NOW, &mut buf),
                    Err(TokenError::BadSignature)
                );
            }
        }
        // Without my keys, my token is nobody's.
        let others = key_set(&tenants, Some(i));
        prop_assert_eq!(others.verify_access(&token, &v, NOW, &mut buf), Err(TokenError::UnknownKey));
        for other in tenants.iter().filter(|t| t.id != me.id) {
            prop_assert_eq!(
                others.verify_access_for(&token, other.id, &v, NOW, &mut buf),
                Err(TokenError::UnknownKey)
            );
        }
    }

    #[test]
    fn a_refresh_token_signed_by_any_tenant_never_verifies_under_any_other_tenant(
        tenants in arb_tenants(),
        claims in arb_refresh(),
        signer in any::<prop::sample::Index>(),
    ) {
        let claims = RefreshClaims { iat: NOW - 10, exp: NOW + 3600, ..claims };
        let set = key_set(&tenants, None);
        let i = signer.index(tenants.len());
        let me = &tenants[i];
        let v = validation_for(&claims.iss, "unused");
        let mut buf = TokenBuf::new();
        let mine = RefreshClaims { tid: me.id, ..claims.clone() };
        let token = me.keys.sign_refresh(&mine);
        prop_assume!(token.len() <= tessera_token::MAX_TOKEN_BYTES);
        prop_assert_eq!(set.verify_refresh(&token, &v, NOW, &mut buf), Ok(mine.clone()));
        prop_assert_eq!(set.verify_refresh_for(&token, me.id, &v, NOW, &mut buf), Ok(mine.clone()));

        for other in tenants.iter().filter(|t| t.id != me.id) {
            prop_assert_eq!(
                set.verify_refresh_for(&token, other.id, &v, NOW, &mut buf),
                Err(TokenError::WrongTenant)
            );
            let lying = me.keys.sign_refresh(&RefreshClaims { tid: other.id, ..claims.clone() });
            prop_assert_eq!(set.verify_refresh(&lying, &v, NOW, &mut buf), Err(TokenError::TenantMismatch));
            prop_assert_eq!(
                set.verify_refresh_for(&lying, other.id, &v, NOW, &mut buf),
                Err(TokenError::TenantMismatch)
            );
            for tid in [me.id, other.id] {
                let c = RefreshClaims { tid, ..claims.clone() };
                let token = forged(&other.keys.sign_refresh(&c), &me.refresh_secret, &c);
                prop_assert_eq!(set.verify_refresh(&token, &v, NOW, &mut buf), Err(TokenError::BadSignature));
                prop_assert_eq!(
                    set.verify_refresh_for(&token, other.id, &v, NOW, &mut buf),
                    Err(TokenError::BadSignature)
                );
            }
        }
        let others = key_set(&tenants, Some(i));
        prop_assert_eq!(others.verify_refresh(&token, &v, NOW, &mut buf), Err(TokenError::UnknownKey));
    }
}
