//! The claims of tessera's two token kinds and their strict JSON reading.
//!
//! Serialization is derived: members come out in field order, uuids
//! hyphenated. Deserialization is written by hand because serde's derive is
//! too lenient for a verifier: it would accept a float or a string for a time,
//! and it cannot see duplicate member names among unknown members. Here every
//! required claim must be present exactly once with its JSON type, times are
//! JSON integers, ids are lowercase hyphenated uuids, any member name
//! appearing twice is refused (known or not), and other members are ignored
//! as RFC 7519 §4 asks.
//!
//! `tid` is the one optional claim: tokens signed before tenants existed
//! have none, and must keep verifying. A missing `tid` reads as
//! [`DEFAULT_TENANT`]; the verifier then accepts the token only from a key
//! of that tenant (see `keyset`), so reading it this way grants nothing.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::TokenError;
use crate::DEFAULT_TENANT;

/// The claims of an access token, in the order they are serialized.
///
/// Strings borrow from the [`crate::TokenBuf`] the token was decoded into
/// (escaped strings are owned); [`AccessClaims::into_owned`] detaches them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessClaims<'a> {
    /// Issuer: the tessera instance (`TESSERA_ISSUER`).
    pub iss: Cow<'a, str>,
    /// Audience (`TESSERA_AUDIENCE`). Always a single string: an array is refused.
    pub aud: Cow<'a, str>,
    /// The user's id.
    pub sub: Uuid,
    /// The session's id.
    pub sid: Uuid,
    /// The tenant's id: always the tenant of the key that verified the
    /// token. [`crate::DEFAULT_TENANT`] for a token signed before tenants
    /// existed (which has no `tid`).
    pub tid: Uuid,
    pub email: Cow<'a, str>,
    pub role: Cow<'a, str>,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Not before, unix seconds.
    pub nbf: i64,
    /// Expires at, unix seconds.
    pub exp: i64,
    /// This token's unique id.
    pub jti: Uuid,
}

/// The claims of a refresh token, in the order they are serialized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefreshClaims<'a> {
    pub iss: Cow<'a, str>,
    pub sub: Uuid,
    pub sid: Uuid,
    /// The tenant's id, as in [`AccessClaims::tid`].
    pub tid: Uuid,
    /// The refresh token's id; the server keeps which one is current per session.
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
}

impl AccessClaims<'_> {
    /// The same claims with no borrow of the buffer they were read from.
    pub fn into_owned(self) -> AccessClaims<'static> {
        AccessClaims {
            iss: Cow::Owned(self.iss.into_owned()),
            aud: Cow::Owned(self.aud.into_owned()),
            sub: self.sub,
            sid: self.sid,
            tid: self.tid,
            email: Cow::Owned(self.email.into_owned()),
            role: Cow::Owned(self.role.into_owned()),
            iat: self.iat,
            nbf: self.nbf,
            exp: self.exp,
            jti: self.jti,
        }
    }
}

impl RefreshClaims<'_> {
    /// The same claims with no borrow of the buffer they were read from.
    pub fn into_owned(self) -> RefreshClaims<'static> {
        RefreshClaims {
            iss: Cow::Owned(self.iss.into_owned()),
            sub: self.sub,
            sid: self.sid,
            tid: self.tid,
            jti: self.jti,
            iat: self.iat,
            exp: self.exp,
        }
    }
}

/// Unknown members tracked for duplicates; a payload with more is refused.
/// tessera's own tokens have none.
pub(crate) const MAX_UNKNOWN_CLAIMS: usize = 16;

/// Where a visitor records the precise reason of a failure, which serde's
/// error type can only carry as text.
pub(crate) type Reason = Cell<Option<TokenError>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Iss,
    Aud,
    Sub,
    Sid,
    Tid,
    Email,
    Role,
    Iat,
    Nbf,
    Exp,
    Jti,
}

const ACCESS_FIELDS: &[Field] = &[
    Field::Iss,
    Field::Aud,
    Field::Sub,
    Field::Sid,
    Field::Tid,
    Field::Email,
    Field::Role,
    Field::Iat,
    Field::Nbf,
    Field::Exp,
    Field::Jti,
];
const REFRESH_FIELDS: &[Field] = &[
    Field::Iss,
    Field::Sub,
    Field::Sid,
    Field::Tid,
    Field::Jti,
    Field::Iat,
    Field::Exp,
];

