//! Argon2id password hashing.
//!
//! The parameters start at OWASP's minimum for Argon2id (19 MiB, t=2, p=1) and
//! may only go up. Verification reads the parameters stored in the hash, so
//! raising them later keeps old hashes valid; [`PasswordVerdict::Valid`] says
//! when a stored hash is weaker than today's and should be replaced.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;
use std::fmt;

/// NIST SP 800-63B: at least 8 characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longer passwords are refused, not silently truncated (bcrypt's 72-byte trap).
pub const MAX_PASSWORD_CHARS: usize = 128;

/// A password as the user typed it: never trimmed, never logged, wiped from
/// memory when dropped.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

/// Why a string is not an acceptable password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("is required")]
    Empty,
    #[error("must be at least 8 characters")]
    TooShort,
    #[error("must be at most 128 characters")]
    TooLong,
}

impl Password {
    /// Counts characters (Unicode scalar values), not bytes, as NIST asks.
    pub fn parse(raw: String) -> Result<Self, PasswordError> {
        let chars = raw.chars().count();
        let secret = Zeroizing::new(raw);
        if chars < MIN_PASSWORD_CHARS {
            return Err(PasswordError::TooShort);
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(PasswordError::TooLong);
        }
        Ok(Self(secret))
    }

    /// A password offered at login: checked against a stored hash, not against
    /// today's policy (an imported account may predate it), but still bounded.
    pub fn parse_candidate(raw: String) -> Result<Self, PasswordError> {
        let chars = raw.chars().count();
        let secret = Zeroizing::new(raw);
        if chars == 0 {
            return Err(PasswordError::Empty);
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(PasswordError::TooLong);
        }
        Ok(Self(secret))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl HashParams {
    /// OWASP password storage cheat sheet, Argon2id option 2: 19 MiB, t=2, p=1.
    pub const OWASP_MINIMUM: Self = Self { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 };

    fn weaker_than(&self, other: &Self) -> bool {
        self.memory_kib < other.memory_kib
            || self.iterations < other.iterations
            || self.parallelism < other.parallelism
    }
}

impl Default for HashParams {
    fn default() -> Self {
        Self::OWASP_MINIMUM
    }
}

/// What hashing can fail on. None of these are the user's fault.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("argon2 parameters below the OWASP minimum (19 MiB, t=2, p=1) are refused")]
    ParamsTooWeak,
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("hashing failed: {0}")]
    Hashing(String),
}

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordVerdict {
    /// The password matches. `needs_rehash` is true when the stored hash uses
    /// weaker parameters (or another algorithm) than the hasher's.
    Valid { needs_rehash: bool },
    /// Wrong password, unknown user, or a stored hash that cannot be read.
    Invalid,
}

/// Hashes and verifies passwords with Argon2id. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    params: HashParams,
    argon2: Argon2<'static>,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher").field("params", &self.params).finish()
    }
}

/// Salt used when there is no user to check against: the work done must be the
/// same as for a real user, the result is thrown away.
const DUMMY_SALT: &[u8] = b"tessera-dummy-salt-for-unknown-users";

