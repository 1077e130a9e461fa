use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::asym::{AsymKey, SignatureBytes};
use crate::b64::B64;
use crate::error::KeyError;
use crate::hmac::{HmacSha256, MAC_LEN};
use crate::jwk::Jwk;
use crate::DEFAULT_TENANT;
use uuid::Uuid;

/// Shortest HMAC secret accepted, in bytes (RFC 7518 §3.2: at least the hash
/// output size).
pub const MIN_SECRET_BYTES: usize = 32;
/// Longest `kid` accepted, in characters.
pub const MAX_KID_CHARS: usize = 64;

/// Which of the two token kinds a key signs, or a verifier expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Short-lived bearer token, header `typ` `at+jwt` (RFC 9068).
    Access,
    /// Long-lived token that only tessera reads, header `typ` `rt+jwt`.
    Refresh,
}

impl TokenKind {
    /// The header `typ` of this kind of token.
    pub const fn typ(self) -> &'static str {
        match self {
            Self::Access => "at+jwt",
            Self::Refresh => "rt+jwt",
        }
    }

    /// `"access"` or `"refresh"`, as used in kid derivation.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }
}

/// A JWS signing algorithm (RFC 7518, RFC 8037), each bound to its own kind
/// of key: a key is made for one algorithm and verifies nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC with SHA-256: one shared secret signs and verifies.
    HS256,
    /// Ed25519 (RFC 8037).
    EdDSA,
    /// ECDSA on P-256 with SHA-256; signatures are `r || s`, 64 bytes.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048 to 4096-bit keys.
    RS256,
}

impl Algorithm {
    /// Every algorithm, HMAC first.
    pub const ALL: [Self; 4] = [Self::HS256, Self::EdDSA, Self::ES256, Self::RS256];

    /// The header `alg` value, compared case-sensitively. Every one is five
    /// characters, which the verifier's fast path relies on.
    pub const fn name(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
        }
    }

    /// The algorithm named exactly `name` (case-sensitive, as in headers).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }

    /// Whether the key that verifies is public (anything but HS256).
    pub const fn is_asymmetric(self) -> bool {
        !matches!(self, Self::HS256)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A key for exactly one [`Algorithm`], one [`TokenKind`] and one tenant.
///
/// HS256 keys ([`Key::from_secret`], [`Key::with_kid`]) use the secret as
/// given (the UTF-8 bytes of `JWT_SECRET`), so any standard JWT library
/// verifies tessera's access tokens with the same secret; the key keeps
/// only HMAC's precomputed keyed state, never the secret itself, and wipes
/// that state when dropped. Public-key keys ([`Key::from_pkcs8`] signs and
/// verifies, [`Key::from_jwk`] only verifies) publish their public half as
/// a [`Jwk`]; their private half is wiped when the last clone is dropped.
/// `Debug` shows kid, kind, algorithm and tenant only.
///
/// The tenant is part of the key, not of the token: a token is bound to the
/// tenant of the key that verified its signature, and its `tid` claim must
/// agree (see [`crate::KeySet`]). Keys are built for [`DEFAULT_TENANT`];
/// [`Key::for_tenant`] moves one to another tenant.
///
/// Everything an HS256 verification reads of the key is inline, in 128
/// bytes: a [`crate::KeySet`] of 400,000 keys finds one by kid and checks a
/// signature with it reading two cache lines of one table slot, rather than
/// chasing a pointer to a kid elsewhere on the heap. Public keys are behind
/// one pointer; their arithmetic costs far more than the miss.
#[derive(Clone)]
pub struct Key {
    material: Material,
    kid: Kid,
    kind: TokenKind,
    tenant: Uuid,
}

#[derive(Clone)]
enum Material {
    Hmac(HmacSha256),
    Asym(Algorithm, Arc<AsymKey>),
}

/// Kids up to this long are stored inline: every kid tessera makes is
/// (derived ones are 16 characters, the server's random ones 22).
const KID_INLINE: usize = 30;

/// A valid kid's bytes (ASCII, see [`valid_kid`]), inline when short.
#[derive(Clone)]
enum Kid {
    Inline { len: u8, bytes: [u8; KID_INLINE] },
    Long(Box<[u8]>),
}

impl Kid {
    fn new(kid: &[u8]) -> Self {
        let mut bytes = [0u8; KID_INLINE];
        match bytes.get_mut(..kid.len()) {
            Some(prefix) => {
                prefix.copy_from_slice(kid);
                // At most KID_INLINE (30).
                let len = kid.len() as u8;
                Self::Inline { len, bytes }
            }
            None => Self::Long(kid.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Long(bytes) => bytes,
        }
    }
}

/// A signature a key made: 32 bytes for HS256, up to 512 for RSA-4096.
/// It lives on the signer's stack for one token, so its size is no cost
/// worth a heap allocation per signature.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Signature {
    Hmac([u8; MAC_LEN]),
    Asym(SignatureBytes),
}

impl Signature {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Hmac(tag) => tag,
            Self::Asym(signature) => signature.as_bytes(),
        }
    }
}

