use std::fmt;

/// A first or last name as shown back to the user: trimmed, at most 100
/// characters, no control characters.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonName(String);

/// Why a string is not an acceptable name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("is required")]
    Empty,
    #[error("must be at most 100 characters")]
    TooLong,
    #[error("must not contain control characters")]
    ControlCharacter,
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
        let trimmed = raw.trim();
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(NameError::TooLong);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(NameError::ControlCharacter);
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

    pub fn user() -> Self {
        Self(Self::USER.to_owned())
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