impl Field {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "iss" => Self::Iss,
            "aud" => Self::Aud,
            "sub" => Self::Sub,
            "sid" => Self::Sid,
            "tid" => Self::Tid,
            "email" => Self::Email,
            "role" => Self::Role,
            "iat" => Self::Iat,
            "nbf" => Self::Nbf,
            "exp" => Self::Exp,
            "jti" => Self::Jti,
            _ => return None,
        })
    }

    fn missing(self) -> TokenError {
        TokenError::InvalidClaims(match self {
            Self::Iss => "missing iss",
            Self::Aud => "missing aud",
            Self::Sub => "missing sub",
            Self::Sid => "missing sid",
            // Never reported: a missing tid reads as the default tenant.
            Self::Tid => "missing tid",
            Self::Email => "missing email",
            Self::Role => "missing role",
            Self::Iat => "missing iat",
            Self::Nbf => "missing nbf",
            Self::Exp => "missing exp",
            Self::Jti => "missing jti",
        })
    }

    fn wrong_type(self) -> TokenError {
        TokenError::InvalidClaims(match self {
            Self::Iss => "iss must be a string",
            Self::Aud => "aud must be a single string",
            Self::Sub => "sub must be a lowercase hyphenated uuid",
            Self::Sid => "sid must be a lowercase hyphenated uuid",
            Self::Tid => "tid must be a lowercase hyphenated uuid",
            Self::Email => "email must be a string",
            Self::Role => "role must be a string",
            Self::Iat => "iat must be an integer",
            Self::Nbf => "nbf must be an integer",
            Self::Exp => "exp must be an integer",
            Self::Jti => "jti must be a lowercase hyphenated uuid",
        })
    }
}

/// Records `error` as the reason and turns it into the deserializer's error.
fn fail<E: de::Error>(reason: &Reason, error: TokenError) -> E {
    let e = E::custom(&error);
    reason.set(Some(error));
    e
}

/// Every claim either kind can have, as read so far.
#[derive(Default)]
struct Collected<'de> {
    iss: Option<Cow<'de, str>>,
    aud: Option<Cow<'de, str>>,
    email: Option<Cow<'de, str>>,
    role: Option<Cow<'de, str>>,
    sub: Option<Uuid>,
    sid: Option<Uuid>,
    tid: Option<Uuid>,
    jti: Option<Uuid>,
    iat: Option<i64>,
    nbf: Option<i64>,
    exp: Option<i64>,
}

impl Collected<'_> {
    fn is_set(&self, field: Field) -> bool {
        match field {
            Field::Iss => self.iss.is_some(),
            Field::Aud => self.aud.is_some(),
            Field::Email => self.email.is_some(),
            Field::Role => self.role.is_some(),
            Field::Sub => self.sub.is_some(),
            Field::Sid => self.sid.is_some(),
            Field::Tid => self.tid.is_some(),
            Field::Jti => self.jti.is_some(),
            Field::Iat => self.iat.is_some(),
            Field::Nbf => self.nbf.is_some(),
            Field::Exp => self.exp.is_some(),
        }
    }
}

/// Member names other than the claims, kept to detect duplicates.
struct SeenUnknown<'de> {
    names: [Option<Cow<'de, str>>; MAX_UNKNOWN_CLAIMS],
    len: usize,
}

impl<'de> SeenUnknown<'de> {
    fn new() -> Self {
        Self {
            names: Default::default(),
            len: 0,
        }
    }

    fn insert(&mut self, name: Cow<'de, str>) -> Result<(), TokenError> {
        if self.names.iter().flatten().any(|seen| *seen == name) {
            return Err(TokenError::InvalidClaims("duplicate claim"));
        }
        let slot = self
            .names
            .get_mut(self.len)
            .ok_or(TokenError::InvalidClaims("too many unknown claims"))?;
        *slot = Some(name);
        self.len += 1;
        Ok(())
    }
}

