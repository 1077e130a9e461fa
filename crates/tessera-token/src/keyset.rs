use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};

use base64::Engine as _;
use uuid::Uuid;

use crate::asym::MAX_SIGNATURE_BYTES;
use crate::b64::B64;
use crate::claims::{parse_access, parse_refresh, AccessClaims, RefreshClaims};
use crate::error::{KeyError, TokenError};
use crate::header::parse_header;
use crate::key::{valid_kid, Algorithm, Key, TokenKind, HEADER_SUFFIX};
use crate::{TokenBuf, Validation, MAX_LEEWAY_SECS, MAX_TOKEN_BYTES};

/// Length of an HS256 signature segment: 32 bytes in unpadded base64url.
#[cfg(test)]
pub(crate) const SIGNATURE_B64_LEN: usize = 43;

/// Every verification key of every tenant, found by `kid` in O(1).
///
/// One set serves all tenants: a token is verified by the key its header
/// names, and belongs to that key's tenant. Its `tid` claim must agree: a
/// token whose `tid` is another tenant is [`TokenError::TenantMismatch`],
/// and so is a token without `tid` (signed before tenants existed) unless
/// its key is [`crate::DEFAULT_TENANT`]'s. Then the key, not the header,
/// decides the algorithm, and its kind must be the one expected.
///
/// Kids are unique across the whole set, whatever the tenant. The keys sit
/// in a std hash table, hashed by kid with std's randomly keyed SipHash:
/// kids come from tokens, so from attackers, and must not be able to pick
/// colliding buckets. Each key lives in the table itself, its kid (up to 30
/// characters) and HMAC state inline, so a lookup in a set of 100,000
/// tenants reads one table slot, not strings scattered over the heap: about
/// 120 bytes a key, 4 keys a tenant. `Debug` shows only the number of keys.
///
/// ```
/// use std::borrow::Cow;
/// use tessera_token::{
///     AccessClaims, Key, KeySet, SigningKeys, TokenBuf, TokenError, TokenKind, Uuid, Validation,
/// };
///
/// let (acme, globex) = (Uuid::new_v4(), Uuid::new_v4());
/// let keys_of = |tenant: Uuid, kid: &str, secret: &[u8]| -> Result<SigningKeys, Box<dyn std::error::Error>> {
///     let access = Key::with_kid(TokenKind::Access, &format!("{kid}-a"), secret)?.for_tenant(tenant);
///     let refresh = Key::with_kid(TokenKind::Refresh, &format!("{kid}-r"), secret)?.for_tenant(tenant);
///     Ok(SigningKeys::new(access, refresh)?)
/// };
/// let acme_keys = keys_of(acme, "acme", b"acme's secret: 32+ random bytes.........")?;
/// let globex_keys = keys_of(globex, "globex", b"globex's secret: 32+ random bytes.......")?;
///
/// let mut set = KeySet::new();
/// for keys in [&acme_keys, &globex_keys] {
///     set.insert(keys.access_key().clone())?;
///     set.insert(keys.refresh_key().clone())?;
/// }
///
/// let now = 1_700_000_000;
/// let claims = AccessClaims {
///     iss: Cow::Borrowed("https://auth.example.com"),
///     aud: Cow::Borrowed("tessera"),
///     sub: Uuid::new_v4(),
///     sid: Uuid::new_v4(),
///     tid: acme,
///     email: Cow::Borrowed("ada@acme.example"),
///     role: Cow::Borrowed("user"),
///     iat: now,
///     nbf: now,
///     exp: now + 900,
///     jti: Uuid::new_v4(),
/// };
/// let token = acme_keys.sign_access(&claims);
///
/// let validation = Validation::new("https://auth.example.com", "tessera");
/// let mut buf = TokenBuf::new();
/// let verified = set.verify_access_for(&token, acme, &validation, now, &mut buf)?;
/// assert_eq!(verified.tid, acme);
/// // A genuine acme token is no globex token...
/// let mut buf = TokenBuf::new();
/// let as_globex = set.verify_access_for(&token, globex, &validation, now, &mut buf);
/// assert_eq!(as_globex, Err(TokenError::WrongTenant));
/// // ...and globex's key does not sign acme's tokens.
/// let forged = globex_keys.sign_access(&claims);
/// assert_eq!(set.verify_access(&forged, &validation, now, &mut buf), Err(TokenError::TenantMismatch));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct KeySet {
    keys: HashSet<ByKid>,
}

