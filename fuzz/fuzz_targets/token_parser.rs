//! Feeds arbitrary input to `Keyring::verify_access` and `verify_refresh`,
//! to a `KeySet` of two tenants (`verify_*`, `verify_*_for`) and to
//! `header_kid`: nothing may panic, whatever the bytes, and the answers must
//! agree with each other.
//!
//! A forged signature stops verification early, so random tokens alone would
//! never reach the header's slow path or the claims parser. The first byte of
//! the input therefore picks what the rest is:
//! - `0 mod 3`: the token text itself;
//! - `1 mod 3`: a payload, sent with tessera's own header and a valid HS256
//!   signature (reaches the claims parser);
//! - `2 mod 3`: `header \0 payload`, both signed (reaches the header parser).
//!
//! Its bit `0x80` picks the refresh key over the access key, and bit `0x40`
//! the second tenant's key over the default tenant's.

#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use tessera_token::{
    header_kid, Key, KeySet, Keyring, TokenBuf, TokenError, TokenKind, Uuid, Validation, DEFAULT_TENANT,
};

const ACCESS_SECRET: &[u8] = b"fuzz-access-secret-0123456789abcdef";
const REFRESH_SECRET: &[u8] = b"fuzz-refresh-secret-0123456789abcde";
const TENANT_ACCESS_SECRET: &[u8] = b"fuzz-tenant-access-secret-0123456789";
const TENANT_REFRESH_SECRET: &[u8] = b"fuzz-tenant-refresh-secret-012345678";
/// The second tenant; its kids are what the server makes: 22 characters.
const TENANT: Uuid = Uuid::from_u128(0x7e5a_e7a0_0000_4000_8000_0000_0000_0001);
const TENANT_ACCESS_KID: &str = "TnAcc-0123456789abcdef";
const TENANT_REFRESH_KID: &str = "TnRef-0123456789abcdef";
const NOW: i64 = 1_700_000_000;

