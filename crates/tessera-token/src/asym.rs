//! The public-key algorithms: Ed25519 (`EdDSA`), ECDSA P-256 (`ES256`) and
//! RSASSA-PKCS1-v1_5 with SHA-256 (`RS256`), on the RustCrypto crates.
//!
//! Each key is one algorithm for good: it is built from a private key in
//! PKCS#8 DER (the form the server seals at rest) or from a public JWK
//! (RFC 7517, the form verifiers fetch), and verifies only signatures of its
//! own algorithm. Every public key is checked when it is built, not when a
//! token arrives: an Ed25519 point of small order, a P-256 point off the
//! curve, an RSA modulus under 2048 bits are refused as keys.
//!
//! Signing is deterministic for all three, as it is for HS256: Ed25519 by
//! design, ECDSA with RFC 6979 nonces, PKCS#1 v1.5 by construction. And a
//! token has one valid signature: Ed25519 is verified strictly, and ECDSA
//! signatures are made and accepted with low S only. RSA's
//! private-key operation is blinded (the `rsa` crate's arithmetic is not
//! constant-time, RUSTSEC-2023-0071); the blinding factor comes from a
//! ChaCha20 stream seeded with SHA-256 of a per-key secret and the signing
//! input, so it is unpredictable without the key and needs no system
//! randomness (this crate does no IO). Blinding changes the work, not the
//! signature.

use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use rand_chacha::rand_core::SeedableRng as _;
use rand_core::CryptoRngCore;
use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _, Signer as _, Verifier as _};
use rsa::traits::PublicKeyParts as _;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::b64::B64;
use crate::error::KeyError;
use crate::jwk::Jwk;
use crate::key::Algorithm;

/// Smallest RSA modulus accepted, in bits (RFC 7518 §3.3, NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits: a 16384-bit key in a JWKS would
/// make every verification a denial of service.
pub const MAX_RSA_BITS: usize = 4096;
/// Longest signature of any algorithm, in bytes (RSA-4096).
pub(crate) const MAX_SIGNATURE_BYTES: usize = MAX_RSA_BITS / 8;

/// A public key, and its private half when it signs.
pub(crate) struct AsymKey {
    public: Public,
    private: Option<Private>,
    jwk_x: String,
    jwk_y: Option<String>,
}

enum Public {
    Ed25519(ed25519_dalek::VerifyingKey),
    Es256(p256::ecdsa::VerifyingKey),
    Rs256 {
        key: rsa::pkcs1v15::VerifyingKey<Sha256>,
        /// The modulus length in bytes: every signature is exactly this long.
        len: usize,
    },
}

enum Private {
    Ed25519(ed25519_dalek::SigningKey),
    Es256(p256::ecdsa::SigningKey),
    Rs256 {
        key: rsa::pkcs1v15::SigningKey<Sha256>,
        blinding_seed: Zeroizing<[u8; 32]>,
    },
}

/// A signature on the stack.
pub(crate) struct SignatureBytes {
    bytes: [u8; MAX_SIGNATURE_BYTES],
    len: usize,
}

