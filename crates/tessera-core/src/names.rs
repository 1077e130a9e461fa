use std::fmt;
use unicode_normalization::UnicodeNormalization as _;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};

/// A first or last name as shown back to the user: trimmed, NFC-normalized,
/// at most 100 characters, with no control characters (`Cc`), no line or
/// paragraph separators (U+2028, U+2029), and none of the invisible
/// formatting characters (`Cf`) that make a name display as something else
/// or hide text in it (bidi embeddings, overrides and isolates, zero-width
/// space, soft hyphen, byte-order mark, tag characters, ...), nor the Hangul
/// fillers that render as blanks. The zero-width joiner and non-joiner stay:
/// several scripts and emoji sequences need them.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonName(String);

/// Why a string is not an acceptable name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("is required")]
    Empty,
    #[error("must be at most 100 characters")]
    TooLong,
    #[error("must not contain control characters, line or paragraph separators, or invisible formatting characters")]
    ControlCharacter,
    #[error("must contain a letter or a digit")]
    NoLetters,
}

impl PersonName {
    pub const MAX_CHARS: usize = 100;

    /// A name that must not be empty (a first name).
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let name = Self::parse_optional(raw)?;
        if name.0.is_empty() {
            return Err(NameError::Empty);
        }
        Ok(name)
    }

    /// A name that may be empty: many people have only one name.
    pub fn parse_optional(raw: &str) -> Result<Self, NameError> {
        let normalized: String = raw.trim().nfc().collect();
        let trimmed = normalized.as_str();
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(NameError::TooLong);
        }
        if trimmed.chars().any(|c| c.is_control() || is_hidden_formatting(c)) {
            return Err(NameError::ControlCharacter);
        }
        // A name of only marks, joiners or blank symbols shows as nothing.
        if !trimmed.is_empty() && !trimmed.chars().any(char::is_alphanumeric) {
            return Err(NameError::NoLetters);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PersonName").field(&self.0).finish()
    }
}

/// Line breaks that are not control characters, format characters but the
/// joiners, and letters that display as nothing.
pub(crate) fn is_hidden_formatting(c: char) -> bool {
    match c {
        // ZERO WIDTH NON-JOINER, ZERO WIDTH JOINER.
        '\u{200c}' | '\u{200d}' => false,
        // Hangul fillers: letters (Lo) that render as blanks.
        '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}' => true,
        _ => matches!(
            c.general_category(),
            GeneralCategory::Format | GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator
        ),
    }
}

/// A role carried in access tokens (`role` claim): lowercase ASCII letters,
/// digits, `_` and `-`, 1 to 32 characters. New users get [`Role::USER`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Role(String);

/// Why a string is not an acceptable role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to 32 characters of a-z, 0-9, '_' or '-'")]
pub struct RoleError;

impl Role {
    pub const USER: &'static str = "user";
    /// Administers its tenant's users (`/api/admin/...`), below `owner`.
    pub const ADMIN: &'static str = "admin";
    /// The first user of a tenant, made at signup: may rotate the tenant's
    /// keys and read its audit log.
    pub const OWNER: &'static str = "owner";

    pub fn user() -> Self {
        Self(Self::USER.to_owned())
    }

    pub fn owner() -> Self {
        Self(Self::OWNER.to_owned())
    }

    pub fn is_owner(&self) -> bool {
        self.0 == Self::OWNER
    }

