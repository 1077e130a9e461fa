//! One test per verification rule, against tokens built by hand where the
//! rule needs a token tessera would never sign.

use std::borrow::Cow;

use base64::Engine as _;
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::{Validation, DEFAULT_TENANT, MAX_KID_CHARS, MAX_TOKEN_BYTES};

pub(crate) const ACCESS_SECRET: &[u8] = b"access-secret-0123456789abcdefghij";
pub(crate) const REFRESH_SECRET: &[u8] = b"refresh-secret-0123456789abcdefghi";
pub(crate) const NOW: i64 = 1_700_000_000;
pub(crate) const ISS: &str = "https://auth.example.com";
pub(crate) const AUD: &str = "tessera";

fn access_key() -> Key {
    Key::from_secret(TokenKind::Access, ACCESS_SECRET).unwrap()
}

fn refresh_key() -> Key {
    Key::from_secret(TokenKind::Refresh, REFRESH_SECRET).unwrap()
}

fn keyring() -> Keyring {
    Keyring::new(access_key(), refresh_key()).unwrap()
}

pub(crate) fn validation() -> Validation {
    Validation::new(ISS, AUD)
}

fn id(n: u8) -> Uuid {
    Uuid::from_bytes([n; 16])
}

pub(crate) fn claims() -> AccessClaims<'static> {
    AccessClaims {
        iss: Cow::Borrowed(ISS),
        aud: Cow::Borrowed(AUD),
        sub: id(1),
        sid: id(2),
        tid: DEFAULT_TENANT,
        email: Cow::Borrowed("ada@example.com"),
        role: Cow::Borrowed("user"),
        iat: NOW,
        nbf: NOW,
        exp: NOW + 900,
        jti: id(3),
    }
}

pub(crate) fn refresh_claims() -> RefreshClaims<'static> {
    RefreshClaims {
        iss: Cow::Borrowed(ISS),
        sub: id(1),
        sid: id(2),
        tid: DEFAULT_TENANT,
        jti: id(4),
        iat: NOW,
        exp: NOW + 7 * 86_400,
    }
}

/// Verifies with both header paths, checks they agree, returns the result.
fn verify(ring: &Keyring, token: &str, now: i64) -> Result<AccessClaims<'static>, TokenError> {
    let v = validation();
    let mut fast_buf = TokenBuf::new();
    let mut slow_buf = TokenBuf::new();
    let fast = ring.verify_access_with(token, &v, now, &mut fast_buf, true);
    let slow = ring.verify_access_with(token, &v, now, &mut slow_buf, false);
    assert_eq!(fast, slow, "fast and slow header paths disagree on {token}");
    fast.map(AccessClaims::into_owned)
}

fn verify_now(token: &str) -> Result<AccessClaims<'static>, TokenError> {
    verify(&keyring(), token, NOW)
}

fn verify_refresh(ring: &Keyring, token: &str, now: i64) -> Result<RefreshClaims<'static>, TokenError> {
    let v = validation();
    let mut fast_buf = TokenBuf::new();
    let mut slow_buf = TokenBuf::new();
    let fast = ring.verify_refresh_with(token, &v, now, &mut fast_buf, true);
    let slow = ring.verify_refresh_with(token, &v, now, &mut slow_buf, false);
    assert_eq!(fast, slow, "fast and slow header paths disagree on {token}");
    fast.map(RefreshClaims::into_owned)
}

/// A correctly signed token made of the given (already encoded) segments.
pub(crate) fn sign_segments(key: &Key, header_b64: &str, payload_b64: &str) -> String {
    let input = format!("{header_b64}.{payload_b64}");
    let signature = key.sign_input(input.as_bytes()).unwrap();
    format!("{input}.{}", B64.encode(signature.as_bytes()))
}

/// A correctly signed token with the given header and payload JSON.
pub(crate) fn sign_json(key: &Key, header: &str, payload: &str) -> String {
    sign_segments(key, &B64.encode(header), &B64.encode(payload))
}

pub(crate) fn header_json(alg: &str, typ: &str, kid: &str) -> String {
    format!(r#"{{"alg":"{alg}","typ":"{typ}","kid":"{kid}"}}"#)
}

fn access_header() -> String {
    header_json("HS256", "at+jwt", access_key().kid())
}

fn payload() -> String {
    serde_json::to_string(&claims()).unwrap()
}

fn segments(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

// --- signing ----------------------------------------------------------------

#[test]
fn signed_access_token_verifies() {
    let token = keyring().sign_access(&claims());
    assert_eq!(verify_now(&token), Ok(claims()));
}

#[test]
fn signed_refresh_token_verifies() {
    let ring = keyring();
    let token = ring.sign_refresh(&refresh_claims());
    assert_eq!(verify_refresh(&ring, &token, NOW), Ok(refresh_claims()));
}

#[test]
fn header_is_exactly_alg_typ_kid_in_that_order() {
    let ring = keyring();
    let access = segments(&ring.sign_access(&claims()));
    let refresh = segments(&ring.sign_refresh(&refresh_claims()));
    assert_eq!(
        B64.decode(&access[0]).unwrap(),
        format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#, ring.access_kid()).into_bytes()
    );
    assert_eq!(
        B64.decode(&refresh[0]).unwrap(),
        format!(r#"{{"alg":"HS256","typ":"rt+jwt","kid":"{}"}}"#, ring.refresh_kid()).into_bytes()
    );
}

#[test]
fn claims_are_serialized_in_the_documented_order() {
    let ring = keyring();
    let access = String::from_utf8(B64.decode(&segments(&ring.sign_access(&claims()))[1]).unwrap()).unwrap();
    assert_eq!(
        access,
        format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"{}","sid":"{}","tid":"{}","email":"ada@example.com","role":"user","iat":{NOW},"nbf":{NOW},"exp":{},"jti":"{}"}}"#,
            id(1).hyphenated(),
            id(2).hyphenated(),
            DEFAULT_TENANT.hyphenated(),
            NOW + 900,
            id(3).hyphenated()
        )
    );
    let refresh = String::from_utf8(B64.decode(&segments(&ring.sign_refresh(&refresh_claims()))[1]).unwrap()).unwrap();
    assert_eq!(
        refresh,
        format!(
            r#"{{"iss":"{ISS}","sub":"{}","sid":"{}","tid":"{}","jti":"{}","iat":{NOW},"exp":{}}}"#,
            id(1).hyphenated(),
            id(2).hyphenated(),
            DEFAULT_TENANT.hyphenated(),
            id(4).hyphenated(),
            NOW + 7 * 86_400
        )
    );
}