/// A key in the table: equal, and hashed, as its kid's bytes, so the table
/// is a map from kid to key without storing the kid twice.
#[derive(Clone)]
struct ByKid(Key);

impl PartialEq for ByKid {
    fn eq(&self, other: &Self) -> bool {
        self.0.kid_bytes() == other.0.kid_bytes()
    }
}

impl Eq for ByKid {}

impl Hash for ByKid {
    /// Exactly as `[u8]` hashes, as `Borrow` requires.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.kid_bytes().hash(state);
    }
}

impl Borrow<[u8]> for ByKid {
    fn borrow(&self) -> &[u8] {
        self.0.kid_bytes()
    }
}

impl KeySet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set with room for `capacity` keys, so that loading every
    /// tenant's keys at startup does not rehash along the way.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            keys: HashSet::with_capacity(capacity),
        }
    }

    /// Adds `key`. A kid already in the set (of any tenant) is an error and
    /// leaves the set unchanged.
    pub fn insert(&mut self, key: Key) -> Result<(), KeyError> {
        if self.keys.contains(key.kid_bytes()) {
            return Err(KeyError::DuplicateKid(key.kid().to_owned()));
        }
        self.keys.insert(ByKid(key));
        Ok(())
    }

    /// Adds `key`, replacing the key of the same kid if there is one, and
    /// returns the replaced key.
    pub fn upsert(&mut self, key: Key) -> Option<Key> {
        self.keys.replace(ByKid(key)).map(|old| old.0)
    }

    /// Removes the key `kid` and returns it.
    pub fn remove(&mut self, kid: &str) -> Option<Key> {
        self.keys.take(kid.as_bytes()).map(|old| old.0)
    }

    /// The key `kid`, of whichever tenant.
    pub fn get(&self, kid: &str) -> Option<&Key> {
        self.get_bytes(kid.as_bytes())
    }

    fn get_bytes(&self, kid: &[u8]) -> Option<&Key> {
        self.keys.get(kid).map(|k| &k.0)
    }

    /// Whether the set has a key `kid`.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains(kid.as_bytes())
    }

    /// The number of keys, of every tenant.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set has no key at all.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Keeps only the keys for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Key) -> bool) {
        self.keys.retain(|key| keep(&key.0));
    }

    /// Removes every key of `tenant` and returns how many there were. Scans
    /// the whole set: for deleting a tenant, not for every request.
    pub fn remove_tenant(&mut self, tenant: Uuid) -> usize {
        let before = self.keys.len();
        self.keys.retain(|key| key.0.tenant() != tenant);
        before - self.keys.len()
    }

    /// Every key, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Key> + '_ {
        self.keys.iter().map(|k| &k.0)
    }

    /// Verifies an access token of any tenant at unix time `now` and returns
    /// its claims, which borrow from `buf`; `tid` says whose token it is. No
    /// heap allocation unless a string claim contains JSON escapes.
    pub fn verify_access<'b>(
        &self,
        token: &str,
        validation: &Validation,
        now: i64,
        buf: &'b mut TokenBuf,
    ) -> Result<AccessClaims<'b>, TokenError> {
        self.verify_access_with(token, None, validation, now, buf, true)
    }

    /// Verifies an access token of `tenant`, like [`KeySet::verify_access`].
    /// A genuine token of another tenant is [`TokenError::WrongTenant`],
    /// whatever its times say.
    pub fn verify_access_for<'b>(
        &self,
        token: &str,
        tenant: Uuid,
        validation: &Validation,
        now: i64,
        buf: &'b mut TokenBuf,
    ) -> Result<AccessClaims<'b>, TokenError> {
        self.verify_access_with(token, Some(tenant), validation, now, buf, true)
    }

    /// Verifies a refresh token of any tenant at unix time `now`, like
    /// [`KeySet::verify_access`]. Refresh tokens have no audience.
    pub fn verify_refresh<'b>(
        &self,
        token: &str,
        validation: &Validation,
        now: i64,
        buf: &'b mut TokenBuf,
    ) -> Result<RefreshClaims<'b>, TokenError> {
        self.verify_refresh_with(token, None, validation, now, buf, true)
    }

    /// Verifies a refresh token of `tenant`, like
    /// [`KeySet::verify_access_for`].
    pub fn verify_refresh_for<'b>(
        &self,
        token: &str,
        tenant: Uuid,
        validation: &Validation,
        now: i64,
        buf: &'b mut TokenBuf,
    ) -> Result<RefreshClaims<'b>, TokenError> {
        self.verify_refresh_with(token, Some(tenant), validation, now, buf, true)
    }

    /// Verifies an access token like [`KeySet::verify_access`] (or, with
    /// `tenant`, [`KeySet::verify_access_for`]), consulting `cache` for
    /// public-key signatures: a token whose exact bytes verified before
    /// skips the signature arithmetic (50 to 250 µs), and one that verifies
    /// now is remembered. Everything else is checked as always: the key
    /// must still be in the set (a revoked key's tokens stay refused, cached
    /// or not), and the claims, tenant and times are read afresh, so a
    /// cached token still expires. HS256 signatures cost less than a cache
    /// lookup and never use it.
    pub fn verify_access_cached<'b>(
        &self,
        token: &str,
        tenant: Option<Uuid>,
        validation: &Validation,
        now: i64,
        buf: &'b mut TokenBuf,
        cache: &dyn SignatureCache,
    ) -> Result<AccessClaims<'b>, TokenError> {
        self.verify_access_inner(token, tenant, validation, now, buf, true, Some(cache))
    }

    /// `fast_header: false` forces the strict header path, so tests can
    /// check that both paths answer the same.
    pub(crate) fn verify_access_with<'b>(
        &self,
        token: &str,
        tenant: Option<Uuid>,
        validation: &Validation,
        now: i64,
        buf: &'b mut TokenBuf,
        fast_header: bool,
    ) -> Result<AccessClaims<'b>, TokenError> {
        self.verify_access_inner(token, tenant, validation, now, buf, fast_header, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn verify_access_inner<'b>(
        &self,
        token: &str,
        tenant: Option<Uuid>,
        validation: &Validation,
        now: i64,
        buf: &'b mut TokenBuf,
        fast_header: bool,
        cache: Option<&dyn SignatureCache>,
    ) -> Result<AccessClaims<'b>, TokenError> {
        let (key, payload) = self.authenticate(token, TokenKind::Access, buf, fast_header, cache)?;
        let claims = parse_access(payload)?;
        check_tenant(key, claims.tid, tenant)?;
        if claims.iss != validation.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if claims.aud != validation.audience {
            return Err(TokenError::WrongAudience);
        }
        check_times(validation, now, claims.exp, Some(claims.nbf), claims.iat)?;
        Ok(claims)
    }

    pub(crate) fn verify_refresh_with<'b>(
        &self,
        token: &str,
        tenant: Option<Uuid>,
        validation: &Validation,
        now: i64,
        buf: &'b mut TokenBuf,
        fast_header: bool,
    ) -> Result<RefreshClaims<'b>, TokenError> {
        let (key, payload) = self.authenticate(token, TokenKind::Refresh, buf, fast_header, None)?;
        let claims = parse_refresh(payload)?;
        check_tenant(key, claims.tid, tenant)?;
        if claims.iss != validation.issuer {
            return Err(TokenError::WrongIssuer);
        }
        check_times(validation, now, claims.exp, None, claims.iat)?;
        Ok(claims)
    }

    /// Checks everything but the claims: shape, header, key, signature. On
    /// success returns the key and the payload JSON, decoded into `buf`.
    ///
    /// The order matters: the signature is checked before the payload is
    /// even decoded, so a forger learns nothing about the claims' handling
    /// (in particular not whether a token has expired, nor whose it is).
    fn authenticate<'s, 'b>(
        &'s self,
        token: &str,
        kind: TokenKind,
        buf: &'b mut TokenBuf,
        fast_header: bool,
        cache: Option<&dyn SignatureCache>,
    ) -> Result<(&'s Key, &'b str), TokenError> {
        let (header, payload, signature) = split(token)?;

        let key = self.find_key(header, kind, buf, fast_header)?;

        // The key says how long its signatures are; the segment must be
        // exactly that, in canonical base64url.
        let expected = key.signature_len();
        if signature.len() != (expected * 4).div_ceil(3) {
            return Err(TokenError::Malformed("signature has the wrong length for its key"));
        }
        let mut bytes = [0u8; MAX_SIGNATURE_BYTES];
        match B64.decode_slice(signature, &mut bytes) {
            Ok(len) if len == expected => {}
            _ => return Err(TokenError::Malformed("signature is not canonical base64url")),
        }
        // header.payload: `split` took both from the start of `token`.
        let signing_input = &token.as_bytes()[..header.len() + 1 + payload.len()];
        let cache = cache.filter(|_| key.algorithm().is_asymmetric());
        let digest = cache.map(|_| signature_digest(token));
        let known = match (cache, &digest) {
            (Some(cache), Some(digest)) => cache.contains(digest),
            _ => false,
        };
        if !known {
            if !key.verify_input(signing_input, &bytes[..expected]) {
                return Err(TokenError::BadSignature);
            }
            if let (Some(cache), Some(digest)) = (cache, digest) {
                cache.insert(digest);
            }
        }

        let len = B64
            .decode_slice(payload, &mut buf.bytes)
            .map_err(|_| TokenError::Malformed("payload is not canonical base64url"))?;
        let json = std::str::from_utf8(&buf.bytes[..len]).map_err(|_| TokenError::Malformed("payload is not utf-8"))?;
        Ok((key, json))
    }

    /// The key a token's header segment names, checked against the kind
    /// expected. The header never chooses the algorithm: the key does.
    ///
    /// Fast path: a header in exactly the form a key signs with (see
    /// [`header_kid_candidate`]) is looked up by its kid, and that key is
    /// the answer if the header is byte for byte the one it signs with; an
    /// unknown kid is unknown. Anything else is parsed strictly. Both paths
    /// give the same answer for the same header; tests compare them.
    fn find_key(
        &self,
        header_b64: &str,
        kind: TokenKind,
        buf: &mut TokenBuf,
        fast_header: bool,
    ) -> Result<&Key, TokenError> {
        if fast_header {
            let mut scratch = [0u8; TAIL_SCRATCH];
            if let Some((alg, typ, kid)) = header_kid_candidate(header_b64, &mut scratch) {
                match self.get_bytes(kid) {
                    // A key's kid is valid, so the header is exactly
                    // `{"alg":"<alg>","typ":"..","kid":"<kid>"}`. With the
                    // key's own alg and typ, these are the very bytes the
                    // key signs its headers with, and since base64url
                    // decoding is canonical, the very segment too (tests
                    // check both). Another alg or typ is left to the strict
                    // path, which reports it.
                    Some(key) if typ == key.kind() && alg == key.algorithm() => {
                        return if key.kind() == kind {
                            Ok(key)
                        } else {
                            Err(TokenError::WrongKind)
                        };
                    }
                    // The exact form with a kid no key has: the strict
                    // parser would read this very kid, and not find it
                    // either.
                    None if valid_kid(kid) => return Err(TokenError::UnknownKey),
                    _ => {}
                }
            }
        }
        let len = B64
            .decode_slice(header_b64, &mut buf.bytes)
            .map_err(|_| TokenError::Malformed("header is not canonical base64url"))?;
        let header = parse_header(&buf.bytes[..len])?;
        let key = self.get(&header.kid).ok_or(TokenError::UnknownKey)?;
        if key.kind() != kind || header.typ != kind.typ() {
            return Err(TokenError::WrongKind);
        }
        if header.alg != key.algorithm().name() {
            return Err(TokenError::AlgorithmMismatch);
        }
        Ok(key)
    }
}

