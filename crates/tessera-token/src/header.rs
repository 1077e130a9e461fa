//! The JOSE header, read the slow way: only for tokens whose header segment
//! is not exactly one a key of the key set signs with (see
//! `KeySet::find_key`), and by `header_kid`.
//!
//! The header must be a JSON object with exactly `alg`, `typ` and `kid`, all
//! strings, each once. Anything else is refused rather than ignored: `crit`
//! demands understanding (RFC 7515 §4.1.11), and `jku`, `x5u`, `jwk`, `x5c`
//! would name keys that must never be fetched or trusted (RFC 8725 §3.10).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer as _, MapAccess, Visitor};

use crate::claims::{Reason, StrSeed};
use crate::error::TokenError;

pub(crate) struct Header<'b> {
    pub(crate) alg: Cow<'b, str>,
    pub(crate) typ: Cow<'b, str>,
    pub(crate) kid: Cow<'b, str>,
}

pub(crate) fn parse_header(json: &[u8]) -> Result<Header<'_>, TokenError> {
    let json = std::str::from_utf8(json).map_err(|_| TokenError::Malformed("header is not utf-8"))?;
    let reason = Reason::new(None);
    let mut de = serde_json::Deserializer::from_str(json);
    let header = de.deserialize_map(HeaderVisitor { reason: &reason }).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            TokenError::Malformed("header is not valid json")
        } else {
            reason
                .take()
                .unwrap_or(TokenError::Malformed("header is not a json object"))
        }
    })?;
    de.end()
        .map_err(|_| TokenError::Malformed("trailing data after the header json"))?;
    Ok(header)
}

/// A static name for a refused member, for the error message.
fn unsupported(name: &str) -> &'static str {
    const NAMED: &[&str] = &[
        "crit", "jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "cty", "b64", "zip", "enc", "epk", "apu", "apv", "iv",
        "tag", "p2s", "p2c", "url", "nonce",
    ];
    NAMED.iter().find(|n| **n == name).copied().unwrap_or("unknown member")
}

struct HeaderVisitor<'r> {
    reason: &'r Reason,
}

impl<'de> Visitor<'de> for HeaderVisitor<'_> {
    type Value = Header<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json object with alg, typ and kid")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let fail = |error: TokenError| {
            let e = <A::Error as de::Error>::custom(&error);
            self.reason.set(Some(error));
            e
        };
        let (mut alg, mut typ, mut kid) = (None, None, None);
        while let Some(name) = map.next_key_seed(StrSeed)? {
            let (slot, wrong_type) = match &*name {
                "alg" => (&mut alg, "header alg must be a string"),
                "typ" => (&mut typ, "header typ must be a string"),
                "kid" => (&mut kid, "header kid must be a string"),
                other => return Err(fail(TokenError::UnsupportedHeader(unsupported(other)))),
            };
            if slot.is_some() {
                return Err(fail(TokenError::Malformed("duplicate header member")));
            }
            let value = map
                .next_value_seed(StrSeed)
                .inspect_err(|_| self.reason.set(Some(TokenError::Malformed(wrong_type))))?;
            *slot = Some(value);
        }
        Ok(Header {
            alg: alg.ok_or_else(|| fail(TokenError::Malformed("header lacks alg")))?,
            typ: typ.ok_or_else(|| fail(TokenError::Malformed("header lacks typ")))?,
            kid: kid.ok_or_else(|| fail(TokenError::Malformed("header lacks kid")))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Header<'_>, TokenError> {
        parse_header(json.as_bytes())
    }

    #[test]
    fn members_in_any_order_are_read() {
        let h = parse(r#"{"kid":"k1","typ":"at+jwt","alg":"HS256"}"#).unwrap();
        assert_eq!((&*h.alg, &*h.typ, &*h.kid), ("HS256", "at+jwt", "k1"));
        let h = parse(r#" { "alg" : "HS\u0032\u0035\u0036" , "typ":"x", "kid":"" } "#).unwrap();
        assert_eq!(h.alg, "HS256");
    }

    #[test]
    fn every_extra_member_is_unsupported() {
        for (name, shown) in [
            ("crit", "crit"),
            ("jku", "jku"),
            ("x5u", "x5u"),
            ("jwk", "jwk"),
            ("x5c", "x5c"),
            ("x5t", "x5t"),
            ("cty", "cty"),
            ("b64", "b64"),
            ("zip", "zip"),
            ("enc", "enc"),
            ("foo", "unknown member"),
            ("ALG", "unknown member"),
        ] {
            let json = format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"k","{name}":"v"}}"#);
            assert_eq!(parse(&json).err(), Some(TokenError::UnsupportedHeader(shown)), "{name}");
        }
    }

    #[test]
    fn duplicate_header_member_is_malformed() {
        for json in [
            r#"{"alg":"HS256","typ":"at+jwt","kid":"k","alg":"HS256"}"#,
            r#"{"alg":"HS256","typ":"at+jwt","kid":"k","kid":"j"}"#,
            r#"{"alg":"HS256","typ":"at+jwt","kid":"k","\u0074yp":"at+jwt"}"#,
        ] {
            assert_eq!(
                parse(json).err(),
                Some(TokenError::Malformed("duplicate header member")),
                "{json}"
            );
        }
    }

    #[test]
    fn missing_or_mistyped_members_are_malformed() {
        assert_eq!(
            parse(r#"{"alg":"HS256","typ":"at+jwt"}"#).err(),
            Some(TokenError::Malformed("header lacks kid"))
        );
        assert_eq!(
            parse(r#"{"alg":null,"typ":"at+jwt","kid":"k"}"#).err(),
            Some(TokenError::Malformed("header alg must be a string"))
        );
        assert_eq!(
            parse(r#"{"alg":"HS256","typ":["at+jwt"],"kid":"k"}"#).err(),
            Some(TokenError::Malformed("header typ must be a string"))
        );
        for bad in ["[]", "\"x\"", "{", "{}x", "", "{\"alg\":\"HS256\",}"] {
            assert!(matches!(parse(bad).err(), Some(TokenError::Malformed(_))), "{bad}");
        }
    }
}
