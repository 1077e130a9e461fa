//! EdDSA, ES256 and RS256 access tokens: they round-trip, their JWK is
//! what `jsonwebtoken` (a library nobody here wrote) verifies them with, and
//! every known way of forging one is refused.

// Helpers outside #[test] functions: a failed unwrap is a failed test here too.
#![allow(clippy::unwrap_used)]

use std::borrow::Cow;
use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use tessera_token::{
    generate_private_key, AccessClaims, Algorithm, Jwk, Key, KeyError, KeySet, SigningKeys, TokenBuf, TokenError,
    TokenKind, Uuid, Validation, DEFAULT_TENANT,
};

const ISS: &str = "https://auth.example.com";
const AUD: &str = "tessera";
const NOW: i64 = 1_700_000_000;
const REFRESH_SECRET: &[u8] = b"a refresh secret of 32+ bytes, for tests";
const ASYMMETRIC: [Algorithm; 3] = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256];

fn claims(tid: Uuid) -> AccessClaims<'static> {
    AccessClaims {
        iss: Cow::Borrowed(ISS),
        aud: Cow::Borrowed(AUD),
        sub: Uuid::from_u128(1),
        sid: Uuid::from_u128(2),
        tid,
        email: Cow::Borrowed("ada@example.com"),
        role: Cow::Borrowed("user"),
        iat: NOW,
        nbf: NOW,
        exp: NOW + 900,
        jti: Uuid::from_u128(3),
    }
}

/// One private key per algorithm, made once (RSA generation takes a while).
fn private_der(alg: Algorithm) -> &'static [u8] {
    static KEYS: OnceLock<Vec<(Algorithm, Vec<u8>)>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        ASYMMETRIC
            .iter()
            .map(|&alg| (alg, generate_private_key(alg, &mut rand::rngs::OsRng).unwrap().to_vec()))
            .collect()
    });
    &keys.iter().find(|(a, _)| *a == alg).unwrap().1
}

fn signing_key(alg: Algorithm, kid: &str) -> Key {
    Key::from_pkcs8(alg, TokenKind::Access, kid, private_der(alg)).unwrap()
}

fn signer(access: Key) -> SigningKeys {
    let refresh = Key::with_kid(TokenKind::Refresh, "refresh-kid", REFRESH_SECRET)
        .unwrap()
        .for_tenant(access.tenant());
    SigningKeys::new(access, refresh).unwrap()
}

fn verify(set: &KeySet, token: &str) -> Result<Uuid, TokenError> {
    let mut buf = TokenBuf::new();
    set.verify_access(token, &Validation::new(ISS, AUD), NOW, &mut buf)
        .map(|c| c.sub)
}

fn set_of(keys: impl IntoIterator<Item = Key>) -> KeySet {
    let mut set = KeySet::new();
    for key in keys {
        set.insert(key).unwrap();
    }
    set
}

/// `header.payload.signature` with the signature replaced.
fn with_signature(token: &str, signature: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').unwrap();
    format!("{input}.{}", B64.encode(signature))
}

/// A token signed HS256 with `secret` over `payload_b64`, as an attacker
/// holding only the public key would make one.
fn hs256_forgery(kid: &str, payload_b64: &str, secret: &[u8]) -> String {
    use hmac::Mac as _;
    let header = B64.encode(format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{kid}"}}"#));
    let input = format!("{header}.{payload_b64}");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
}

#[test]
fn every_algorithm_signs_and_verifies_and_signing_is_deterministic() {
    for alg in ASYMMETRIC {
        let key = signing_key(alg, &format!("{alg}-1"));
        assert_eq!(key.algorithm(), alg);
        let keys = signer(key.clone());
        let token = keys.sign_access(&claims(DEFAULT_TENANT));
        assert_eq!(
            token,
            keys.sign_access(&claims(DEFAULT_TENANT)),
            "{alg} is not deterministic"
        );
        let header = B64.decode(token.split('.').next().unwrap()).unwrap();
        assert_eq!(
            String::from_utf8(header).unwrap(),
            format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{alg}-1"}}"#)
        );
        let set = set_of([key]);
        assert_eq!(verify(&set, &token), Ok(Uuid::from_u128(1)), "{alg}");
    }
}

#[test]
fn the_public_jwk_verifies_and_cannot_sign() {
    let tenant = Uuid::from_u128(77);
    for alg in ASYMMETRIC {
        let key = signing_key(alg, "k1").for_tenant(tenant);
        let jwk = key.public_jwk().unwrap();
        assert_eq!(jwk.alg.as_deref(), Some(alg.name()));
        assert_eq!(jwk.use_.as_deref(), Some("sig"));
        assert_eq!(jwk.tid, Some(tenant));
        let json = serde_json::to_value(&jwk).unwrap();
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(json.get(private).is_none(), "{alg} JWK leaks {private}");
        }
        let public = Key::from_jwk(TokenKind::Access, &jwk).unwrap();
        assert!(!public.can_sign());
        assert_eq!((public.tenant(), public.algorithm()), (tenant, alg));
        assert_eq!(public.public_jwk(), Some(jwk));
        let token = signer(key).sign_access(&claims(tenant));
        assert_eq!(verify(&set_of([public.clone()]), &token), Ok(Uuid::from_u128(1)));
        let refresh = Key::with_kid(TokenKind::Refresh, "r", REFRESH_SECRET)
            .unwrap()
            .for_tenant(tenant);
        assert_eq!(SigningKeys::new(public, refresh).err(), Some(KeyError::CannotSign));
    }
    assert!(Key::from_secret(TokenKind::Access, REFRESH_SECRET)
        .unwrap()
        .public_jwk()
        .is_none());
}

