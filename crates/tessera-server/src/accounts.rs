//! Tokens mailed to users: password reset and email verification.
//!
//! A token is 256 random bits, base64url, behind a prefix naming its purpose
//! (`tpr_` reset, `tev_` verification) so a token pasted into the wrong form
//! is refused without a store read, and a leaked one is recognisable in a
//! secret scanner. Only its SHA-256 is stored (`tessera-store`'s
//! `account_tokens`): a copy of the database resets nobody's password.
//! Hashing a 256-bit random value needs no salt or slow hash; nothing about
//! it can be guessed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use tessera_store::AccountTokenPurpose;
use zeroize::Zeroizing;

/// A reset link lives 15 minutes (OWASP Forgot Password cheat sheet).
pub const RESET_TTL_SECS: i64 = 15 * 60;
/// A verification link lives a day: it is not a credential for the account.
pub const VERIFICATION_TTL_SECS: i64 = 24 * 3600;

const RANDOM_BYTES: usize = 32;
/// base64url of 32 bytes, unpadded.
const ENCODED_LEN: usize = 43;

fn prefix(purpose: AccountTokenPurpose) -> &'static str {
    match purpose {
        AccountTokenPurpose::PasswordReset => "tpr_",
        AccountTokenPurpose::EmailVerification => "tev_",
    }
}

/// How long a token of `purpose` lives, in seconds.
pub fn ttl_secs(purpose: AccountTokenPurpose) -> i64 {
    match purpose {
        AccountTokenPurpose::PasswordReset => RESET_TTL_SECS,
        AccountTokenPurpose::EmailVerification => VERIFICATION_TTL_SECS,
    }
}

/// A fresh token of `purpose` and the hash to store for it.
pub fn new_token(purpose: AccountTokenPurpose) -> (Zeroizing<String>, [u8; 32]) {
    let mut random = Zeroizing::new([0u8; RANDOM_BYTES]);
    rand::rngs::OsRng.fill_bytes(&mut random[..]);
    let mut token = Zeroizing::new(String::with_capacity(4 + ENCODED_LEN));
    token.push_str(prefix(purpose));
    URL_SAFE_NO_PAD.encode_string(&random[..], &mut token);
    let hash = digest(&token);
    (token, hash)
}

/// The stored hash of `presented`, if it has the shape of a token of
/// `purpose`; `None` for anything else (which no stored hash can match).
pub fn presented_hash(purpose: AccountTokenPurpose, presented: &str) -> Option<[u8; 32]> {
    let body = presented.strip_prefix(prefix(purpose))?;
    let well_formed = body.len() == ENCODED_LEN
        && URL_SAFE_NO_PAD
            .decode(body)
            .is_ok_and(|raw| raw.len() == RANDOM_BYTES && URL_SAFE_NO_PAD.encode(&raw) == body);
    well_formed.then(|| digest(presented))
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_hashes_to_what_is_stored_for_it_and_only_for_its_purpose() {
        let (token, stored) = new_token(AccountTokenPurpose::PasswordReset);
        assert!(token.starts_with("tpr_"));
        assert_eq!(token.len(), 47);
        assert_eq!(presented_hash(AccountTokenPurpose::PasswordReset, &token), Some(stored));
        assert_eq!(presented_hash(AccountTokenPurpose::EmailVerification, &token), None);
        let (other, other_stored) = new_token(AccountTokenPurpose::PasswordReset);
        assert_ne!(*other, *token);
        assert_ne!(other_stored, stored);
    }

    #[test]
    fn malformed_tokens_have_no_hash() {
        let (token, _) = new_token(AccountTokenPurpose::EmailVerification);
        let cut = &token[..token.len() - 1];
        let longer = format!("{}A", &*token);
        let padded = format!("{}=", &*token);
        let non_canonical = {
            // The last character carries 2 spare bits; setting one gives the
            // same bytes under another spelling.
            let mut s = token.to_string();
            let last = s.pop().unwrap_or('A');
            let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let i = alphabet.find(last).unwrap_or(0);
            s.push(alphabet.as_bytes()[(i & !3) | 1] as char);
            s
        };
        for bad in [
            "",
            "tev_",
            cut,
            longer.as_str(),
            padded.as_str(),
            non_canonical.as_str(),
            &token[4..],
            "tev_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        ] {
            assert_eq!(
                presented_hash(AccountTokenPurpose::EmailVerification, bad),
                None,
                "{bad:?}"
            );
        }
    }
}
