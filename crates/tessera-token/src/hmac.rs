//! HMAC-SHA256 (RFC 2104) with the keyed state precomputed once per key.
//!
//! Why not `hmac::Hmac<Sha256>`: its precomputed state (SHA-256 after the
//! `key ^ ipad` and `key ^ opad` blocks) is key-equivalent, since anyone who
//! reads it can forge MACs, and `hmac` 0.12 / `digest` 0.10 offer no way to
//! wipe it. Here the two states are plain `[u32; 8]` arrays that are zeroized
//! on drop, and each MAC starts from a 64-byte copy of them instead of
//! re-keying. The compression function is the audited one from `sha2`; this
//! file only does HMAC's two passes and SHA-256's length padding. Tests
//! compare it with `hmac::Hmac<Sha256>` on random keys and messages of every
//! length around the block boundaries, and with the RFC 4231 vectors.

use sha2::digest::generic_array::typenum::U64;
use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// SHA-256 block size in bytes.
const BLOCK: usize = 64;
/// HMAC-SHA256 output size in bytes.
pub(crate) const MAC_LEN: usize = 32;

/// SHA-256 initial hash value (FIPS 180-4, 5.3.3).
const H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The keyed state of HMAC-SHA256: SHA-256 after absorbing one block of
/// `key ^ ipad` (inner) and of `key ^ opad` (outer).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct HmacSha256 {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl HmacSha256 {
    pub(crate) fn new(key: &[u8]) -> Self {
        // RFC 2104: keys longer than a block are hashed first, shorter ones
        // are padded with zeros to a block.
        let mut block = [0u8; BLOCK];
        if key.len() > BLOCK {
            let mut digest = Sha256::digest(key);
            block[..MAC_LEN].copy_from_slice(&digest);
            digest.as_mut_slice().zeroize();
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        // Built in place as the type `compress256` takes, so no unwiped
        // copy of the padded key is left behind.
        let mut pad: GenericArray<u8, U64> = GenericArray::default();
        let mut inner = H0;
        for (p, k) in pad.iter_mut().zip(block.iter()) {
            *p = k ^ 0x36;
        }
        sha2::compress256(&mut inner, core::slice::from_ref(&pad));
        let mut outer = H0;
        for (p, k) in pad.iter_mut().zip(block.iter()) {
            *p = k ^ 0x5c;
        }
        sha2::compress256(&mut outer, core::slice::from_ref(&pad));
        pad.as_mut_slice().zeroize();
        block.zeroize();
        Self { inner, outer }
    }

    /// HMAC-SHA256 of `message`.
    pub(crate) fn mac(&self, message: &[u8]) -> [u8; MAC_LEN] {
        let mut state = self.inner;
        sha256_finish(&mut state, message, BLOCK as u64);
        let mut inner_hash = [0u8; MAC_LEN];
        write_be(&state, &mut inner_hash);
        let mut state = self.outer;
        sha256_finish(&mut state, &inner_hash, BLOCK as u64);
        let mut out = [0u8; MAC_LEN];
        write_be(&state, &mut out);
        out
    }

    /// Whether `tag` is the MAC of `message`, compared in constant time
    /// (`subtle`, word by word).
    pub(crate) fn verify(&self, message: &[u8], tag: &[u8; MAC_LEN]) -> bool {
        words(&self.mac(message)).ct_eq(&words(tag)).into()
    }
}

/// Absorbs `message` into `state` (which has already absorbed `prefix_len`
/// bytes, a whole number of blocks) and applies SHA-256's final padding.
fn sha256_finish(state: &mut [u32; 8], message: &[u8], prefix_len: u64) {
    let mut chunks = message.chunks_exact(BLOCK);
    for chunk in &mut chunks {
        // `chunks_exact` yields exactly BLOCK bytes: this conversion is a copy
        // into the array type `compress256` wants, never a length mismatch.
        sha2::compress256(state, core::slice::from_ref(GenericArray::from_slice(chunk)));
    }
    let rest = chunks.remainder();
    let bit_len = (prefix_len + message.len() as u64).wrapping_mul(8);
    let mut tail = [0u8; 2 * BLOCK];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    // One block if the 0x80 marker and the 8-byte length fit after the rest,
    // else two.
    let tail_len = if rest.len() < BLOCK - 8 { BLOCK } else { 2 * BLOCK };
    tail[tail_len - 8..tail_len].copy_from_slice(&bit_len.to_be_bytes());
    for block in tail[..tail_len].chunks_exact(BLOCK) {
        sha2::compress256(state, core::slice::from_ref(GenericArray::from_slice(block)));
    }
}

/// The tag as four machine words, so the comparison is 4 `subtle`
/// operations rather than 32.
fn words(tag: &[u8; MAC_LEN]) -> [u64; 4] {
    let mut out = [0u64; 4];
    for (word, bytes) in out.iter_mut().zip(tag.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(bytes);
        *word = u64::from_ne_bytes(b);
    }
    out
}

fn write_be(state: &[u32; 8], out: &mut [u8; MAC_LEN]) {
    for (word, bytes) in state.iter().zip(out.chunks_exact_mut(4)) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use proptest::prelude::*;

    fn reference(key: &[u8], message: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn rfc_4231_vectors() {
        // Test cases 1, 2, 4, 6 and 7 of RFC 4231 (HMAC-SHA-256 column).
        let cases: [(Vec<u8>, &[u8], &str); 5] = [
            (
                vec![0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                (1u8..=25).collect(),
                &[0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, message, expected) in cases {
            assert_eq!(hex(&HmacSha256::new(&key).mac(message)), expected);
        }
    }

    #[test]
    fn every_length_around_the_block_boundaries_matches_the_hmac_crate() {
        let key = b"a key that is exactly thirty-two";
        let message: Vec<u8> = (0..=300u16).map(|i| (i % 251) as u8).collect();
        let ours = HmacSha256::new(key);
        for len in 0..=message.len() {
            assert_eq!(ours.mac(&message[..len]), reference(key, &message[..len]), "len {len}");
        }
    }

    #[test]
    fn verify_accepts_only_the_right_tag() {
        let key = HmacSha256::new(b"k");
        let mut tag = key.mac(b"message");
        assert!(key.verify(b"message", &tag));
        assert!(!key.verify(b"messagE", &tag));
        tag[31] ^= 1;
        assert!(!key.verify(b"message", &tag));
    }

    proptest! {
        #[test]
        fn matches_the_hmac_crate(
            key in proptest::collection::vec(any::<u8>(), 0..200),
            message in proptest::collection::vec(any::<u8>(), 0..700),
        ) {
            prop_assert_eq!(HmacSha256::new(&key).mac(&message), reference(&key, &message));
        }
    }
}