#[test]
fn signing_is_deterministic() {
    let a = keyring().sign_access(&claims());
    let b = keyring().sign_access(&claims());
    assert_eq!(a, b);
    let c = keyring().sign_refresh(&refresh_claims());
    assert_eq!(c, keyring().sign_refresh(&refresh_claims()));
}

#[test]
fn claims_larger_than_the_preallocated_buffer_still_sign() {
    let mut big = claims();
    let email = format!("{}@example.com", "a".repeat(2 * SIGN_JSON_CAPACITY));
    big.email = Cow::Owned(email);
    let token = keyring().sign_access(&big);
    assert_eq!(verify_now(&token), Ok(big));
}

// --- rule 1: length and segments ------------------------------------------------

#[test]
fn token_longer_than_max_is_too_long() {
    let mut long = claims();
    long.role = Cow::Owned("r".repeat(3000));
    let token = keyring().sign_access(&long);
    assert!(token.len() > MAX_TOKEN_BYTES);
    assert_eq!(verify_now(&token), Err(TokenError::TooLong));
    // Refused before any decoding: garbage of that length is also TooLong.
    assert_eq!(verify_now(&"!".repeat(MAX_TOKEN_BYTES + 1)), Err(TokenError::TooLong));
}

#[test]
fn token_of_exactly_max_bytes_is_not_too_long() {
    let base = keyring().sign_access(&claims());
    // Grow the role until the token is exactly MAX_TOKEN_BYTES long.
    let mut c = claims();
    let mut role_len = 1;
    let mut token = base;
    while token.len() < MAX_TOKEN_BYTES {
        role_len += 1;
        c.role = Cow::Owned("r".repeat(role_len));
        token = keyring().sign_access(&c);
    }
    if token.len() == MAX_TOKEN_BYTES {
        assert_eq!(verify_now(&token), Ok(c));
    } else {
        // Base64 grows in steps of 4 characters per 3 bytes; the step before
        // must then be accepted.
        c.role = Cow::Owned("r".repeat(role_len - 1));
        let shorter = keyring().sign_access(&c);
        assert!(shorter.len() < MAX_TOKEN_BYTES);
        assert_eq!(verify_now(&shorter), Ok(c));
    }
}

#[test]
fn two_part_token_is_malformed() {
    let token = keyring().sign_access(&claims());
    let two = token.rsplit_once('.').unwrap().0;
    assert!(matches!(verify_now(two), Err(TokenError::Malformed(_))));
}

#[test]
fn four_part_token_is_malformed() {
    let token = keyring().sign_access(&claims());
    assert!(matches!(
        verify_now(&format!("{token}.x")),
        Err(TokenError::Malformed(_))
    ));
    assert!(matches!(
        verify_now(&format!("{token}.")),
        Err(TokenError::Malformed(_))
    ));
}

#[test]
fn jwe_five_part_token_is_malformed() {
    let jwe = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGeipsEdY3mx_etLbbWSrFr05kLzcSr4qKAq7YN7e9jwQRb23nfa6c9d-StnImGyFDbSv04uVuxIp5Zms1gNxKKK2Da14B8S4rzVRltdYwam_lDp5XnZAYpQdb76FdIKLaVmqgfwX7XWRxv2322i-vDxRfqNzo_tETKzpVLzfiwQyeyPGLBIO56YJ7eObdv0je81860ppamavo35UgoRdbYaBcoh9QcfylQr66oc6vFWXRcZ_ZT2LawVCWTIy3brGPi6UklfCpIMfIjf7iGdXKHzg.48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6jiSdiwkIr3ajwQzaBtQD_A.XFBoMYUZodetZdvTiFvSkQ";
    assert_eq!(jwe.split('.').count(), 5);
    assert!(matches!(verify_now(jwe), Err(TokenError::Malformed(_))));
}

#[test]
fn empty_segments_are_malformed() {
    let token = keyring().sign_access(&claims());
    let s = segments(&token);
    for bad in [
        format!(".{}.{}", s[1], s[2]),
        format!("{}..{}", s[0], s[2]),
        format!("{}.{}.", s[0], s[1]),
        "..".to_owned(),
    ] {
        assert_eq!(verify_now(&bad), Err(TokenError::Malformed("empty segment")), "{bad:?}");
    }
    assert_eq!(
        verify_now(""),
        Err(TokenError::Malformed("a token has exactly three segments"))
    );
}

// --- rule 2: canonical base64url --------------------------------------------------

