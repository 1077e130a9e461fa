use std::fmt;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }

            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parses the canonical hyphenated form only.
            pub fn parse(raw: &str) -> Option<Self> {
                if raw.len() != 36 {
                    return None;
                }
                Uuid::try_parse(raw).ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.hyphenated())
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

uuid_id!(
    /// A user's id, the `sub` of their tokens.
    UserId
);
uuid_id!(
    /// A session's id (one per login, per device), the `sid` of its tokens.
    SessionId
);
uuid_id!(
    /// A tenant's id, the `tid` of its tokens. The default tenant's is the
    /// nil uuid ([`TenantId::DEFAULT`]).
    TenantId
);

impl TenantId {
    /// The tenant that `/api/auth/...` serves, whose keys come from
    /// `JWT_SECRET` / `REFRESH_TOKEN_SECRET` or the generated pair.
    pub const DEFAULT: Self = Self(Uuid::nil());

    pub fn is_default(&self) -> bool {
        *self == Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hyphenated_form_parses() {
        let id = UserId::random();
        assert_eq!(UserId::parse(&id.to_string()), Some(id));
        assert_eq!(UserId::parse(&id.as_uuid().simple().to_string()), None);
        assert_eq!(UserId::parse("not-a-uuid"), None);
        assert_eq!(SessionId::parse(""), None);
    }
}