/// Reads the members of a claims object. `claims` are the members that are
/// claims of this token kind; any other name (even `aud` in a refresh token)
/// is an unknown member: checked for duplicates, its value skipped.
fn collect<'de, A: MapAccess<'de>>(mut map: A, claims: &[Field], reason: &Reason) -> Result<Collected<'de>, A::Error> {
    let mut got = Collected::default();
    let mut unknown = SeenUnknown::new();
    while let Some(name) = map.next_key_seed(StrSeed)? {
        let field = Field::from_name(&name).filter(|f| claims.contains(f));
        let Some(field) = field else {
            unknown.insert(name).map_err(|e| fail(reason, e))?;
            map.next_value::<IgnoredAny>()?;
            continue;
        };
        if got.is_set(field) {
            return Err(fail(reason, TokenError::InvalidClaims("duplicate claim")));
        }
        // Keep the deserializer's own error (a syntax error stays one); only
        // note which claim it was about.
        let bad = |_: &A::Error| reason.set(Some(field.wrong_type()));
        match field {
            Field::Iss => got.iss = Some(map.next_value_seed(StrSeed).inspect_err(bad)?),
            Field::Aud => got.aud = Some(map.next_value_seed(StrSeed).inspect_err(bad)?),
            Field::Email => got.email = Some(map.next_value_seed(StrSeed).inspect_err(bad)?),
            Field::Role => got.role = Some(map.next_value_seed(StrSeed).inspect_err(bad)?),
            Field::Sub => got.sub = Some(map.next_value_seed(UuidSeed).inspect_err(bad)?),
            Field::Sid => got.sid = Some(map.next_value_seed(UuidSeed).inspect_err(bad)?),
            Field::Tid => got.tid = Some(map.next_value_seed(UuidSeed).inspect_err(bad)?),
            Field::Jti => got.jti = Some(map.next_value_seed(UuidSeed).inspect_err(bad)?),
            Field::Iat => got.iat = Some(map.next_value_seed(IntSeed).inspect_err(bad)?),
            Field::Nbf => got.nbf = Some(map.next_value_seed(IntSeed).inspect_err(bad)?),
            Field::Exp => got.exp = Some(map.next_value_seed(IntSeed).inspect_err(bad)?),
        }
    }
    Ok(got)
}

/// A missing `tid` is a token from before tenants: the default tenant's.
fn tenant(tid: Option<Uuid>) -> Uuid {
    tid.unwrap_or(DEFAULT_TENANT)
}

fn required<T, E: de::Error>(value: Option<T>, field: Field, reason: &Reason) -> Result<T, E> {
    value.ok_or_else(|| fail(reason, field.missing()))
}

pub(crate) struct AccessVisitor<'r> {
    pub(crate) reason: &'r Reason,
}

impl<'de> Visitor<'de> for AccessVisitor<'_> {
    type Value = AccessClaims<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json object of access token claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let r = self.reason;
        let c = collect(map, ACCESS_FIELDS, r)?;
        Ok(AccessClaims {
            iss: required(c.iss, Field::Iss, r)?,
            aud: required(c.aud, Field::Aud, r)?,
            sub: required(c.sub, Field::Sub, r)?,
            sid: required(c.sid, Field::Sid, r)?,
            tid: tenant(c.tid),
            email: required(c.email, Field::Email, r)?,
            role: required(c.role, Field::Role, r)?,
            iat: required(c.iat, Field::Iat, r)?,
            nbf: required(c.nbf, Field::Nbf, r)?,
            exp: required(c.exp, Field::Exp, r)?,
            jti: required(c.jti, Field::Jti, r)?,
        })
    }
}

pub(crate) struct RefreshVisitor<'r> {
    pub(crate) reason: &'r Reason,
}

impl<'de> Visitor<'de> for RefreshVisitor<'_> {
    type Value = RefreshClaims<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json object of refresh token claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let r = self.reason;
        let c = collect(map, REFRESH_FIELDS, r)?;
        Ok(RefreshClaims {
            iss: required(c.iss, Field::Iss, r)?,
            sub: required(c.sub, Field::Sub, r)?,
            sid: required(c.sid, Field::Sid, r)?,
            tid: tenant(c.tid),
            jti: required(c.jti, Field::Jti, r)?,
            iat: required(c.iat, Field::Iat, r)?,
            exp: required(c.exp, Field::Exp, r)?,
        })
    }
}

/// Strict, like verification: see the module docs.
impl<'de: 'a, 'a> Deserialize<'de> for AccessClaims<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let reason = Reason::new(None);
        deserializer.deserialize_map(AccessVisitor { reason: &reason })
    }
}

