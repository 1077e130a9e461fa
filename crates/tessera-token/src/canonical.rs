//! Fast path for payloads that are byte for byte what `sign_*` (of a
//! `Keyring` or `SigningKeys`) writes: the claims in their serialization
//! order, no whitespace, strings without escapes, times as plain integers,
//! ids as lowercase hyphenated uuids. The one optional claim, `tid`, is
//! matched in its place or not at all (a token signed before tenants
//! existed), as the strict path reads it.
//!
//! Such a payload is read by matching it against that template, which is
//! several times cheaper than driving serde. Anything else (another member
//! order, whitespace, an escape, an unknown member, a number this reader
//! does not take) makes it answer `None`, and the strict serde path in
//! `claims` decides. The template only accepts inputs on which that path
//! returns the very same claims, so the answer never depends on which path
//! ran; tests compare both on random and mutated payloads.

use std::borrow::Cow;

use uuid::Uuid;

use crate::claims::{parse_canonical_uuid, AccessClaims, RefreshClaims};
use crate::DEFAULT_TENANT;

pub(crate) fn access(json: &str) -> Option<AccessClaims<'_>> {
    let mut r = Reader { rest: json };
    r.literal(r#"{"iss":""#)?;
    let iss = r.string()?;
    r.literal(r#","aud":""#)?;
    let aud = r.string()?;
    r.literal(r#","sub":""#)?;
    let sub = r.uuid()?;
    r.literal(r#","sid":""#)?;
    let sid = r.uuid()?;
    let tid = r.tid()?;
    r.literal(r#","email":""#)?;
    let email = r.string()?;
    r.literal(r#","role":""#)?;
    let role = r.string()?;
    r.literal(r#","iat":"#)?;
    let iat = r.integer()?;
    r.literal(r#","nbf":"#)?;
    let nbf = r.integer()?;
    r.literal(r#","exp":"#)?;
    let exp = r.integer()?;
    r.literal(r#","jti":""#)?;
    let jti = r.uuid()?;
    r.literal("}")?;
    r.end()?;
    Some(AccessClaims {
        iss: Cow::Borrowed(iss),
        aud: Cow::Borrowed(aud),
        sub,
        sid,
        tid,
        email: Cow::Borrowed(email),
        role: Cow::Borrowed(role),
        iat,
        nbf,
        exp,
        jti,
    })
}

pub(crate) fn refresh(json: &str) -> Option<RefreshClaims<'_>> {
    let mut r = Reader { rest: json };
    r.literal(r#"{"iss":""#)?;
    let iss = r.string()?;
    r.literal(r#","sub":""#)?;
    let sub = r.uuid()?;
    r.literal(r#","sid":""#)?;
    let sid = r.uuid()?;
    let tid = r.tid()?;
    r.literal(r#","jti":""#)?;
    let jti = r.uuid()?;
    r.literal(r#","iat":"#)?;
    let iat = r.integer()?;
    r.literal(r#","exp":"#)?;
    let exp = r.integer()?;
    r.literal("}")?;
    r.end()?;
    Some(RefreshClaims {
        iss: Cow::Borrowed(iss),
        sub,
        sid,
        tid,
        jti,
        iat,
        exp,
    })
}

struct Reader<'a> {
    rest: &'a str,
}

impl<'a> Reader<'a> {
    fn literal(&mut self, lit: &str) -> Option<()> {
        self.rest = self.rest.strip_prefix(lit)?;
        Some(())
    }

    /// The body of a string whose opening quote was part of the literal
    /// before it, up to and past the closing quote. `None` on a backslash
    /// (an escape: serde unescapes) or a control character (invalid JSON:
    /// serde refuses).
    fn string(&mut self) -> Option<&'a str> {
        let bytes = self.rest.as_bytes();
        let end = bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if bytes[end] != b'"' {
            return None;
        }
        // `end` is the index of an ASCII byte, so both slices are on
        // character boundaries.
        let (body, rest) = (self.rest.get(..end)?, self.rest.get(end + 1..)?);
        self.rest = rest;
        Some(body)
    }

    /// The optional `,"tid":"<uuid>"` member: its uuid, or the default
    /// tenant when the next member is not `tid` (the strict path reads a
    /// missing `tid` the same way). `None` on a `tid` that is not a
    /// canonical uuid.
    fn tid(&mut self) -> Option<Uuid> {
        match self.literal(r#","tid":""#) {
            Some(()) => self.uuid(),
            None => Some(DEFAULT_TENANT),
        }
    }

    /// A uuid body and its closing quote.
    fn uuid(&mut self) -> Option<Uuid> {
        let id = parse_canonical_uuid(self.rest.get(..36)?)?;
        self.rest = self.rest.get(36..)?;
        self.literal("\"")?;
        Some(id)
    }

    /// A JSON integer in the form serde reads as an `i64`: no leading
    /// zeros, no fraction or exponent, not `-0` (serde reads that as a
    /// float), within `i64`.
    fn integer(&mut self) -> Option<i64> {
        let bytes = self.rest.as_bytes();
        let negative = bytes.first() == Some(&b'-');
        let digits_start = usize::from(negative);
        let digits_len = bytes[digits_start..].iter().take_while(|b| b.is_ascii_digit()).count();
        let digits = &bytes[digits_start..digits_start + digits_len];
        match digits {
            [] => return None,
            [b'0'] if negative => return None,
            [b'0', _, ..] => return None,
            _ => {}
        }
        let mut magnitude: u64 = 0;
        for &d in digits {
            magnitude = magnitude.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        let value = if negative {
            // -(2^63) is the one magnitude that fits only negated.
            i64::try_from(-i128::from(magnitude)).ok()?
        } else {
            i64::try_from(magnitude).ok()?
        };
        self.rest = self.rest.get(digits_start + digits_len..)?;
        Some(value)
    }

    fn end(&self) -> Option<()> {
        self.rest.is_empty().then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{parse_access_strict, parse_refresh_strict};
    use proptest::prelude::*;

    const SUB: &str = "6f1c7a52-2f0e-4b7a-9a39-0d6c1f0c9a11";
    const TID: &str = "8c3e2d1f-7a6b-4c5d-9e8f-0a1b2c3d4e5f";

    fn access_json(iat: &str, email: &str) -> String {
        format!(
            r#"{{"iss":"i","aud":"a","sub":"{SUB}","sid":"{SUB}","tid":"{TID}","email":"{email}","role":"r","iat":{iat},"nbf":0,"exp":9,"jti":"{SUB}"}}"#
        )
    }

    /// The same payload as signed before tenants existed: no `tid`.
    fn without_tid(json: &str) -> String {
        let legacy = json.replacen(&format!(r#","tid":"{TID}""#), "", 1);
        assert_ne!(legacy, json);
        legacy
    }

    #[test]
    fn canonical_payloads_take_the_fast_path() {
        let json = access_json("1700000000", "ada@example.com");
        let c = access(&json).unwrap();
        assert_eq!(c.iat, 1_700_000_000);
        assert_eq!(c.email, "ada@example.com");
        assert_eq!(c.tid.to_string(), TID);
        for (text, value) in [
            ("0", 0),
            ("-1", -1),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ] {
            assert_eq!(access(&access_json(text, "e")).unwrap().iat, value, "{text}");
        }
    }

    #[test]
    fn payloads_without_tid_take_the_fast_path_as_the_default_tenant() {
        let json = without_tid(&access_json("1", "e"));
        let c = access(&json).unwrap();
        assert_eq!(c.tid, DEFAULT_TENANT);
        assert_eq!(Ok(c), parse_access_strict(&json));
        let refresh_json = format!(r#"{{"iss":"i","sub":"{SUB}","sid":"{SUB}","jti":"{SUB}","iat":1,"exp":2}}"#);
        let r = refresh(&refresh_json).unwrap();
        assert_eq!(r.tid, DEFAULT_TENANT);
        assert_eq!(Ok(r), parse_refresh_strict(&refresh_json));
    }

    #[test]
    fn tid_out_of_place_or_odd_falls_back_to_serde() {
        let json = access_json("1", "e");
        let upper = json.replacen(TID, &TID.to_uppercase(), 1);
        assert!(access(&upper).is_none());
        // tid anywhere else than after sid.
        let moved = without_tid(&json).replacen('}', &format!(r#","tid":"{TID}"}}"#), 1);
        assert!(access(&moved).is_none());
        let first = without_tid(&json).replacen('{', &format!(r#"{{"tid":"{TID}","#), 1);
        assert!(access(&first).is_none());
        // A second tid right after the first is not the template.
        let twice = json.replacen(
            &format!(r#","tid":"{TID}""#),
            &format!(r#","tid":"{TID}","tid":"{TID}""#),
            1,
        );
        assert!(access(&twice).is_none());
        for odd in [&upper, &moved, &first, &twice] {
            agree(odd).unwrap();
        }
    }

    #[test]
    fn anything_unusual_falls_back_to_serde() {
        for (iat, email) in [
            ("01", "e"),
            ("-0", "e"),
            ("-", "e"),
            ("1.0", "e"),
            ("1e3", "e"),
            ("9223372036854775808", "e"),
            ("-9223372036854775809", "e"),
            ("99999999999999999999", "e"),
            (" 1", "e"),
            ("1", "a\\\"b"),
            ("1", "tab\there"),
        ] {
            assert!(access(&access_json(iat, email)).is_none(), "{iat} {email}");
        }
        let spaced = access_json("1", "e").replace(",\"aud\"", ", \"aud\"");
        assert!(access(&spaced).is_none());
        let extra = access_json("1", "e").replace('}', ",\"org\":1}");
        assert!(access(&extra).is_none());
        let trailing = access_json("1", "e") + " ";
        assert!(access(&trailing).is_none());
        let upper = access_json("1", "e").replacen(SUB, &SUB.to_uppercase(), 1);
        assert!(access(&upper).is_none());
    }

    /// Both paths on the same input: the fast one may decline, but when it
    /// answers it must answer exactly what the strict one does.
    fn agree(json: &str) -> Result<(), TestCaseError> {
        if let Some(fast) = access(json) {
            prop_assert_eq!(Ok(fast), parse_access_strict(json));
        }
        if let Some(fast) = refresh(json) {
            prop_assert_eq!(Ok(fast), parse_refresh_strict(json));
        }
        Ok(())
    }

    fn arb_json_number() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            "-?[0-9]{1,21}",
            "-?[0-9]{1,3}(\\.[0-9]{1,3})?([eE][-+]?[0-9]{1,2})?",
        ]
    }

    proptest! {
        #[test]
        fn fast_path_agrees_with_serde_on_signed_claims(
            iss in any::<String>(),
            email in any::<String>(),
            ids in any::<[u128; 4]>(),
            times in any::<[i64; 3]>(),
        ) {
            let c = AccessClaims {
                iss: Cow::Owned(iss.clone()),
                aud: Cow::Borrowed("tessera"),
                sub: Uuid::from_u128(ids[0]),
                sid: Uuid::from_u128(ids[1]),
                tid: Uuid::from_u128(ids[3]),
                email: Cow::Owned(email),
                role: Cow::Borrowed("user"),
                iat: times[0],
                nbf: times[1],
                exp: times[2],
                jti: Uuid::from_u128(ids[2]),
            };
            let json = serde_json::to_string(&c).unwrap();
            agree(&json)?;
            // Serde escapes only quotes, backslashes and control characters:
            // everything else must take the fast path.
            let plain = |s: &str| !s.chars().any(|ch| ch == '"' || ch == '\\' || ch < ' ');
            if plain(&c.iss) && plain(&c.email) {
                prop_assert_eq!(access(&json), Some(c.clone()));
            }
            // The same claims signed before tenants existed.
            let tid_member = format!(r#","tid":"{}""#, c.tid);
            let legacy = json.replacen(&tid_member, "", 1);
            prop_assert_ne!(&legacy, &json);
            agree(&legacy)?;
            if plain(&c.iss) && plain(&c.email) {
                let mut default = c.clone();
                default.tid = DEFAULT_TENANT;
                prop_assert_eq!(access(&legacy), Some(default));
            }
            let r = RefreshClaims {
                iss: Cow::Owned(iss),
                sub: c.sub,
                sid: c.sid,
                tid: c.tid,
                jti: c.jti,
                iat: c.iat,
                exp: c.exp,
            };
            let json = serde_json::to_string(&r).unwrap();
            agree(&json)?;
            agree(&json.replacen(&tid_member, "", 1))?;
        }

        #[test]
        fn fast_path_agrees_with_serde_on_odd_numbers(n in arb_json_number()) {
            agree(&access_json(&n, "e"))?;
            agree(&format!(
                r#"{{"iss":"i","sub":"{SUB}","sid":"{SUB}","jti":"{SUB}","iat":{n},"exp":{n}}}"#
            ))?;
        }

        #[test]
        fn fast_path_agrees_with_serde_on_mutated_payloads(
            index in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            delete in any::<bool>(),
            legacy in any::<bool>(),
        ) {
            let json = access_json("1700000000", "ada@example.com");
            let json = if legacy { without_tid(&json) } else { json };
            let mut bytes = json.into_bytes();
            let i = index.index(bytes.len());
            if delete {
                bytes.remove(i);
            } else {
                bytes[i] = byte;
            }
            if let Ok(json) = String::from_utf8(bytes) {
                agree(&json)?;
            }
        }
    }
}
