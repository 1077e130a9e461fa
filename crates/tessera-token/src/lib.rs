//! tessera's JWT core: signs and verifies its access and refresh tokens.
//!
//! Tokens are JWS compact serializations (RFC 7515) with the header
//! `{"alg":"<alg>","typ":"at+jwt"|"rt+jwt","kid":"..."}` and the claims of
//! [`AccessClaims`] or [`RefreshClaims`]. Access tokens are signed with
//! HS256, EdDSA (Ed25519), ES256 or RS256, whichever their [`Key`] was made
//! for; refresh tokens always with HS256. A public-key [`Key`] publishes
//! its public half as a [`Jwk`] and can be rebuilt from it to verify only.
//!
//! Every [`Key`] is for one [`TokenKind`] and one tenant (a customer;
//! [`DEFAULT_TENANT`], the nil uuid, unless [`Key::for_tenant`] says
//! otherwise). A tenant signs with its [`SigningKeys`], one key per kind. A
//! [`KeySet`] holds every verification key of every tenant (the current
//! ones, the next ones, the previous ones during a rotation) in a hash map,
//! and finds the key of a token by its `kid` in O(1) however many tenants
//! there are. A [`Keyring`] is the single-tenant form: one tenant's signing
//! pair plus its verify-only keys.
//!
//! A token belongs to the tenant of the key that verified its signature,
//! and says so in its `tid` claim, which must agree
//! ([`TokenError::TenantMismatch`] otherwise). Tokens signed before tenants
//! existed have no `tid`: they verify only under a key of the default
//! tenant, and read as its (`tid` = [`DEFAULT_TENANT`]). A server that
//! knows whose request it serves verifies with [`KeySet::verify_access_for`],
//! which refuses a genuine token of any other tenant
//! ([`TokenError::WrongTenant`]). [`header_kid`] reads the kid of a token
//! whose key is not in the set yet, for the server to load it.
//!
//! Verification follows RFC 8725 and RFC 7519 strictly: the key, never the
//! header, decides the algorithm; `alg: none` and every other algorithm are
//! refused; header members other than `alg`, `typ`, `kid` (`crit`, `jku`,
//! `jwk`, `x5u`, ...) are refused; base64url must be canonical; every claim
//! must be present once with its JSON type; duplicate member names are
//! refused; the signature is checked before the payload is read; the
//! tenant (`tid` against the key's, then the one expected) before `iss`,
//! `aud`, `nbf`, `iat` and `exp`, in that order, so that `Expired` means
//! "genuine and otherwise valid"; `typ` must be the key's kind.
//!
//! Verifying a token tessera issued does no heap allocation: the payload is
//! decoded into a caller-provided [`TokenBuf`] and the claims borrow from it.
//! Two fast paths skip parsing for the exact bytes this crate writes: a
//! header in exactly the form a key signs with (only the kid's part of the
//! segment is decoded, and looked up), and a payload in exactly the
//! serialization `sign_*` produces (with or without `tid`). Anything else
//! takes the strict path, and both paths give the same answer. The HMAC
//! keyed state is computed once per key, not per token.
//!
//! What this crate is not: it does no IO, has no async, reads no clock (the
//! caller passes `now` in unix seconds), keeps no revocation state (a
//! refresh token's `jti` being current is the server's business), and does
//! not depend on any other tessera crate. It is not a general JWT library:
//! it reads only the tokens tessera writes.
//!
//! ```
//! use std::borrow::Cow;
//! use tessera_token::{
//!     AccessClaims, Key, Keyring, TokenBuf, TokenError, TokenKind, Validation, DEFAULT_TENANT,
//! };
//! use uuid::Uuid;
//!
//! let access = Key::from_secret(TokenKind::Access, b"an access secret of 32+ bytes....")?;
//! let refresh = Key::from_secret(TokenKind::Refresh, b"a refresh secret of 32+ bytes....")?;
//! let keyring = Keyring::new(access, refresh)?;
//!
//! let now = 1_700_000_000;
//! let claims = AccessClaims {
//!     iss: Cow::Borrowed("https://auth.example.com"),
//!     aud: Cow::Borrowed("tessera"),
//!     sub: Uuid::new_v4(),
//!     sid: Uuid::new_v4(),
//!     tid: DEFAULT_TENANT,
//!     email: Cow::Borrowed("ada@example.com"),
//!     role: Cow::Borrowed("user"),
//!     iat: now,
//!     nbf: now,
//!     exp: now + 900,
//!     jti: Uuid::new_v4(),
//! };
//! let token = keyring.sign_access(&claims);
//!
//! let validation = Validation::new("https://auth.example.com", "tessera");
//! let mut buf = TokenBuf::new();
//! let verified = keyring.verify_access(&token, &validation, now + 60, &mut buf)?;
//! assert_eq!(verified, claims);
//!
//! // Fifteen minutes (and the leeway) later it has expired...
//! let mut buf = TokenBuf::new();
//! let late = keyring.verify_access(&token, &validation, now + 906, &mut buf);
//! assert_eq!(late, Err(TokenError::Expired));
//! // ...and it is never accepted as a refresh token.
//! let as_refresh = keyring.verify_refresh(&token, &validation, now, &mut buf);
//! assert_eq!(as_refresh, Err(TokenError::WrongKind));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Many tenants in one [`KeySet`]: see its documentation.