/// Strict, like verification: see the module docs.
impl<'de: 'a, 'a> Deserialize<'de> for RefreshClaims<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let reason = Reason::new(None);
        deserializer.deserialize_map(RefreshVisitor { reason: &reason })
    }
}

/// A JSON string, borrowed when it has no escapes.
pub(crate) struct StrSeed;

impl<'de> DeserializeSeed<'de> for StrSeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for StrSeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// A JSON integer that fits in `i64`: not a float (`1e10`, `1.0`), not a string.
struct IntSeed;

impl<'de> DeserializeSeed<'de> for IntSeed {
    type Value = i64;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<i64, D::Error> {
        deserializer.deserialize_i64(self)
    }
}

impl Visitor<'_> for IntSeed {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom("integer out of range"))
    }
}

/// A uuid in its canonical text form: 36 characters, lowercase hex, hyphens
/// at 8, 13, 18 and 23. Uppercase, braces, `urn:uuid:` and the 32-digit
/// simple form are refused, so one id has exactly one accepted spelling.
struct UuidSeed;

impl<'de> DeserializeSeed<'de> for UuidSeed {
    type Value = Uuid;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Uuid, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for UuidSeed {
    type Value = Uuid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a lowercase hyphenated uuid")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Uuid, E> {
        parse_canonical_uuid(v).ok_or_else(|| E::custom("not a lowercase hyphenated uuid"))
    }
}

pub(crate) fn parse_canonical_uuid(s: &str) -> Option<Uuid> {
    /// Value of a lowercase hex digit; 0xff for any other byte.
    const HEX: [u8; 256] = {
        let mut table = [0xff_u8; 256];
        let mut i = 0;
        while i < 10 {
            table[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            table[b'a' as usize + i] = 10 + i as u8;
            i += 1;
        }
        table
    };
    /// Where the 16 two-digit bytes start in `8-4-4-4-12`.
    const PAIRS: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

    let text: &[u8; 36] = s.as_bytes().try_into().ok()?;
    if [text[8], text[13], text[18], text[23]] != [b'-'; 4] {
        return None;
    }
    // Branch-free over the digits: collect every nibble, then check once
    // that none was invalid.
    let mut bytes = [0u8; 16];
    let mut invalid = 0u8;
    for (byte, &at) in bytes.iter_mut().zip(PAIRS.iter()) {
        let (hi, lo) = (HEX[usize::from(text[at])], HEX[usize::from(text[at + 1])]);
        invalid |= hi | lo;
        *byte = hi << 4 | lo;
    }
    (invalid & 0xf0 == 0).then(|| Uuid::from_bytes(bytes))
}

/// What the deserializer's error was about, once it is known whether the
/// input was valid JSON at all.
pub(crate) fn classify(error: &serde_json::Error, reason: &Reason) -> TokenError {
    if error.is_syntax() || error.is_eof() {
        return TokenError::Malformed("payload is not valid json");
    }
    reason
        .take()
        .unwrap_or(TokenError::InvalidClaims("payload is not a json object"))
}

/// Reads access claims from `json`: the exact form `sign_access` writes
/// through the template in `canonical`, anything else strictly through serde.
pub(crate) fn parse_access(json: &str) -> Result<AccessClaims<'_>, TokenError> {
    match crate::canonical::access(json) {
        Some(claims) => Ok(claims),
        None => parse_access_strict(json),
    }
}

/// Reads refresh claims from `json`, like [`parse_access`].
pub(crate) fn parse_refresh(json: &str) -> Result<RefreshClaims<'_>, TokenError> {
    match crate::canonical::refresh(json) {
        Some(claims) => Ok(claims),
        None => parse_refresh_strict(json),
    }
}

/// Reads access claims from `json` (strict; see the module docs).
pub(crate) fn parse_access_strict(json: &str) -> Result<AccessClaims<'_>, TokenError> {
    let reason = Reason::new(None);
    let mut de = serde_json::Deserializer::from_str(json);
    let claims = de
        .deserialize_map(AccessVisitor { reason: &reason })
        .map_err(|e| classify(&e, &reason))?;
    de.end()
        .map_err(|_| TokenError::Malformed("trailing data after the payload json"))?;
    Ok(claims)
}

