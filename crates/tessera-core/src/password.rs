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
//!
//! A stored hash is only run when its cost is bounded: bcrypt up to
//! [`MAX_BCRYPT_COST`], Argon2 up to [`HashParams::stored_limit`] (64 MiB,
//! t=10, p=8, or the hasher's own parameters where they are higher). Anything
//! else is [`PasswordVerdict::Refused`] without being run, so a hostile or
//! damaged row can neither tie up a hashing slot nor allocate more memory
//! than the hashing pool is sized for.

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
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

    /// The most an Argon2 hash written by another system may ask for, when
    /// the hasher's own parameters are lower: 64 MiB, t=10, p=8.
    ///
    /// 64 MiB and p=4 are RFC 9106's second recommended setting and the
    /// defaults of node-argon2, argon2-cffi, Go's `x/crypto/argon2` advice
    /// and PHP's `PASSWORD_ARGON2ID` (64 MiB, t=4, p=1); OWASP's settings
    /// all stay under 47 MiB, t=5, p=1. t=10 is twice the highest of those.
    /// p=8 is the older argon2-cffi and Django default (their 100 MiB needs a
    /// hasher configured with that much): lanes run one after another here,
    /// so p costs neither time nor memory, and the bound only turns away
    /// nonsense. At the bound a hash costs about 20 times
    /// tessera's default (m=64 MiB, t=10 against 19 MiB, t=2).
    pub const STORED_MAXIMUM: Self = Self {
        memory_kib: 64 * 1024,
        iterations: 10,
        parallelism: 8,
    };

    /// The most a stored Argon2 hash may ask of a hasher with these
    /// parameters: each the larger of [`HashParams::STORED_MAXIMUM`]'s and
    /// these, so that the hasher's own hashes always verify.
    pub fn stored_limit(&self) -> Self {
        Self {
            memory_kib: self.memory_kib.max(Self::STORED_MAXIMUM.memory_kib),
            iterations: self.iterations.max(Self::STORED_MAXIMUM.iterations),
            parallelism: self.parallelism.max(Self::STORED_MAXIMUM.parallelism),
        }
    }

    fn weaker_than(&self, other: &Self) -> bool {
        self.memory_kib < other.memory_kib || self.iterations < other.iterations || self.parallelism < other.parallelism
    }

    fn exceeds(&self, limit: &Self) -> bool {
        self.memory_kib > limit.memory_kib || self.iterations > limit.iterations || self.parallelism > limit.parallelism
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
    /// Wrong password, or unknown user.
    Invalid,
    /// The stored hash is not one tessera runs: Argon2 parameters over
    /// [`HashParams::stored_limit`], a bcrypt cost over [`MAX_BCRYPT_COST`],
    /// `$argon2d$`, a malformed hash or an unknown scheme. It was not run;
    /// the same dummy work as for an unknown user was done instead. To the
    /// client it is a wrong password; the caller should log it with the
    /// user's id (never the hash): that account cannot log in until its
    /// password is reset.
    Refused,
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
    /// `$argon2i$`, verified and upgraded.
    Argon2i,
    /// `$2a$`, `$2b$` or `$2y$`, verified and upgraded.
    Bcrypt,
}

/// A password hash brought from another system (`tessera user import`),
/// checked to be one tessera can verify at a login: bcrypt (`$2a$`, `$2b$`,
/// `$2y$`, cost 4 to [`MAX_BCRYPT_COST`]) or an `$argon2id$` or `$argon2i$`
/// PHC string within [`HashParams::stored_limit`]. `Debug` does not print
/// it.
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
    #[error("is not a bcrypt ($2a$, $2b$, $2y$) or Argon2 ($argon2id$, $argon2i$) hash")]
    Unrecognised,
    #[error("is an $argon2d$ hash, which tessera does not verify (Argon2d is not meant for passwords; use $argon2id$ or $argon2i$)")]
    Argon2d,
    #[error("is a $2x$ bcrypt hash (crypt_blowfish's buggy variant), which tessera does not verify")]
    BcryptBuggyVariant,
    #[error("has bcrypt cost {0}; tessera verifies costs 4 to 15 (a higher cost is a denial-of-service risk at every login)")]
    BcryptCost(u32),
    #[error("is a malformed bcrypt hash (expected $2b$NN$ and 53 characters of bcrypt base64)")]
    BcryptMalformed,
    #[error("is a malformed Argon2 PHC string")]
    Argon2Malformed,
    #[error(
        "has Argon2 cost m={} KiB, t={}, p={}; tessera verifies at most m={} KiB, t={}, p={} \
         (a higher cost is a denial-of-service risk at every login)",
        .stored.memory_kib, .stored.iterations, .stored.parallelism,
        .limit.memory_kib, .limit.iterations, .limit.parallelism
    )]
    Argon2Cost { stored: HashParams, limit: HashParams },
}

