//! The HMAC secrets behind the default keyring: taken from the environment
//! (and refused when weak), or generated once into the data directory.

use crate::config::ConfigError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use std::fmt;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// A secret string: zeroized on drop, never printed.
#[derive(Clone)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where the default keyring's two secrets come from.
#[derive(Debug, Clone)]
pub enum SecretsSource {
    /// `JWT_SECRET` and `REFRESH_TOKEN_SECRET`, already checked.
    Env { access: SecretValue, refresh: SecretValue },
    /// Generated on first start into `<data dir>/secrets.json` (mode 0600).
    Generated,
}

/// The pair in use, however it was obtained.
pub struct SecretPair {
    pub access: SecretValue,
    pub refresh: SecretValue,
}

pub const ACCESS_VAR: &str = "JWT_SECRET";
pub const REFRESH_VAR: &str = "REFRESH_TOKEN_SECRET";
const MIN_SECRET_BYTES: usize = 32;
const GENERATED_FILE: &str = "secrets.json";

/// Words that mark a value copied from a tutorial or a template.
const PLACEHOLDER_MARKERS: &[&str] = &[
    "change-this",
    "change_this",
    "changethis",
    "changeme",
    "change-me",
    "change_me",
    "your-secret",
    "your_secret",
    "yoursecret",
    "secret-key",
    "secret_key",
    "secretkey",
    "placeholder",
    "replace-me",
    "replace_me",
    "example",
    "insert-",
    "todo",
    "xxxxxxxx",
    "password",
    "12345678",
    "abcdefgh",
];

impl SecretsSource {
    /// Reads the pair from the environment: both or neither, each strong,
    /// and different from each other.
    pub fn from_env_values(access: Option<String>, refresh: Option<String>) -> Result<Self, ConfigError> {
        match (access, refresh) {
            (None, None) => Ok(Self::Generated),
            (Some(_), None) => Err(ConfigError::new(
                REFRESH_VAR,
                format!("is not set but {ACCESS_VAR} is; set both or neither (`tessera keygen` prints a pair)"),
            )),
            (None, Some(_)) => Err(ConfigError::new(
                ACCESS_VAR,
                format!("is not set but {REFRESH_VAR} is; set both or neither (`tessera keygen` prints a pair)"),
            )),
            (Some(access), Some(refresh)) => {
                check_secret(ACCESS_VAR, &access)?;
                check_secret(REFRESH_VAR, &refresh)?;
                if access == refresh {
                    return Err(ConfigError::new(
                        REFRESH_VAR,
                        format!("is equal to {ACCESS_VAR}; the two must differ so one token type can never pass as the other (`tessera keygen` prints a pair)"),
                    ));
                }
                Ok(Self::Env {
                    access: SecretValue::new(access),
                    refresh: SecretValue::new(refresh),
                })
            }
        }
    }
}

/// Refuses secrets that are short, templated or of too few distinct characters.
pub fn check_secret(var: &'static str, value: &str) -> Result<(), ConfigError> {
    let hint = "run `tessera keygen` for a strong pair";
    if value.len() < MIN_SECRET_BYTES {
        return Err(ConfigError::new(
            var,
            format!(
                "is {} bytes; it must be at least {MIN_SECRET_BYTES} random bytes ({hint})",
                value.len()
            ),
        ));
    }
    let lower = value.to_ascii_lowercase();
    if let Some(marker) = PLACEHOLDER_MARKERS.iter().find(|m| lower.contains(*m)) {
        return Err(ConfigError::new(
            var,
            format!("looks like a placeholder (it contains {marker:?}); never run with a template value ({hint})"),
        ));
    }
    let mut seen = [false; 256];
    for b in value.bytes() {
        seen[usize::from(b)] = true;
    }
    let distinct = seen.iter().filter(|s| **s).count();
    if distinct < 10 {
        return Err(ConfigError::new(
            var,
            format!("uses only {distinct} distinct characters; it is not random enough ({hint})"),
        ));
    }
    Ok(())
}

