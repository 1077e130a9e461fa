use std::fmt;
use unicode_normalization::UnicodeNormalization as _;

/// An email address as tessera stores and compares it: trimmed, NFKC-normalized
/// and lowercased, so `Ada@Example.com `, `ａｄａ@example.com` (fullwidth) and an
/// `é` typed as `e` plus a combining accent all name one account.
///
/// The check is deliberately plain: one `@`; a local part of RFC 5322 `atext`
/// and dots, plus letters and digits of any script (RFC 6531); a dotted domain
/// of letters, digits and hyphens. Invisible and direction-changing characters
/// (zero-width spaces, bidi overrides), symbols and emoji are refused, and so
/// are scripts mixed within the local part or a domain label (a Cyrillic `а`
/// in `admin`), so two accounts do not look the same by those means.
/// Deliverability is proven by the verification mail, not by a grammar.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// Why a string is not an acceptable email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("is required")]
    Empty,
    #[error("must be at most 254 characters")]
    TooLong,
    #[error("must look like name@example.com")]
    Invalid,
}

impl Email {
    pub const MAX_LEN: usize = 254;

    /// An address for a new account: every rule above.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        Self::parse_with(raw, true)
    }

    /// An address that may name an existing account (a login, a lookup, a
    /// stored row): the rules of [`Email::parse`] but the one on mixed
    /// scripts, which came later, so accounts made before it stay reachable.
    /// Never for making an account.
    pub fn parse_existing(raw: &str) -> Result<Self, EmailError> {
        Self::parse_with(raw, false)
    }

    fn parse_with(raw: &str, one_script: bool) -> Result<Self, EmailError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.len() > Self::MAX_LEN {
            return Err(EmailError::TooLong);
        }
        let normalized: String = trimmed.nfkc().collect::<String>().to_lowercase();
        if normalized.len() > Self::MAX_LEN {
            return Err(EmailError::TooLong);
        }
        let normalized = match normalized.rsplit_once('@') {
            Some((local, domain)) => match unicode_form(domain)? {
                Some(decoded) => format!("{local}@{decoded}"),
                None => normalized,
            },
            None => return Err(EmailError::Invalid),
        };
        if normalized.len() > Self::MAX_LEN {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = normalized.rsplit_once('@').ok_or(EmailError::Invalid)?;
        if local.is_empty() || local.len() > 64 || !local.chars().all(is_local_char) {
            return Err(EmailError::Invalid);
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(EmailError::Invalid);
        }
        if !valid_domain(domain) {
            return Err(EmailError::Invalid);
        }
        if one_script && (!single_script(local) || !domain.split('.').all(single_script)) {
            return Err(EmailError::Invalid);
        }
        // Letters that display as nothing (the Hangul fillers) are letters
        // to the grammar above, and would make a second, invisible address.
        if one_script && normalized.chars().any(crate::names::is_hidden_formatting) {
            return Err(EmailError::Invalid);
        }
        Ok(Self(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address with its domain as DNS, and SMTP without SMTPUTF8, take
    /// it: each label that is not ASCII in its punycode form (`bücher` as
    /// `xn--bcher-kva`). The local part stays as it is.
    pub fn with_ascii_domain(&self) -> Option<String> {
        let (local, domain) = self.0.rsplit_once('@')?;
        let ascii = idna::domain_to_ascii(domain).ok()?;
        Some(format!("{local}@{ascii}"))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

fn is_local_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c)
    } else {
        c.is_alphanumeric()
    }
}

/// Whether the letters of `part` (the local part, or one domain label) come
/// from one script, or one of the mixes that writing systems use (Unicode
/// TS #39's "highly restrictive" level: Latin with Han and the Japanese
/// kana, with Han and Bopomofo, or with Han and Hangul). So `аdmin` with a
/// Cyrillic `а` cannot sit beside `admin`; lookalikes written wholly in one
/// script (an all-Cyrillic `сор` beside `cop`) still can.
fn single_script(part: &str) -> bool {
    use unicode_script::{Script, UnicodeScript as _};
    let mut seen: Vec<Script> = Vec::new();
    for c in part.chars() {
        let script = c.script();
        if matches!(script, Script::Common | Script::Inherited | Script::Unknown) || seen.contains(&script) {
            continue;
        }
        seen.push(script);
    }
    if seen.len() <= 1 {
        return true;
    }
    const MIXES: [&[Script]; 3] = [
        &[Script::Latin, Script::Han, Script::Hiragana, Script::Katakana],
        &[Script::Latin, Script::Han, Script::Bopomofo],
        &[Script::Latin, Script::Han, Script::Hangul],
    ];
    MIXES.iter().any(|mix| seen.iter().all(|s| mix.contains(s)))
}

/// A domain with ASCII-compatible labels (`xn--bcher-kva`, punycode) in the
/// form people read (`bücher`), as DNS treats the two alike: so one mailbox
/// is one account, and the rules on scripts see the letters. `None` if no
/// label is one; refused if a label only pretends to be one.
fn unicode_form(domain: &str) -> Result<Option<String>, EmailError> {
    if !domain.split('.').any(|label| label.starts_with("xn--")) {
        return Ok(None);
    }
    let (decoded, outcome) = idna::domain_to_unicode(domain);
    outcome.map_err(|_| EmailError::Invalid)?;
    Ok(Some(decoded.nfkc().collect::<String>().to_lowercase()))
}

fn valid_domain(domain: &str) -> bool {
    if domain.is_empty() || domain.len() > 253 || !domain.contains('.') {
        return false;
    }
    domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    })
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Email").field(&self.0).finish()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(Email::parse("  Ada@Example.COM\t").unwrap().as_str(), "ada@example.com");
    }

    #[test]
    fn plus_addressing_and_subdomains_are_accepted() {
        assert!(Email::parse("ada+tag@mail.example.co.uk").is_ok());
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for bad in [
            "",
            "   ",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "ada@@example.com",
            "a da@example.com",
            "ada@exa mple.com",
            "\"ada\"@example.com",
            "ada@-example.com",
            "ada@example..com",
            ".ada@example.com",
            "ada.@example.com",
            "ada\u{0}@example.com",
            "ada@example.com\u{7}",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn unicode_forms_of_one_address_are_one_address() {
        let composed = Email::parse("ren\u{e9}@example.com").unwrap();
        let decomposed = Email::parse("rene\u{301}@example.com").unwrap();
        assert_eq!(composed, decomposed);
        let fullwidth = Email::parse("\u{ff52}\u{ff45}\u{ff4e}\u{e9}@example.com").unwrap();
        assert_eq!(fullwidth, composed);
        assert_eq!(
            Email::parse("Jos\u{c9}@Ex\u{c4}mple.com").unwrap().as_str(),
            "jos\u{e9}@ex\u{e4}mple.com"
        );
    }

    #[test]
    fn a_punycode_domain_is_the_domain_it_spells() {
        let unicode = Email::parse("pv@bücher.example").unwrap();
        for spelling in [
            "pv@xn--bcher-kva.example",
            "PV@XN--BCHER-KVA.example",
            "pv@xn--bcher-kva.EXAMPLE",
        ] {
            assert_eq!(Email::parse(spelling).unwrap(), unicode, "{spelling}");
            assert_eq!(Email::parse_existing(spelling).unwrap(), unicode, "{spelling}");
        }
        assert_eq!(unicode.with_ascii_domain().as_deref(), Some("pv@xn--bcher-kva.example"));
        let ascii = Email::parse("ada@example.com").unwrap();
        assert_eq!(ascii.with_ascii_domain().as_deref(), Some("ada@example.com"));
    }

    #[test]
    fn punycode_cannot_smuggle_what_the_rules_refuse() {
        // Not valid punycode, or decoding to something no domain may hold.
        for bad in ["a@xn--.example", "a@xn--zz-.example", "a@xn--ls8h.example"] {
            assert_eq!(Email::parse(bad), Err(EmailError::Invalid), "{bad}");
        }
        // Mixed scripts written as punycode: `pаypal` with a Cyrillic `а`.
        let mixed = format!("a@{}.example", idna::domain_to_ascii("pаypal").unwrap());
        assert!(mixed.contains("xn--"), "{mixed}");
        assert_eq!(Email::parse(&mixed), Err(EmailError::Invalid), "{mixed}");
        assert!(Email::parse_existing(&mixed).is_ok(), "lookups keep the older rule");
    }

    #[test]
    fn invisible_and_direction_characters_are_rejected() {
        for bad in [
            "a\u{200b}b@example.com",
            "a\u{202e}b@example.com",
            "a\u{2066}b@example.com",
            "ab\u{feff}@example.com",
            "a\u{ad}b@example.com",
            "a@exam\u{200d}ple.com",
            "\u{1f600}@example.com",
            "x\u{301}\u{301}\u{301}@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn scripts_mixed_within_a_part_are_rejected() {
        for bad in [
            "\u{430}dmin@example.com",
            "admin@ex\u{430}mple.com",
            "p\u{430}ypal@example.com",
            "\u{3b1}lpha@example.com",
            "user@\u{440}\u{443}b.example.com",
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError::Invalid), "{bad:?}");
        }
        // An account made before the rule is still found.
        let older = Email::parse_existing("\u{430}dmin@example.com").unwrap();
        assert_eq!(older.as_str(), "\u{430}dmin@example.com");
        for good in [
            "\u{438}\u{432}\u{430}\u{43d}@\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}.\u{440}\u{444}",
            "\u{3b1}\u{3bb}\u{3c6}\u{3b1}@example.gr",
            "\u{5e9}\u{5dc}\u{5d5}\u{5dd}@example.com",
            "\u{7530}\u{4e2d}\u{3072}\u{308d}abc@example.jp",
            "\u{d55c}\u{ad6d}\u{6f22}abc@example.kr",
            "ada.lovelace+1@example.com",
            "\u{438}\u{432}\u{430}\u{43d}@example.com",
        ] {
            assert!(Email::parse(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn letters_that_show_as_nothing_are_rejected() {
        for bad in [
            "\u{3164}admin@example.com",
            "admin\u{3164}@example.com",
            "\u{115f}admin@example.com",
            "admin@example\u{3164}.com",
            "\u{3164}@example.com",
            "a\u{ffa0}@example.com",
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn overlong_email_is_rejected() {
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(Email::parse(&long_local), Err(EmailError::Invalid));
    }

    proptest! {
        #[test]
        fn parsing_is_idempotent(local in "[a-zA-Z0-9._+-]{1,20}", domain in "[a-zA-Z0-9]{1,10}\\.[a-z]{2,5}") {
            if let Ok(email) = Email::parse(&format!("{local}@{domain}")) {
                let again = Email::parse(email.as_str()).unwrap();
                prop_assert_eq!(again, email);
            }
        }

        #[test]
        fn case_does_not_matter(local in "[a-zA-Z0-9]{1,20}") {
            let lower = Email::parse(&format!("{}@example.com", local.to_lowercase()));
            let upper = Email::parse(&format!("{}@EXAMPLE.com", local.to_uppercase()));
            prop_assert_eq!(lower, upper);
        }
    }
}
