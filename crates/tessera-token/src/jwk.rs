//! Public keys as JSON Web Keys (RFC 7517) and key sets.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One public key as a JWK: what `/.well-known/jwks.json` lists and what
/// [`crate::Key::from_jwk`] reads.
///
/// Besides the standard members tessera adds `tid`, the tenant whose tokens
/// the key verifies (RFC 7517 §4 lets a JWK carry members its reader does
/// not know; PyJWT and `jose` ignore it). A JWK without `tid` is the default
/// tenant's. Members this crate does not use (`key_ops`, `x5c`, ...) are
/// ignored when read; private members (`d`, `p`, ...) are never written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `OKP` (Ed25519), `EC` (P-256) or `RSA`.
    pub kty: String,
    /// The key id, as in the header of the tokens it verifies.
    pub kid: String,
    /// `EdDSA`, `ES256` or `RS256`: the one algorithm the key verifies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// `sig` when present.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// `Ed25519` or `P-256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// The Ed25519 public key, or the P-256 x coordinate (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// The P-256 y coordinate (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// The RSA modulus (base64url, big-endian).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// The RSA public exponent (base64url, big-endian).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// The tenant whose tokens this key verifies (tessera's own member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<Uuid>,
}

/// A JWK Set (RFC 7517 §5): `{"keys": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}
