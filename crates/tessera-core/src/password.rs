//! Argon2id password hashing, and verification of the bcrypt hashes of
//! imported accounts.
//!
//! The parameters start at OWASP's minimum for Argon2id (19 MiB, t=2, p=1) and
//! may only go up. Verification reads the parameters stored in the hash, so
//! raising them later keeps old hashes valid; [`PasswordVerdict::Valid`] says
//! when a stored hash is weaker than today's and should be replaced.
//!
//! bcrypt (`$2a$`, `$2b$`, `$2y$`) is verified, never produced: a match always
//! asks for a rehash, so an imported account moves to Argon2id at its first
//! login. bcrypt reads only the first 72 bytes of a password, as the system
//! that made the hash did; the Argon2id hash made at that login covers the
//! whole password typed, and from then on the whole password counts.

use argon2::password_hash::{Output, ParamsString, PasswordHash, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::fmt;
use unicode_normalization::UnicodeNormalization as _;
use zeroize::Zeroizing;

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
    /// NFKC-normalizes (NIST SP 800-63B §5.1.1.2, so the same password typed
    /// on two keyboards matches) and counts characters (Unicode scalar
    /// values), not bytes.
    pub fn parse(raw: String) -> Result<Self, PasswordError> {
        let secret = normalize(raw);
        let chars = secret.chars().count();
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
        let secret = normalize(raw);
        let chars = secret.chars().count();
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

fn normalize(raw: String) -> Zeroizing<String> {
    let raw = Zeroizing::new(raw);
    if unicode_normalization::is_nfkc_quick(raw.chars()) == unicode_normalization::IsNormalized::Yes {
        return raw;
    }
    let mut normalized = Zeroizing::new(String::with_capacity(raw.len()));
    normalized.extend(raw.nfkc());
    normalized
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
    pub const OWASP_MINIMUM: Self = Self {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    fn weaker_than(&self, other: &Self) -> bool {
        self.memory_kib < other.memory_kib || self.iterations < other.iterations || self.parallelism < other.parallelism
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

/// The highest bcrypt cost tessera runs. Each step doubles the work: cost 15
/// is about 2 s of CPU, cost 31 days. A stored hash asking for more is
/// refused (at import, and as a wrong password at login), so a hostile or
/// damaged row cannot tie up a hashing slot.
pub const MAX_BCRYPT_COST: u32 = 15;
/// bcrypt's own minimum.
const MIN_BCRYPT_COST: u32 = 4;

/// The scheme of a stored password hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashScheme {
    /// `$argon2id$`, what tessera writes.
    Argon2id,
    /// `$argon2i$` or `$argon2d$`, verified and upgraded.
    Argon2Other,
    /// `$2a$`, `$2b$` or `$2y$`, verified and upgraded.
    Bcrypt,
}

/// A password hash brought from another system (`tessera user import`),
/// checked to be one tessera can verify at a login: bcrypt (`$2a$`, `$2b$`,
/// `$2y$`, cost 4 to [`MAX_BCRYPT_COST`]) or an Argon2 PHC string. `Debug`
/// does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct ImportedHash {
    hash: String,
    scheme: HashScheme,
}

/// Why a string is not a hash tessera can import. Messages never repeat the
/// hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportedHashError {
    #[error("is required")]
    Empty,
    #[error("is not a bcrypt ($2a$, $2b$, $2y$) or Argon2 ($argon2id$) hash")]
    Unrecognised,
    #[error("is a $2x$ bcrypt hash (crypt_blowfish's buggy variant), which tessera does not verify")]
    BcryptBuggyVariant,
    #[error("has bcrypt cost {0}; tessera verifies costs 4 to 15 (a higher cost is a denial-of-service risk at every login)")]
    BcryptCost(u32),
    #[error("is a malformed bcrypt hash (expected $2b$NN$ and 53 characters of bcrypt base64)")]
    BcryptMalformed,
    #[error("is a malformed Argon2 PHC string")]
    Argon2Malformed,
    #[error("asks Argon2 for more than 1 GiB of memory")]
    Argon2TooCostly,
}

impl ImportedHash {
    pub fn parse(raw: &str) -> Result<Self, ImportedHashError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(ImportedHashError::Empty);
        }
        if raw.starts_with("$2") {
            check_bcrypt(raw)?;
            return Ok(Self {
                hash: raw.to_owned(),
                scheme: HashScheme::Bcrypt,
            });
        }
        if !raw.starts_with("$argon2") {
            return Err(ImportedHashError::Unrecognised);
        }
        let parsed = PasswordHash::new(raw).map_err(|_| ImportedHashError::Argon2Malformed)?;
        let scheme = match parsed.algorithm.as_str() {
            "argon2id" => HashScheme::Argon2id,
            "argon2i" | "argon2d" => HashScheme::Argon2Other,
            _ => return Err(ImportedHashError::Unrecognised),
        };
        let params = Params::try_from(&parsed).map_err(|_| ImportedHashError::Argon2Malformed)?;
        if parsed.hash.is_none() || parsed.salt.is_none() {
            return Err(ImportedHashError::Argon2Malformed);
        }
        if params.m_cost() > MAX_STORED_MEMORY_KIB {
            return Err(ImportedHashError::Argon2TooCostly);
        }
        Ok(Self {
            hash: raw.to_owned(),
            scheme,
        })
    }

    pub fn scheme(&self) -> HashScheme {
        self.scheme
    }

    pub fn as_str(&self) -> &str {
        &self.hash
    }

    pub fn into_string(self) -> String {
        self.hash
    }
}