impl ImportedHash {
    /// A hash for a server with the default hashing parameters: Argon2 up to
    /// [`HashParams::STORED_MAXIMUM`].
    pub fn parse(raw: &str) -> Result<Self, ImportedHashError> {
        Self::parse_for(raw, &HashParams::default())
    }

    /// A hash for a server hashing with `params`: Argon2 up to
    /// `params.stored_limit()`, what its [`PasswordHasher`] runs.
    pub fn parse_for(raw: &str, params: &HashParams) -> Result<Self, ImportedHashError> {
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
        let spec = Argon2Spec::check(&parsed, &params.stored_limit())?;
        let scheme = match spec.algorithm {
            Algorithm::Argon2id => HashScheme::Argon2id,
            _ => HashScheme::Argon2i,
        };
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

/// A stored Argon2 hash tessera runs: its variant, version and parameters,
/// checked.
struct Argon2Spec {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    stored: HashParams,
}

impl Argon2Spec {
    /// `$argon2id$` or `$argon2i$`, well formed (parameters, a salt that
    /// decodes, a hash), and asking for no more than `limit`.
    fn check(parsed: &PasswordHash<'_>, limit: &HashParams) -> Result<Self, ImportedHashError> {
        let algorithm = match parsed.algorithm.as_str() {
            "argon2id" => Algorithm::Argon2id,
            "argon2i" => Algorithm::Argon2i,
            "argon2d" => return Err(ImportedHashError::Argon2d),
            _ => return Err(ImportedHashError::Unrecognised),
        };
        let malformed = ImportedHashError::Argon2Malformed;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).map_err(|_| malformed.clone())?,
            None => Version::V0x13,
        };
        let params = Params::try_from(parsed).map_err(|_| malformed.clone())?;
        let (Some(salt), Some(_)) = (parsed.salt, parsed.hash) else {
            return Err(ImportedHashError::Argon2Malformed);
        };
        salt.decode_b64(&mut [0u8; SALT_BUF]).map_err(|_| malformed)?;
        let stored = HashParams {
            memory_kib: params.m_cost(),
            iterations: params.t_cost(),
            parallelism: params.p_cost(),
        };
        if stored.exceeds(limit) {
            return Err(ImportedHashError::Argon2Cost { stored, limit: *limit });
        }
        Ok(Self {
            algorithm,
            version,
            params,
            stored,
        })
    }
}

/// The longest salt read from a stored hash, in bytes (PHC allows 48).
const SALT_BUF: usize = 64;