#[test]
fn refresh_keys_must_be_hmac() {
    let access = Key::with_kid(TokenKind::Access, "a", REFRESH_SECRET).unwrap();
    let refresh = Key::from_pkcs8(Algorithm::EdDSA, TokenKind::Refresh, "r", private_der(Algorithm::EdDSA)).unwrap();
    assert_eq!(SigningKeys::new(access, refresh).err(), Some(KeyError::RefreshNotHmac));
}

#[test]
fn jsonwebtoken_verifies_tessera_tokens_with_the_published_jwk() {
    for alg in ASYMMETRIC {
        let key = signing_key(alg, "interop");
        let jwk_json = serde_json::to_string(&key.public_jwk().unwrap()).unwrap();
        let token = signer(key).sign_access(&claims(DEFAULT_TENANT));
        let their_jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(&jwk_json).unwrap();
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&their_jwk).unwrap();
        let their_alg = match alg {
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            _ => jsonwebtoken::Algorithm::RS256,
        };
        let mut validation = jsonwebtoken::Validation::new(their_alg);
        validation.set_issuer(&[ISS]);
        validation.set_audience(&[AUD]);
        validation.validate_exp = false;
        let decoded = jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).unwrap();
        assert_eq!(decoded.claims["sub"], Uuid::from_u128(1).to_string(), "{alg}");
        // And a tampered payload is refused by them too.
        let parts: Vec<&str> = token.split('.').collect();
        let evil = B64.encode(br#"{"sub":"admin"}"#);
        let tampered = format!("{}.{evil}.{}", parts[0], parts[2]);
        assert!(jsonwebtoken::decode::<serde_json::Value>(&tampered, &decoding, &validation).is_err());
    }
}