impl fmt::Debug for ImportedHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImportedHash({:?}, [redacted])", self.scheme)
    }
}

/// Checks the shape and cost of a bcrypt hash (`$2b$12$` + 22 characters of
/// salt + 31 of hash, in bcrypt's own base64).
fn check_bcrypt(raw: &str) -> Result<u32, ImportedHashError> {
    use std::str::FromStr as _;
    let version = raw.get(..4).ok_or(ImportedHashError::BcryptMalformed)?;
    match version {
        "$2a$" | "$2b$" | "$2y$" => {}
        "$2x$" => return Err(ImportedHashError::BcryptBuggyVariant),
        _ => return Err(ImportedHashError::Unrecognised),
    }
    let parts = bcrypt::HashParts::from_str(raw).map_err(|_| ImportedHashError::BcryptMalformed)?;
    let cost = parts.get_cost();
    if !(MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&cost) {
        return Err(ImportedHashError::BcryptCost(cost));
    }
    Ok(cost)
}

/// Hashes and verifies passwords with Argon2id. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    params: HashParams,
    argon2_params: Params,
    argon2: Argon2<'static>,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher").field("params", &self.params).finish()
    }
}

/// Working memory for one hash at a time (19 MiB at the OWASP minimum).
///
/// Argon2 needs its whole memory cost as one buffer. Allocating it per hash
/// leaves the allocator holding on to a buffer per thread that ever hashed;
/// keeping one `HashMemory` per hashing slot bounds memory to
/// slots × cost and saves the page faults of a fresh buffer.
pub struct HashMemory(Vec<Block>);

impl HashMemory {
    fn blocks_for(&mut self, params: &Params) -> &mut [Block] {
        let needed = params.block_count();
        if self.0.len() != needed {
            self.0.resize(needed, Block::default());
        }
        &mut self.0
    }
}

impl fmt::Debug for HashMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HashMemory({} KiB)", self.0.len())
    }
}

/// Salt used when there is no user to check against: the work done must be the
/// same as for a real user, the result is thrown away.
const DUMMY_SALT: &[u8] = b"tessera-dummy-salt-for-unknown-users";

/// A stored hash asking for more memory than this is refused, not run: a
/// damaged or hostile row must not be able to exhaust the server's memory.
const MAX_STORED_MEMORY_KIB: u32 = 1024 * 1024;

impl PasswordHasher {
    pub fn new(params: HashParams) -> Result<Self, HashError> {
        if params.weaker_than(&HashParams::OWASP_MINIMUM) {
            return Err(HashError::ParamsTooWeak);
        }
        let argon2_params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            Some(Params::DEFAULT_OUTPUT_LEN),
        )
        .map_err(|e| HashError::Params(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon2_params.clone());
        Ok(Self {
            params,
            argon2_params,
            argon2,
        })
    }

    pub fn params(&self) -> HashParams {
        self.params
    }

    /// Working memory sized for this hasher's parameters.
    pub fn memory(&self) -> HashMemory {
        HashMemory(vec![Block::default(); self.argon2_params.block_count()])
    }