/// Reads refresh claims from `json` (strict; see the module docs).
pub(crate) fn parse_refresh_strict(json: &str) -> Result<RefreshClaims<'_>, TokenError> {
    let reason = Reason::new(None);
    let mut de = serde_json::Deserializer::from_str(json);
    let claims = de
        .deserialize_map(RefreshVisitor { reason: &reason })
        .map_err(|e| classify(&e, &reason))?;
    de.end()
        .map_err(|_| TokenError::Malformed("trailing data after the payload json"))?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "6f1c7a52-2f0e-4b7a-9a39-0d6c1f0c9a11";
    const SID: &str = "0b9d4a8e-55d2-4f5e-8f61-3a3cc6f0d2b7";
    const JTI: &str = "d2b0f7e4-3c5a-4e0f-b1a2-9f8e7d6c5b4a";
    const TID: &str = "8c3e2d1f-7a6b-4c5d-9e8f-0a1b2c3d4e5f";

    fn access_json(replace: &[(&str, &str)], extra: &str) -> String {
        let mut members = vec![
            ("iss", "\"https://auth.example\"".to_owned()),
            ("aud", "\"tessera\"".to_owned()),
            ("sub", format!("\"{SUB}\"")),
            ("sid", format!("\"{SID}\"")),
            ("tid", format!("\"{TID}\"")),
            ("email", "\"ada@example.com\"".to_owned()),
            ("role", "\"user\"".to_owned()),
            ("iat", "1700000000".to_owned()),
            ("nbf", "1700000000".to_owned()),
            ("exp", "1700000900".to_owned()),
            ("jti", format!("\"{JTI}\"")),
        ];
        for (name, value) in replace {
            let m = members.iter_mut().find(|(n, _)| n == name).unwrap();
            m.1 = (*value).to_owned();
        }
        let body: Vec<String> = members
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| format!("\"{n}\":{v}"))
            .collect();
        format!("{{{}{extra}}}", body.join(","))
    }

    fn access(json: &str) -> Result<AccessClaims<'_>, TokenError> {
        parse_access(json)
    }

    #[test]
    fn well_formed_access_claims_are_read_borrowed() {
        let json = access_json(&[], "");
        let c = access(&json).unwrap();
        assert_eq!(c.sub.to_string(), SUB);
        assert_eq!(c.exp, 1_700_000_900);
        assert!(matches!(c.email, Cow::Borrowed(_)));
        assert_eq!(serde_json::to_string(&c).unwrap(), json, "serialization round-trips");
    }

    #[test]
    fn escaped_strings_are_unescaped_and_owned() {
        let json = access_json(&[("email", r#""a\"d\\a\u00e9@example.com""#)], "");
        let c = access(&json).unwrap();
        assert_eq!(c.email, "a\"d\\aé@example.com");
        assert!(matches!(c.email, Cow::Owned(_)));
    }

    #[test]
    fn every_missing_claim_is_reported() {
        for name in ["iss", "aud", "sub", "sid", "email", "role", "iat", "nbf", "exp", "jti"] {
            let json = access_json(&[(name, "")], "");
            let err = access(&json).unwrap_err();
            assert_eq!(err, Field::from_name(name).unwrap().missing(), "{name}");
        }
    }

    #[test]
    fn tid_is_read_and_a_missing_tid_is_the_default_tenant() {
        let json = access_json(&[], "");
        assert_eq!(access(&json).unwrap().tid.to_string(), TID);
        let legacy = access_json(&[("tid", "")], "");
        assert!(!legacy.contains("tid"));
        assert_eq!(access(&legacy).unwrap().tid, DEFAULT_TENANT);
        assert_eq!(parse_access_strict(&legacy).unwrap().tid, DEFAULT_TENANT);
        let refresh = format!(r#"{{"iss":"i","sub":"{SUB}","sid":"{SID}","jti":"{JTI}","iat":1,"exp":2}}"#);
        assert_eq!(parse_refresh(&refresh).unwrap().tid, DEFAULT_TENANT);
        let refresh = refresh.replacen(",\"jti\"", &format!(",\"tid\":\"{TID}\",\"jti\""), 1);
        assert_eq!(parse_refresh(&refresh).unwrap().tid.to_string(), TID);
    }

    #[test]
    fn tid_is_strict_like_every_id() {
        let upper = format!("\"{}\"", TID.to_uppercase());
        for bad in [upper.as_str(), "\"\"", "null", "0", "\"default\""] {
            let json = access_json(&[("tid", bad)], "");
            assert_eq!(
                access(&json).unwrap_err(),
                TokenError::InvalidClaims("tid must be a lowercase hyphenated uuid"),
                "{bad}"
            );
        }
        // A second tid, even the same one, is a duplicate, not a choice.
        let json = access_json(&[], &format!(",\"tid\":\"{TID}\""));
        assert_eq!(access(&json).unwrap_err(), TokenError::InvalidClaims("duplicate claim"));
        let json = access_json(&[("tid", "")], &format!(",\"tid\":\"{TID}\",\"t\\u0069d\":\"{TID}\""));
        assert_eq!(access(&json).unwrap_err(), TokenError::InvalidClaims("duplicate claim"));
    }

    #[test]
    fn times_must_be_json_integers() {
        for bad in [
            "\"9999999999\"",
            "1e10",
            "1700000900.0",
            "null",
            "true",
            "[1]",
            "18446744073709551615",
        ] {
            let json = access_json(&[("exp", bad)], "");
            assert_eq!(
                access(&json).unwrap_err(),
                TokenError::InvalidClaims("exp must be an integer"),
                "{bad}"
            );
        }
        let json = access_json(&[("iat", "-5")], "");
        assert_eq!(access(&json).unwrap().iat, -5);
    }

    #[test]
    fn ids_must_be_canonical_hyphenated_uuids() {
        let upper = format!("\"{}\"", SUB.to_uppercase());
        let simple = format!("\"{}\"", SUB.replace('-', ""));
        let braced = format!("\"{{{SUB}}}\"");
        let urn = format!("\"urn:uuid:{SUB}\"");
        for bad in [upper.as_str(), &simple, &braced, &urn, "\"not-a-uuid\"", "42", "null"] {
            let json = access_json(&[("sub", bad)], "");
            assert_eq!(
                access(&json).unwrap_err(),
                TokenError::InvalidClaims("sub must be a lowercase hyphenated uuid"),
                "{bad}"
            );
        }
    }

    #[test]
    fn aud_as_an_array_is_rejected() {
        let json = access_json(&[("aud", "[\"tessera\"]")], "");
        assert_eq!(
            access(&json).unwrap_err(),
            TokenError::InvalidClaims("aud must be a single string")
        );
    }

    #[test]
    fn strings_must_be_strings() {
        for (name, expected) in [
            ("iss", "iss must be a string"),
            ("email", "email must be a string"),
            ("role", "role must be a string"),
        ] {
            for bad in ["1", "null", "{}", "[\"x\"]"] {
                let json = access_json(&[(name, bad)], "");
                assert_eq!(access(&json).unwrap_err(), TokenError::InvalidClaims(expected));
            }
        }
    }

    #[test]
    fn duplicate_known_claim_is_rejected() {
        let json = access_json(&[], ",\"exp\":1");
        assert_eq!(access(&json).unwrap_err(), TokenError::InvalidClaims("duplicate claim"));
        // The same name spelled with an escape is the same member.
        let json = access_json(&[], ",\"\\u0065xp\":1");
        assert_eq!(access(&json).unwrap_err(), TokenError::InvalidClaims("duplicate claim"));
    }

    #[test]
    fn duplicate_unknown_claim_is_rejected() {
        let json = access_json(&[], ",\"org\":1,\"x\":2,\"org\":1");
        assert_eq!(access(&json).unwrap_err(), TokenError::InvalidClaims("duplicate claim"));
        let json = access_json(&[], ",\"org\":1,\"o\\u0072g\":1");
        assert_eq!(access(&json).unwrap_err(), TokenError::InvalidClaims("duplicate claim"));
    }

    #[test]
    fn unknown_claims_are_ignored_up_to_a_limit() {
        let extra: String = (0..MAX_UNKNOWN_CLAIMS)
            .map(|i| format!(",\"x{i}\":{{\"a\":[{i}]}}"))
            .collect();
        assert!(access(&access_json(&[], &extra)).is_ok());
        let too_many = format!("{extra},\"one_more\":0");
        assert_eq!(
            access(&access_json(&[], &too_many)).unwrap_err(),
            TokenError::InvalidClaims("too many unknown claims")
        );
    }

    #[test]
    fn trailing_garbage_after_the_json_is_malformed() {
        let json = access_json(&[], "") + "x";
        assert!(matches!(access(&json).unwrap_err(), TokenError::Malformed(_)));
        let json = access_json(&[], "") + "{}";
        assert!(matches!(access(&json).unwrap_err(), TokenError::Malformed(_)));
    }

    #[test]
    fn payload_that_is_not_a_json_object_is_rejected() {
        assert!(matches!(access("[]").unwrap_err(), TokenError::InvalidClaims(_)));
        assert!(matches!(access("\"x\"").unwrap_err(), TokenError::InvalidClaims(_)));
        assert!(matches!(access("{\"iss\":").unwrap_err(), TokenError::Malformed(_)));
        assert!(matches!(
            access("{\"iss\" \"x\"}").unwrap_err(),
            TokenError::Malformed(_)
        ));
        assert!(matches!(access("").unwrap_err(), TokenError::Malformed(_)));
    }

    #[test]
    fn refresh_claims_treat_access_only_names_as_unknown() {
        let json =
            format!(r#"{{"iss":"i","sub":"{SUB}","sid":"{SID}","jti":"{JTI}","iat":1,"exp":2,"aud":["x"],"email":5}}"#);
        let c = parse_refresh(&json).unwrap();
        assert_eq!((c.iat, c.exp), (1, 2));
        let dup = json.replace("\"email\":5", "\"aud\":0");
        assert_eq!(
            parse_refresh(&dup).unwrap_err(),
            TokenError::InvalidClaims("duplicate claim")
        );
    }

    #[test]
    fn serde_deserialize_is_the_strict_path() {
        let json = access_json(&[], "");
        let c: AccessClaims<'_> = serde_json::from_str(&json).unwrap();
        assert_eq!(c.role, "user");
        let bad = access_json(&[("exp", "1e10")], "");
        assert!(serde_json::from_str::<AccessClaims<'_>>(&bad).is_err());
        let dup = format!(r#"{{"iss":"i","sub":"{SUB}","sid":"{SID}","jti":"{JTI}","iat":1,"exp":2,"exp":2}}"#);
        assert!(serde_json::from_str::<RefreshClaims<'_>>(&dup).is_err());
    }

    /// The obvious definition, to check the table-driven one against.
    fn reference_uuid(s: &str) -> Option<Uuid> {
        let ok = s.len() == 36
            && s.bytes().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == b'-',
                _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
            });
        ok.then(|| Uuid::try_parse(s).unwrap())
    }

    #[test]
    fn canonical_uuid_parser_matches_its_definition_on_every_one_byte_change() {
        let good = "0123abcd-ef45-6789-89ab-cdef01234567";
        assert_eq!(parse_canonical_uuid(good), reference_uuid(good));
        assert!(parse_canonical_uuid(good).is_some());
        for i in 0..good.len() {
            for c in 0u8..0x80 {
                let mut bytes = good.as_bytes().to_vec();
                bytes[i] = c;
                let s = String::from_utf8(bytes).unwrap();
                assert_eq!(parse_canonical_uuid(&s), reference_uuid(&s), "{s}");
            }
        }
        for s in [
            "",
            "0123abcd-ef45-6789-89ab-cdef0123456",
            "0123abcd-ef45-6789-89ab-cdef012345678",
        ] {
            assert_eq!(parse_canonical_uuid(s), None);
        }
    }

    proptest::proptest! {
        #[test]
        fn canonical_uuid_round_trips(n in proptest::prelude::any::<u128>()) {
            let id = Uuid::from_u128(n);
            let text = id.hyphenated().to_string();
            proptest::prop_assert_eq!(parse_canonical_uuid(&text), Some(id));
            proptest::prop_assert_eq!(parse_canonical_uuid(&text.to_uppercase()), reference_uuid(&text.to_uppercase()));
        }
    }

    #[test]
    fn into_owned_detaches_from_the_buffer() {
        let json = access_json(&[], "");
        let owned = access(&json).unwrap().into_owned();
        drop(json);
        assert_eq!(owned.aud, "tessera");
    }
}