/// Public-key signatures already verified, by [`signature_digest`] of the
/// whole token: what [`KeySet::verify_access_cached`] consults. Only
/// signatures that verified are ever inserted, and the digest covers the
/// header (so the kid and algorithm), the payload and the signature, so a
/// cached entry vouches for those exact bytes and nothing else. An
/// implementation should be bounded; forgetting entries is always safe.
pub trait SignatureCache: Sync {
    /// Whether this digest was inserted (and not forgotten since).
    fn contains(&self, digest: &[u8; 32]) -> bool;
    /// Remembers a digest whose signature verified.
    fn insert(&self, digest: [u8; 32]);
}

/// A bounded [`SignatureCache`]: 16 shards of at most 4,096 digests (about
/// 4 MB in all), each forgetting everything when full, which costs a
/// re-verification, never a wrong answer. Revocation needs no purge: a
/// token is checked against the key set before the cache is consulted, and
/// a revoked key is gone from the set.
pub struct VerifiedSignatures {
    shards: Vec<std::sync::Mutex<HashSet<[u8; 32]>>>,
}

const VERIFIED_SHARDS: usize = 16;
const VERIFIED_PER_SHARD: usize = 4096;

impl Default for VerifiedSignatures {
    fn default() -> Self {
        Self {
            shards: (0..VERIFIED_SHARDS)
                .map(|_| std::sync::Mutex::new(HashSet::new()))
                .collect(),
        }
    }
}