/// Hashes and verifies passwords with Argon2id. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    params: HashParams,
    /// What a stored hash may ask for: `params.stored_limit()`.
    stored_limit: HashParams,
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
/// slots × cost and saves the page faults of a fresh buffer. A stored hash
/// asking for more than the hasher's own cost (at most
/// [`HashParams::stored_limit`]) gets a buffer of its own, allocated after
/// this one is freed and freed after the hash: a slot never holds more
/// than the larger of the two.
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
            stored_limit: params.stored_limit(),
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
    /// so response time does not reveal whether an account exists. A stored
    /// hash it does not run (see [`PasswordVerdict::Refused`]) gets that same
    /// work, in this hasher's own memory, instead of its own.
    pub fn verify(&self, password: &Password, stored: Option<&str>, memory: &mut HashMemory) -> PasswordVerdict {
        let Some(stored) = stored else {
            self.burn(password, memory);
            return PasswordVerdict::Invalid;
        };
        let verdict = if stored.starts_with("$2") {
            self.verify_bcrypt(password, stored)
        } else {
            self.verify_argon2(password, stored, memory)
        };
        verdict.unwrap_or_else(|| {
            self.burn(password, memory);
            PasswordVerdict::Refused
        })
    }

    /// An Argon2 hash (ours, or `$argon2i$` from another system) within
    /// [`HashParams::stored_limit`]; `None` for one not to run. A match asks
    /// for a rehash when the hash is not what this hasher would write now.
    fn verify_argon2(&self, password: &Password, stored: &str, memory: &mut HashMemory) -> Option<PasswordVerdict> {
        let parsed = PasswordHash::new(stored).ok()?;
        let spec = Argon2Spec::check(&parsed, &self.stored_limit).ok()?;
        let expected = parsed.hash?;
        let mut salt_buf = [0u8; SALT_BUF];
        let salt = parsed.salt?.decode_b64(&mut salt_buf).ok()?;
        let mut out_buf = [0u8; Output::MAX_LENGTH];
        let out = out_buf.get_mut(..expected.len())?;
        let argon2 = Argon2::new(spec.algorithm, spec.version, spec.params.clone());
        let secret = password.expose().as_bytes();
        let needed = spec.params.block_count();
        if needed <= self.argon2_params.block_count() {
            argon2
                .hash_password_into_with_memory(secret, salt, out, memory.blocks_for(&spec.params))
                .ok()?;
        } else {
            // Costlier than ours, within the limit: the slot's buffer goes
            // first, so the slot holds one buffer at a time; the next use
            // allocates ours again.
            memory.0 = Vec::new();
            let mut once = vec![Block::default(); needed];
            argon2
                .hash_password_into_with_memory(secret, salt, out, &mut once)
                .ok()?;
        }
        let computed = Output::new(out).ok()?;
        // `Output`'s equality is constant-time.
        if computed != expected {
            return Some(PasswordVerdict::Invalid);
        }
        let needs_rehash =
            spec.algorithm != Algorithm::Argon2id || spec.version != Version::V0x13 || spec.stored != self.params;
        Some(PasswordVerdict::Valid { needs_rehash })
    }

    /// An imported account's bcrypt hash: a match always asks for a rehash
    /// to Argon2id. bcrypt reads the first 72 bytes of the password, as the
    /// system that wrote the hash did. `None` for an unusable hash (a cost
    /// above [`MAX_BCRYPT_COST`], a malformed one).
    fn verify_bcrypt(&self, password: &Password, stored: &str) -> Option<PasswordVerdict> {
        check_bcrypt(stored).ok()?;
        match bcrypt::verify(password.expose().as_bytes(), stored) {
            Ok(true) => Some(PasswordVerdict::Valid { needs_rehash: true }),
            Ok(false) => Some(PasswordVerdict::Invalid),
            Err(_) => None,
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
    use argon2::password_hash::PasswordVerifier as _;

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
            PasswordVerdict::Refused
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

    /// A PHC string with these parameters, a 16-byte salt and a 32-byte
    /// hash (of nothing: it never matches).
    fn argon2_with(variant: &str, params: &str) -> String {
        format!("${variant}$v=19${params}$c29tZXNhbHRzb21lc2FsdA$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY")
    }

    #[test]
    fn stored_hashes_over_the_limits_are_refused_not_run() {
        let hasher = PasswordHasher::new(HashParams::default()).unwrap();
        let mut mem = hasher.memory();
        let own = mem.0.len();
        let started = std::time::Instant::now();
        hasher.verify(&pw("correct horse battery"), None, &mut mem);
        let unknown_user = started.elapsed();
        for params in [
            // What the black-box tester stored: days of work, 100000 passes,
            // 1 GiB; and just past each bound.
            "m=19456,t=4294967295,p=1",
            "m=19456,t=100000,p=1",
            "m=1048576,t=2,p=1",
            "m=4000000,t=1,p=1",
            "m=65537,t=1,p=1",
            "m=19456,t=11,p=1",
            "m=19456,t=2,p=9",
        ] {
            let hostile = argon2_with("argon2id", params);
            let started = std::time::Instant::now();
            assert_eq!(
                hasher.verify(&pw("correct horse battery"), Some(&hostile), &mut mem),
                PasswordVerdict::Refused,
                "{params}"
            );
            // The dummy work of an unknown user, not the hash's own.
            let took = started.elapsed();
            assert!(
                took < unknown_user * 10 + std::time::Duration::from_millis(200),
                "{params}: {took:?}"
            );
            assert_eq!(mem.0.len(), own, "{params}: no memory of its own");
            assert!(mem.0.capacity() <= own, "{params}: no memory of its own");
            assert!(matches!(
                ImportedHash::parse(&hostile),
                Err(ImportedHashError::Argon2Cost { .. })
            ));
        }
        let message = ImportedHash::parse(&argon2_with("argon2id", "m=19456,t=100000,p=1"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("t=100000") && message.contains("at most m=65536 KiB, t=10, p=8"),
            "{message}"
        );
        assert!(!message.contains("c29tZXNhbHRz"), "the hash is never repeated");
    }

    #[test]
    fn hashes_up_to_the_limits_verify_in_bounded_memory() {
        use argon2::password_hash::PasswordHasher as _;
        let hasher = PasswordHasher::new(HashParams::default()).unwrap();
        let mut mem = hasher.memory();
        let own = mem.0.len();
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        // node-argon2's and argon2-cffi's default (RFC 9106's second choice),
        // and PHP's.
        for (m, t, p) in [(65536, 3, 4), (65536, 4, 1), (7168, 10, 8)] {
            let params = Params::new(m, t, p, None).unwrap();
            let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(b"correct horse battery", &salt)
                .unwrap()
                .to_string();
            assert!(ImportedHash::parse(&theirs).is_ok(), "{theirs}");
            assert_eq!(
                hasher.verify(&pw("correct horse battery"), Some(&theirs), &mut mem),
                PasswordVerdict::Valid { needs_rehash: true },
                "m={m}, t={t}, p={p}: moved to tessera's parameters"
            );
            assert_eq!(
                hasher.verify(&pw("correct horse battery!"), Some(&theirs), &mut mem),
                PasswordVerdict::Invalid
            );
            hasher.verify(&pw("correct horse battery"), None, &mut mem);
            assert!(mem.0.capacity() <= own, "m={m}: the slot keeps its own size");
        }
    }

    #[test]
    fn a_hasher_configured_higher_verifies_its_own_and_raises_the_limit() {
        let strong = HashParams {
            memory_kib: 19 * 1024,
            iterations: 12,
            parallelism: 1,
        };
        assert_eq!(
            strong.stored_limit(),
            HashParams {
                iterations: 12,
                ..HashParams::STORED_MAXIMUM
            }
        );
        let hasher = PasswordHasher::new(strong).unwrap();
        let mut mem = hasher.memory();
        let hash = hasher.hash(&pw("correct horse battery"), &mut mem).unwrap();
        assert_eq!(
            hasher.verify(&pw("correct horse battery"), Some(&hash), &mut mem),
            PasswordVerdict::Valid { needs_rehash: false }
        );
        assert!(ImportedHash::parse_for(&hash, &strong).is_ok());
        assert!(matches!(
            ImportedHash::parse(&hash),
            Err(ImportedHashError::Argon2Cost { .. })
        ));
        let big = HashParams {
            memory_kib: 128 * 1024,
            ..HashParams::default()
        };
        assert_eq!(big.stored_limit().memory_kib, 128 * 1024);
        assert!(ImportedHash::parse_for(&argon2_with("argon2id", "m=102400,t=2,p=8"), &big).is_ok());
        assert!(ImportedHash::parse(&argon2_with("argon2id", "m=102400,t=2,p=8")).is_err());
    }

    #[test]
    fn argon2i_is_verified_and_argon2d_is_not() {
        use argon2::password_hash::PasswordHasher as _;
        let hasher = PasswordHasher::new(HashParams::default()).unwrap();
        let mut mem = hasher.memory();
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        // PHP 7.2's PASSWORD_ARGON2I default.
        let params = Params::new(1024, 2, 2, None).unwrap();
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, params.clone())
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        assert_eq!(ImportedHash::parse(&argon2i).unwrap().scheme(), HashScheme::Argon2i);
        assert_eq!(
            hasher.verify(&pw("correct horse battery"), Some(&argon2i), &mut mem),
            PasswordVerdict::Valid { needs_rehash: true }
        );
        let argon2d = Argon2::new(Algorithm::Argon2d, Version::V0x13, params)
            .hash_password(b"correct horse battery", &salt)
            .unwrap()
            .to_string();
        assert_eq!(ImportedHash::parse(&argon2d), Err(ImportedHashError::Argon2d));
        assert_eq!(
            hasher.verify(&pw("correct horse battery"), Some(&argon2d), &mut mem),
            PasswordVerdict::Refused
        );
        assert_eq!(
            ImportedHash::parse(&argon2_with("argon2x", "m=19456,t=2,p=1")),
            Err(ImportedHashError::Unrecognised)
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
            PasswordVerdict::Refused
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
                PasswordVerdict::Refused
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
        assert_eq!(
            ImportedHash::parse(&argon2_with("argon2id", "m=19456,t=2,p=1,x=3")),
            Err(ImportedHashError::Argon2Malformed)
        );
        assert_eq!(
            ImportedHash::parse("$argon2id$v=19$m=19456,t=2,p=1$"),
            Err(ImportedHashError::Argon2Malformed)
        );
    }
}
