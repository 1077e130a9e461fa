//! The one base64url flavour JWS allows (RFC 7515 §2): URL-safe alphabet, no
//! padding. Decoding is canonical only: `=` padding, the `+` `/` alphabet,
//! whitespace and non-zero trailing bits are all refused, so every byte
//! string has exactly one accepted encoding.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;

pub(crate) const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn decoding_is_canonical_only() {
        assert_eq!(B64.decode("_-8").unwrap(), [0xff, 0xef]);
        assert!(B64.decode("_-8=").is_err(), "padding");
        assert!(B64.decode("/+8").is_err(), "standard alphabet");
        assert!(B64.decode("_-8 ").is_err(), "whitespace");
        assert!(B64.decode("_-9").is_err(), "non-zero trailing bits");
        assert!(B64.decode("_").is_err(), "impossible length");
    }
}
