//! Sealing secrets at rest: AES-256-GCM under a master key.
//!
//! A sealed value is `nonce (12 bytes) || ciphertext || tag (16 bytes)`. The
//! caller's associated data says what the value is (for example which key of
//! which keyring), so a ciphertext copied into another row fails to open. The
//! master key has an id derived from it, stored beside each sealed value, so a
//! later master-key rotation knows what to re-seal.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::Zeroizing;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The key that seals stored secrets. Never printed; wiped when dropped.
pub struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
}

/// Why a master key or a sealed value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("must be 32 random bytes in base64 (44 characters; `openssl rand -base64 32` makes one)")]
    BadMasterKey,
    #[error("sealed with master key {found:?}, but the master key in use is {expected:?}")]
    WrongMasterKey { expected: String, found: String },
    #[error("the sealed value is damaged or was moved from another record")]
    Damaged,
}

impl MasterKey {
    /// 32 bytes, standard or url-safe base64, padded or not.
    pub fn from_base64(encoded: &str) -> Result<Self, SealError> {
        let unpadded = encoded.trim().trim_end_matches('=');
        let bytes = Zeroizing::new(
            STANDARD_NO_PAD
                .decode(unpadded)
                .or_else(|_| URL_SAFE_NO_PAD.decode(unpadded))
                .map_err(|_| SealError::BadMasterKey)?,
        );
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        if bytes.len() != 32 || bytes.iter().all(|b| *b == bytes[0]) {
            return Err(SealError::BadMasterKey);
        }
        let digest = Sha256::new_with_prefix(b"tessera-master-key-id-v1\0")
            .chain_update(bytes)
            .finalize();
        let id = format!("mk-{}", &URL_SAFE_NO_PAD.encode(digest)[..12]);
        let cipher = Aes256Gcm::new_from_slice(bytes).map_err(|_| SealError::BadMasterKey)?;
        Ok(Self { id, cipher })
    }

    /// A fresh random key, base64-encoded, for `tessera keygen`-style output.
    pub fn generate_base64() -> String {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        STANDARD.encode(bytes.as_ref())
    }

    /// Names the key without revealing it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypts `plaintext`, bound to `context` (associated data).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = self.aad(context);
        // AES-GCM encryption only fails for inputs over 64 GiB.
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Decrypts what [`MasterKey::seal`] made with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Damaged);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &self.aad(context),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Damaged)
    }

    /// Checks that a value stored with `sealed_by` can be opened by this key.
    pub fn check_id(&self, sealed_by: &str) -> Result<(), SealError> {
        if sealed_by == self.id {
            Ok(())
        } else {
            Err(SealError::WrongMasterKey {
                expected: self.id.clone(),
                found: sealed_by.to_owned(),
            })
        }
    }

    fn aad(&self, context: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(self.id.len() + 1 + context.len());
        aad.extend_from_slice(self.id.as_bytes());
        aad.push(0);
        aad.extend_from_slice(context);
        aad
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_base64(&MasterKey::generate_base64()).unwrap()
    }

    #[test]
    fn seal_then_open() {
        let k = key();
        let sealed = k.seal(b"the access secret", b"default/access");
        assert!(
            !sealed.windows(6).any(|w| w == b"access"),
            "no plaintext in the sealed bytes"
        );
        assert_eq!(
            k.open(&sealed, b"default/access").unwrap().as_slice(),
            b"the access secret"
        );
    }

    #[test]
    fn a_sealed_value_does_not_open_in_another_context_or_under_another_key() {
        let k = key();
        let sealed = k.seal(b"secret", b"default/access");
        assert_eq!(k.open(&sealed, b"default/refresh"), Err(SealError::Damaged));
        assert_eq!(key().open(&sealed, b"default/access"), Err(SealError::Damaged));
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert_eq!(k.open(&flipped, b"default/access"), Err(SealError::Damaged));
        assert_eq!(k.open(&sealed[..20], b"default/access"), Err(SealError::Damaged));
    }

    #[test]
    fn sealing_twice_gives_different_bytes() {
        let k = key();
        assert_ne!(k.seal(b"x", b"c"), k.seal(b"x", b"c"));
    }

    #[test]
    fn master_keys_must_be_32_random_bytes() {
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64 at all!").is_err());
        assert!(MasterKey::from_base64(&STANDARD.encode([7u8; 32])).is_err());
        let encoded = MasterKey::generate_base64();
        let a = MasterKey::from_base64(&encoded).unwrap();
        let b = MasterKey::from_base64(encoded.trim_end_matches('=')).unwrap();
        assert_eq!(a.id(), b.id());
        assert!(a.id().starts_with("mk-"));
        assert!(!format!("{a:?}").contains(&encoded));
        assert!(a.check_id(a.id()).is_ok());
        assert!(a.check_id("mk-other").is_err());
    }
}