/// 64 random bytes, base64url: 86 characters, 512 bits.
pub fn generate_secret() -> String {
    let mut bytes = Zeroizing::new([0u8; 64]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    URL_SAFE_NO_PAD.encode(bytes.as_ref())
}

/// A fresh pair in `.env` form, for `tessera keygen`.
pub fn keygen_env() -> String {
    format!(
        "{ACCESS_VAR}={}\n{REFRESH_VAR}={}\nTESSERA_MASTER_KEY={}\n",
        generate_secret(),
        generate_secret(),
        tessera_core::MasterKey::generate_base64()
    )
}

/// Associated data binding each sealed default secret to its purpose.
const SEAL_ACCESS: &[u8] = b"tessera/default-keyring/access/v1";
const SEAL_REFRESH: &[u8] = b"tessera/default-keyring/refresh/v1";

/// The default pair an earlier version generated and shared, sealed, through
/// PostgreSQL (`default_secrets`), to adopt into the keyring with its kids.
pub async fn legacy_shared_secrets(
    master: &crate::master::MasterKeys,
    store: &dyn tessera_store::SecretStore,
) -> Result<Option<SecretPair>, SecretsError> {
    let Some(stored) = store.default_secrets().await.map_err(SecretsError::Store)? else {
        return Ok(None);
    };
    let open = |sealed: &[u8], context: &[u8]| -> Result<SecretValue, SecretsError> {
        let bytes = master
            .open(&stored.master_key_id, sealed, context)
            .map_err(SecretsError::Sealed)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| SecretsError::Sealed(tessera_core::SealError::Damaged))?;
        Ok(SecretValue::new(text.to_owned()))
    };
    Ok(Some(SecretPair {
        access: open(&stored.access, SEAL_ACCESS)?,
        refresh: open(&stored.refresh, SEAL_REFRESH)?,
    }))
}

/// Why the generated secrets could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot create the data directory {path} (set TESSERA_DATA_DIR to a writable directory)")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}` and start again")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{path} is damaged ({reason}); restore it from a backup, or delete it to generate new secrets (this logs everyone out)")]
    Damaged { path: PathBuf, reason: String },
    #[error("the shared signing keys cannot be opened with TESSERA_MASTER_KEY: {0} (every instance must use the master key the keys were sealed with)")]
    Sealed(tessera_core::SealError),
    #[error(transparent)]
    MasterKey(Box<crate::master::MasterKeyError>),
    #[error("cannot read or store the shared signing keys")]
    Store(#[source] tessera_store::StoreError),
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GeneratedFile {
    version: u32,
    jwt_secret: String,
    refresh_token_secret: String,
}

/// Creates the data directory (mode 0700) if it is missing.
pub fn ensure_data_dir(data_dir: &Path) -> Result<(), SecretsError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|source| SecretsError::DataDir {
            path: data_dir.to_owned(),
            source,
        })
}

/// Where an earlier version of the embedded default kept its generated pair
/// in plaintext.
pub fn legacy_file_path(data_dir: &Path) -> PathBuf {
    data_dir.join(GENERATED_FILE)
}