impl SignatureBytes {
    pub(crate) fn new(signature: &[u8]) -> Self {
        let mut bytes = [0u8; MAX_SIGNATURE_BYTES];
        let len = signature.len().min(MAX_SIGNATURE_BYTES);
        bytes[..len].copy_from_slice(&signature[..len]);
        Self { bytes, len }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A new private key for `alg`, in PKCS#8 DER, from `rng` (the server passes
/// the operating system's). RSA keys are 2048 bits.
pub fn generate_private_key(alg: Algorithm, rng: &mut impl CryptoRngCore) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let der = match alg {
        Algorithm::HS256 => return Err(KeyError::NotAsymmetric),
        Algorithm::EdDSA => ed25519_dalek::SigningKey::generate(rng).to_pkcs8_der(),
        Algorithm::ES256 => p256::ecdsa::SigningKey::random(rng).to_pkcs8_der(),
        Algorithm::RS256 => {
            let key = rsa::RsaPrivateKey::new(rng, MIN_RSA_BITS)
                .map_err(|_| KeyError::InvalidKey("rsa key generation failed"))?;
            rsa::pkcs8::EncodePrivateKey::to_pkcs8_der(&key)
        }
    }
    .map_err(|_| KeyError::InvalidKey("cannot encode the private key"))?;
    Ok(Zeroizing::new(der.as_bytes().to_vec()))
}

impl AsymKey {
    pub(crate) fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<Self, KeyError> {
        let bad = |_| KeyError::InvalidKey("not a PKCS#8 private key of the algorithm");
        let private = match alg {
            Algorithm::HS256 => return Err(KeyError::NotAsymmetric),
            Algorithm::EdDSA => Private::Ed25519(ed25519_dalek::SigningKey::from_pkcs8_der(der).map_err(bad)?),
            Algorithm::ES256 => Private::Es256(
                <p256::ecdsa::SigningKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_der(der).map_err(bad)?,
            ),
            Algorithm::RS256 => {
                let key = <rsa::RsaPrivateKey as rsa::pkcs8::DecodePrivateKey>::from_pkcs8_der(der).map_err(bad)?;
                check_rsa_bits(key.n().bits())?;
                let mut blinding_seed = Zeroizing::new([0u8; 32]);
                let mut digest = Sha256::new()
                    .chain_update(b"tessera-rsa-blinding-v1\0")
                    .chain_update(der)
                    .finalize();
                blinding_seed.copy_from_slice(&digest);
                digest.as_mut_slice().zeroize();
                Private::Rs256 {
                    key: rsa::pkcs1v15::SigningKey::new(key),
                    blinding_seed,
                }
            }
        };
        let public = match &private {
            Private::Ed25519(key) => Public::Ed25519(key.verifying_key()),
            Private::Es256(key) => Public::Es256(*key.verifying_key()),
            Private::Rs256 { key, .. } => {
                let public: rsa::RsaPublicKey = key.as_ref().to_public_key();
                let len = public.size();
                Public::Rs256 {
                    key: rsa::pkcs1v15::VerifyingKey::new(public),
                    len,
                }
            }
        };
        Ok(Self::build(public, Some(private)))
    }

