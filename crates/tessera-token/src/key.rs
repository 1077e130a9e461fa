use std::fmt;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::b64::B64;
use crate::error::KeyError;
use crate::hmac::{HmacSha256, MAC_LEN};

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

/// A JWS signing algorithm (RFC 7518). Only `HS256` exists today; the
/// asymmetric ones will join it, each bound to its own kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC with SHA-256.
    HS256,
}

impl Algorithm {
    /// The header `alg` value, compared case-sensitively.
    pub const fn name(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
        }
    }
}

/// An HS256 key for exactly one [`TokenKind`].
///
/// The secret is used as given (the UTF-8 bytes of `JWT_SECRET`), so any
/// standard JWT library verifies tessera's access tokens with the same secret.
/// The key keeps only HMAC's precomputed keyed state, never the secret
/// itself, and wipes that state when dropped. `Debug` shows kid and kind only.
#[derive(Clone)]
pub struct HmacKey {
    kind: TokenKind,
    kid: Box<str>,
    /// The exact base64url header segment this key signs with, e.g. the
    /// encoding of `{"alg":"HS256","typ":"at+jwt","kid":"..."}`. Tokens whose
    /// header segment is byte-equal skip header decoding.
    header_b64: Box<str>,
    mac: HmacSha256,
}

impl HmacKey {
    /// A key whose `kid` is derived from the secret and kind: the first 16
    /// characters of base64url(SHA-256(`"tessera-kid-v1\0" || kind || "\0" ||
    /// secret`)), with kind `access` or `refresh`. The same secret gives the
    /// same kid on every instance and every restart; the kid reveals nothing
    /// useful about the secret.
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
        let kid = B64.encode(&digest[..12]);
        Ok(Self::build(kind, kid.into_boxed_str(), secret))
    }

    /// A key with an explicit `kid` (for stored keyrings): 1 to
    /// [`MAX_KID_CHARS`] characters of `A-Z a-z 0-9 _ -`. Refuses secrets
    /// shorter than [`MIN_SECRET_BYTES`].
    pub fn with_kid(kind: TokenKind, kid: &str, secret: &[u8]) -> Result<Self, KeyError> {
        if !valid_kid(kid) {
            return Err(KeyError::InvalidKid);
        }
        check_secret(secret)?;
        Ok(Self::build(kind, kid.into(), secret))
    }

    fn build(kind: TokenKind, kid: Box<str>, secret: &[u8]) -> Self {
        // The kid is restricted to characters JSON never escapes, so this is
        // the header's one and only canonical serialization.
        let header = format!(
            r#"{{"alg":"{}","typ":"{}","kid":"{}"}}"#,
            Algorithm::HS256.name(),
            kind.typ(),
            kid
        );
        let header_b64 = B64.encode(header).into_boxed_str();
        Self {
            kind,
            kid,
            header_b64,
            mac: HmacSha256::new(secret),
        }
    }

    /// The key id, carried in the header of every token this key signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The kind of token this key signs and verifies.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The algorithm this key is for. Verification uses it, never the header.
    pub fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }

    pub(crate) fn header_b64(&self) -> &str {
        &self.header_b64
    }

    pub(crate) fn sign_input(&self, input: &[u8]) -> [u8; MAC_LEN] {
        self.mac.mac(input)
    }

    pub(crate) fn verify_input(&self, input: &[u8], signature: &[u8; MAC_LEN]) -> bool {
        self.mac.verify(input, signature)
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacKey")
            .field("kind", &self.kind)
            .field("kid", &self.kid)
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

fn valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_CHARS
        && kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn secrets_shorter_than_32_bytes_are_refused() {
        assert_eq!(
            HmacKey::from_secret(TokenKind::Access, &SECRET[..31]).err(),
            Some(KeyError::SecretTooShort)
        );
        assert_eq!(
            HmacKey::with_kid(TokenKind::Access, "k1", b"").err(),
            Some(KeyError::SecretTooShort)
        );
        assert!(HmacKey::from_secret(TokenKind::Access, SECRET).is_ok());
    }

    #[test]
    fn derived_kid_is_stable_and_depends_on_kind_and_secret() {
        let a = HmacKey::from_secret(TokenKind::Access, SECRET).unwrap();
        let again = HmacKey::from_secret(TokenKind::Access, SECRET).unwrap();
        let refresh = HmacKey::from_secret(TokenKind::Refresh, SECRET).unwrap();
        let other = HmacKey::from_secret(TokenKind::Access, b"0123456789abcdef0123456789abcdeF").unwrap();
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
        let key = HmacKey::from_secret(TokenKind::Refresh, SECRET).unwrap();
        assert_eq!(key.kid(), &expected[..16]);
    }

    #[test]
    fn explicit_kids_are_checked() {
        assert!(HmacKey::with_kid(TokenKind::Refresh, "2024-01_a", SECRET).is_ok());
        assert!(HmacKey::with_kid(TokenKind::Refresh, &"k".repeat(64), SECRET).is_ok());
        for bad in ["", "a b", "a\"b", "a/b", "é", "a.b", &"k".repeat(65)] {
            assert_eq!(
                HmacKey::with_kid(TokenKind::Refresh, bad, SECRET).err(),
                Some(KeyError::InvalidKid),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_does_not_print_the_secret() {
        let secret = b"super-secret-value-that-must-not-leak";
        let key = HmacKey::with_kid(TokenKind::Access, "k1", secret).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains("k1") && shown.contains("[redacted]"), "{shown}");
        assert!(!shown.contains("super-secret"), "{shown}");
    }

    #[test]
    fn precomputed_header_is_the_canonical_json() {
        let key = HmacKey::with_kid(TokenKind::Refresh, "k-1", SECRET).unwrap();
        let json = B64.decode(key.header_b64()).unwrap();
        assert_eq!(json, br#"{"alg":"HS256","typ":"rt+jwt","kid":"k-1"}"#);
        assert_eq!(key.algorithm(), Algorithm::HS256);
        assert_eq!(key.kind(), TokenKind::Refresh);
    }
}