#[test]
fn tampered_tokens_are_refused() {
    for alg in ASYMMETRIC {
        let key = signing_key(alg, "k");
        let set = set_of([key.clone()]);
        let token = signer(key).sign_access(&claims(DEFAULT_TENANT));
        let parts: Vec<&str> = token.split('.').collect();
        let mut admin: serde_json::Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        admin["role"] = "admin".into();
        let payload = B64.encode(serde_json::to_vec(&admin).unwrap());
        let forged = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert_eq!(verify(&set, &forged), Err(TokenError::BadSignature), "{alg}");
        let mut signature = B64.decode(parts[2]).unwrap();
        let last = signature.len() - 1;
        signature[last] ^= 1;
        assert_eq!(
            verify(&set, &with_signature(&token, &signature)),
            Err(TokenError::BadSignature)
        );
        // Too short and too long are malformed, before any arithmetic.
        assert!(matches!(
            verify(&set, &with_signature(&token, &signature[..last])),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(
            verify(&set, &with_signature(&token, &[signature.as_slice(), &[0]].concat())),
            Err(TokenError::Malformed(_))
        ));
    }
}

#[test]
fn the_header_never_chooses_the_algorithm() {
    for alg in ASYMMETRIC {
        let key = signing_key(alg, "pinned");
        let set = set_of([key.clone()]);
        let token = signer(key).sign_access(&claims(DEFAULT_TENANT));
        let (_, rest) = token.split_once('.').unwrap();
        for other in Algorithm::ALL.into_iter().filter(|a| *a != alg) {
            let header = B64.encode(format!(r#"{{"alg":"{other}","typ":"at+jwt","kid":"pinned"}}"#));
            assert_eq!(
                verify(&set, &format!("{header}.{rest}")),
                Err(TokenError::AlgorithmMismatch),
                "{alg} key, {other} header"
            );
        }
    }
}

/// RFC 8725 §2.1: with the public key as an HMAC secret, in every form an
/// attacker may find it (PEM, DER, the JWK's JSON, the raw key bytes).
#[test]
fn the_public_key_is_no_hmac_secret() {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    for alg in ASYMMETRIC {
        let der = private_der(alg);
        let (spki_der, spki_pem) = match alg {
            Algorithm::EdDSA => {
                use ed25519_dalek::pkcs8::DecodePrivateKey as _;
                let key = ed25519_dalek::SigningKey::from_pkcs8_der(der).unwrap().verifying_key();
                (
                    key.to_public_key_der().unwrap().as_bytes().to_vec(),
                    key.to_public_key_pem(Default::default()).unwrap(),
                )
            }
            Algorithm::ES256 => {
                use p256::pkcs8::DecodePrivateKey as _;
                let key = *p256::ecdsa::SigningKey::from_pkcs8_der(der).unwrap().verifying_key();
                (
                    key.to_public_key_der().unwrap().as_bytes().to_vec(),
                    key.to_public_key_pem(Default::default()).unwrap(),
                )
            }
            _ => {
                use rsa::pkcs8::DecodePrivateKey as _;
                let key = rsa::RsaPrivateKey::from_pkcs8_der(der).unwrap().to_public_key();
                (
                    key.to_public_key_der().unwrap().as_bytes().to_vec(),
                    key.to_public_key_pem(Default::default()).unwrap(),
                )
            }
        };
        let key = signing_key(alg, "victim");
        let jwk = key.public_jwk().unwrap();
        let jwk_json = serde_json::to_vec(&jwk).unwrap();
        let raw = B64.decode(jwk.x.as_deref().or(jwk.n.as_deref()).unwrap()).unwrap();
        let token = signer(key.clone()).sign_access(&claims(DEFAULT_TENANT));
        let payload = token.split('.').nth(1).unwrap();
        let set = set_of([key]);
        for (form, secret) in [
            ("pem", spki_pem.as_bytes().to_vec()),
            ("der", spki_der),
            ("jwk", jwk_json),
            ("raw", raw),
        ] {
            let forged = hs256_forgery("victim", payload, &secret);
            assert_eq!(
                verify(&set, &forged),
                Err(TokenError::AlgorithmMismatch),
                "{alg} public key as HMAC secret ({form})"
            );
        }
    }
}

/// ECDSA signatures whose r or s is zero or not below the group order are
/// refused before any curve arithmetic (the "psychic signatures" bug,
/// CVE-2022-21449, accepted r = s = 0).
#[test]
fn ecdsa_signatures_out_of_range_are_refused() {
    // The order n of P-256.
    let n = hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    let n_plus_1 = hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632552");
    let max = [0xffu8; 32].to_vec();
    let zero = [0u8; 32].to_vec();
    let key = signing_key(Algorithm::ES256, "ec");
    let set = set_of([key.clone()]);
    let token = signer(key).sign_access(&claims(DEFAULT_TENANT));
    let good = B64.decode(token.rsplit('.').next().unwrap()).unwrap();
    let (r, s) = (good[..32].to_vec(), good[32..].to_vec());
    for (name, r, s) in [
        ("r = s = 0", &zero, &zero),
        ("r = 0", &zero, &s),
        ("s = 0", &r, &zero),
        ("r = n", &n, &s),
        ("s = n", &r, &n),
        ("s = n + 1", &r, &n_plus_1),
        ("r = 2^256 - 1", &max, &s),
        ("s = 2^256 - 1", &r, &max),
    ] {
        let forged = with_signature(&token, &[r.as_slice(), s.as_slice()].concat());
        assert_eq!(verify(&set, &forged), Err(TokenError::BadSignature), "{name}");
    }
    // The untouched signature still verifies: the cases above fail for their values.
    assert!(verify(&set, &with_signature(&token, &good)).is_ok());
    // (r, n - s) verifies for a lax ECDSA verifier: a second spelling of
    // the same token. tessera signs with low S and accepts only that.
    let mut high_s = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let diff = i16::from(n[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(diff < 0);
        high_s[i] = diff.rem_euclid(256) as u8;
    }
    let malleated = [r.as_slice(), &high_s].concat();
    assert_eq!(
        verify(&set, &with_signature(&token, &malleated)),
        Err(TokenError::BadSignature)
    );
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn ed25519_signatures_are_checked_strictly() {
    let key = signing_key(Algorithm::EdDSA, "ed");
    let set = set_of([key.clone()]);
    let token = signer(key).sign_access(&claims(DEFAULT_TENANT));
    let good = B64.decode(token.rsplit('.').next().unwrap()).unwrap();
    // S + l (the group order) is the same signature to a lax verifier.
    let l = hex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
    let mut s = good[32..].to_vec();
    let mut carry = 0u16;
    for (byte, add) in s.iter_mut().zip(&l) {
        let sum = u16::from(*byte) + u16::from(*add) + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
    let malleated = [&good[..32], s.as_slice()].concat();
    assert_eq!(
        verify(&set, &with_signature(&token, &malleated)),
        Err(TokenError::BadSignature)
    );
    assert_eq!(
        verify(&set, &with_signature(&token, &[0u8; 64])),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn bad_public_keys_are_refused_as_keys() {
    let jwk = |kty: &str, alg: &str| Jwk {
        kty: kty.to_owned(),
        kid: "k".to_owned(),
        alg: Some(alg.to_owned()),
        use_: None,
        crv: None,
        x: None,
        y: None,
        n: None,
        e: None,
        tid: None,
    };
    let refused = |jwk: &Jwk| Key::from_jwk(TokenKind::Access, jwk).is_err();
    // No alg, an unknown one, or HS256 (a JWK never carries tessera's secrets).
    let good = signing_key(Algorithm::EdDSA, "k").public_jwk().unwrap();
    for alg in [None, Some("Ed25519"), Some("HS256"), Some("none")] {
        let mut bad = good.clone();
        bad.alg = alg.map(str::to_owned);
        assert!(refused(&bad), "{alg:?}");
    }
    let mut enc = good.clone();
    enc.use_ = Some("enc".to_owned());
    assert!(refused(&enc));
    // Ed25519 points of small order (the identity, here) verify forgeries.
    let mut weak = jwk("OKP", "EdDSA");
    weak.crv = Some("Ed25519".to_owned());
    let mut identity = [0u8; 32];
    identity[0] = 1;
    weak.x = Some(B64.encode(identity));
    assert!(refused(&weak));
    // A P-256 point that is not on the curve (invalid-curve attacks).
    let mut off_curve = signing_key(Algorithm::ES256, "k").public_jwk().unwrap();
    let mut y = B64.decode(off_curve.y.as_deref().unwrap()).unwrap();
    y[31] ^= 1;
    off_curve.y = Some(B64.encode(y));
    assert!(refused(&off_curve));
    // The key type must be the algorithm's.
    let mut wrong_kty = signing_key(Algorithm::ES256, "k").public_jwk().unwrap();
    wrong_kty.alg = Some("EdDSA".to_owned());
    assert!(refused(&wrong_kty));
    // RSA under 2048 bits, over 4096, or padded with a leading zero byte.
    let rsa = signing_key(Algorithm::RS256, "k").public_jwk().unwrap();
    let n = B64.decode(rsa.n.as_deref().unwrap()).unwrap();
    let mut short = rsa.clone();
    short.n = Some(B64.encode(&n[..128]));
    assert_eq!(
        Key::from_jwk(TokenKind::Access, &short).err(),
        Some(KeyError::RsaKeySize)
    );
    let mut long = rsa.clone();
    long.n = Some(B64.encode([n.as_slice(), &n, &n].concat()));
    assert_eq!(
        Key::from_jwk(TokenKind::Access, &long).err(),
        Some(KeyError::RsaKeySize)
    );
    let mut padded = rsa.clone();
    padded.n = Some(B64.encode([&[0u8][..], &n].concat()));
    assert!(refused(&padded));
    assert!(!refused(&rsa));
}

#[test]
fn a_tenants_key_does_not_sign_for_another() {
    let (acme, globex) = (Uuid::from_u128(10), Uuid::from_u128(11));
    for alg in ASYMMETRIC {
        let acme_key = signing_key(alg, "acme").for_tenant(acme);
        let set = set_of([Key::from_jwk(TokenKind::Access, &acme_key.public_jwk().unwrap()).unwrap()]);
        // acme's key, signing a token that claims to be globex's.
        let forged = signer(acme_key.clone()).sign_access(&claims(globex));
        assert_eq!(verify(&set, &forged), Err(TokenError::TenantMismatch), "{alg}");
        let genuine = signer(acme_key).sign_access(&claims(acme));
        let mut buf = TokenBuf::new();
        assert_eq!(
            set.verify_access_for(&genuine, globex, &Validation::new(ISS, AUD), NOW, &mut buf),
            Err(TokenError::WrongTenant)
        );
        // The same public key republished with globex's tid is another key:
        // acme's tokens do not verify under it.
        let mut moved = set.get("acme").unwrap().public_jwk().unwrap();
        moved.tid = Some(globex);
        let globex_set = set_of([Key::from_jwk(TokenKind::Access, &moved).unwrap()]);
        assert_eq!(verify(&globex_set, &genuine), Err(TokenError::TenantMismatch));
    }
}

/// A bounded-by-test cache that counts what it is asked.
#[derive(Default)]
struct CountingCache {
    seen: std::sync::Mutex<std::collections::HashSet<[u8; 32]>>,
    lookups: std::sync::atomic::AtomicUsize,
}

impl tessera_token::SignatureCache for CountingCache {
    fn contains(&self, digest: &[u8; 32]) -> bool {
        self.lookups.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.seen.lock().unwrap().contains(digest)
    }
    fn insert(&self, digest: [u8; 32]) {
        self.seen.lock().unwrap().insert(digest);
    }
}

#[test]
fn a_signature_cache_skips_only_the_arithmetic() {
    let validation = Validation::new(ISS, AUD);
    for alg in ASYMMETRIC {
        let key = signing_key(alg, "cached");
        let mut set = set_of([key.clone()]);
        let token = signer(key).sign_access(&claims(DEFAULT_TENANT));
        let cache = CountingCache::default();
        let verify_cached = |set: &KeySet, token: &str, now: i64| {
            let mut buf = TokenBuf::new();
            set.verify_access_cached(token, None, &validation, now, &mut buf, &cache)
                .map(|c| c.sub)
        };
        assert_eq!(verify_cached(&set, &token, NOW), Ok(Uuid::from_u128(1)));
        assert!(cache
            .seen
            .lock()
            .unwrap()
            .contains(&tessera_token::signature_digest(&token)));
        assert_eq!(verify_cached(&set, &token, NOW), Ok(Uuid::from_u128(1)));
        // A tampered token is another digest: verified, and refused.
        let (input, _) = token.rsplit_once('.').unwrap();
        let forged = format!("{input}.{}", B64.encode(vec![1u8; token_signature_len(&token)]));
        assert_eq!(
            verify_cached(&set, &forged, NOW),
            Err(TokenError::BadSignature),
            "{alg}"
        );
        assert!(!cache
            .seen
            .lock()
            .unwrap()
            .contains(&tessera_token::signature_digest(&forged)));
        // A cached token still expires, and its claims are still read.
        assert_eq!(verify_cached(&set, &token, NOW + 2000), Err(TokenError::Expired));
        // Its key removed (revoked), the cache vouches for nothing.
        set.remove("cached");
        assert_eq!(verify_cached(&set, &token, NOW), Err(TokenError::UnknownKey));
        // What the cache holds is trusted for those bytes: it must only
        // ever be fed by verification (shown with a cache told otherwise).
        let lying = CountingCache::default();
        lying
            .seen
            .lock()
            .unwrap()
            .insert(tessera_token::signature_digest(&forged));
        let set = set_of([signing_key(alg, "cached")]);
        let mut buf = TokenBuf::new();
        assert!(set
            .verify_access_cached(&forged, None, &validation, NOW, &mut buf, &lying)
            .is_ok());
    }
    // HS256 never asks the cache: its MAC is cheaper than the lookup.
    let hmac = Key::with_kid(TokenKind::Access, "h", REFRESH_SECRET).unwrap();
    let token = signer(hmac.clone()).sign_access(&claims(DEFAULT_TENANT));
    let cache = CountingCache::default();
    let mut buf = TokenBuf::new();
    let set = set_of([hmac]);
    assert!(set
        .verify_access_cached(&token, None, &Validation::new(ISS, AUD), NOW, &mut buf, &cache)
        .is_ok());
    assert_eq!(cache.lookups.load(std::sync::atomic::Ordering::SeqCst), 0);
}

fn token_signature_len(token: &str) -> usize {
    B64.decode(token.rsplit('.').next().unwrap()).unwrap().len()
}

#[test]
fn the_bounded_cache_forgets_rather_than_grows() {
    use tessera_token::{SignatureCache as _, VerifiedSignatures};
    let cache = VerifiedSignatures::default();
    let digest = |i: u32| tessera_token::signature_digest(&i.to_string());
    for i in 0..200_000u32 {
        cache.insert(digest(i));
    }
    // 16 shards of at most 4,096: the most recent survive, most of the rest are gone.
    let remembered = (0..200_000u32).filter(|i| cache.contains(&digest(*i))).count();
    assert!(remembered <= 16 * 4096, "{remembered}");
    assert!(cache.contains(&digest(199_999)));
    assert!(!cache.contains(&digest(200_001)));
}