impl Key {
    /// An HS256 key of [`DEFAULT_TENANT`] whose `kid` is derived from the
    /// secret and kind: the first 16 characters of
    /// base64url(SHA-256(`"tessera-kid-v1\0" || kind || "\0" || secret`)),
    /// with kind `access` or `refresh`. The same secret gives the same kid
    /// on every instance and every restart; the kid reveals nothing useful
    /// about the secret.
    ///
    /// Refuses secrets shorter than [`MIN_SECRET_BYTES`].
    pub fn from_secret(kind: TokenKind, secret: &[u8]) -> Result<Self, KeyError> {
        check_secret(secret)?;
        let digest = Sha256::new()
            .chain_update(b"tessera-kid-v1\0")
            .chain_update(kind.as_str().as_bytes())
            .chain_update(b"\0")
            .chain_update(secret)
            .finalize();
        // 12 bytes encode to exactly 16 base64url characters.
        let mut kid = [0u8; 16];
        let len = B64.encode_slice(&digest[..12], &mut kid).unwrap_or_default();
        Ok(Self::build(kind, &kid[..len], Material::Hmac(HmacSha256::new(secret))))
    }

    /// An HS256 key of [`DEFAULT_TENANT`] with an explicit `kid` (for
    /// stored keys; the server makes them random, 22 characters): 1 to
    /// [`MAX_KID_CHARS`] characters of `A-Z a-z 0-9 _ -`. Refuses secrets
    /// shorter than [`MIN_SECRET_BYTES`].
    pub fn with_kid(kind: TokenKind, kid: &str, secret: &[u8]) -> Result<Self, KeyError> {
        check_kid(kid)?;
        check_secret(secret)?;
        Ok(Self::build(
            kind,
            kid.as_bytes(),
            Material::Hmac(HmacSha256::new(secret)),
        ))
    }

    /// A signing key of [`DEFAULT_TENANT`] for public-key algorithm `alg`,
    /// from its private key in PKCS#8 DER (see [`crate::generate_private_key`]).
    /// RSA keys must have 2048 to 4096 bits.
    pub fn from_pkcs8(alg: Algorithm, kind: TokenKind, kid: &str, der: &[u8]) -> Result<Self, KeyError> {
        check_kid(kid)?;
        let key = AsymKey::from_pkcs8(alg, der)?;
        Ok(Self::build(kind, kid.as_bytes(), Material::Asym(alg, Arc::new(key))))
    }

