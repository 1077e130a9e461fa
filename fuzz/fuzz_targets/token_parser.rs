//! Feeds arbitrary input to `Keyring::verify_access` and `verify_refresh`:
//! nothing may panic, whatever the bytes.
//!
//! A forged signature stops verification early, so random tokens alone would
//! never reach the header's slow path or the claims parser. The first byte of
//! the input therefore picks what the rest is:
//! - `0 mod 3`: the token text itself;
//! - `1 mod 3`: a payload, sent with tessera's own header and a valid HS256
//!   signature (reaches the claims parser);
//! - `2 mod 3`: `header \0 payload`, both signed (reaches the header parser).

#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use tessera_token::{HmacKey, Keyring, TokenBuf, TokenKind, Validation};

const ACCESS_SECRET: &[u8] = b"fuzz-access-secret-0123456789abcdef";
const REFRESH_SECRET: &[u8] = b"fuzz-refresh-secret-0123456789abcde";
const NOW: i64 = 1_700_000_000;

struct Fixture {
    keyring: Keyring,
    validation: Validation,
    access_header: String,
    refresh_header: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let access = HmacKey::from_secret(TokenKind::Access, ACCESS_SECRET).unwrap();
        let refresh = HmacKey::from_secret(TokenKind::Refresh, REFRESH_SECRET).unwrap();
        let access_header = format!(
            r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#,
            access.kid()
        );
        let refresh_header = format!(
            r#"{{"alg":"HS256","typ":"rt+jwt","kid":"{}"}}"#,
            refresh.kid()
        );
        let mut keyring = Keyring::new(access, refresh).unwrap();
        // A verify-only key, so lookups see more than the signing keys.
        keyring
            .add_verification_key(
                HmacKey::with_kid(TokenKind::Access, "old", b"fuzz-old-access-secret-0123456789ab")
                    .unwrap(),
            )
            .unwrap();
        Fixture {
            keyring,
            validation: Validation::new("https://auth.example.com", "tessera"),
            access_header,
            refresh_header,
        }
    })
}

/// An HS256 token over the given raw header and payload bytes.
fn signed(secret: &[u8], header: &[u8], payload: &[u8]) -> String {
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut token);
    token
}

fn check(token: &str) {
    let f = fixture();
    let mut buf = TokenBuf::new();
    if let Ok(claims) = f.keyring.verify_access(token, &f.validation, NOW, &mut buf) {
        // Whatever verified must survive a re-sign and re-verify unchanged.
        let again = f.keyring.sign_access(&claims);
        let mut buf2 = TokenBuf::new();
        let reread = f.keyring.verify_access(&again, &f.validation, NOW, &mut buf2);
        assert!(
            again.len() > tessera_token::MAX_TOKEN_BYTES || reread.as_ref() == Ok(&claims),
            "re-signed claims differ: {claims:?} vs {reread:?}"
        );
    }
    let mut buf = TokenBuf::new();
    if let Ok(claims) = f.keyring.verify_refresh(token, &f.validation, NOW, &mut buf) {
        let again = f.keyring.sign_refresh(&claims);
        let mut buf2 = TokenBuf::new();
        let reread = f.keyring.verify_refresh(&again, &f.validation, NOW, &mut buf2);
        assert!(
            again.len() > tessera_token::MAX_TOKEN_BYTES || reread.as_ref() == Ok(&claims),
            "re-signed claims differ: {claims:?} vs {reread:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    match mode % 3 {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                check(text);
            }
        }
        1 => {
            let refresh = mode & 0x80 != 0;
            let (secret, header) = if refresh {
                (REFRESH_SECRET, &f.refresh_header)
            } else {
                (ACCESS_SECRET, &f.access_header)
            };
            check(&signed(secret, header.as_bytes(), rest));
        }
        _ => {
            let (header, payload) = match rest.iter().position(|&b| b == 0) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &b""[..]),
            };
            let secret = if mode & 0x80 != 0 { REFRESH_SECRET } else { ACCESS_SECRET };
            check(&signed(secret, header, payload));
        }
    }
});