impl VerifiedSignatures {
    fn shard(&self, digest: &[u8; 32]) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        let shard = &self.shards[usize::from(digest[0]) % VERIFIED_SHARDS];
        shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SignatureCache for VerifiedSignatures {
    fn contains(&self, digest: &[u8; 32]) -> bool {
        self.shard(digest).contains(digest)
    }

    fn insert(&self, digest: [u8; 32]) {
        let mut shard = self.shard(&digest);
        if shard.len() >= VERIFIED_PER_SHARD {
            shard.clear();
        }
        shard.insert(digest);
    }
}

impl fmt::Debug for VerifiedSignatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerifiedSignatures")
    }
}

/// SHA-256 of a domain prefix and the whole token.
pub fn signature_digest(token: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::new()
        .chain_update(b"tessera-verified-token-v1\0")
        .chain_update(token.as_bytes())
        .finalize()
        .into()
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet").field("len", &self.keys.len()).finish()
    }
}

/// The kid of a token whose key is not in the server's [`KeySet`], so that
/// the server can look that key up (in its database, once: another instance
/// may just have created it) before verifying the token.
///
/// Only the header is read, and by the same rules as verification: the
/// token must pass the length and segment checks, the header must be
/// canonical base64url and a JSON object of exactly `alg`, `typ` and `kid`,
/// `alg` must be one of the four [`Algorithm`]s and `typ` one of the two
/// token kinds. `crit`, `jku`, `jwk`, `x5u` and every other member are
/// refused. A kid outside `A-Z a-z 0-9 _ -` or longer than
/// [`crate::MAX_KID_CHARS`] names no key that can exist, so it is
/// [`TokenError::UnknownKey`] rather than something to look up.
///
/// Nothing else is trusted: the payload is not read and the signature not
/// checked (there is no key to check it with), so the kid is only a name an
/// anonymous client sent. Look it up, don't act on it, and limit how often
/// unknown kids may cost a database lookup. The token is verified only once
/// its key is in the set.
pub fn header_kid<'b>(token: &str, buf: &'b mut TokenBuf) -> Result<&'b str, TokenError> {
    let (header_b64, _, _) = split(token)?;
    let len = B64
        .decode_slice(header_b64, &mut buf.bytes)
        .map_err(|_| TokenError::Malformed("header is not canonical base64url"))?;
    let mut kid = [0u8; crate::MAX_KID_CHARS];
    let kid_len = {
        let header = parse_header(&buf.bytes[..len])?;
        if Algorithm::from_name(&header.alg).is_none() {
            return Err(TokenError::AlgorithmMismatch);
        }
        if header.typ != TokenKind::Access.typ() && header.typ != TokenKind::Refresh.typ() {
            return Err(TokenError::WrongKind);
        }
        let name = header.kid.as_bytes();
        if !valid_kid(name) {
            return Err(TokenError::UnknownKey);
        }
        kid[..name.len()].copy_from_slice(name);
        name.len()
    };
    // The kid may have been unescaped into a `String`; copying it back into
    // `buf` returns it without allocating for the caller.
    let out = &mut buf.bytes[..kid_len];
    out.copy_from_slice(&kid[..kid_len]);
    std::str::from_utf8(out).map_err(|_| TokenError::Malformed("header is not utf-8"))
}