    /// Hashes with a fresh random salt into a PHC string (`$argon2id$v=19$...`).
    pub fn hash(&self, password: &Password, memory: &mut HashMemory) -> Result<String, HashError> {
        let hashing = |e: &dyn fmt::Display| HashError::Hashing(e.to_string());
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let mut salt_buf = [0u8; 64];
        let salt_bytes = salt.as_salt().decode_b64(&mut salt_buf).map_err(|e| hashing(&e))?;
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        self.argon2
            .hash_password_into_with_memory(
                password.expose().as_bytes(),
                salt_bytes,
                &mut out,
                memory.blocks_for(&self.argon2_params),
            )
            .map_err(|e| hashing(&e))?;
        let output = Output::new(&out).map_err(|e| hashing(&e))?;
        let params = ParamsString::try_from(&self.argon2_params).map_err(|e| hashing(&e))?;
        Ok(format!(
            "${}$v=19${params}${}${output}",
            argon2::ARGON2ID_IDENT,
            salt.as_str()
        ))
    }

    /// Checks `password` against `stored`. With no stored hash (unknown user)
    /// it does the same amount of work and answers [`PasswordVerdict::Invalid`],
    /// so response time does not reveal whether an account exists.
    pub fn verify(&self, password: &Password, stored: Option<&str>, memory: &mut HashMemory) -> PasswordVerdict {
        if let Some(bcrypt_hash) = stored.filter(|s| s.starts_with("$2")) {
            return self.verify_bcrypt(password, bcrypt_hash, memory);
        }
        let Some(parsed) = stored.and_then(|s| PasswordHash::new(s).ok()) else {
            self.burn(password, memory);
            return PasswordVerdict::Invalid;
        };
        if parsed.algorithm != argon2::ARGON2ID_IDENT {
            // argon2i / argon2d from another system: the library's own path,
            // then an upgrade to argon2id.
            return match Argon2::default().verify_password(password.expose().as_bytes(), &parsed) {
                Ok(()) => PasswordVerdict::Valid { needs_rehash: true },
                Err(_) => PasswordVerdict::Invalid,
            };
        }
        match self.matches(password, &parsed, memory) {
            Some((true, needs_rehash)) => PasswordVerdict::Valid { needs_rehash },
            _ => PasswordVerdict::Invalid,
        }
    }

