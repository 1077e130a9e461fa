//! The service's configuration, from environment variables.

use std::fmt;
use std::net::SocketAddr;

use tessera_verify::tessera_token::Uuid;
use tessera_verify::{Verifier, VerifierBuilder};

/// Where the service listens unless `PROJECTS_BIND` says otherwise.
pub const DEFAULT_BIND: &str = "127.0.0.1:3000";
/// tessera's default `TESSERA_AUDIENCE`.
pub const DEFAULT_AUDIENCE: &str = "tessera";

/// Every variable read, for the error messages and `--help`-like output.
pub const VARIABLES: [&str; 6] = [
    "TESSERA_JWKS_URL",
    "JWT_SECRET",
    "TESSERA_ISSUER",
    "TESSERA_AUDIENCE",
    "TESSERA_TENANT",
    "PROJECTS_BIND",
];

/// What the service needs to run.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// `PROJECTS_BIND`, default [`DEFAULT_BIND`].
    pub bind: SocketAddr,
    /// `TESSERA_ISSUER`: the `iss` of tessera's tokens.
    pub issuer: String,
    /// `TESSERA_AUDIENCE`, default [`DEFAULT_AUDIENCE`].
    pub audience: String,
    /// `TESSERA_JWKS_URL` or `JWT_SECRET`.
    pub keys: KeySource,
    /// `TESSERA_TENANT`: only this tenant's tokens (a uuid), if set.
    pub tenant: Option<Uuid>,
}

/// How tokens are verified.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// tessera's JWKS (EdDSA, ES256, RS256).
    Jwks(String),
    /// tessera's `JWT_SECRET` (HS256).
    Secret(String),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Jwks(url) => f.debug_tuple("Jwks").field(url).finish(),
            Self::Secret(_) => f.write_str("Secret(<redacted>)"),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("keys", &self.keys)
            .field("tenant", &self.tenant)
            .finish()
    }
}

/// A bad or missing variable: the message names it and says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable at fault.
    pub variable: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn error(variable: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        message: message.into(),
    }
}

impl Config {
    /// From the process environment. A variable set to the empty string
    /// counts as unset.
    pub fn from_env() -> Result<Self, ConfigError> {
        for variable in VARIABLES {
            if let Some(value) = std::env::var_os(variable) {
                if value.to_str().is_none() {
                    return Err(error(variable, "is not valid UTF-8"));
                }
            }
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// From `lookup` (a variable's value, or `None` when unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let issuer = get("TESSERA_ISSUER").ok_or_else(|| {
            error(
                "TESSERA_ISSUER",
                "is not set: set it to the `iss` of tessera's tokens, which is tessera's own TESSERA_ISSUER, \
                 else its TESSERA_PUBLIC_URL, else http://<its bind address> (http://127.0.0.1:8080 by default)",
            )
        })?;
        let audience = get("TESSERA_AUDIENCE").unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned());
        let keys = match (get("TESSERA_JWKS_URL"), get("JWT_SECRET")) {
            (Some(_), Some(_)) => {
                return Err(error(
                    "TESSERA_JWKS_URL",
                    "and JWT_SECRET are both set: set TESSERA_JWKS_URL when tessera signs with EdDSA, ES256 or RS256, \
                     or JWT_SECRET when it signs with HS256 (its default), not both",
                ))
            }
            (None, None) => return Err(error(
                "TESSERA_JWKS_URL",
                "is not set, nor JWT_SECRET: set TESSERA_JWKS_URL (e.g. http://127.0.0.1:8080/.well-known/jwks.json) \
                     when tessera signs with EdDSA, ES256 or RS256, or JWT_SECRET (the same as tessera's) for HS256",
            )),
            (Some(url), None) => KeySource::Jwks(url.trim().to_owned()),
            (None, Some(secret)) => {
                if secret.len() < tessera_verify::tessera_token::MIN_SECRET_BYTES {
                    return Err(error(
                        "JWT_SECRET",
                        format!(
                            "is shorter than {} bytes; it must be the very JWT_SECRET tessera signs with",
                            tessera_verify::tessera_token::MIN_SECRET_BYTES
                        ),
                    ));
                }
                KeySource::Secret(secret)
            }
        };
        let tenant = match get("TESSERA_TENANT") {
            None => None,
            Some(value) => Some(Uuid::try_parse(value.trim()).map_err(|_| {
                error(
                    "TESSERA_TENANT",
                    format!("{value:?} is not a uuid: set it to the tenant's id (`tessera tenant show <slug>`), or unset it"),
                )
            })?),
        };
        let bind_text = get("PROJECTS_BIND").unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind = bind_text.trim().parse::<SocketAddr>().map_err(|_| {
            error(
                "PROJECTS_BIND",
                format!("{bind_text:?} is not an address and port like {DEFAULT_BIND} (port 0 picks a free one)"),
            )
        })?;
        Ok(Self {
            bind,
            issuer: issuer.trim().to_owned(),
            audience: audience.trim().to_owned(),
            keys,
            tenant,
        })
    }

    /// The verifier this configuration describes, to `.build().await`.
    pub fn verifier_builder(&self) -> VerifierBuilder {
        let builder = Verifier::builder(&self.issuer, &self.audience);
        let builder = match &self.keys {
            KeySource::Jwks(url) => builder.jwks_url(url),
            KeySource::Secret(secret) => builder.secret(secret),
        };
        match self.tenant {
            Some(tenant) => builder.tenant(tenant),
            None => builder,
        }
    }
}