/// The header, payload and signature segments of `token`, after the checks
/// that need no decoding: length, exactly three segments, none empty.
fn split(token: &str) -> Result<(&str, &str, &str), TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong);
    }
    // `find`, `rfind` and `contains` of one ASCII byte run word-at-a-time.
    let (Some(first), Some(last)) = (token.find('.'), token.rfind('.')) else {
        return Err(TokenError::Malformed("a token has exactly three segments"));
    };
    let (header, signature) = (&token[..first], &token[last + 1..]);
    let payload = token.get(first + 1..last).unwrap_or_default();
    if first == last || payload.contains('.') {
        return Err(TokenError::Malformed("a token has exactly three segments"));
    }
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(TokenError::Malformed("empty segment"));
    }
    Ok((header, payload, signature))
}

/// The base64url of the first 36 bytes of `key::header_prefix(alg, kind)`,
/// `{"alg":"<alg>","typ":"at+jwt","kid":` or its `rt+jwt` twin. Every
/// algorithm's name is five characters and 36 is a multiple of 3, so these
/// 48 characters start the segment of every header of that algorithm and
/// kind, whatever the kid; what follows encodes `"<kid>"}` alone. Tests
/// check each against the header keys write.
const HEADER_B64_PREFIXES: [(Algorithm, TokenKind, &str); 8] = [
    (
        Algorithm::HS256,
        TokenKind::Access,
        "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6",
    ),
    (
        Algorithm::HS256,
        TokenKind::Refresh,
        "eyJhbGciOiJIUzI1NiIsInR5cCI6InJ0K2p3dCIsImtpZCI6",
    ),
    (
        Algorithm::EdDSA,
        TokenKind::Access,
        "eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCIsImtpZCI6",
    ),
    (
        Algorithm::EdDSA,
        TokenKind::Refresh,
        "eyJhbGciOiJFZERTQSIsInR5cCI6InJ0K2p3dCIsImtpZCI6",
    ),
    (
        Algorithm::ES256,
        TokenKind::Access,
        "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6",
    ),
    (
        Algorithm::ES256,
        TokenKind::Refresh,
        "eyJhbGciOiJFUzI1NiIsInR5cCI6InJ0K2p3dCIsImtpZCI6",
    ),
    (
        Algorithm::RS256,
        TokenKind::Access,
        "eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6",
    ),
    (
        Algorithm::RS256,
        TokenKind::Refresh,
        "eyJhbGciOiJSUzI1NiIsInR5cCI6InJ0K2p3dCIsImtpZCI6",
    ),
];

