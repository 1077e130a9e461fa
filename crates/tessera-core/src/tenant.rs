use std::fmt;

use crate::names::{NameError, PersonName};

/// The name of a tenant in URLs (`/api/tenants/{slug}/...`): 3 to 40 of
/// `a-z`, `0-9` and `-`, starting with a letter, not ending with `-`, with no
/// `--`. Lowercase only, so two slugs that look alike are the same slug.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantSlug(String);

/// Why a string is not an acceptable slug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 3 to 40 characters of a-z, 0-9 and '-', start with a letter, and not end with '-' or contain '--'")]
pub struct SlugError;

impl TenantSlug {
    pub const MIN_CHARS: usize = 3;
    pub const MAX_CHARS: usize = 40;
    /// The default tenant's slug: `/api/tenants/default/...` is `/api/auth/...`.
    pub const DEFAULT: &'static str = "default";

    pub fn parse(raw: &str) -> Result<Self, SlugError> {
        let bytes = raw.as_bytes();
        let ok = (Self::MIN_CHARS..=Self::MAX_CHARS).contains(&bytes.len())
            && bytes[0].is_ascii_lowercase()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && !raw.ends_with('-')
            && !raw.contains("--");
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(SlugError)
        }
    }

    pub fn default_tenant() -> Self {
        Self(Self::DEFAULT.to_owned())
    }

    /// A slug made from a display name: ASCII letters and digits kept
    /// (lowercased), every other run of characters one `-`, cut to fit.
    /// Names with too few ASCII letters give `tenant`; the caller adds a
    /// suffix when the slug is taken.
    pub fn from_name(name: &str) -> Self {
        let mut slug = String::with_capacity(Self::MAX_CHARS);
        for c in name.chars() {
            if slug.len() >= Self::MAX_CHARS - 6 {
                break;
            }
            if c.is_ascii_alphanumeric() {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        let slug = slug.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-');
        let slug = slug.trim_end_matches('-');
        match Self::parse(slug) {
            Ok(slug) if slug.as_str() != Self::DEFAULT => slug,
            _ => Self("tenant".to_owned()),
        }
    }

    /// This slug with `-suffix` appended, cut so the result still fits.
    pub fn with_suffix(&self, suffix: &str) -> Result<Self, SlugError> {
        let room = Self::MAX_CHARS.saturating_sub(suffix.len() + 1);
        let base = self
            .0
            .get(..room.min(self.0.len()))
            .unwrap_or(&self.0)
            .trim_end_matches('-');
        Self::parse(&format!("{base}-{suffix}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_default(&self) -> bool {
        self.0 == Self::DEFAULT
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TenantSlug").field(&self.0).finish()
    }
}

/// A tenant's display name: the rules of a [`PersonName`] (trimmed, NFC, at
/// most 100 characters, no control, line-separating or invisible formatting
/// characters), and not empty.
#[derive(Clone, PartialEq, Eq)]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        PersonName::parse(raw).map(|name| Self(name.into_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TenantName").field(&self.0).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercase_words_joined_by_single_hyphens() {
        for good in ["acme", "acme-corp", "a12", "x-1-y"] {
            assert!(TenantSlug::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "ab",
            "Acme",
            "1acme",
            "-acme",
            "acme-",
            "ac--me",
            "acme corp",
            "ac/me",
            "acmé",
            &"a".repeat(41),
        ] {
            assert_eq!(TenantSlug::parse(bad), Err(SlugError), "{bad:?}");
        }
    }

    #[test]
    fn slugs_made_from_names_always_parse() {
        assert_eq!(TenantSlug::from_name("Acme Corp.").as_str(), "acme-corp");
        assert_eq!(TenantSlug::from_name("  42 Widgets & Co ").as_str(), "widgets-co");
        assert_eq!(TenantSlug::from_name("日本").as_str(), "tenant");
        assert_eq!(TenantSlug::from_name("Default").as_str(), "tenant");
        let long = TenantSlug::from_name(&"word ".repeat(40));
        assert!(long.as_str().len() <= TenantSlug::MAX_CHARS - 6);
        let suffixed = long.with_suffix("a1b2c").unwrap();
        assert!(suffixed.as_str().len() <= TenantSlug::MAX_CHARS);
        assert!(suffixed.as_str().ends_with("-a1b2c"));
    }

    #[test]
    fn tenant_names_follow_the_person_name_rules() {
        assert_eq!(TenantName::parse("  Acme  ").unwrap().as_str(), "Acme");
        assert!(TenantName::parse("").is_err());
        assert!(TenantName::parse("a\u{202e}b").is_err());
        for hidden in ['\u{2028}', '\u{2029}', '\u{ad}', '\u{e0041}', '\u{85}'] {
            assert_eq!(
                TenantName::parse(&format!("Acme{hidden}Bcc: x@evil.example")),
                Err(NameError::ControlCharacter),
                "U+{:04X}",
                hidden as u32
            );
        }
    }
}