    /// A verify-only key from a public JWK, for `kind` tokens. The JWK
    /// must name its algorithm (`alg`: a verifier never guesses it), be of
    /// the key type and curve that algorithm uses, be for signatures (`use`
    /// absent or `sig`), and hold a valid public key. The key belongs to
    /// the JWK's `tid`, or to [`DEFAULT_TENANT`] without one.
    pub fn from_jwk(kind: TokenKind, jwk: &Jwk) -> Result<Self, KeyError> {
        check_kid(&jwk.kid)?;
        let alg = jwk
            .alg
            .as_deref()
            .and_then(Algorithm::from_name)
            .ok_or(KeyError::UnsupportedAlgorithm)?;
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(KeyError::InvalidKey("the JWK is not for signatures"));
        }
        let key = AsymKey::from_jwk(alg, jwk)?;
        let key = Self::build(kind, jwk.kid.as_bytes(), Material::Asym(alg, Arc::new(key)));
        Ok(key.for_tenant(jwk.tid.unwrap_or(DEFAULT_TENANT)))
    }

    /// `kid` is valid: 1 to [`MAX_KID_CHARS`] ASCII bytes.
    fn build(kind: TokenKind, kid: &[u8], material: Material) -> Self {
        Self {
            material,
            kid: Kid::new(kid),
            kind,
            tenant: DEFAULT_TENANT,
        }
    }

    /// The same key, for `tenant`. Its tokens verify only as that tenant's:
    /// their `tid` must be `tenant`.
    #[must_use]
    pub fn for_tenant(mut self, tenant: Uuid) -> Self {
        self.tenant = tenant;
        self
    }

    /// The tenant whose tokens this key signs and verifies.
    pub fn tenant(&self) -> Uuid {
        self.tenant
    }

    /// The key id, carried in the header of every token this key signs.
    pub fn kid(&self) -> &str {
        // ASCII by construction, so this never falls back.
        std::str::from_utf8(self.kid_bytes()).unwrap_or_default()
    }

    /// The kid's bytes, as the key set hashes and compares them.
    pub(crate) fn kid_bytes(&self) -> &[u8] {
        self.kid.as_bytes()
    }

    /// The kind of token this key signs and verifies.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The algorithm this key is for. Verification uses it, never the header.
    pub fn algorithm(&self) -> Algorithm {
        match &self.material {
            Material::Hmac(_) => Algorithm::HS256,
            Material::Asym(alg, _) => *alg,
        }
    }

    /// Whether the key can sign: HS256 keys and keys built from a private
    /// key can, keys built from a JWK only verify.
    pub fn can_sign(&self) -> bool {
        match &self.material {
            Material::Hmac(_) => true,
            Material::Asym(_, key) => key.can_sign(),
        }
    }

    /// The public JWK of a public-key key (with `alg`, `use: sig`, `kid`
    /// and `tid`); `None` for HS256, whose key is secret.
    pub fn public_jwk(&self) -> Option<Jwk> {
        let Material::Asym(alg, key) = &self.material else {
            return None;
        };
        let mut jwk = Jwk {
            kty: String::new(),
            kid: self.kid().to_owned(),
            alg: Some(alg.name().to_owned()),
            use_: Some("sig".to_owned()),
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
            tid: Some(self.tenant),
        };
        key.write_public_members(&mut jwk);
        Some(jwk)
    }

    /// The length of this key's signatures, in bytes.
    pub(crate) fn signature_len(&self) -> usize {
        match &self.material {
            Material::Hmac(_) => MAC_LEN,
            Material::Asym(_, key) => key.signature_len(),
        }
    }

    /// Appends the header segment this key signs with: the base64url of
    /// [`header_prefix`], the kid and [`HEADER_SUFFIX`], written without
    /// allocating.
    pub(crate) fn write_header_b64(&self, out: &mut String) {
        let mut json = [0u8; HEADER_JSON_MAX];
        let len = header_json_into(self.algorithm(), self.kind, self.kid_bytes(), &mut json);
        B64.encode_string(&json[..len], out);
    }

    /// The header segment this key signs with.
    #[cfg(test)]
    pub(crate) fn header_b64(&self) -> String {
        let mut out = String::new();
        self.write_header_b64(&mut out);
        out
    }

    /// The signature of `input`; `None` for a verify-only key.
    pub(crate) fn sign_input(&self, input: &[u8]) -> Option<Signature> {
        match &self.material {
            Material::Hmac(mac) => Some(Signature::Hmac(mac.mac(input))),
            Material::Asym(_, key) => key.sign(input).map(Signature::Asym),
        }
    }

    /// Whether `signature` (already checked to be [`Key::signature_len`]
    /// bytes) is this key's over `input`.
    pub(crate) fn verify_input(&self, input: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            Material::Hmac(mac) => match <&[u8; MAC_LEN]>::try_from(signature) {
                Ok(tag) => mac.verify(input, tag),
                Err(_) => false,
            },
            Material::Asym(_, key) => key.verify(input, signature),
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kind", &self.kind)
            .field("tenant", &self.tenant)
            .field("kid", &self.kid())
            .field("algorithm", &self.algorithm())
            .field("secret", &format_args!("[redacted]"))
            .finish()
    }
}