    /// `(matches, weaker than today)`, or `None` for an unusable stored hash.
    fn matches(&self, password: &Password, parsed: &PasswordHash<'_>, memory: &mut HashMemory) -> Option<(bool, bool)> {
        let params = Params::try_from(parsed).ok()?;
        if params.m_cost() > MAX_STORED_MEMORY_KIB {
            return None;
        }
        let version = match parsed.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::V0x13,
        };
        let expected = parsed.hash?;
        let mut salt_buf = [0u8; 64];
        let salt = parsed.salt?.decode_b64(&mut salt_buf).ok()?;
        let mut out_buf = [0u8; Output::MAX_LENGTH];
        let out = out_buf.get_mut(..expected.len())?;
        let argon2 = Argon2::new(Algorithm::Argon2id, version, params.clone());
        argon2
            .hash_password_into_with_memory(password.expose().as_bytes(), salt, out, memory.blocks_for(&params))
            .ok()?;
        let computed = Output::new(out).ok()?;
        let stored = HashParams {
            memory_kib: params.m_cost(),
            iterations: params.t_cost(),
            parallelism: params.p_cost(),
        };
        let needs_rehash = version != Version::V0x13 || stored.weaker_than(&self.params);
        // `Output`'s equality is constant-time.
        Some((computed == expected, needs_rehash))
    }

    /// An imported account's bcrypt hash: a match always asks for a rehash
    /// to Argon2id. bcrypt reads the first 72 bytes of the password, as the
    /// system that wrote the hash did. An unusable hash (a cost above
    /// [`MAX_BCRYPT_COST`], a malformed one) is a wrong password, after the
    /// same work as for an unknown user.
    fn verify_bcrypt(&self, password: &Password, stored: &str, memory: &mut HashMemory) -> PasswordVerdict {
        if check_bcrypt(stored).is_err() {
            self.burn(password, memory);
            return PasswordVerdict::Invalid;
        }
        match bcrypt::verify(password.expose().as_bytes(), stored) {
            Ok(true) => PasswordVerdict::Valid { needs_rehash: true },
            _ => PasswordVerdict::Invalid,
        }
    }

    fn burn(&self, password: &Password, memory: &mut HashMemory) {
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        // The result is discarded; only the time spent matters.
        let _ = self.argon2.hash_password_into_with_memory(
            password.expose().as_bytes(),
            DUMMY_SALT,
            &mut out,
            memory.blocks_for(&self.argon2_params),
        );
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
        assert_eq!(
            Password::parse_candidate(String::new()).err(),
            Some(PasswordError::Empty)
        );
        assert_eq!(
            Password::parse_candidate("a".repeat(129)).err(),
            Some(PasswordError::TooLong)
        );
    }

    #[test]
    fn passwords_are_nfkc_normalized() {
        let composed = Password::parse("p\u{e4}ssw\u{f6}rd-composed".into()).unwrap();
        let decomposed = Password::parse("pa\u{308}sswo\u{308}rd-composed".into()).unwrap();
        assert_eq!(composed.expose(), decomposed.expose());
        let ligature = Password::parse_candidate("\u{fb00}ort-and-more".into()).unwrap();
        assert_eq!(ligature.expose(), "ffort-and-more");
    }

    #[test]
    fn passwords_are_not_trimmed_and_not_debug_printed() {
        let p = pw("  spaced out  ");
        assert_eq!(p.expose(), "  spaced out  ");
        assert_eq!(format!("{p:?}"), "Password([redacted])");
    }

    #[test]
    fn weak_params_are_refused() {
        let weak = HashParams {
            memory_kib: 4096,
            ..HashParams::OWASP_MINIMUM
        };
        assert!(matches!(PasswordHasher::new(weak), Err(HashError::ParamsTooWeak)));
    }

    #[test]
    fn hash_then_verify() {
        let hasher = PasswordHasher::new(HashParams::default()).unwrap();
        let mut mem = hasher.memory();
        let hash = hasher.hash(&pw("correct horse battery"), &mut mem).unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        let verify = |p: &str, stored: Option<&str>, mem: &mut HashMemory| hasher.verify(&pw(p), stored, mem);
        assert_eq!(
            verify("correct horse battery", Some(&hash), &mut mem),
            PasswordVerdict::Valid { needs_rehash: false }
        );
        assert_eq!(
            verify("correct horse battery!", Some(&hash), &mut mem),
            PasswordVerdict::Invalid
        );
        assert_eq!(
            verify("correct horse battery", None, &mut mem),
            PasswordVerdict::Invalid
        );
        assert_eq!(
            verify("correct horse battery", Some("garbage"), &mut mem),
            PasswordVerdict::Invalid
        );
    }

    #[test]
    fn hashes_are_standard_phc_strings_other_libraries_verify() {
        let hasher = PasswordHasher::new(HashParams::default()).unwrap();
        let hash = hasher.hash(&pw("correct horse battery"), &mut hasher.memory()).unwrap();
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse battery", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"correct horse batter", &parsed)
            .is_err());
    }

    #[test]
    fn hashes_made_by_the_reference_path_verify_here() {
        use argon2::password_hash::PasswordHasher as _;
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let reference = Argon2::default()
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        let hasher = PasswordHasher::new(HashParams::default()).unwrap();
        let mut mem = hasher.memory();
        assert_eq!(
            hasher.verify(&pw("correct horse battery"), Some(&reference), &mut mem),
            PasswordVerdict::Valid { needs_rehash: false }
        );
        // argon2i from another system verifies and asks to be upgraded.
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::default());
        let old = argon2i
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        assert_eq!(
            hasher.verify(&pw("correct horse battery"), Some(&old), &mut mem),
            PasswordVerdict::Valid { needs_rehash: true }
        );
    }

    #[test]
    fn a_stored_hash_demanding_huge_memory_is_refused_not_run() {
        let hasher = PasswordHasher::new(HashParams::default()).unwrap();
        let mut mem = hasher.memory();
        let hostile =
            "$argon2id$v=19$m=4000000,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY";
        assert_eq!(
            hasher.verify(&pw("correct horse battery"), Some(hostile), &mut mem),
            PasswordVerdict::Invalid
        );
    }

    #[test]
    fn stronger_params_ask_for_a_rehash() {
        let old = PasswordHasher::new(HashParams::default()).unwrap();
        let hash = old.hash(&pw("correct horse battery"), &mut old.memory()).unwrap();
        let new = PasswordHasher::new(HashParams {
            iterations: 3,
            ..HashParams::default()
        })
        .unwrap();
        assert_eq!(
            new.verify(&pw("correct horse battery"), Some(&hash), &mut new.memory()),
            PasswordVerdict::Valid { needs_rehash: true }
        );
    }

    /// A bcrypt hash as another system wrote it, at the lowest cost.
    fn bcrypt_hash(password: &str, prefix: &str) -> String {
        let made = bcrypt::hash(password, 4).unwrap();
        format!("{prefix}{}", &made[4..])
    }

    #[test]
    fn bcrypt_hashes_verify_and_ask_for_argon2id() {
        let hasher = PasswordHasher::new(HashParams::default()).unwrap();
        let mut mem = hasher.memory();
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let stored = bcrypt_hash("correct horse battery", prefix);
            assert_eq!(
                hasher.verify(&pw("correct horse battery"), Some(&stored), &mut mem),
                PasswordVerdict::Valid { needs_rehash: true },
                "{prefix}"
            );
            assert_eq!(
                hasher.verify(&pw("correct horse battery!"), Some(&stored), &mut mem),
                PasswordVerdict::Invalid
            );
            let imported = ImportedHash::parse(&stored).unwrap();
            assert_eq!(imported.scheme(), HashScheme::Bcrypt);
            assert!(!format!("{imported:?}").contains(&stored[7..]), "Debug hides the hash");
        }
    }

    #[test]
    fn bcrypt_reads_72_bytes_until_the_rehash() {
        let hasher = PasswordHasher::new(HashParams::default()).unwrap();
        let mut mem = hasher.memory();
        let long = format!("{}tail-one", "x".repeat(72));
        let stored = bcrypt_hash(&long, "$2b$");
        // What the old system accepted, tessera accepts while the hash is bcrypt.
        assert_eq!(
            hasher.verify(&pw(&format!("{}tail-two", "x".repeat(72))), Some(&stored), &mut mem),
            PasswordVerdict::Valid { needs_rehash: true }
        );
        // The Argon2id hash made at that login covers every byte.
        let rehashed = hasher.hash(&pw(&long), &mut mem).unwrap();
        assert_eq!(
            hasher.verify(&pw(&long), Some(&rehashed), &mut mem),
            PasswordVerdict::Valid { needs_rehash: false }
        );
        assert_eq!(
            hasher.verify(&pw(&format!("{}tail-two", "x".repeat(72))), Some(&rehashed), &mut mem),
            PasswordVerdict::Invalid
        );
    }

    #[test]
    fn costly_or_malformed_bcrypt_hashes_are_refused_at_import_and_never_run() {
        let hasher = PasswordHasher::new(HashParams::default()).unwrap();
        let mut mem = hasher.memory();
        let good = bcrypt_hash("correct horse battery", "$2b$");
        // Cost 31 would take days; it is refused before any work.
        let costly = format!("$2b$31{}", &good[6..]);
        assert_eq!(ImportedHash::parse(&costly), Err(ImportedHashError::BcryptCost(31)));
        let started = std::time::Instant::now();
        assert_eq!(
            hasher.verify(&pw("correct horse battery"), Some(&costly), &mut mem),
            PasswordVerdict::Invalid
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(
            ImportedHash::parse(&format!("$2b$16{}", &good[6..])),
            Err(ImportedHashError::BcryptCost(16))
        );
        assert!(ImportedHash::parse(&format!("$2b$15{}", &good[6..])).is_ok());
        assert_eq!(
            ImportedHash::parse(&format!("$2x${}", &good[4..])),
            Err(ImportedHashError::BcryptBuggyVariant)
        );
        for bad in [
            &good[..59],
            &format!("{good}A"),
            &format!("$2b$1x{}", &good[6..]),
            &format!("{}!{}", &good[..20], &good[21..]),
            &format!("$2b$04${}", "\u{e9}".repeat(26)),
        ] {
            assert_eq!(
                ImportedHash::parse(bad),
                Err(ImportedHashError::BcryptMalformed),
                "{bad}"
            );
            assert_eq!(
                hasher.verify(&pw("correct horse battery"), Some(bad), &mut mem),
                PasswordVerdict::Invalid
            );
        }
        for bad in [
            "",
            "  ",
            "plaintext-password",
            "5f4dcc3b5aa765d61d8327deb882cf99",
            "$1$salt$hash",
            "$2$04$x",
        ] {
            assert!(ImportedHash::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(ImportedHash::parse(""), Err(ImportedHashError::Empty));
        let message = ImportedHashError::BcryptMalformed.to_string();
        assert!(!message.contains(&good[7..]));
    }

    #[test]
    fn argon2_hashes_import_too() {
        let hasher = PasswordHasher::new(HashParams::default()).unwrap();
        let ours = hasher.hash(&pw("correct horse battery"), &mut hasher.memory()).unwrap();
        assert_eq!(ImportedHash::parse(&ours).unwrap().scheme(), HashScheme::Argon2id);
        let hostile =
            "$argon2id$v=19$m=4000000,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY";
        assert_eq!(ImportedHash::parse(hostile), Err(ImportedHashError::Argon2TooCostly));
        assert_eq!(
            ImportedHash::parse("$argon2id$v=19$m=19456,t=2,p=1$"),
            Err(ImportedHashError::Argon2Malformed)
        );
    }
}