/// The 48-character segment prefix of `alg` and `kind`.
#[cfg(test)]
fn header_b64_prefix(alg: Algorithm, kind: TokenKind) -> &'static str {
    HEADER_B64_PREFIXES
        .iter()
        .find(|(a, k, _)| *a == alg && *k == kind)
        .map(|(_, _, prefix)| *prefix)
        .unwrap_or_default()
}

/// The longest encoded `"<kid>"}`: 67 bytes in base64url.
const TAIL_B64_MAX: usize = (1 + crate::MAX_KID_CHARS + 2) * 4 / 3 + 1;
/// Room to decode it, rounded up to whole 3-byte groups.
const TAIL_SCRATCH: usize = TAIL_B64_MAX.div_ceil(4) * 3;

/// The algorithm and kind named by `alg` and `typ` and what stands as the
/// kid in a header segment that is the canonical base64url of
/// `{"alg":"<alg>","typ":"at+jwt"|"rt+jwt","kid":"<kid>"}` byte for byte:
/// the form keys sign with (see `key::header_prefix_into`), if the kid is a
/// valid one. `None` for anything else, which the strict parser then reads.
/// The kid's validity is left to the caller: a kid found in a key set is
/// valid, so only a miss needs checking.
///
/// Only the part after the fixed 48 characters is decoded (into `scratch`,
/// which the kid then borrows): the same answer as decoding the whole
/// segment, since base64url encodes each 3-byte group on its own and
/// canonical decoding admits one spelling per group. Tests compare the two.
fn header_kid_candidate<'s>(
    segment: &str,
    scratch: &'s mut [u8; TAIL_SCRATCH],
) -> Option<(Algorithm, TokenKind, &'s [u8])> {
    // All eight prefixes share "eyJhbGciOiJ" and differ within the next
    // few characters, so this rejects a foreign header after a byte or two.
    let (alg, typ, tail) = HEADER_B64_PREFIXES
        .iter()
        .find_map(|(alg, kind, prefix)| Some((*alg, *kind, segment.strip_prefix(prefix)?)))?;
    if tail.len() > TAIL_B64_MAX {
        return None;
    }
    let len = B64.decode_slice(tail, scratch).ok()?;
    let kid = scratch.get(..len)?.strip_prefix(b"\"")?.strip_suffix(HEADER_SUFFIX)?;
    Some((alg, typ, kid))
}