fn check_secret(secret: &[u8]) -> Result<(), KeyError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(KeyError::SecretTooShort);
    }
    Ok(())
}

fn check_kid(kid: &str) -> Result<(), KeyError> {
    if !valid_kid(kid.as_bytes()) {
        return Err(KeyError::InvalidKid);
    }
    Ok(())
}

/// The start of the header of every token of `kind` signed with `alg`, up
/// to the kid's opening quote: `{"alg":"<alg>","typ":"at+jwt"|"rt+jwt","kid":"`,
/// written to the start of `out`; returns its length (37 bytes for every
/// algorithm and kind).
///
/// The kid is restricted to characters JSON never escapes, so prefix, kid
/// and [`HEADER_SUFFIX`] are the header's one and only canonical
/// serialization; the verifier's fast path (`keyset::header_kid_candidate`)
/// matches exactly this form.
fn header_prefix_into(alg: Algorithm, kind: TokenKind, out: &mut [u8]) -> usize {
    let mut len = 0;
    for part in [r#"{"alg":""#, alg.name(), r#"","typ":""#, kind.typ(), r#"","kid":""#] {
        let end = (len + part.len()).min(out.len());
        out[len..end].copy_from_slice(&part.as_bytes()[..end - len]);
        len = end;
    }
    len
}

/// The header prefix of `alg` and `kind` (see [`header_prefix_into`]).
#[cfg(test)]
pub(crate) fn header_prefix(alg: Algorithm, kind: TokenKind) -> Vec<u8> {
    let mut out = [0u8; HEADER_PREFIX_LEN];
    let len = header_prefix_into(alg, kind, &mut out);
    out[..len].to_vec()
}

/// The length of every header prefix (see [`header_prefix_into`]).
const HEADER_PREFIX_LEN: usize = r#"{"alg":"HS256","typ":"at+jwt","kid":""#.len();

/// The end of every header, after the kid.
pub(crate) const HEADER_SUFFIX: &[u8] = br#""}"#;

/// The longest header a key signs with, in bytes.
const HEADER_JSON_MAX: usize = HEADER_PREFIX_LEN + MAX_KID_CHARS + HEADER_SUFFIX.len();

/// Writes the JOSE header of a token `kind` signed with `alg` by key `kid`
/// to `out` and returns its length.
fn header_json_into(alg: Algorithm, kind: TokenKind, kid: &[u8], out: &mut [u8; HEADER_JSON_MAX]) -> usize {
    let mut len = header_prefix_into(alg, kind, out);
    for part in [kid, HEADER_SUFFIX] {
        let end = (len + part.len()).min(HEADER_JSON_MAX);
        out[len..end].copy_from_slice(&part[..end - len]);
        len = end;
    }
    len
}

