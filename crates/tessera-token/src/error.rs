/// Why a token was refused.
///
/// The messages are for debug logs. They are never to be shown verbatim to
/// clients: a client learns only "invalid token" or, for [`TokenError::Expired`],
/// "token expired" (see [`TokenError::is_expired`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than [`crate::MAX_TOKEN_BYTES`]; refused before any decoding.
    #[error("token is longer than {} bytes", crate::MAX_TOKEN_BYTES)]
    TooLong,
    /// Not three base64url segments, non-canonical base64url, or JSON that
    /// does not parse.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header has a member this verifier does not understand (`crit`,
    /// `jku`, `x5u`, `jwk`, ...), so it refuses the token rather than ignore it.
    #[error("unsupported token header member: {0}")]
    UnsupportedHeader(&'static str),
    /// The `kid` names no key of the keyring or key set.
    #[error("token names an unknown key")]
    UnknownKey,
    /// An access token where a refresh token was expected, or the reverse
    /// (by key or by `typ`).
    #[error("token is of the wrong kind")]
    WrongKind,
    /// The header's `alg` is not the algorithm the key was made for.
    #[error("token algorithm does not match its key")]
    AlgorithmMismatch,
    /// The signature does not match.
    #[error("token signature is invalid")]
    BadSignature,
    /// A claim is missing, of the wrong JSON type, or repeated.
    #[error("invalid token claims: {0}")]
    InvalidClaims(&'static str),
    /// The token's `tid` is not the tenant of the key that verified its
    /// signature; or it has no `tid` (a token from before tenants existed)
    /// and that key is not [`crate::DEFAULT_TENANT`]'s. Only reported for a
    /// token whose signature is valid.
    #[error("token's tid is not its key's tenant")]
    TenantMismatch,
    /// A genuine token of another tenant than the one it was verified for
    /// (`KeySet::verify_*_for`). Reported before the time checks, so an
    /// expired token of another tenant is this, not [`TokenError::Expired`].
    #[error("token belongs to another tenant")]
    WrongTenant,
    /// `exp` has passed (beyond the leeway). Only reported for a token whose
    /// signature is valid.
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token was issued in the future")]
    IssuedInFuture,
    /// `iss` is not the expected issuer.
    #[error("token has the wrong issuer")]
    WrongIssuer,
    /// `aud` is not the expected audience.
    #[error("token has the wrong audience")]
    WrongAudience,
}

impl TokenError {
    /// True only for [`TokenError::Expired`]: a genuine token whose time is up,
    /// the one case where a client should refresh (`token_expired`) rather
    /// than be told the token is invalid.
    pub fn is_expired(&self) -> bool {
        matches!(self, Self::Expired)
    }

    /// A coarse reason that is safe to show the client (tessera puts it in
    /// its `WWW-Authenticate` `error_description`): it says which check
    /// failed, never what a forger got wrong in detail. The precise reason
    /// (`Display`) is for debug logs.
    pub fn client_description(&self) -> &'static str {
        match self {
            Self::TooLong | Self::Malformed(_) | Self::UnsupportedHeader(_) => "the token is malformed",
            Self::UnknownKey | Self::AlgorithmMismatch | Self::BadSignature => "the token signature is not valid",
            Self::WrongKind => "the token is not of the expected type",
            Self::WrongTenant | Self::TenantMismatch => "the token belongs to another tenant",
            Self::WrongIssuer | Self::WrongAudience => "the token was not issued for this service",
            Self::NotYetValid | Self::IssuedInFuture => "the token is not valid yet",
            Self::Expired => "the token has expired",
            Self::InvalidClaims(_) => "the token claims are not valid",
        }
    }
}

/// Why a key or keyring could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// HMAC secrets must have at least [`crate::MIN_SECRET_BYTES`] bytes.
    #[error("secret must be at least {} bytes", crate::MIN_SECRET_BYTES)]
    SecretTooShort,
    /// A `kid` must be 1 to 64 characters of `A-Z a-z 0-9 _ -`.
    #[error("kid must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-'")]
    InvalidKid,
    /// A key was put in the slot of the other kind (for example a refresh key
    /// as the access signing key).
    #[error("key is for {actual:?} tokens, expected {expected:?}")]
    WrongKind {
        expected: crate::TokenKind,
        actual: crate::TokenKind,
    },
    /// Two keys of one keyring or key set have the same `kid`.
    #[error("kid {0:?} is already in the keyring")]
    DuplicateKid(String),
    /// An algorithm this crate does not implement, or a JWK without `alg`.
    #[error("unsupported algorithm (expected HS256, EdDSA, ES256 or RS256)")]
    UnsupportedAlgorithm,
    /// A public-key operation asked of an HS256 key or algorithm.
    #[error("HS256 has no public or private key")]
    NotAsymmetric,
    /// The key material does not make a key of its algorithm.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// RSA keys must have 2048 to 4096 bits.
    #[error("RSA keys must have {} to {} bits", crate::MIN_RSA_BITS, crate::MAX_RSA_BITS)]
    RsaKeySize,
    /// A verify-only key (built from a public JWK) where one that signs is needed.
    #[error("key cannot sign: it holds no private key")]
    CannotSign,
    /// Refresh tokens are always HS256: only tessera reads them.
    #[error("refresh keys must be HS256")]
    RefreshNotHmac,
    /// Keys that must belong to one tenant (a signing pair, or a keyring's
    /// keys) belong to different tenants.
    #[error("keys belong to different tenants")]
    TenantMismatch,
}