    /// A verify-only key from a public JWK whose `alg` is `alg`.
    pub(crate) fn from_jwk(alg: Algorithm, jwk: &Jwk) -> Result<Self, KeyError> {
        let field = |value: &Option<String>, name: &'static str| -> Result<Vec<u8>, KeyError> {
            let text = value.as_deref().ok_or(KeyError::InvalidKey(name))?;
            B64.decode(text).map_err(|_| KeyError::InvalidKey(name))
        };
        let public = match alg {
            Algorithm::HS256 => return Err(KeyError::NotAsymmetric),
            Algorithm::EdDSA => {
                if jwk.kty != "OKP" || jwk.crv.as_deref() != Some("Ed25519") {
                    return Err(KeyError::InvalidKey("EdDSA keys are kty OKP, crv Ed25519"));
                }
                let x: [u8; 32] = field(&jwk.x, "x must be 32 bytes of base64url")?
                    .try_into()
                    .map_err(|_| KeyError::InvalidKey("x must be 32 bytes of base64url"))?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map_err(|_| KeyError::InvalidKey("x is not an Ed25519 point"))?;
                if key.is_weak() {
                    return Err(KeyError::InvalidKey("x is a point of small order"));
                }
                Public::Ed25519(key)
            }
            Algorithm::ES256 => {
                if jwk.kty != "EC" || jwk.crv.as_deref() != Some("P-256") {
                    return Err(KeyError::InvalidKey("ES256 keys are kty EC, crv P-256"));
                }
                let x = field(&jwk.x, "x must be 32 bytes of base64url")?;
                let y = field(&jwk.y, "y must be 32 bytes of base64url")?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(KeyError::InvalidKey("x and y must be 32 bytes each"));
                }
                let point = p256::EncodedPoint::from_affine_coordinates(
                    p256::FieldBytes::from_slice(&x),
                    p256::FieldBytes::from_slice(&y),
                    false,
                );
                let key = p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                    .map_err(|_| KeyError::InvalidKey("x, y is not a point of P-256"))?;
                Public::Es256(key)
            }
            Algorithm::RS256 => {
                if jwk.kty != "RSA" {
                    return Err(KeyError::InvalidKey("RS256 keys are kty RSA"));
                }
                let n = field(&jwk.n, "n must be base64url")?;
                let e = field(&jwk.e, "e must be base64url")?;
                // Leading zero bytes would let one modulus pass for a longer one.
                if n.first() == Some(&0) || e.first() == Some(&0) {
                    return Err(KeyError::InvalidKey("n and e must have no leading zero bytes"));
                }
                let modulus = rsa::BigUint::from_bytes_be(&n);
                check_rsa_bits(modulus.bits())?;
                let key = rsa::RsaPublicKey::new(modulus, rsa::BigUint::from_bytes_be(&e))
                    .map_err(|_| KeyError::InvalidKey("n, e is not an RSA public key"))?;
                let len = key.size();
                Public::Rs256 {
                    key: rsa::pkcs1v15::VerifyingKey::new(key),
                    len,
                }
            }
        };
        Ok(Self::build(public, None))
    }

    fn build(public: Public, private: Option<Private>) -> Self {
        let (jwk_x, jwk_y) = match &public {
            Public::Ed25519(key) => (B64.encode(key.as_bytes()), None),
            Public::Es256(key) => {
                let point = key.to_encoded_point(false);
                let coordinate = |c: Option<&p256::FieldBytes>| c.map(|c| B64.encode(c)).unwrap_or_default();
                (coordinate(point.x()), Some(coordinate(point.y())))
            }
            Public::Rs256 { key, .. } => {
                let key: &rsa::RsaPublicKey = key.as_ref();
                (
                    B64.encode(key.n().to_bytes_be()),
                    Some(B64.encode(key.e().to_bytes_be())),
                )
            }
        };
        Self {
            public,
            private,
            jwk_x,
            jwk_y,
        }
    }

    pub(crate) fn can_sign(&self) -> bool {
        self.private.is_some()
    }

    /// The signature length of this key, in bytes.
    pub(crate) fn signature_len(&self) -> usize {
        match &self.public {
            Public::Ed25519(_) | Public::Es256(_) => 64,
            Public::Rs256 { len, .. } => *len,
        }
    }

    /// Writes the public members of this key's JWK (`kty`, `crv`, `x`,
    /// `y`, `n`, `e`) into `jwk`.
    pub(crate) fn write_public_members(&self, jwk: &mut Jwk) {
        let (kty, crv) = match &self.public {
            Public::Ed25519(_) => ("OKP", Some("Ed25519")),
            Public::Es256(_) => ("EC", Some("P-256")),
            Public::Rs256 { .. } => ("RSA", None),
        };
        jwk.kty = kty.to_owned();
        jwk.crv = crv.map(str::to_owned);
        let (first, second) = (Some(self.jwk_x.clone()), self.jwk_y.clone());
        match &self.public {
            Public::Ed25519(_) | Public::Es256(_) => (jwk.x, jwk.y) = (first, second),
            Public::Rs256 { .. } => (jwk.n, jwk.e) = (first, second),
        }
    }

    /// Signs `input`; `None` for a verify-only key.
    pub(crate) fn sign(&self, input: &[u8]) -> Option<SignatureBytes> {
        Some(match self.private.as_ref()? {
            Private::Ed25519(key) => SignatureBytes::new(&key.sign(input).to_bytes()),
            Private::Es256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(input);
                // Low S only (BIP 62), so each token has one valid signature.
                let signature = signature.normalize_s().unwrap_or(signature);
                SignatureBytes::new(&signature.to_bytes())
            }
            Private::Rs256 { key, blinding_seed } => {
                let mut seed = Zeroizing::new([0u8; 32]);
                let mut digest = Sha256::new()
                    .chain_update(blinding_seed.as_ref())
                    .chain_update(input)
                    .finalize();
                seed.copy_from_slice(&digest);
                digest.as_mut_slice().zeroize();
                let mut rng = rand_chacha::ChaCha20Rng::from_seed(*seed);
                SignatureBytes::new(&key.sign_with_rng(&mut rng, input).to_bytes())
            }
        })
    }

    /// Whether `signature` is this key's over `input`. The caller has checked
    /// the length against [`AsymKey::signature_len`].
    pub(crate) fn verify(&self, input: &[u8], signature: &[u8]) -> bool {
        match &self.public {
            Public::Ed25519(key) => {
                let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
                    return false;
                };
                // Strict: no small-order R, no non-canonical S.
                key.verify_strict(input, &ed25519_dalek::Signature::from_bytes(&bytes))
                    .is_ok()
            }
            Public::Es256(key) => {
                // `from_slice` refuses r or s that are zero or not below the
                // group order, before any arithmetic.
                let Ok(signature) = p256::ecdsa::Signature::from_slice(signature) else {
                    return false;
                };
                // tessera signs with low S; (r, n - s) is the same signature
                // to a lax verifier, a second spelling of one token.
                if signature.normalize_s().is_some() {
                    return false;
                }
                key.verify(input, &signature).is_ok()
            }
            Public::Rs256 { key, len } => {
                if signature.len() != *len {
                    return false;
                }
                let Ok(signature) = rsa::pkcs1v15::Signature::try_from(signature) else {
                    return false;
                };
                key.verify(input, &signature).is_ok()
            }
        }
    }
}

fn check_rsa_bits(bits: usize) -> Result<(), KeyError> {
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(KeyError::RsaKeySize);
    }
    Ok(())
}