/// [`header_kid_candidate`] with a valid kid: exactly the headers keys sign
/// with.
#[cfg(test)]
fn canonical_header_kid<'s>(
    segment: &str,
    scratch: &'s mut [u8; TAIL_SCRATCH],
) -> Option<(Algorithm, TokenKind, &'s [u8])> {
    header_kid_candidate(segment, scratch).filter(|(_, _, kid)| valid_kid(kid))
}

/// Binds a genuine token to its key's tenant, then to the tenant expected.
///
/// A token without `tid` was read as the default tenant's, so the one
/// comparison also makes the legacy rule: such a token verifies only under
/// a default-tenant key. Checked before the times, so that `Expired` keeps
/// meaning "genuine, valid, yours, and only late".
fn check_tenant(key: &Key, tid: Uuid, expected: Option<Uuid>) -> Result<(), TokenError> {
    if tid != key.tenant() {
        return Err(TokenError::TenantMismatch);
    }
    match expected {
        Some(tenant) if tenant != key.tenant() => Err(TokenError::WrongTenant),
        _ => Ok(()),
    }
}

fn check_times(validation: &Validation, now: i64, exp: i64, nbf: Option<i64>, iat: i64) -> Result<(), TokenError> {
    // i128 cannot overflow here, whatever the token says.
    let leeway = i128::from(validation.leeway_secs.min(MAX_LEEWAY_SECS));
    let now = i128::from(now);
    if let Some(nbf) = nbf {
        if i128::from(nbf) > now + leeway {
            return Err(TokenError::NotYetValid);
        }
    }
    if i128::from(iat) > now + leeway {
        return Err(TokenError::IssuedInFuture);
    }
    // Last, so that `Expired` (the one error a client may act on by
    // refreshing) means "genuine and otherwise valid".
    if now > i128::from(exp) + leeway {
        return Err(TokenError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
