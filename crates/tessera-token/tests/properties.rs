//! Property tests through the public API: round trips, tamper evidence and
//! key separation.

// Helpers outside #[test] functions: a failed unwrap is a failed test here too.
#![allow(clippy::unwrap_used)]

use std::borrow::Cow;

use proptest::prelude::*;
use tessera_token::{AccessClaims, HmacKey, Keyring, RefreshClaims, TokenBuf, TokenError, TokenKind, Uuid, Validation};

const NOW: i64 = 1_700_000_000;

fn keyring(access_secret: &[u8], refresh_secret: &[u8]) -> Keyring {
    Keyring::new(
        HmacKey::from_secret(TokenKind::Access, access_secret).unwrap(),
        HmacKey::from_secret(TokenKind::Refresh, refresh_secret).unwrap(),
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

fn arb_access() -> impl Strategy<Value = AccessClaims<'static>> {
    (
        (arb_text(), arb_text(), arb_text(), arb_text()),
        (arb_uuid(), arb_uuid(), arb_uuid()),
        (any::<i64>(), any::<i64>(), any::<i64>()),
    )
        .prop_map(
            |((iss, aud, email, role), (sub, sid, jti), (iat, nbf, exp))| AccessClaims {
                iss: Cow::Owned(iss),
                aud: Cow::Owned(aud),
                sub,
                sid,
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
        arb_uuid(),
        arb_uuid(),
        arb_uuid(),
        any::<i64>(),
        any::<i64>(),
    )
        .prop_map(|(iss, sub, sid, jti, iat, exp)| RefreshClaims {
            iss: Cow::Owned(iss),
            sub,
            sid,
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
        let ring = keyring(&a, &r);
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
        let ring = keyring(&a, &r);
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
        let ring = keyring(b"prop-access-secret-0123456789abcdef", b"prop-refresh-secret-0123456789abcde");
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
                HmacKey::with_kid(TokenKind::Access, "shared-kid", secret).unwrap()
            } else {
                HmacKey::from_secret(TokenKind::Access, secret).unwrap()
            };
            Keyring::new(key, HmacKey::from_secret(TokenKind::Refresh, refresh).unwrap()).unwrap()
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
        let ring = keyring(b"prop-access-secret-0123456789abcdef", b"prop-refresh-secret-0123456789abcde");
        let v = validation_for("i", "a");
        let mut buf = TokenBuf::new();
        if refresh {
            prop_assert!(ring.verify_refresh(&text, &v, NOW, &mut buf).is_err());
        } else {
            prop_assert!(ring.verify_access(&text, &v, NOW, &mut buf).is_err());
        }
    }
}