/// The pair an earlier version generated into the data directory, if any, to
/// adopt into the sealed keyring (after which the file is removed).
pub fn read_legacy_file(data_dir: &Path) -> Result<Option<SecretPair>, SecretsError> {
    match read_generated(&legacy_file_path(data_dir)) {
        Ok(pair) => Ok(Some(pair)),
        Err(SecretsError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(other) => Err(other),
    }
}

fn read_generated(path: &Path) -> Result<SecretPair, SecretsError> {
    let meta = std::fs::metadata(path).map_err(|source| SecretsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretsError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let raw = Zeroizing::new(std::fs::read(path).map_err(|source| SecretsError::Read {
        path: path.to_owned(),
        source,
    })?);
    let damaged = |reason: String| SecretsError::Damaged {
        path: path.to_owned(),
        reason,
    };
    let file: GeneratedFile = serde_json::from_slice(&raw).map_err(|e| damaged(e.to_string()))?;
    if file.version != 1 {
        return Err(damaged(format!("unknown version {}", file.version)));
    }
    let access = SecretValue::new(file.jwt_secret);
    let refresh = SecretValue::new(file.refresh_token_secret);
    for (var, value) in [(ACCESS_VAR, &access), (REFRESH_VAR, &refresh)] {
        check_secret(var, value.expose()).map_err(|e| damaged(e.to_string()))?;
    }
    Ok(SecretPair { access, refresh })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    fn strong() -> String {
        generate_secret()
    }

    #[test]
    fn neither_set_means_generated() {
        assert!(matches!(
            SecretsSource::from_env_values(None, None),
            Ok(SecretsSource::Generated)
        ));
    }

    #[test]
    fn half_configured_pair_names_the_missing_variable() {
        let err = SecretsSource::from_env_values(Some(strong()), None).unwrap_err();
        assert_eq!(err.var, REFRESH_VAR);
        let err = SecretsSource::from_env_values(None, Some(strong())).unwrap_err();
        assert_eq!(err.var, ACCESS_VAR);
    }

    #[test]
    fn equal_secrets_are_refused() {
        let s = strong();
        let err = SecretsSource::from_env_values(Some(s.clone()), Some(s)).unwrap_err();
        assert!(err.message.contains("equal"), "{err}");
    }

    #[test]
    fn weak_and_placeholder_secrets_are_refused() {
        for bad in [
            "secret",
            "",
            "short-but-random-Xy7",
            "your-secret-key-change-this-in-production",
            "changeme-changeme-changeme-changeme-1234",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "abababababababababababababababababababab",
            "my-super-secret-key-123-my-super-secret-key",
        ] {
            let err = SecretsSource::from_env_values(Some(bad.to_owned()), Some(strong())).unwrap_err();
            assert_eq!(err.var, ACCESS_VAR, "{bad:?} should be refused");
        }
        assert!(SecretsSource::from_env_values(Some(strong()), Some(strong())).is_ok());
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let (a, r) = (strong(), strong());
        let source = SecretsSource::from_env_values(Some(a.clone()), Some(r.clone())).unwrap();
        let shown = format!("{source:?}");
        assert!(!shown.contains(&a) && !shown.contains(&r), "{shown}");
    }

    fn write_legacy(dir: &Path, body: &[u8], mode: u32) -> PathBuf {
        let path = legacy_file_path(dir);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .unwrap();
        f.write_all(body).unwrap();
        path
    }

    #[test]
    fn a_legacy_secrets_file_is_read_for_adoption() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_legacy_file(dir.path()).unwrap().is_none());
        let (a, r) = (strong(), strong());
        let body = serde_json::json!({"version": 1, "jwtSecret": a, "refreshTokenSecret": r}).to_string();
        write_legacy(dir.path(), body.as_bytes(), 0o600);
        let pair = read_legacy_file(dir.path()).unwrap().unwrap();
        assert_eq!(pair.access.expose(), a);
        assert_eq!(pair.refresh.expose(), r);
    }

    #[test]
    fn world_readable_secrets_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let body = serde_json::json!({"version": 1, "jwtSecret": strong(), "refreshTokenSecret": strong()}).to_string();
        write_legacy(dir.path(), body.as_bytes(), 0o644);
        let err = read_legacy_file(dir.path()).err().unwrap();
        assert!(matches!(err, SecretsError::Permissions { .. }), "{err}");
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn damaged_secrets_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_legacy(dir.path(), b"{not json", 0o600);
        assert!(matches!(
            read_legacy_file(dir.path()),
            Err(SecretsError::Damaged { .. })
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"{not json");
    }

    #[test]
    fn keygen_prints_two_strong_distinct_secrets_and_a_master_key() {
        let env = keygen_env();
        let mut values: Vec<&str> = env.lines().map(|l| l.split_once('=').unwrap().1).collect();
        assert_eq!(values.len(), 3);
        assert!(env.contains("\nTESSERA_MASTER_KEY="));
        tessera_core::MasterKey::from_base64(values.pop().unwrap()).unwrap();
        assert!(env.starts_with("JWT_SECRET=") && env.contains("\nREFRESH_TOKEN_SECRET="));
        assert_ne!(values[0], values[1]);
        for v in values {
            check_secret(ACCESS_VAR, v).unwrap();
            assert_eq!(v.len(), 86);
        }
    }
}
