//! The domain of tessera: the values an account is made of, parsed once at the
//! edge so the rest of the code never sees an unchecked email or password.
//!
//! This crate does no IO: no network, no files, no clock, no async runtime.
//! Password hashing is CPU work only; the server decides where it runs.
//!
//! ```
//! use tessera_core::{Email, Password};
//! let email = Email::parse("  Ada@Example.COM ").unwrap();
//! assert_eq!(email.as_str(), "ada@example.com");
//! assert!(Password::parse("short".into()).is_err());
//! ```

mod email;
mod ids;
mod names;
mod password;
mod seal;
mod tenant;

pub use email::{Email, EmailError};
pub use ids::{SessionId, TenantId, UserId};
pub use names::{NameError, PersonName, Role, RoleError};
pub use password::{
    HashError, HashMemory, HashParams, HashScheme, ImportedHash, ImportedHashError, Password, PasswordError,
    PasswordHasher, PasswordVerdict, MAX_BCRYPT_COST, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS,
};
pub use seal::{MasterKey, SealError};
pub use tenant::{SlugError, TenantName, TenantSlug};