#![forbid(unsafe_code)]

/// Ed25519, ECDSA P-256 and RSA keys.
mod asym;
/// Canonical base64url (no padding, no trailing bits).
mod b64;
/// Fast path for payloads in exactly the form this crate signs.
mod canonical;
/// Claim types and their strict JSON reading.
mod claims;
/// Token and key errors.
mod error;
/// Strict reading of the JOSE header (slow path).
mod header;
/// HMAC-SHA256 with a precomputed, wipeable keyed state.
mod hmac;
/// Public keys as JWKs.
mod jwk;
/// Keys and token kinds.
mod key;
/// Signing, and the single-tenant keyring.
mod keyring;
/// Every tenant's verification keys, and verification.
mod keyset;

pub use asym::{generate_private_key, MAX_RSA_BITS, MIN_RSA_BITS};
pub use claims::{AccessClaims, RefreshClaims};
pub use error::{KeyError, TokenError};
pub use jwk::{Jwk, JwkSet};
pub use key::{Algorithm, Key, TokenKind, MAX_KID_CHARS, MIN_SECRET_BYTES};
pub use keyring::{Keyring, SigningKeys};
pub use keyset::{header_kid, signature_digest, KeySet, SignatureCache, VerifiedSignatures};
pub use uuid::Uuid;

/// The default tenant's id: the nil uuid. Keys belong to it unless built
/// [`Key::for_tenant`] another, and tokens without `tid` (signed before
/// tenants existed) are its.
pub const DEFAULT_TENANT: Uuid = Uuid::nil();

/// Longest token accepted, in bytes. Longer ones are refused before any
/// decoding work ([`TokenError::TooLong`]).
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Default clock leeway, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 5;
/// Largest clock leeway honoured, in seconds; a larger
/// [`Validation::leeway_secs`] counts as this.
pub const MAX_LEEWAY_SECS: u64 = 30;

/// What a verified token must say besides being genuine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// The expected `iss`, compared exactly.
    pub issuer: String,
    /// The expected `aud` of access tokens, compared exactly. Refresh tokens
    /// have no audience.
    pub audience: String,
    /// Clock leeway applied to `exp`, `nbf` and `iat`, in seconds; capped at
    /// [`MAX_LEEWAY_SECS`].
    pub leeway_secs: u64,
}

impl Validation {
    /// Expects `issuer` and `audience`, with [`DEFAULT_LEEWAY_SECS`] of leeway.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
        }
    }
}

/// Scratch space a token's payload is decoded into, so verification needs
/// no heap allocation; the verified claims borrow from it.
///
/// It is 3 KiB: make it on the stack where the token is verified (keep it out
/// of long-lived async state), or reuse one.
pub struct TokenBuf {
    bytes: [u8; MAX_DECODED_BYTES],
}

/// Every segment of a token that passed the length check decodes to at most
/// this many bytes.
const MAX_DECODED_BYTES: usize = MAX_TOKEN_BYTES / 4 * 3;

impl TokenBuf {
    pub const fn new() -> Self {
        Self {
            bytes: [0; MAX_DECODED_BYTES],
        }
    }
}

impl Default for TokenBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for TokenBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenBuf")
    }
}
