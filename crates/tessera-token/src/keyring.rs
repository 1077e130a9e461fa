use base64::Engine as _;
use serde::Serialize;

use crate::b64::B64;
use crate::claims::{parse_access, parse_refresh, AccessClaims, RefreshClaims};
use crate::error::{KeyError, TokenError};
use crate::header::parse_header;
use crate::hmac::MAC_LEN;
use crate::key::{HmacKey, TokenKind};
use crate::{TokenBuf, Validation, MAX_LEEWAY_SECS, MAX_TOKEN_BYTES};

/// Length of an HS256 signature segment: 32 bytes in unpadded base64url.
const SIGNATURE_B64_LEN: usize = 43;

/// Room for the claims JSON of a typical token, so serializing it does not
/// reallocate.
const SIGN_JSON_CAPACITY: usize = 512;

/// The keys of one issuer: a signing key for each token kind, plus keys that
/// only verify (the previous keys during a graceful rotation).
///
/// Verification finds the key by the header's `kid` and then trusts the key,
/// not the header: its kind must be the expected one and its algorithm is
/// the only one accepted.
#[derive(Clone, Debug)]
pub struct Keyring {
    /// Every key; `keys[ACCESS]` and `keys[REFRESH]` sign.
    keys: Vec<HmacKey>,
}

const ACCESS: usize = 0;
const REFRESH: usize = 1;

impl Keyring {
    /// A keyring that signs access tokens with `access` and refresh tokens
    /// with `refresh`. Each key must be of its slot's kind, and their kids
    /// must differ.
    pub fn new(access: HmacKey, refresh: HmacKey) -> Result<Self, KeyError> {
        for (key, expected) in [(&access, TokenKind::Access), (&refresh, TokenKind::Refresh)] {
            if key.kind() != expected {
                return Err(KeyError::WrongKind {
                    expected,
                    actual: key.kind(),
                });
            }
        }
        if access.kid() == refresh.kid() {
            return Err(KeyError::DuplicateKid(access.kid().to_owned()));
        }
        Ok(Self {
            keys: vec![access, refresh],
        })
    }

    /// Adds a key that verifies tokens of its kind but never signs (for a
    /// graceful rotation: the old key keeps verifying until its last token
    /// expires). A kid already in the keyring is an error.
    pub fn add_verification_key(&mut self, key: HmacKey) -> Result<(), KeyError> {
        if self.keys.iter().any(|k| k.kid() == key.kid()) {
            return Err(KeyError::DuplicateKid(key.kid().to_owned()));
        }
        self.keys.push(key);
        Ok(())
    }

    /// The kid access tokens are signed with.
    pub fn access_kid(&self) -> &str {
        self.signing_key(TokenKind::Access).kid()
    }

    /// The kid refresh tokens are signed with.
    pub fn refresh_kid(&self) -> &str {
        self.signing_key(TokenKind::Refresh).kid()
    }

    /// Signs an access token. Deterministic: the same claims and key always
    /// give the same string.
    pub fn sign_access(&self, claims: &AccessClaims<'_>) -> String {
        sign(self.signing_key(TokenKind::Access), claims)
    }

    /// Signs a refresh token. Deterministic, like [`Keyring::sign_access`].
    pub fn sign_refresh(&self, claims: &RefreshClaims<'_>) -> String {
        sign(self.signing_key(TokenKind::Refresh), claims)
    }

