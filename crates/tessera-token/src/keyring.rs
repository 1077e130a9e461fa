use base64::Engine as _;
use serde::Serialize;
use uuid::Uuid;

use crate::b64::B64;
use crate::claims::{AccessClaims, RefreshClaims};
use crate::error::{KeyError, TokenError};
use crate::key::Algorithm;
use crate::key::{Key, TokenKind};
use crate::keyset::KeySet;
use crate::{TokenBuf, Validation};

/// Room for the claims JSON of a typical token, so serializing it does not
/// reallocate.
const SIGN_JSON_CAPACITY: usize = 512;

/// Room for the longest header segment: 103 bytes of JSON in base64url.
const HEADER_B64_MAX: usize = 138;

/// One tenant's signing pair: the key access tokens are signed with and the
/// key refresh tokens are signed with.
///
/// Signing writes the claims as given: the caller puts the tenant's id in
/// `tid`, or the token will not verify (its `tid` must be its key's
/// tenant). `Debug` shows kids, kinds and tenant, never a secret.
#[derive(Clone, Debug)]
pub struct SigningKeys {
    access: Key,
    refresh: Key,
}

impl SigningKeys {
    /// Signs access tokens with `access` and refresh tokens with `refresh`.
    /// Each key must be of its slot's kind and able to sign, the refresh
    /// key must be HS256 (only tessera reads refresh tokens, so nothing is
    /// gained by publishing a key for them), their kids must differ, and
    /// they must belong to one tenant.
    pub fn new(access: Key, refresh: Key) -> Result<Self, KeyError> {
        if !access.can_sign() || !refresh.can_sign() {
            return Err(KeyError::CannotSign);
        }
        if refresh.algorithm() != Algorithm::HS256 {
            return Err(KeyError::RefreshNotHmac);
        }
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
        if access.tenant() != refresh.tenant() {
            return Err(KeyError::TenantMismatch);
        }
        Ok(Self { access, refresh })
    }

    /// The kid access tokens are signed with.
    pub fn access_kid(&self) -> &str {
        self.access.kid()
    }

    /// The kid refresh tokens are signed with.
    pub fn refresh_kid(&self) -> &str {
        self.refresh.kid()
    }

    /// The tenant both keys belong to.
    pub fn tenant(&self) -> Uuid {
        self.access.tenant()
    }

    /// The key access tokens are signed with.
    pub fn access_key(&self) -> &Key {
        &self.access
    }

    /// The key refresh tokens are signed with.
    pub fn refresh_key(&self) -> &Key {
        &self.refresh
    }

    /// Signs an access token. Deterministic: the same claims and key always
    /// give the same string.
    pub fn sign_access(&self, claims: &AccessClaims<'_>) -> String {
        sign(&self.access, claims)
    }

    /// Signs a refresh token. Deterministic, like [`SigningKeys::sign_access`].
    pub fn sign_refresh(&self, claims: &RefreshClaims<'_>) -> String {
        sign(&self.refresh, claims)
    }
}

/// The keys of one issuer and one tenant: a signing key for each token
/// kind, plus keys that only verify (the previous keys during a graceful
/// rotation). A [`SigningKeys`] and a [`KeySet`] of its keys and the
/// verify-only ones; a server of many tenants holds one `KeySet` for all of
/// them and a `SigningKeys` per tenant instead.
///
/// Verification finds the key by the header's `kid` and then trusts the key,
/// not the header: its kind must be the expected one and its algorithm is
/// the only one accepted.
#[derive(Clone, Debug)]
pub struct Keyring {
    signing: SigningKeys,
    /// The signing keys and the verify-only ones, all of `signing`'s tenant.
    keys: KeySet,
}

impl Keyring {
    /// A keyring that signs access tokens with `access` and refresh tokens
    /// with `refresh`. Each key must be of its slot's kind, their kids
    /// must differ, and they must belong to one tenant (see
    /// [`SigningKeys::new`]).
    pub fn new(access: Key, refresh: Key) -> Result<Self, KeyError> {
        let signing = SigningKeys::new(access, refresh)?;
        let mut keys = KeySet::with_capacity(2);
        keys.insert(signing.access_key().clone())?;
        keys.insert(signing.refresh_key().clone())?;
        Ok(Self { signing, keys })
    }

    /// Adds a key that verifies tokens of its kind but never signs (for a
    /// graceful rotation: the old key keeps verifying until its last token
    /// expires). A kid already in the keyring is an error, and so is a key
    /// of another tenant than the signing keys'.
    pub fn add_verification_key(&mut self, key: Key) -> Result<(), KeyError> {
        if self.keys.contains(key.kid()) {
            return Err(KeyError::DuplicateKid(key.kid().to_owned()));
        }
        if key.tenant() != self.signing.tenant() {
            return Err(KeyError::TenantMismatch);
        }
        self.keys.insert(key)
    }

    /// The kid access tokens are signed with.
    pub fn access_kid(&self) -> &str {
        self.signing.access_kid()
    }

    /// The kid refresh tokens are signed with.
    pub fn refresh_kid(&self) -> &str {
        self.signing.refresh_kid()
    }

    /// The signing pair.
    pub fn signing(&self) -> &SigningKeys {
        &self.signing
    }

    /// Every key that verifies: the signing pair and the verify-only keys.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// Signs an access token. Deterministic: the same claims and key always
    /// give the same string.
    pub fn sign_access(&self, claims: &AccessClaims<'_>) -> String {
        self.signing.sign_access(claims)
    }

    /// Signs a refresh token. Deterministic, like [`Keyring::sign_access`].
    pub fn sign_refresh(&self, claims: &RefreshClaims<'_>) -> String {
        self.signing.sign_refresh(claims)
    }

    /// Verifies an access token of the keyring's tenant at unix time `now`
    /// and returns its claims, which borrow from `buf`. No heap allocation
    /// unless a string claim contains JSON escapes.
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
        let tenant = Some(self.signing.tenant());
        self.keys
            .verify_access_with(token, tenant, validation, now, buf, fast_header)
    }

    pub(crate) fn verify_refresh_with<'b>(
        &self,
        token: &str,
        validation: &Validation,
        now: i64,
        buf: &'b mut TokenBuf,
        fast_header: bool,
    ) -> Result<RefreshClaims<'b>, TokenError> {
        let tenant = Some(self.signing.tenant());
        self.keys
            .verify_refresh_with(token, tenant, validation, now, buf, fast_header)
    }
}

fn sign<T: Serialize>(key: &Key, claims: &T) -> String {
    let mut json = Vec::with_capacity(SIGN_JSON_CAPACITY);
    if serde_json::to_writer(&mut json, claims).is_err() {
        // Claims are strings and integers only, so serializing them into
        // memory cannot fail. Were it ever to, the payload would be `{}`: a
        // token that never verifies, not a panic in the server.
        json.clear();
        json.extend_from_slice(b"{}");
    }
    let payload_len = json.len().div_ceil(3) * 4; // upper bound, unpadded
    let signature_len = (key.signature_len() * 4).div_ceil(3);
    let mut token = String::with_capacity(HEADER_B64_MAX + payload_len + signature_len + 2);
    key.write_header_b64(&mut token);
    token.push('.');
    B64.encode_string(&json, &mut token);
    // `SigningKeys::new` admits only keys that sign. Were one not to, the
    // token would end in an empty signature: one that never verifies.
    let signature = key.sign_input(token.as_bytes());
    token.push('.');
    if let Some(signature) = signature {
        B64.encode_string(signature.as_bytes(), &mut token);
    }
    token
}

#[cfg(test)]
pub(crate) mod tests;