impl PasswordHasher {
    pub fn new(params: HashParams) -> Result<Self, HashError> {
        if params.weaker_than(&HashParams::OWASP_MINIMUM) {
            return Err(HashError::ParamsTooWeak);
        }
        let argon_params =
            Params::new(params.memory_kib, params.iterations, params.parallelism, None)
                .map_err(|e| HashError::Params(e.to_string()))?;
        Ok(Self { params, argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params) })
    }

    pub fn params(&self) -> HashParams {
        self.params
    }

    /// Hashes with a fresh random salt into a PHC string (`$argon2id$v=19$...`).
    pub fn hash(&self, password: &Password) -> Result<String, HashError> {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        self.argon2
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| HashError::Hashing(e.to_string()))
    }

    /// Checks `password` against `stored`. With no stored hash (unknown user)
    /// it does the same amount of work and answers [`PasswordVerdict::Invalid`],
    /// so response time does not reveal whether an account exists.
    pub fn verify(&self, password: &Password, stored: Option<&str>) -> PasswordVerdict {
        let Some(stored) = stored else {
            self.burn(password);
            return PasswordVerdict::Invalid;
        };
        let Ok(parsed) = PasswordHash::new(stored) else {
            self.burn(password);
            return PasswordVerdict::Invalid;
        };
        // `verify_password` takes the algorithm and costs from the PHC string.
        match Argon2::default().verify_password(password.expose().as_bytes(), &parsed) {
            Ok(()) => PasswordVerdict::Valid { needs_rehash: self.needs_rehash(&parsed) },
            Err(_) => PasswordVerdict::Invalid,
        }
    }

    fn needs_rehash(&self, parsed: &PasswordHash<'_>) -> bool {
        if parsed.algorithm != argon2::ARGON2ID_IDENT {
            return true;
        }
        match Params::try_from(parsed) {
            Ok(p) => HashParams { memory_kib: p.m_cost(), iterations: p.t_cost(), parallelism: p.p_cost() }
                .weaker_than(&self.params),
            Err(_) => true,
        }
    }

    fn burn(&self, password: &Password) {
        let mut out = [0u8; 32];
        // The result is discarded; only the time spent matters.
        let _ = self.argon2.hash_password_into(password.expose().as_bytes(), DUMMY_SALT, &mut out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> Password {
        Password::parse(s.to_owned()).unwrap()
    }

    #[test]
    fn length_is_counted_in_characters() {
        assert_eq!(Password::parse("1234567".into()).err(), Some(PasswordError::TooShort));
        assert!(Password::parse("12345678".into()).is_ok());
        // 128 four-byte characters: 512 bytes, still allowed.
        assert!(Password::parse("🔑".repeat(128)).is_ok());
        assert_eq!(Password::parse("a".repeat(129)).err(), Some(PasswordError::TooLong));
        assert!(Password::parse_candidate("short".into()).is_ok());
        assert_eq!(Password::parse_candidate(String::new()).err(), Some(PasswordError::Empty));
        assert_eq!(Password::parse_candidate("a".repeat(129)).err(), Some(PasswordError::TooLong));
    }

    #[test]
    fn passwords_are_not_trimmed_and_not_debug_printed() {
        let p = pw("  spaced out  ");
        assert_eq!(p.expose(), "  spaced out  ");
        assert_eq!(format!("{p:?}"), "Password([redacted])");
    }

    #[test]
    fn weak_params_are_refused() {
        let weak = HashParams { memory_kib: 4096, ..HashParams::OWASP_MINIMUM };
        assert!(matches!(PasswordHasher::new(weak), Err(HashError::ParamsTooWeak)));
    }

    #[test]
    fn hash_then_verify() {
        let hasher = PasswordHasher::new(HashParams::default()).unwrap();
        let hash = hasher.hash(&pw("correct horse battery")).unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert_eq!(
            hasher.verify(&pw("correct horse battery"), Some(&hash)),
            PasswordVerdict::Valid { needs_rehash: false }
        );
        assert_eq!(hasher.verify(&pw("correct horse battery!"), Some(&hash)), PasswordVerdict::Invalid);
        assert_eq!(hasher.verify(&pw("correct horse battery"), None), PasswordVerdict::Invalid);
        assert_eq!(hasher.verify(&pw("correct horse battery"), Some("garbage")), PasswordVerdict::Invalid);
    }

    #[test]
    fn stronger_params_ask_for_a_rehash() {
        let old = PasswordHasher::new(HashParams::default()).unwrap();
        let hash = old.hash(&pw("correct horse battery")).unwrap();
        let new = PasswordHasher::new(HashParams { iterations: 3, ..HashParams::default() }).unwrap();
        assert_eq!(
            new.verify(&pw("correct horse battery"), Some(&hash)),
            PasswordVerdict::Valid { needs_rehash: true }
        );
    }
}
