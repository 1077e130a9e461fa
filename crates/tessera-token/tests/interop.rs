//! tessera's access tokens are ordinary HS256 JWTs: a service using a
//! standard library (here `jsonwebtoken`) with the same secret verifies
//! them, and tessera verifies what such a library signs with the same header
//! and claims.

// Helpers outside #[test] functions: a failed unwrap is a failed test here too.
#![allow(clippy::unwrap_used)]

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use tessera_token::{
    AccessClaims, Key, KeySet, Keyring, RefreshClaims, SigningKeys, TokenBuf, TokenError, TokenKind, Uuid, Validation,
    DEFAULT_TENANT,
};

/// What `JWT_SECRET` holds: the key is its UTF-8 bytes.
const JWT_SECRET: &str = "interop-access-secret-0123456789abcdef";
const REFRESH_SECRET: &str = "interop-refresh-secret-0123456789abcde";
const ISS: &str = "https://auth.example.com";
const AUD: &str = "tessera";

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Claims {
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
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn keyring() -> Keyring {
    Keyring::new(
        Key::from_secret(TokenKind::Access, JWT_SECRET.as_bytes()).unwrap(),
        Key::from_secret(TokenKind::Refresh, REFRESH_SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn their_validation() -> jsonwebtoken::Validation {
    let mut v = jsonwebtoken::Validation::new(Algorithm::HS256);
    v.set_issuer(&[ISS]);
    v.set_audience(&[AUD]);
    v.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
    v.validate_nbf = true;
    v
}

fn our_claims(now: i64) -> AccessClaims<'static> {
    AccessClaims {
        iss: Cow::Borrowed(ISS),
        aud: Cow::Borrowed(AUD),
        sub: Uuid::new_v4(),
        sid: Uuid::new_v4(),
        tid: DEFAULT_TENANT,
        email: Cow::Borrowed("grace.hopper@example.com"),
        role: Cow::Borrowed("admin"),
        iat: now,
        nbf: now,
        exp: now + 900,
        jti: Uuid::new_v4(),
    }
}

#[test]
fn tessera_access_tokens_verify_with_jsonwebtoken() {
    let now = now();
    let claims = our_claims(now);
    let token = keyring().sign_access(&claims);

    let key = DecodingKey::from_secret(JWT_SECRET.as_bytes());
    let data = decode::<Claims>(&token, &key, &their_validation()).unwrap();
    assert_eq!(data.header.alg, Algorithm::HS256);
    assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(data.header.kid.as_deref(), Some(keyring().access_kid()));
    assert_eq!(data.claims.sub, claims.sub);
    assert_eq!(data.claims.tid, DEFAULT_TENANT);
    assert_eq!(data.claims.email, claims.email);
    assert_eq!(data.claims.exp, claims.exp);

    // ...and their checks bite: another audience or secret fails there too.
    let mut wrong_aud = their_validation();
    wrong_aud.set_audience(&["billing"]);
    assert!(decode::<Claims>(&token, &key, &wrong_aud).is_err());
    let other = DecodingKey::from_secret(b"another-secret-0123456789abcdefghijkl");
    assert!(decode::<Claims>(&token, &other, &their_validation()).is_err());
}

#[test]
fn jsonwebtoken_tokens_with_our_header_and_claims_verify_with_tessera() {
    let now = now();
    let ring = keyring();
    let ours = our_claims(now);
    let theirs = Claims {
        iss: ISS.to_owned(),
        aud: AUD.to_owned(),
        sub: ours.sub,
        sid: ours.sid,
        tid: ours.tid,
        email: ours.email.to_string(),
        role: ours.role.to_string(),
        iat: ours.iat,
        nbf: ours.nbf,
        exp: ours.exp,
        jti: ours.jti,
    };
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(ring.access_kid().to_owned());
    let token = encode(&header, &theirs, &EncodingKey::from_secret(JWT_SECRET.as_bytes())).unwrap();

    let mut buf = TokenBuf::new();
    let verified = ring
        .verify_access(&token, &Validation::new(ISS, AUD), now, &mut buf)
        .unwrap();
    assert_eq!(verified, ours);
}

#[test]
fn jsonwebtoken_default_header_is_refused() {
    // `{"typ":"JWT","alg":"HS256"}` has no kid: tessera cannot know the key.
    let now = now();
    let ours = our_claims(now);
    let token = encode(
        &Header::default(),
        &serde_json::to_value(&ours).unwrap(),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    let mut buf = TokenBuf::new();
    assert_eq!(
        keyring().verify_access(&token, &Validation::new(ISS, AUD), now, &mut buf),
        Err(TokenError::Malformed("header lacks kid"))
    );
}

#[test]
fn refresh_tokens_do_not_verify_with_the_access_secret() {
    let now = now();
    let ring = keyring();
    let refresh = ring.sign_refresh(&RefreshClaims {
        iss: Cow::Borrowed(ISS),
        sub: Uuid::new_v4(),
        sid: Uuid::new_v4(),
        tid: DEFAULT_TENANT,
        jti: Uuid::new_v4(),
        iat: now,
        exp: now + 3600,
    });
    let key = DecodingKey::from_secret(JWT_SECRET.as_bytes());
    let mut v = jsonwebtoken::Validation::new(Algorithm::HS256);
    v.validate_aud = false;
    assert!(decode::<serde_json::Value>(&refresh, &key, &v).is_err());
}

/// The claims of a token signed before tenants existed: no `tid`.
#[derive(Serialize)]
struct LegacyClaims {
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

#[test]
fn tokens_without_tid_from_jsonwebtoken_verify_as_the_default_tenants_only() {
    let now = now();
    let ring = keyring();
    let ours = our_claims(now);
    let legacy = LegacyClaims {
        iss: ISS.to_owned(),
        aud: AUD.to_owned(),
        sub: ours.sub,
        sid: ours.sid,
        email: ours.email.to_string(),
        role: ours.role.to_string(),
        iat: ours.iat,
        nbf: ours.nbf,
        exp: ours.exp,
        jti: ours.jti,
    };
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(ring.access_kid().to_owned());
    let token = encode(&header, &legacy, &EncodingKey::from_secret(JWT_SECRET.as_bytes())).unwrap();

    let mut buf = TokenBuf::new();
    let verified = ring
        .verify_access(&token, &Validation::new(ISS, AUD), now, &mut buf)
        .unwrap();
    assert_eq!(verified.tid, DEFAULT_TENANT);
    assert_eq!(verified, ours);

    // The same secret as another tenant's key: the missing tid is not theirs.
    let tenant = Uuid::new_v4();
    let mut set = KeySet::new();
    set.insert(
        Key::from_secret(TokenKind::Access, JWT_SECRET.as_bytes())
            .unwrap()
            .for_tenant(tenant),
    )
    .unwrap();
    let mut buf = TokenBuf::new();
    assert_eq!(
        set.verify_access(&token, &Validation::new(ISS, AUD), now, &mut buf),
        Err(TokenError::TenantMismatch)
    );
}

#[test]
fn tenant_tokens_verify_with_jsonwebtoken_and_carry_tid() {
    let now = now();
    let tenant = Uuid::new_v4();
    let keys = SigningKeys::new(
        Key::with_kid(TokenKind::Access, "Xy3_kP0-abcdefghijklmn", JWT_SECRET.as_bytes())
            .unwrap()
            .for_tenant(tenant),
        Key::with_kid(TokenKind::Refresh, "Xy3_kP0-abcdefghijklmo", REFRESH_SECRET.as_bytes())
            .unwrap()
            .for_tenant(tenant),
    )
    .unwrap();
    let claims = AccessClaims {
        tid: tenant,
        ..our_claims(now)
    };
    let token = keys.sign_access(&claims);
    let data = decode::<Claims>(
        &token,
        &DecodingKey::from_secret(JWT_SECRET.as_bytes()),
        &their_validation(),
    )
    .unwrap();
    assert_eq!(data.claims.tid, tenant);
    assert_eq!(data.header.kid.as_deref(), Some("Xy3_kP0-abcdefghijklmn"));

    // And what jsonwebtoken signs for that tenant verifies in a key set.
    let mut set = KeySet::new();
    set.insert(keys.access_key().clone()).unwrap();
    let theirs = encode(
        &data.header,
        &data.claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    let mut buf = TokenBuf::new();
    assert_eq!(
        set.verify_access_for(&theirs, tenant, &Validation::new(ISS, AUD), now, &mut buf),
        Ok(claims)
    );
}