/// Whether `kid` is 1 to [`MAX_KID_CHARS`] characters of `A-Z a-z 0-9 _ -`.
pub(crate) fn valid_kid(kid: &[u8]) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_CHARS
        && kid.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn secrets_shorter_than_32_bytes_are_refused() {
        assert_eq!(
            Key::from_secret(TokenKind::Access, &SECRET[..31]).err(),
            Some(KeyError::SecretTooShort)
        );
        assert_eq!(
            Key::with_kid(TokenKind::Access, "k1", b"").err(),
            Some(KeyError::SecretTooShort)
        );
        assert!(Key::from_secret(TokenKind::Access, SECRET).is_ok());
    }

    #[test]
    fn derived_kid_is_stable_and_depends_on_kind_and_secret() {
        let a = Key::from_secret(TokenKind::Access, SECRET).unwrap();
        let again = Key::from_secret(TokenKind::Access, SECRET).unwrap();
        let refresh = Key::from_secret(TokenKind::Refresh, SECRET).unwrap();
        let other = Key::from_secret(TokenKind::Access, b"0123456789abcdef0123456789abcdeF").unwrap();
        assert_eq!(a.kid(), again.kid());
        assert_eq!(a.kid().len(), 16);
        assert_ne!(a.kid(), refresh.kid());
        assert_ne!(a.kid(), other.kid());
    }

    #[test]
    fn derived_kid_follows_the_documented_formula() {
        let mut input = b"tessera-kid-v1\0refresh\0".to_vec();
        input.extend_from_slice(SECRET);
        let expected = B64.encode(Sha256::digest(&input));
        let key = Key::from_secret(TokenKind::Refresh, SECRET).unwrap();
        assert_eq!(key.kid(), &expected[..16]);
    }

    #[test]
    fn explicit_kids_are_checked() {
        assert!(Key::with_kid(TokenKind::Refresh, "2024-01_a", SECRET).is_ok());
        assert!(Key::with_kid(TokenKind::Refresh, &"k".repeat(64), SECRET).is_ok());
        for bad in ["", "a b", "a\"b", "a/b", "é", "a.b", &"k".repeat(65)] {
            assert_eq!(
                Key::with_kid(TokenKind::Refresh, bad, SECRET).err(),
                Some(KeyError::InvalidKid),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let secret = b"super-secret-value-that-must-not-leak";
        let key = Key::with_kid(TokenKind::Access, "k1", secret).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains("k1") && shown.contains("[redacted]"), "{shown}");
        assert!(!shown.contains("super-secret"), "{shown}");
        let tenant = Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
        let shown = format!("{:?}", key.for_tenant(tenant));
        assert!(shown.contains("12345678-9abc-def0-1234-56789abcdef0"), "{shown}");
        assert!(!shown.contains("super-secret"), "{shown}");
    }

    #[test]
    fn keys_are_the_default_tenants_until_moved() {
        let key = Key::from_secret(TokenKind::Access, SECRET).unwrap();
        assert_eq!(key.tenant(), DEFAULT_TENANT);
        assert_eq!(
            Key::with_kid(TokenKind::Access, "k", SECRET).unwrap().tenant(),
            DEFAULT_TENANT
        );
        let tenant = Uuid::from_u128(7);
        let moved = key.clone().for_tenant(tenant);
        assert_eq!(moved.tenant(), tenant);
        // The tenant is not in the header: the same kid and secret sign the
        // same bytes, whoever the tenant.
        assert_eq!((moved.kid(), moved.header_b64()), (key.kid(), key.header_b64()));
        assert_eq!(
            moved.sign_input(b"x").unwrap().as_bytes(),
            key.sign_input(b"x").unwrap().as_bytes()
        );
    }

    #[test]
    fn short_kids_are_inline_and_long_ones_are_not() {
        for len in 1..=MAX_KID_CHARS {
            let kid = "k".repeat(len);
            let key = Key::with_kid(TokenKind::Access, &kid, SECRET).unwrap();
            assert_eq!(key.kid(), kid);
            assert_eq!(matches!(key.kid, Kid::Inline { .. }), len <= KID_INLINE, "{len}");
        }
        // What a key set's table holds per key.
        assert!(std::mem::size_of::<Key>() <= 128, "{}", std::mem::size_of::<Key>());
    }

    #[test]
    fn header_is_built_from_alg_typ_and_kid() {
        let longest = "k".repeat(MAX_KID_CHARS);
        for kind in [TokenKind::Access, TokenKind::Refresh] {
            for kid in ["a", "k-1", longest.as_str()] {
                let key = Key::with_kid(kind, kid, SECRET).unwrap();
                let expected = format!(
                    r#"{{"alg":"{}","typ":"{}","kid":"{kid}"}}"#,
                    Algorithm::HS256.name(),
                    kind.typ()
                );
                assert_eq!(B64.decode(key.header_b64()).unwrap(), expected.as_bytes());
                assert_eq!(key.kid(), kid);
            }
        }
    }

    #[test]
    fn header_is_the_canonical_json() {
        let key = Key::with_kid(TokenKind::Refresh, "k-1", SECRET).unwrap();
        let json = B64.decode(key.header_b64()).unwrap();
        assert_eq!(json, br#"{"alg":"HS256","typ":"rt+jwt","kid":"k-1"}"#);
        assert_eq!(key.algorithm(), Algorithm::HS256);
        assert_eq!(key.kind(), TokenKind::Refresh);
    }
}
