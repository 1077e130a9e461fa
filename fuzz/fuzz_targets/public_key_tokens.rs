//! Feeds arbitrary input to a `KeySet` of EdDSA, ES256 and RS256 access
//! keys (and one HS256 key, for algorithm confusion): nothing may panic,
//! whatever the bytes, and only what the keys signed may verify.
//!
//! The first byte of the input picks what the rest is:
//! - `0 mod 3`: the token text itself;
//! - `1 mod 3`: a payload, signed by the Ed25519 key (reaches the claims
//!   parser behind a public-key signature check);
//! - `2 mod 3`: a real header and payload of that key with the rest as the
//!   signature bytes (ECDSA r and s of any value, RSA signatures of any
//!   length, Ed25519 non-canonical S: the verifiers' own parsing).

#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use tessera_token::{
    generate_private_key, header_kid, Algorithm, Key, KeySet, SigningKeys, TokenBuf, TokenKind, Validation,
};

const NOW: i64 = 1_700_000_000;

struct Fixture {
    set: KeySet,
    /// Signing pairs whose access keys are in `set`: EdDSA, ES256, RS256.
    signers: Vec<SigningKeys>,
    /// The EdDSA key, to sign arbitrary payloads.
    ed25519: ed25519_dalek::SigningKey,
    validation: Validation,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // A fixed seed: the same keys every run, so crashes reproduce.
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::from_seed([7; 32]);
        let refresh = Key::with_kid(TokenKind::Refresh, "refresh", b"fuzz-refresh-secret-0123456789abcde").unwrap();
        let mut set = KeySet::new();
        let mut signers = Vec::new();
        let mut ed25519 = None;
        for (alg, kid) in [(Algorithm::EdDSA, "ed"), (Algorithm::ES256, "ec"), (Algorithm::RS256, "rsa")] {
            let der = generate_private_key(alg, &mut rng).unwrap();
            if alg == Algorithm::EdDSA {
                use ed25519_dalek::pkcs8::DecodePrivateKey as _;
                ed25519 = Some(ed25519_dalek::SigningKey::from_pkcs8_der(&der).unwrap());
            }
            let key = Key::from_pkcs8(alg, TokenKind::Access, kid, &der).unwrap();
            set.insert(Key::from_jwk(TokenKind::Access, &key.public_jwk().unwrap()).unwrap())
                .unwrap();
            signers.push(SigningKeys::new(key, refresh.clone()).unwrap());
        }
        set.insert(Key::with_kid(TokenKind::Access, "hmac", b"fuzz-access-secret-0123456789abcdef").unwrap())
            .unwrap();
        Fixture {
            set,
            signers,
            ed25519: ed25519.unwrap(),
            validation: Validation::new("https://auth.example.com", "tessera"),
        }
    })
}

/// An EdDSA token with the Ed25519 key's own header over raw `payload`.
fn signed(f: &Fixture, payload: &[u8]) -> String {
    use ed25519_dalek::Signer as _;
    let mut input = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","typ":"at+jwt","kid":"ed"}"#);
    input.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut input);
    let signature = f.ed25519.sign(input.as_bytes()).to_bytes();
    input.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut input);
    input
}

fn sample_claims() -> tessera_token::AccessClaims<'static> {
    use std::borrow::Cow;
    tessera_token::AccessClaims {
        iss: Cow::Borrowed("https://auth.example.com"),
        aud: Cow::Borrowed("tessera"),
        sub: tessera_token::Uuid::from_u128(1),
        sid: tessera_token::Uuid::from_u128(2),
        tid: tessera_token::DEFAULT_TENANT,
        email: Cow::Borrowed("fuzz@example.com"),
        role: Cow::Borrowed("user"),
        iat: NOW,
        nbf: NOW,
        exp: NOW + 900,
        jti: tessera_token::Uuid::from_u128(3),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let f = fixture();
    let signer = &f.signers[usize::from(selector >> 4) % f.signers.len()];
    let token = match selector % 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => signed(f, rest),
        _ => {
            let genuine = signer.sign_access(&sample_claims());
            let (input, _) = genuine.rsplit_once('.').unwrap_or_default();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(rest))
        }
    };
    let mut buf = TokenBuf::new();
    let verified = f.set.verify_access(&token, &f.validation, NOW, &mut buf).map(|c| c.into_owned());
    if selector % 3 == 2 {
        // Arbitrary signature bytes over a genuine input verify only if
        // they are the signature the key makes (signing is deterministic).
        let genuine = signer.sign_access(&sample_claims());
        if verified.is_ok() {
            assert_eq!(token, genuine, "a signature the key did not make verified");
        }
    }
    if let Ok(claims) = &verified {
        let mut buf = TokenBuf::new();
        assert!(header_kid(&token, &mut buf).is_ok());
        assert_eq!(claims.tid, tessera_token::DEFAULT_TENANT);
    }
    let mut buf = TokenBuf::new();
    let _ = header_kid(&token, &mut buf);
});