struct Fixture {
    keyring: Keyring,
    /// The keyring's keys and the second tenant's.
    set: KeySet,
    validation: Validation,
    access_header: String,
    refresh_header: String,
    tenant_access_header: String,
    tenant_refresh_header: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let access = Key::from_secret(TokenKind::Access, ACCESS_SECRET).unwrap();
        let refresh = Key::from_secret(TokenKind::Refresh, REFRESH_SECRET).unwrap();
        let access_header = format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#, access.kid());
        let refresh_header = format!(r#"{{"alg":"HS256","typ":"rt+jwt","kid":"{}"}}"#, refresh.kid());
        let mut keyring = Keyring::new(access, refresh).unwrap();
        // A verify-only key, so lookups see more than the signing keys.
        keyring
            .add_verification_key(
                Key::with_kid(TokenKind::Access, "old", b"fuzz-old-access-secret-0123456789ab").unwrap(),
            )
            .unwrap();
        let mut set = keyring.keys().clone();
        for (kind, kid, secret) in [
            (TokenKind::Access, TENANT_ACCESS_KID, TENANT_ACCESS_SECRET),
            (TokenKind::Refresh, TENANT_REFRESH_KID, TENANT_REFRESH_SECRET),
        ] {
            set.insert(Key::with_kid(kind, kid, secret).unwrap().for_tenant(TENANT))
                .unwrap();
        }
        Fixture {
            keyring,
            set,
            validation: Validation::new("https://auth.example.com", "tessera"),
            access_header,
            refresh_header,
            tenant_access_header: format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{TENANT_ACCESS_KID}"}}"#),
            tenant_refresh_header: format!(r#"{{"alg":"HS256","typ":"rt+jwt","kid":"{TENANT_REFRESH_KID}"}}"#),
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

/// What `verify_*_for(token, tenant)` must answer, given what `verify_*`
/// (any tenant) answered and the tenant of the key the header names: the
/// same claims for their tenant, `WrongTenant` for another; and for a
/// genuine token refused by a check made after the tenant's, that refusal
/// only for the key's own tenant.
fn expected_for<T: Clone>(
    any: &Result<T, TokenError>,
    tid: impl Fn(&T) -> Uuid,
    tenant: Uuid,
    key_tenant: Option<Uuid>,
) -> Result<T, TokenError> {
    match any {
        Ok(claims) if tid(claims) == tenant => Ok(claims.clone()),
        Ok(_) => Err(TokenError::WrongTenant),
        Err(
            e @ (TokenError::WrongIssuer
            | TokenError::WrongAudience
            | TokenError::NotYetValid
            | TokenError::IssuedInFuture
            | TokenError::Expired),
        ) if key_tenant == Some(tenant) => Err(e.clone()),
        Err(
            TokenError::WrongIssuer
            | TokenError::WrongAudience
            | TokenError::NotYetValid
            | TokenError::IssuedInFuture
            | TokenError::Expired,
        ) => Err(TokenError::WrongTenant),
        Err(e) => Err(e.clone()),
    }
}

/// The key set must answer as the keyring for the keyring's keys, bind
/// whatever it accepts to the key's tenant, and answer `verify_*_for` as
/// [`expected_for`] says; `header_kid` must name the key of whatever
/// verifies.
fn check_set(token: &str) {
    let f = fixture();
    let v = &f.validation;
    let (mut a, mut b, mut c) = (TokenBuf::new(), TokenBuf::new(), TokenBuf::new());
    let kid = header_kid(token, &mut c).map(str::to_owned);
    let key_tenant = kid.as_deref().ok().and_then(|k| f.set.get(k)).map(Key::tenant);

    let ring = f.keyring.verify_access(token, v, NOW, &mut a);
    let any = f.set.verify_access(token, v, NOW, &mut b).map(|c| c.into_owned());
    if ring != Err(TokenError::UnknownKey) {
        assert_eq!(ring.map(|c| c.into_owned()), any, "keyring and key set disagree");
    }
    for tenant in [DEFAULT_TENANT, TENANT] {
        let mine = f
            .set
            .verify_access_for(token, tenant, v, NOW, &mut c)
            .map(|c| c.into_owned());
        assert_eq!(mine, expected_for(&any, |c| c.tid, tenant, key_tenant), "{tenant}");
    }
    if let Ok(claims) = &any {
        assert_eq!(key_tenant, Some(claims.tid), "header_kid names another key: {kid:?}");
    }

    let ring = f.keyring.verify_refresh(token, v, NOW, &mut a);
    let any = f.set.verify_refresh(token, v, NOW, &mut b).map(|c| c.into_owned());
    if ring != Err(TokenError::UnknownKey) {
        assert_eq!(ring.map(|c| c.into_owned()), any, "keyring and key set disagree");
    }
    for tenant in [DEFAULT_TENANT, TENANT] {
        let mine = f
            .set
            .verify_refresh_for(token, tenant, v, NOW, &mut c)
            .map(|c| c.into_owned());
        assert_eq!(mine, expected_for(&any, |c| c.tid, tenant, key_tenant), "{tenant}");
    }
    if let Ok(claims) = &any {
        assert_eq!(key_tenant, Some(claims.tid), "header_kid names another key: {kid:?}");
    }
}

fn check(token: &str) {
    check_set(token);
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
            let (secret, header) = match (mode & 0x80 != 0, mode & 0x40 != 0) {
                (false, false) => (ACCESS_SECRET, &f.access_header),
                (true, false) => (REFRESH_SECRET, &f.refresh_header),
                (false, true) => (TENANT_ACCESS_SECRET, &f.tenant_access_header),
                (true, true) => (TENANT_REFRESH_SECRET, &f.tenant_refresh_header),
            };
            check(&signed(secret, header.as_bytes(), rest));
        }
        _ => {
            let (header, payload) = match rest.iter().position(|&b| b == 0) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &b""[..]),
            };
            let secret = match (mode & 0x80 != 0, mode & 0x40 != 0) {
                (false, false) => ACCESS_SECRET,
                (true, false) => REFRESH_SECRET,
                (false, true) => TENANT_ACCESS_SECRET,
                (true, true) => TENANT_REFRESH_SECRET,
            };
            check(&signed(secret, header, payload));
        }
    }
});