    pub fn parse(raw: &str) -> Result<Self, RoleError> {
        let ok = !raw.is_empty()
            && raw.len() <= 32
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(RoleError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Role").field(&self.0).finish()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(PersonName::parse("  Ada ").unwrap().as_str(), "Ada");
        assert_eq!(PersonName::parse("   "), Err(NameError::Empty));
        assert_eq!(PersonName::parse_optional("").unwrap().as_str(), "");
        assert_eq!(
            PersonName::parse(&"é".repeat(100)).unwrap().as_str().chars().count(),
            100
        );
        assert_eq!(PersonName::parse(&"é".repeat(101)), Err(NameError::TooLong));
        assert_eq!(PersonName::parse("Ada\u{0}"), Err(NameError::ControlCharacter));
        assert_eq!(
            PersonName::parse("Ada\u{202e}ecalevol"),
            Err(NameError::ControlCharacter)
        );
        assert_eq!(PersonName::parse("A\u{200b}da"), Err(NameError::ControlCharacter));
        assert_eq!(PersonName::parse("Rene\u{301}").unwrap().as_str(), "Ren\u{e9}");
        assert!(
            PersonName::parse("\u{645}\u{62d}\u{645}\u{62f}").is_ok(),
            "right-to-left scripts are fine"
        );
    }

    #[test]
    fn a_name_that_shows_as_nothing_is_refused() {
        for blank in [
            "\u{34f}",
            "\u{2800}",
            "\u{301}\u{301}",
            "\u{fe0f}",
            "\u{17b4}",
            "\u{2800}\u{2800}",
        ] {
            assert!(PersonName::parse(blank).is_err(), "{blank:?}");
            assert!(PersonName::parse_optional(blank).is_err(), "{blank:?}");
        }
        assert_eq!(PersonName::parse("\u{2800}"), Err(NameError::NoLetters));
        assert!(PersonName::parse("O'Neil").is_ok());
        assert!(PersonName::parse("7").is_ok());
        assert!(PersonName::parse_optional("").is_ok());
    }

    #[test]
    fn line_separators_and_invisible_formatting_are_refused() {
        for hidden in [
            // Line and paragraph separators (Zl, Zp): line breaks to many
            // readers, no control characters.
            '\u{2028}',
            '\u{2029}',
            // C1 next line and the other breaking controls.
            '\u{85}',
            '\u{b}',
            '\u{c}',
            '\r',
            // Format characters (Cf) not refused before.
            '\u{ad}',
            '\u{600}',
            '\u{180e}',
            '\u{2061}',
            '\u{206a}',
            '\u{fff9}',
            '\u{e0001}',
            '\u{e0041}',
            // Still refused.
            '\u{200b}',
            '\u{200e}',
            '\u{202e}',
            '\u{2066}',
            '\u{feff}',
            // Blank letters.
            '\u{3164}',
            '\u{ffa0}',
        ] {
            let name = format!("Eve{hidden}Bcc: x@evil.example");
            assert_eq!(
                PersonName::parse(&name),
                Err(NameError::ControlCharacter),
                "U+{:04X}",
                hidden as u32
            );
            assert_eq!(
                PersonName::parse_optional(&name),
                Err(NameError::ControlCharacter),
                "U+{:04X}",
                hidden as u32
            );
        }
        // Joiners stay: Persian, Indic scripts and emoji sequences need them.
        assert!(PersonName::parse("\u{645}\u{6cc}\u{200c}\u{62e}\u{648}\u{627}\u{647}\u{645}").is_ok());
        assert!(PersonName::parse("\u{915}\u{94d}\u{200d}\u{937}").is_ok());
        assert!(PersonName::parse("Ada \u{1f469}\u{200d}\u{1f4bb}").is_ok());
        // Variation selectors (Mn), combining marks and other spaces stay too.
        assert!(PersonName::parse("Ada \u{2764}\u{fe0f}").is_ok());
        assert!(PersonName::parse("Mar\u{ed}a Jos\u{e9}\u{3000}Garc\u{ed}a").is_ok());
        // A separator at either end is trimmed away, like any white space.
        assert_eq!(PersonName::parse("\u{2028}Ada\u{2029}").unwrap().as_str(), "Ada");
    }

    #[test]
    fn roles_are_plain_lowercase_words() {
        assert!(Role::parse("admin").is_ok());
        assert!(Role::parse("billing-reader_2").is_ok());
        for bad in ["", "Admin", "ad min", "admin!", &"a".repeat(33)] {
            assert!(Role::parse(bad).is_err(), "{bad:?}");
        }
    }
}