    /// Verifies an access token at unix time `now` and returns its claims,
    /// which borrow from `buf`. No heap allocation unless a string claim
    /// contains JSON escapes.
    pub fn verify_access<'b>(
        &self,
        token: &str,
        validation: &Validation,
        now: i64,
        buf: &'b mut TokenBuf,
    ) -> Result<AccessClaims<'b>, TokenError> {
        self.verify_access_with(token, validation, now, buf, true)
    }

    /// Verifies a refresh token at unix time `now`, like
    /// [`Keyring::verify_access`]. Refresh tokens have no audience.
    pub fn verify_refresh<'b>(
        &self,
        token: &str,
        validation: &Validation,
        now: i64,
        buf: &'b mut TokenBuf,
    ) -> Result<RefreshClaims<'b>, TokenError> {
        self.verify_refresh_with(token, validation, now, buf, true)
    }

    pub(crate) fn verify_access_with<'b>(
        &self,
        token: &str,
        validation: &Validation,
        now: i64,
        buf: &'b mut TokenBuf,
        fast_header: bool,
    ) -> Result<AccessClaims<'b>, TokenError> {
        let payload = self.authenticate(token, TokenKind::Access, buf, fast_header)?;
        let claims = parse_access(payload)?;
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
        validation: &Validation,
        now: i64,
        buf: &'b mut TokenBuf,
        fast_header: bool,
    ) -> Result<RefreshClaims<'b>, TokenError> {
        let payload = self.authenticate(token, TokenKind::Refresh, buf, fast_header)?;
        let claims = parse_refresh(payload)?;
        if claims.iss != validation.issuer {
            return Err(TokenError::WrongIssuer);
        }
        check_times(validation, now, claims.exp, None, claims.iat)?;
        Ok(claims)
    }

    fn signing_key(&self, kind: TokenKind) -> &HmacKey {
        let index = match kind {
            TokenKind::Access => ACCESS,
            TokenKind::Refresh => REFRESH,
        };
        // `new` is the only constructor and fills both slots; nothing removes keys.
        &self.keys[index]
    }

    /// Checks everything but the claims: shape, header, key, signature. On
    /// success returns the payload JSON, decoded into `buf`.
    ///
    /// The order matters: the signature is checked before the payload is
    /// even decoded, so a forger learns nothing about the claims' handling
    /// (in particular not whether a token has expired).
    fn authenticate<'b>(
        &self,
        token: &str,
        kind: TokenKind,
        buf: &'b mut TokenBuf,
        fast_header: bool,
    ) -> Result<&'b str, TokenError> {
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

        let key = self.find_key(header, kind, buf, fast_header)?;

        if signature.len() != SIGNATURE_B64_LEN {
            return Err(TokenError::Malformed("signature must be 32 bytes"));
        }
        let mut tag = [0u8; MAC_LEN];
        match B64.decode_slice(signature, &mut tag) {
            Ok(MAC_LEN) => {}
            _ => return Err(TokenError::Malformed("signature is not canonical base64url")),
        }
        let signing_input = &token.as_bytes()[..last]; // header.payload
        if !key.verify_input(signing_input, &tag) {
            return Err(TokenError::BadSignature);
        }

        let len = B64
            .decode_slice(payload, &mut buf.bytes)
            .map_err(|_| TokenError::Malformed("payload is not canonical base64url"))?;
        std::str::from_utf8(&buf.bytes[..len]).map_err(|_| TokenError::Malformed("payload is not utf-8"))
    }

    /// The key a token's header segment names, checked against the kind
    /// expected. The header never chooses the algorithm: the key does.
    ///
    /// Fast path: a header segment byte-equal to the one a key of this
    /// keyring signs with is that key's, with no decoding. Anything else is
    /// decoded and parsed strictly; both paths give the same answer for the
    /// same header.
    fn find_key(
        &self,
        header_b64: &str,
        kind: TokenKind,
        buf: &mut TokenBuf,
        fast_header: bool,
    ) -> Result<&HmacKey, TokenError> {
        if fast_header {
            if let Some(key) = self.keys.iter().find(|k| k.header_b64() == header_b64) {
                return if key.kind() == kind {
                    Ok(key)
                } else {
                    Err(TokenError::WrongKind)
                };
            }
        }
        let len = B64
            .decode_slice(header_b64, &mut buf.bytes)
            .map_err(|_| TokenError::Malformed("header is not canonical base64url"))?;
        let header = parse_header(&buf.bytes[..len])?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid() == header.kid)
            .ok_or(TokenError::UnknownKey)?;
        if key.kind() != kind || header.typ != kind.typ() {
            return Err(TokenError::WrongKind);
        }
        if header.alg != key.algorithm().name() {
            return Err(TokenError::AlgorithmMismatch);
        }
        Ok(key)
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

fn sign<T: Serialize>(key: &HmacKey, claims: &T) -> String {
    let mut json = Vec::with_capacity(SIGN_JSON_CAPACITY);
    if serde_json::to_writer(&mut json, claims).is_err() {
        // Claims are strings and integers only, so serializing them into
        // memory cannot fail. Were it ever to, the payload would be `{}`: a
        // token that never verifies, not a panic in the server.
        json.clear();
        json.extend_from_slice(b"{}");
    }
    let header = key.header_b64();
    let payload_len = json.len().div_ceil(3) * 4; // upper bound, unpadded
    let mut token = String::with_capacity(header.len() + payload_len + SIGNATURE_B64_LEN + 2);
    token.push_str(header);
    token.push('.');
    B64.encode_string(&json, &mut token);
    let tag = key.sign_input(token.as_bytes());
    token.push('.');
    B64.encode_string(tag, &mut token);
    token
}

#[cfg(test)]
pub(crate) mod tests;
