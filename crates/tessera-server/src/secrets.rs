//! The HMAC secrets behind the default keyring: taken from the environment
//! (and refused when weak), or generated once into the data directory.

use crate::config::ConfigError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
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

    /// The pair to build the keyring from, generating it on first start.
    pub fn resolve(&self, data_dir: &Path) -> Result<SecretPair, SecretsError> {
        match self {
            Self::Env { access, refresh } => Ok(SecretPair {
                access: access.clone(),
                refresh: refresh.clone(),
            }),
            Self::Generated => load_or_generate(data_dir),
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

/// The default secrets shared by every instance on one database: generated by
/// whichever instance starts first, stored sealed under the master key, and
/// read back (never regenerated) by all the others.
pub async fn shared_default_secrets(
    master: &tessera_core::MasterKey,
    store: &dyn tessera_store::SecretStore,
    now: i64,
) -> Result<SecretPair, SecretsError> {
    let candidate = tessera_store::SealedSecrets {
        master_key_id: master.id().to_owned(),
        access: master.seal(generate_secret().as_bytes(), SEAL_ACCESS),
        refresh: master.seal(generate_secret().as_bytes(), SEAL_REFRESH),
        created_at: now,
    };
    let stored = store
        .default_secrets_or_insert(candidate)
        .await
        .map_err(SecretsError::Store)?;
    master.check_id(&stored.master_key_id).map_err(SecretsError::Sealed)?;
    let open = |sealed: &[u8], context: &[u8]| -> Result<SecretValue, SecretsError> {
        let bytes = master.open(sealed, context).map_err(SecretsError::Sealed)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| SecretsError::Sealed(tessera_core::SealError::Damaged))?;
        Ok(SecretValue::new(text.to_owned()))
    };
    Ok(SecretPair {
        access: open(&stored.access, SEAL_ACCESS)?,
        refresh: open(&stored.refresh, SEAL_REFRESH)?,
    })
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

fn load_or_generate(data_dir: &Path) -> Result<SecretPair, SecretsError> {
    ensure_data_dir(data_dir)?;
    let path = data_dir.join(GENERATED_FILE);
    match read_generated(&path) {
        Ok(pair) => return Ok(pair),
        Err(SecretsError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(other) => return Err(other),
    }
    let file = GeneratedFile {
        version: 1,
        jwt_secret: generate_secret(),
        refresh_token_secret: generate_secret(),
    };
    let body = Zeroizing::new(serde_json::to_vec_pretty(&file).map_err(|e| SecretsError::Damaged {
        path: path.clone(),
        reason: e.to_string(),
    })?);
    // Write a private temp file, then link it into place: linking fails if the
    // file already exists, so two processes starting at once agree on one pair.
    let tmp = data_dir.join(format!(".{GENERATED_FILE}.{}.tmp", std::process::id()));
    let write = |tmp: &Path| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)?;
        f.write_all(&body)?;
        f.sync_all()
    };
    let _ = std::fs::remove_file(&tmp);
    write(&tmp).map_err(|source| SecretsError::Write {
        path: tmp.clone(),
        source,
    })?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::warn!(path = %path.display(), "generated new token secrets; back this file up, losing it logs everyone out");
            Ok(SecretPair {
                access: SecretValue::new(file.jwt_secret),
                refresh: SecretValue::new(file.refresh_token_secret),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_generated(&path),
        Err(source) => Err(SecretsError::Write { path, source }),
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

    #[test]
    fn generated_secrets_are_private_and_survive_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = SecretsSource::Generated.resolve(&data).unwrap();
        let second = SecretsSource::Generated.resolve(&data).unwrap();
        assert_eq!(first.access.expose(), second.access.expose());
        assert_eq!(first.refresh.expose(), second.refresh.expose());
        assert_ne!(first.access.expose(), first.refresh.expose());
        let mode = std::fs::metadata(data.join(GENERATED_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
    }

    #[test]
    fn world_readable_secrets_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        SecretsSource::Generated.resolve(dir.path()).unwrap();
        let path = dir.path().join(GENERATED_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SecretsSource::Generated.resolve(dir.path()).err().unwrap();
        assert!(matches!(err, SecretsError::Permissions { .. }), "{err}");
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn damaged_secrets_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(GENERATED_FILE);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            SecretsSource::Generated.resolve(dir.path()),
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