#[test]
fn padded_segments_are_rejected() {
    let key = access_key();
    // Pick a payload whose encoding needs padding, then add it.
    let mut p = payload();
    while p.len().is_multiple_of(3) {
        p.push(' ');
    }
    let padding = "=".repeat(3 - p.len() % 3);
    let padded_payload = format!("{}{padding}", B64.encode(&p));
    let token = sign_segments(&key, &B64.encode(access_header()), &padded_payload);
    assert!(matches!(verify_now(&token), Err(TokenError::Malformed(_))));
    // A padded signature (43 characters + '=').
    let good = keyring().sign_access(&claims());
    assert!(matches!(verify_now(&format!("{good}=")), Err(TokenError::Malformed(_))));
}

#[test]
fn standard_alphabet_is_rejected() {
    let key = access_key();
    let standard = base64::engine::general_purpose::STANDARD_NO_PAD;
    // Find claims whose payload encoding contains '+' or '/'.
    let mut c = claims();
    let mut n = 0u32;
    let encoded = loop {
        c.email = Cow::Owned(format!("ü{n}>?~@example.com"));
        let json = serde_json::to_string(&c).unwrap();
        let enc = standard.encode(&json);
        if enc.contains('+') || enc.contains('/') {
            break enc;
        }
        n += 1;
    };
    let token = sign_segments(&key, &B64.encode(access_header()), &encoded);
    assert!(matches!(verify_now(&token), Err(TokenError::Malformed(_))));
    // In the signature too.
    let good = keyring().sign_access(&claims());
    let s = segments(&good);
    let sig = B64.decode(&s[2]).unwrap();
    let std_sig = standard.encode(&sig);
    if std_sig != s[2] {
        let token = format!("{}.{}.{std_sig}", s[0], s[1]);
        assert!(matches!(verify_now(&token), Err(TokenError::Malformed(_))));
    }
    let plus = s[2].replacen(|c: char| c.is_ascii_alphanumeric(), "+", 1);
    let token = format!("{}.{}.{plus}", s[0], s[1]);
    assert_eq!(
        verify_now(&token),
        Err(TokenError::Malformed("signature is not canonical base64url"))
    );
}

#[test]
fn whitespace_in_segments_is_rejected() {
    let good = keyring().sign_access(&claims());
    let s = segments(&good);
    for token in [
        format!(" {good}"),
        format!("{good}\n"),
        format!("{}.{} .{}", s[0], s[1], s[2]),
        format!("{}.{}.{}\t", s[0], s[1], &s[2][..42]),
    ] {
        assert!(verify_now(&token).is_err(), "{token:?}");
    }
    // Whitespace inside a correctly signed payload segment: the signature
    // holds, the base64 does not.
    let key = access_key();
    let p = B64.encode(payload());
    let spaced = format!("{} {}", &p[..8], &p[8..]);
    let token = sign_segments(&key, &B64.encode(access_header()), &spaced);
    assert_eq!(
        verify_now(&token),
        Err(TokenError::Malformed("payload is not canonical base64url"))
    );
}

#[test]
fn signature_with_nonzero_trailing_bits_is_rejected() {
    let good = keyring().sign_access(&claims());
    let (input, sig) = good.rsplit_once('.').unwrap();
    let bytes = B64.decode(sig).unwrap();
    // The last of 43 characters carries 4 data bits and 2 trailing bits;
    // the three other values of those bits decode to the same 32 bytes.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = sig.as_bytes()[42];
    let index = ALPHABET.iter().position(|&c| c == last).unwrap();
    let mut tried = 0;
    for alt in 0..4 {
        let candidate = ALPHABET[(index & !3) | alt];
        if candidate == last {
            continue;
        }
        let forged = format!("{}{}", &sig[..42], candidate as char);
        // Lenient decoders read the same signature bytes from it.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::URL_SAFE,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
                .with_decode_allow_trailing_bits(true),
        );
        assert_eq!(lenient.decode(&forged).unwrap(), bytes);
        let token = format!("{input}.{forged}");
        assert_eq!(
            verify_now(&token),
            Err(TokenError::Malformed("signature is not canonical base64url"))
        );
        tried += 1;
    }
    assert_eq!(tried, 3);
}

#[test]
fn non_canonical_payload_encoding_is_rejected_even_when_signed() {
    let key = access_key();
    let mut p = payload();
    while p.len().is_multiple_of(3) {
        p.push(' ');
    }
    let enc = B64.encode(&p);
    // Flip a trailing bit of the last character: same bytes for a lenient decoder.
    let last = enc.as_bytes()[enc.len() - 1];
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = ALPHABET.iter().position(|&c| c == last).unwrap();
    let flipped = ALPHABET[index ^ 1] as char;
    let non_canonical = format!("{}{flipped}", &enc[..enc.len() - 1]);
    let token = sign_segments(&key, &B64.encode(access_header()), &non_canonical);
    assert_eq!(
        verify_now(&token),
        Err(TokenError::Malformed("payload is not canonical base64url"))
    );
}

#[test]
fn non_canonical_header_encoding_is_rejected() {
    let key = access_key();
    // Trailing spaces keep it valid JSON and make its encoding need padding.
    let mut h = format!("{} ", access_header());
    while h.len() % 3 == 0 {
        h.push(' ');
    }
    let enc = B64.encode(&h);
    // Valid JSON with trailing whitespace goes the slow path and verifies.
    let ok = sign_segments(&key, &enc, &B64.encode(payload()));
    assert_eq!(verify_now(&ok), Ok(claims()));
    let padded = format!("{enc}{}", "=".repeat(3 - h.len() % 3));
    let token = sign_segments(&key, &padded, &B64.encode(payload()));
    assert_eq!(
        verify_now(&token),
        Err(TokenError::Malformed("header is not canonical base64url"))
    );
}

// --- rule 3: header -----------------------------------------------------------------

fn with_header_member(member: &str) -> String {
    let kid = access_key().kid().to_owned();
    let header = format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{kid}",{member}}}"#);
    sign_json(&access_key(), &header, &payload())
}

#[test]
fn header_with_crit_is_rejected() {
    let token = with_header_member(r#""crit":["exp"]"#);
    assert_eq!(verify_now(&token), Err(TokenError::UnsupportedHeader("crit")));
}

#[test]
fn header_with_jku_x5u_jwk_x5c_is_rejected() {
    for (member, name) in [
        (r#""jku":"https://evil.example/jwks.json""#, "jku"),
        (r#""x5u":"https://evil.example/cert.pem""#, "x5u"),
        (r#""jwk":{"kty":"oct","k":"AAAA"}"#, "jwk"),
        (r#""x5c":["MIIB"]"#, "x5c"),
        (r#""x5t":"abc""#, "x5t"),
    ] {
        assert_eq!(
            verify_now(&with_header_member(member)),
            Err(TokenError::UnsupportedHeader(name))
        );
    }
}

#[test]
fn header_with_cty_b64_zip_enc_or_unknown_member_is_rejected() {
    for (member, name) in [
        (r#""cty":"JWT""#, "cty"),
        (r#""b64":false"#, "b64"),
        (r#""zip":"DEF""#, "zip"),
        (r#""enc":"A256GCM""#, "enc"),
        (r#""foo":1"#, "unknown member"),
    ] {
        assert_eq!(
            verify_now(&with_header_member(member)),
            Err(TokenError::UnsupportedHeader(name))
        );
    }
}

#[test]
fn header_with_duplicate_member_is_malformed() {
    let kid = access_key().kid().to_owned();
    for header in [
        format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{kid}","alg":"HS256"}}"#),
        format!(r#"{{"alg":"none","alg":"HS256","typ":"at+jwt","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{kid}","kid":"{kid}"}}"#),
    ] {
        let token = sign_json(&access_key(), &header, &payload());
        assert_eq!(
            verify_now(&token),
            Err(TokenError::Malformed("duplicate header member"))
        );
    }
}

#[test]
fn header_that_is_not_a_json_object_is_malformed() {
    for header in ["[]", "null", "{", "not json", r#"{"alg":"HS256"}"#] {
        let token = sign_json(&access_key(), header, &payload());
        assert!(matches!(verify_now(&token), Err(TokenError::Malformed(_))), "{header}");
    }
}

#[test]
fn unknown_kid_is_rejected() {
    let header = header_json("HS256", "at+jwt", "no-such-key");
    let token = sign_json(&access_key(), &header, &payload());
    assert_eq!(verify_now(&token), Err(TokenError::UnknownKey));
}

#[test]
fn refresh_key_kid_on_an_access_token_is_wrong_kind() {
    // Header claims an access token but names the refresh key.
    let header = header_json("HS256", "at+jwt", refresh_key().kid());
    let token = sign_json(&refresh_key(), &header, &payload());
    assert_eq!(verify_now(&token), Err(TokenError::WrongKind));
}

#[test]
fn refresh_typ_with_the_access_key_is_wrong_kind() {
    let header = header_json("HS256", "rt+jwt", access_key().kid());
    let token = sign_json(&access_key(), &header, &payload());
    assert_eq!(verify_now(&token), Err(TokenError::WrongKind));
    for typ in ["JWT", "AT+JWT", "at+JWT", "", "application/at+jwt"] {
        let header = header_json("HS256", typ, access_key().kid());
        let token = sign_json(&access_key(), &header, &payload());
        assert_eq!(verify_now(&token), Err(TokenError::WrongKind), "{typ}");
    }
}

#[test]
fn access_token_is_never_accepted_as_refresh_and_the_reverse() {
    let ring = keyring();
    let access = ring.sign_access(&claims());
    assert_eq!(verify_refresh(&ring, &access, NOW), Err(TokenError::WrongKind));
    let refresh = ring.sign_refresh(&refresh_claims());
    assert_eq!(verify(&ring, &refresh, NOW), Err(TokenError::WrongKind));
}

#[test]
fn alg_other_than_the_keys_is_algorithm_mismatch() {
    for alg in [
        "none", "None", "NONE", "hs256", "HS384", "HS512", "RS256", "ES256", "EdDSA", "",
    ] {
        let header = header_json(alg, "at+jwt", access_key().kid());
        let token = sign_json(&access_key(), &header, &payload());
        assert_eq!(verify_now(&token), Err(TokenError::AlgorithmMismatch), "{alg}");
    }
}

#[test]
fn alg_none_with_an_empty_signature_is_rejected() {
    let header = header_json("none", "at+jwt", access_key().kid());
    let unsigned = format!("{}.{}.", B64.encode(header), B64.encode(payload()));
    assert!(verify_now(&unsigned).is_err());
}

#[test]
fn header_in_another_member_order_takes_the_slow_path_and_verifies() {
    let kid = access_key().kid().to_owned();
    let header = format!(r#"{{"typ":"at+jwt","kid":"{kid}","alg":"HS256"}}"#);
    let token = sign_json(&access_key(), &header, &payload());
    assert_eq!(verify_now(&token), Ok(claims()));
    // Escapes in the header are JSON: still the same header.
    let escaped = format!(r#"{{"alg":"HS\u0032\u0035\u0036","typ":"at\u002bjwt","kid":"{kid}"}}"#);
    let token = sign_json(&access_key(), &escaped, &payload());
    assert_eq!(verify_now(&token), Ok(claims()));
}

// --- rule 4: signature ----------------------------------------------------------------

#[test]
fn tampered_payload_is_bad_signature() {
    let token = keyring().sign_access(&claims());
    let s = segments(&token);
    let mut admin = claims();
    admin.role = Cow::Borrowed("admin");
    let forged = format!(
        "{}.{}.{}",
        s[0],
        B64.encode(serde_json::to_string(&admin).unwrap()),
        s[2]
    );
    assert_eq!(verify_now(&forged), Err(TokenError::BadSignature));
}

#[test]
fn signature_of_the_wrong_length_is_malformed() {
    let token = keyring().sign_access(&claims());
    let (input, sig) = token.rsplit_once('.').unwrap();
    for bad in [&sig[..42], &sig[..40], "AAAA", &format!("{sig}AAAA")] {
        assert_eq!(
            verify_now(&format!("{input}.{bad}")),
            Err(TokenError::Malformed("signature has the wrong length for its key"))
        );
    }
}

#[test]
fn signature_by_another_secret_is_bad_signature() {
    // Same kid, different secret.
    let other = Key::with_kid(TokenKind::Access, "k1", b"another-secret-0123456789abcdefghij").unwrap();
    let mine = Key::with_kid(TokenKind::Access, "k1", ACCESS_SECRET).unwrap();
    let ring = Keyring::new(mine, refresh_key()).unwrap();
    let foreign = Keyring::new(other, refresh_key()).unwrap().sign_access(&claims());
    assert_eq!(verify(&ring, &foreign, NOW), Err(TokenError::BadSignature));
}

#[test]
fn forged_expired_token_reports_bad_signature_not_expired() {
    let token = keyring().sign_access(&claims());
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut bytes = B64.decode(sig).unwrap();
    bytes[0] ^= 0x80;
    let forged = format!("{input}.{}", B64.encode(&bytes));
    // Long after expiry, the forger still learns only "bad signature".
    assert_eq!(verify(&keyring(), &forged, NOW + 86_400), Err(TokenError::BadSignature));
}

#[test]
fn signature_is_checked_before_the_payload_is_read() {
    let token = keyring().sign_access(&claims());
    let s = segments(&token);
    // Not base64, not JSON: yet the answer is about the signature.
    for payload in ["!!!!", "e30", "bm90IGpzb24"] {
        let forged = format!("{}.{payload}.{}", s[0], s[2]);
        assert_eq!(verify_now(&forged), Err(TokenError::BadSignature), "{payload}");
    }
}

// --- rule 5: payload ---------------------------------------------------------------

fn with_payload(json: &str) -> Result<AccessClaims<'static>, TokenError> {
    verify_now(&sign_json(&access_key(), &access_header(), json))
}

/// The payload of `claims()` with one claim's JSON value replaced.
fn replace_claim(name: &str, value: &str) -> String {
    let p = payload();
    let parsed: serde_json::Value = serde_json::from_str(&p).unwrap();
    let current = format!("\"{name}\":{}", parsed[name]);
    assert!(p.contains(&current), "{current}");
    p.replacen(&current, &format!("\"{name}\":{value}"), 1)
}

#[test]
fn exp_as_a_string_is_invalid_claims() {
    let json = replace_claim("exp", "\"9999999999\"");
    assert_eq!(
        with_payload(&json),
        Err(TokenError::InvalidClaims("exp must be an integer"))
    );
}

#[test]
fn exp_as_a_float_is_invalid_claims() {
    for v in ["1e10", "1700000900.0", "1.7000009e9"] {
        let json = replace_claim("exp", v);
        assert_eq!(
            with_payload(&json),
            Err(TokenError::InvalidClaims("exp must be an integer"))
        );
    }
}

#[test]
fn missing_exp_is_invalid_claims() {
    let json = payload().replacen(&format!(",\"exp\":{}", NOW + 900), "", 1);
    assert!(!json.contains("exp"));
    assert_eq!(with_payload(&json), Err(TokenError::InvalidClaims("missing exp")));
}

#[test]
fn non_canonical_uuid_is_invalid_claims() {
    let upper = format!("\"{}\"", id(0xab).hyphenated().to_string().to_uppercase());
    let json = replace_claim("sid", &upper);
    assert_eq!(
        with_payload(&json),
        Err(TokenError::InvalidClaims("sid must be a lowercase hyphenated uuid"))
    );
}

#[test]
fn aud_array_is_invalid_claims() {
    let json = replace_claim("aud", "[\"tessera\"]");
    assert_eq!(
        with_payload(&json),
        Err(TokenError::InvalidClaims("aud must be a single string"))
    );
}

#[test]
fn duplicate_claim_in_a_signed_token_is_rejected() {
    let json = payload().replacen('}', ",\"role\":\"admin\"}", 1);
    assert_eq!(with_payload(&json), Err(TokenError::InvalidClaims("duplicate claim")));
    let json = payload().replacen('}', ",\"org\":\"a\",\"org\":\"b\"}", 1);
    assert_eq!(with_payload(&json), Err(TokenError::InvalidClaims("duplicate claim")));
}

#[test]
fn unknown_claims_are_ignored() {
    let json = payload().replacen('}', ",\"org\":\"t1\",\"extra\":{\"nested\":[1,2,{}]}}", 1);
    assert_eq!(with_payload(&json), Ok(claims()));
}

#[test]
fn trailing_garbage_after_the_payload_json_is_malformed() {
    for tail in ["x", "{}", "\u{0}", ",", "]"] {
        let json = format!("{}{tail}", payload());
        assert!(matches!(with_payload(&json), Err(TokenError::Malformed(_))), "{tail:?}");
    }
    // Trailing whitespace is still JSON.
    assert_eq!(with_payload(&format!("{} \n", payload())), Ok(claims()));
}

#[test]
fn payload_that_is_not_json_is_malformed() {
    for json in ["", "not json", "{\"iss\":", "\u{feff}{}"] {
        assert!(matches!(with_payload(json), Err(TokenError::Malformed(_))), "{json:?}");
    }
    assert!(matches!(with_payload("[]"), Err(TokenError::InvalidClaims(_))));
}

#[test]
fn escaped_strings_in_claims_verify() {
    let mut c = claims();
    c.email = Cow::Owned("\"quoted\"\\back\u{1}é😀@example.com".to_owned());
    let token = keyring().sign_access(&c);
    let v = validation();
    let mut buf = TokenBuf::new();
    let got = keyring().verify_access(&token, &v, NOW, &mut buf).unwrap();
    assert!(matches!(got.email, Cow::Owned(_)));
    assert!(matches!(got.role, Cow::Borrowed(_)));
    assert_eq!(got, c);
}

// --- rule 6: times, issuer, audience -------------------------------------------------

#[test]
fn expired_token_is_expired_after_the_leeway() {
    let token = keyring().sign_access(&claims());
    let exp = NOW + 900;
    assert_eq!(verify(&keyring(), &token, exp), Ok(claims()));
    assert_eq!(verify(&keyring(), &token, exp + 5), Ok(claims()));
    assert_eq!(verify(&keyring(), &token, exp + 6), Err(TokenError::Expired));
    assert!(verify(&keyring(), &token, i64::MAX).unwrap_err().is_expired());
}

#[test]
fn token_before_nbf_is_not_yet_valid() {
    let mut c = claims();
    c.nbf = NOW + 60;
    let token = keyring().sign_access(&c);
    assert_eq!(verify(&keyring(), &token, NOW + 55), Ok(c.clone()));
    assert_eq!(verify(&keyring(), &token, NOW + 54), Err(TokenError::NotYetValid));
}

#[test]
fn token_issued_in_the_future_is_rejected() {
    let mut c = claims();
    c.iat = NOW + 60;
    let token = keyring().sign_access(&c);
    assert_eq!(verify(&keyring(), &token, NOW + 55), Ok(c.clone()));
    assert_eq!(verify(&keyring(), &token, NOW + 54), Err(TokenError::IssuedInFuture));
}

#[test]
fn leeway_is_configurable_and_capped_at_30_seconds() {
    let token = keyring().sign_access(&claims());
    let exp = NOW + 900;
    let ring = keyring();
    let mut v = validation();
    v.leeway_secs = 0;
    let mut buf = TokenBuf::new();
    assert_eq!(
        ring.verify_access(&token, &v, exp + 1, &mut buf),
        Err(TokenError::Expired)
    );
    v.leeway_secs = 3600;
    assert!(ring.verify_access(&token, &v, exp + 30, &mut buf).is_ok());
    assert_eq!(
        ring.verify_access(&token, &v, exp + 31, &mut buf),
        Err(TokenError::Expired)
    );
    v.leeway_secs = u64::MAX;
    assert_eq!(
        ring.verify_access(&token, &v, exp + 31, &mut buf),
        Err(TokenError::Expired)
    );
}

#[test]
fn extreme_times_do_not_overflow() {
    let mut c = claims();
    c.exp = i64::MAX;
    c.iat = i64::MIN;
    c.nbf = i64::MIN;
    let token = keyring().sign_access(&c);
    assert_eq!(verify(&keyring(), &token, i64::MIN), Ok(c.clone()));
    assert_eq!(verify(&keyring(), &token, i64::MAX), Ok(c));
}

#[test]
fn wrong_issuer_is_rejected() {
    let mut c = claims();
    c.iss = Cow::Borrowed("https://evil.example.com");
    let token = keyring().sign_access(&c);
    assert_eq!(verify_now(&token), Err(TokenError::WrongIssuer));
    let mut r = refresh_claims();
    r.iss = Cow::Borrowed("https://auth.example.com/");
    let ring = keyring();
    assert_eq!(
        verify_refresh(&ring, &ring.sign_refresh(&r), NOW),
        Err(TokenError::WrongIssuer)
    );
}

#[test]
fn wrong_audience_is_rejected() {
    let mut c = claims();
    c.aud = Cow::Borrowed("Tessera");
    let token = keyring().sign_access(&c);
    assert_eq!(verify_now(&token), Err(TokenError::WrongAudience));
}

#[test]
fn expired_token_for_another_audience_is_not_reported_as_expired() {
    let mut c = claims();
    c.aud = Cow::Borrowed("billing");
    let token = keyring().sign_access(&c);
    assert_eq!(verify(&keyring(), &token, NOW + 10_000), Err(TokenError::WrongAudience));
}

#[test]
fn refresh_tokens_are_not_checked_for_audience() {
    let mut v = validation();
    v.audience = "something else".to_owned();
    let ring = keyring();
    let token = ring.sign_refresh(&refresh_claims());
    let mut buf = TokenBuf::new();
    assert!(ring.verify_refresh(&token, &v, NOW, &mut buf).is_ok());
}

#[test]
fn refresh_token_times_are_checked() {
    let ring = keyring();
    let token = ring.sign_refresh(&refresh_claims());
    let exp = NOW + 7 * 86_400;
    assert_eq!(verify_refresh(&ring, &token, exp + 6), Err(TokenError::Expired));
    assert_eq!(verify_refresh(&ring, &token, NOW - 6), Err(TokenError::IssuedInFuture));
}

// --- keyring ---------------------------------------------------------------------------

#[test]
fn keyring_refuses_keys_in_the_wrong_slot() {
    assert_eq!(
        Keyring::new(refresh_key(), refresh_key()).err(),
        Some(KeyError::WrongKind {
            expected: TokenKind::Access,
            actual: TokenKind::Refresh
        })
    );
    assert_eq!(
        Keyring::new(access_key(), access_key()).err(),
        Some(KeyError::WrongKind {
            expected: TokenKind::Refresh,
            actual: TokenKind::Access
        })
    );
}

#[test]
fn keyring_refuses_equal_kids() {
    let a = Key::with_kid(TokenKind::Access, "same", ACCESS_SECRET).unwrap();
    let r = Key::with_kid(TokenKind::Refresh, "same", REFRESH_SECRET).unwrap();
    assert_eq!(Keyring::new(a, r).err(), Some(KeyError::DuplicateKid("same".into())));
}

#[test]
fn verification_keys_verify_but_never_sign() {
    let old = Key::with_kid(TokenKind::Access, "old", b"the-old-access-secret-0123456789abc").unwrap();
    let old_ring = Keyring::new(old.clone(), refresh_key()).unwrap();
    let old_token = old_ring.sign_access(&claims());

    let mut ring = keyring();
    assert_eq!(verify(&ring, &old_token, NOW), Err(TokenError::UnknownKey));
    ring.add_verification_key(old.clone()).unwrap();
    assert_eq!(verify(&ring, &old_token, NOW), Ok(claims()));
    // New tokens are still signed by the signing key.
    assert_eq!(ring.access_kid(), access_key().kid());
    let new_token = ring.sign_access(&claims());
    assert!(new_token.starts_with(&access_key().header_b64()));
    assert_eq!(
        ring.add_verification_key(old).err(),
        Some(KeyError::DuplicateKid("old".into()))
    );
    assert_eq!(
        ring.add_verification_key(access_key()).err(),
        Some(KeyError::DuplicateKid(access_key().kid().into()))
    );
}

#[test]
fn verification_key_of_the_other_kind_is_wrong_kind() {
    // A refresh verification key does not make a refresh token an access one.
    let old_refresh = Key::with_kid(TokenKind::Refresh, "old-r", b"old-refresh-secret-0123456789abcdef").unwrap();
    let mut ring = keyring();
    ring.add_verification_key(old_refresh.clone()).unwrap();
    let header = header_json("HS256", "at+jwt", "old-r");
    let token = sign_json(&old_refresh, &header, &payload());
    assert_eq!(verify(&ring, &token, NOW), Err(TokenError::WrongKind));
}

#[test]
fn keyring_refuses_keys_of_two_tenants() {
    let other = Uuid::from_u128(0xac3e);
    assert_eq!(
        Keyring::new(access_key().for_tenant(other), refresh_key()).err(),
        Some(KeyError::TenantMismatch)
    );
    assert_eq!(
        SigningKeys::new(access_key(), refresh_key().for_tenant(other)).err(),
        Some(KeyError::TenantMismatch)
    );
    // Kind and kid are checked first, as before tenants.
    assert!(matches!(
        SigningKeys::new(refresh_key(), access_key().for_tenant(other)).err(),
        Some(KeyError::WrongKind { .. })
    ));
    let mut ring = keyring();
    let foreign = Key::with_kid(TokenKind::Access, "theirs", ACCESS_SECRET)
        .unwrap()
        .for_tenant(other);
    assert_eq!(ring.add_verification_key(foreign).err(), Some(KeyError::TenantMismatch));
    assert_eq!(ring.keys().len(), 2);
}

#[test]
fn keyring_is_a_signing_pair_and_a_key_set() {
    let mut ring = keyring();
    assert_eq!(ring.signing().access_kid(), access_key().kid());
    assert_eq!(ring.signing().refresh_kid(), refresh_key().kid());
    assert_eq!(ring.signing().tenant(), DEFAULT_TENANT);
    assert_eq!(ring.signing().access_key().kid(), ring.access_kid());
    assert_eq!(ring.signing().refresh_key().kid(), ring.refresh_kid());
    assert_eq!(ring.keys().len(), 2);
    assert!(ring.keys().contains(ring.access_kid()) && ring.keys().contains(ring.refresh_kid()));
    let old = Key::with_kid(TokenKind::Access, "old", b"the-old-access-secret-0123456789abc").unwrap();
    ring.add_verification_key(old).unwrap();
    assert_eq!(ring.keys().len(), 3);
    // The signing pair signs what the keyring signs.
    assert_eq!(ring.signing().sign_access(&claims()), ring.sign_access(&claims()));
    assert_eq!(
        ring.signing().sign_refresh(&refresh_claims()),
        ring.sign_refresh(&refresh_claims())
    );
    let shown = format!("{:?}", ring.signing());
    assert!(
        shown.contains("[redacted]") && !shown.contains("access-secret"),
        "{shown}"
    );
}

#[test]
fn keyring_of_another_tenant_verifies_that_tenants_tokens_only() {
    let tenant = Uuid::from_u128(0xac3e);
    let ring = Keyring::new(access_key().for_tenant(tenant), refresh_key().for_tenant(tenant)).unwrap();
    let mut c = claims();
    c.tid = tenant;
    assert_eq!(verify(&ring, &ring.sign_access(&c), NOW), Ok(c));
    // Its key, the default tenant's tid (or none: a legacy payload).
    assert_eq!(
        verify(&ring, &ring.sign_access(&claims()), NOW),
        Err(TokenError::TenantMismatch)
    );
    let mut r = refresh_claims();
    r.tid = tenant;
    assert_eq!(verify_refresh(&ring, &ring.sign_refresh(&r), NOW), Ok(r));
}

#[test]
fn legacy_tokens_without_tid_verify_under_the_default_keyring() {
    let legacy = payload().replacen(&format!(",\"tid\":\"{DEFAULT_TENANT}\""), "", 1);
    assert!(!legacy.contains("tid"));
    let token = sign_json(&access_key(), &access_header(), &legacy);
    assert_eq!(verify_now(&token), Ok(claims()));
    let ring = keyring();
    let refresh =
        serde_json::to_string(&refresh_claims())
            .unwrap()
            .replacen(&format!(",\"tid\":\"{DEFAULT_TENANT}\""), "", 1);
    let header = header_json("HS256", "rt+jwt", refresh_key().kid());
    let token = sign_json(&refresh_key(), &header, &refresh);
    assert_eq!(verify_refresh(&ring, &token, NOW), Ok(refresh_claims()));
}

#[test]
fn keyring_is_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Keyring>();
    check::<KeySet>();
    check::<SigningKeys>();
    check::<Key>();
    check::<TokenBuf>();
    check::<TokenError>();
}

#[test]
fn error_messages_are_lowercase_and_only_expired_is_expired() {
    let all = [
        TokenError::TooLong,
        TokenError::Malformed("x"),
        TokenError::UnsupportedHeader("crit"),
        TokenError::UnknownKey,
        TokenError::WrongKind,
        TokenError::AlgorithmMismatch,
        TokenError::BadSignature,
        TokenError::InvalidClaims("x"),
        TokenError::TenantMismatch,
        TokenError::WrongTenant,
        TokenError::Expired,
        TokenError::NotYetValid,
        TokenError::IssuedInFuture,
        TokenError::WrongIssuer,
        TokenError::WrongAudience,
    ];
    for e in &all {
        let msg = e.to_string();
        assert!(msg.chars().next().unwrap().is_lowercase(), "{msg}");
        assert_eq!(e.is_expired(), *e == TokenError::Expired);
    }
}

// --- exhaustive and property tests ---------------------------------------------------

#[test]
fn every_single_byte_change_of_a_token_fails() {
    let ring = keyring();
    let token = ring.sign_access(&claims());
    let v = validation();
    let mut buf = TokenBuf::new();
    let mut bytes = token.clone().into_bytes();
    for i in 0..bytes.len() {
        let original = bytes[i];
        for b in 0..0x80u8 {
            if b == original {
                continue;
            }
            bytes[i] = b;
            let mutated = std::str::from_utf8(&bytes).unwrap();
            assert!(
                ring.verify_access(mutated, &v, NOW, &mut buf).is_err(),
                "byte {i} changed to {b:#x} still verifies"
            );
        }
        bytes[i] = original;
    }
}

fn arb_token_text() -> impl Strategy<Value = String> {
    let good = keyring().sign_access(&claims());
    let pieces = vec![
        Just(good.clone()).boxed(),
        // Mutations of a good token: fast path may or may not match.
        (0..good.len(), 0u8..0x80)
            .prop_map(move |(i, b)| {
                let mut bytes = good.clone().into_bytes();
                bytes[i] = b;
                String::from_utf8(bytes).unwrap()
            })
            .boxed(),
        // Headers of every shape, correctly signed.
        (
            prop_oneof![Just("HS256"), Just("none"), Just("HS384")],
            prop_oneof![Just("at+jwt"), Just("rt+jwt"), Just("JWT")],
            prop_oneof![
                Just(access_key().kid().to_owned()),
                Just(refresh_key().kid().to_owned()),
                Just("x".to_owned()),
                // Not kids any key can have: never looked up by the fast path.
                Just(String::new()),
                Just("a b".to_owned()),
                Just("é".to_owned()),
                Just("k".repeat(MAX_KID_CHARS + 1)),
                // A known kid, spelled with an escape.
                Just(format!(
                    "\\u00{:x}{}",
                    access_key().kid().as_bytes()[0],
                    &access_key().kid()[1..]
                )),
            ],
            prop_oneof![Just(""), Just(r#","crit":[]"#), Just(r#","alg":"HS256""#)],
            any::<bool>(),
        )
            .prop_map(|(alg, typ, kid, extra, reorder)| {
                let header = if reorder {
                    format!(r#"{{"kid":"{kid}","typ":"{typ}","alg":"{alg}"{extra}}}"#)
                } else {
                    format!(r#"{{"alg":"{alg}","typ":"{typ}","kid":"{kid}"{extra}}}"#)
                };
                sign_json(&access_key(), &header, &payload())
            })
            .boxed(),
        ".{0,200}".boxed(),
    ];
    proptest::strategy::Union::new(pieces)
}

proptest! {
    #[test]
    fn fast_and_slow_header_paths_agree(token in arb_token_text(), refresh in any::<bool>()) {
        let ring = keyring();
        if refresh {
            let _ = verify_refresh(&ring, &token, NOW);
        } else {
            let _ = verify(&ring, &token, NOW);
        }
    }
}
