//! The master keys that seal every stored signing key: the current one seals,
//! it and any previous ones open.
//!
//! Previous keys exist for one reason: rotating the master key without
//! downtime. Instances first learn the new key (as a previous one), then
//! switch to sealing with it, then `tessera master-key rotate` re-seals every
//! row, and only then is the old key dropped. At no point does an instance
//! meet a row it cannot open.

use crate::secrets::{SecretValue, SecretsError};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use tessera_core::{MasterKey, SealError};
use zeroize::Zeroizing;

/// The file the embedded default keeps its generated master key in.
pub const MASTER_KEY_FILE: &str = "master.key";

pub struct MasterKeys {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl MasterKeys {
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        let previous = previous.into_iter().filter(|k| k.id() != current.id()).collect();
        Self { current, previous }
    }

    /// The current key (from `TESSERA_MASTER_KEY`) and previous ones (from
    /// `TESSERA_MASTER_KEY_PREVIOUS`), as configured.
    pub fn from_config(current: &SecretValue, previous: &[SecretValue]) -> Result<Self, MasterKeyError> {
        let current = MasterKey::from_base64(current.expose()).map_err(|e| MasterKeyError::Invalid {
            var: "TESSERA_MASTER_KEY",
            reason: e,
        })?;
        let previous = previous
            .iter()
            .map(|k| MasterKey::from_base64(k.expose()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| MasterKeyError::Invalid {
                var: "TESSERA_MASTER_KEY_PREVIOUS",
                reason: e,
            })?;
        Ok(Self::new(current, previous))
    }

    /// The embedded default's key: read from `<data_dir>/master.key`, or
    /// generated there (mode 0600) on first start.
    pub fn load_or_generate(data_dir: &Path) -> Result<Self, MasterKeyError> {
        let path = data_dir.join(MASTER_KEY_FILE);
        match read_key_file(&path) {
            Ok(keys) => return Ok(keys),
            Err(MasterKeyError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(other) => return Err(other),
        }
        let encoded = Zeroizing::new(MasterKey::generate_base64());
        write_new_file(&path, encoded.as_bytes())?;
        tracing::warn!(
            path = %path.display(),
            "generated a master key for the stored signing keys; back it up together with the database \
             (without it they cannot be opened), or set TESSERA_MASTER_KEY"
        );
        read_key_file(&path)
    }

    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// Opens a value sealed by the master key `sealed_by`.
    pub fn open(&self, sealed_by: &str, sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id() == sealed_by)
            .ok_or_else(|| SealError::WrongMasterKey {
                expected: self.current.id().to_owned(),
                found: sealed_by.to_owned(),
            })?;
        key.open(sealed, context)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("{var} {reason}")]
    Invalid { var: &'static str, reason: SealError },
    #[error("cannot read the master key file {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write the master key file {path}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}` and start again")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("{path} does not hold a master key: {reason} (restore it from a backup; without it the stored keys cannot be opened)")]
    Damaged { path: PathBuf, reason: SealError },
}

impl From<MasterKeyError> for SecretsError {
    fn from(err: MasterKeyError) -> Self {
        SecretsError::MasterKey(Box::new(err))
    }
}

/// One base64 key per line: the first seals, every one opens.
fn read_key_file(path: &Path) -> Result<MasterKeys, MasterKeyError> {
    let meta = std::fs::metadata(path).map_err(|source| MasterKeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(MasterKeyError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| MasterKeyError::Read {
        path: path.to_owned(),
        source,
    })?);
    let damaged = |reason| MasterKeyError::Damaged {
        path: path.to_owned(),
        reason,
    };
    let mut keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let current = MasterKey::from_base64(keys.next().unwrap_or_default()).map_err(damaged)?;
    let previous = keys
        .map(MasterKey::from_base64)
        .collect::<Result<Vec<_>, _>>()
        .map_err(damaged)?;
    Ok(MasterKeys::new(current, previous))
}

/// Writes a key file that must not exist yet (two processes starting at once
/// agree on the first one written).
fn write_new_file(path: &Path, body: &[u8]) -> Result<(), MasterKeyError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{MASTER_KEY_FILE}.{}.tmp", std::process::id()));
    let write = |tmp: &Path| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)?;
        f.write_all(body)?;
        f.write_all(b"\n")?;
        f.sync_all()
    };
    let _ = std::fs::remove_file(&tmp);
    write(&tmp).map_err(|source| MasterKeyError::Write {
        path: tmp.clone(),
        source,
    })?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(MasterKeyError::Write {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Replaces the embedded key file with `keys` (first seals), atomically.
pub fn replace_key_file(data_dir: &Path, keys: &[&str]) -> Result<(), MasterKeyError> {
    let path = data_dir.join(MASTER_KEY_FILE);
    let tmp = data_dir.join(format!(".{MASTER_KEY_FILE}.{}.new", std::process::id()));
    let body = Zeroizing::new(keys.join("\n"));
    let write = || -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(body.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|source| MasterKeyError::Write { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let first = MasterKeys::load_or_generate(dir.path()).unwrap();
        let again = MasterKeys::load_or_generate(dir.path()).unwrap();
        assert_eq!(first.current().id(), again.current().id());
        let mode = std::fs::metadata(dir.path().join(MASTER_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn previous_keys_open_what_they_sealed() {
        let old = MasterKey::generate_base64();
        let new = MasterKey::generate_base64();
        let sealed = MasterKey::from_base64(&old).unwrap().seal(b"key bytes", b"ctx");
        let old_id = MasterKey::from_base64(&old).unwrap().id().to_owned();
        let keys = MasterKeys::from_config(&SecretValue::new(new.clone()), &[SecretValue::new(old)]).unwrap();
        assert_eq!(&keys.open(&old_id, &sealed, b"ctx").unwrap()[..], b"key bytes");
        assert!(keys.open(&old_id, &sealed, b"other ctx").is_err());
        let alone = MasterKeys::from_config(&SecretValue::new(new), &[]).unwrap();
        assert!(matches!(
            alone.open(&old_id, &sealed, b"ctx"),
            Err(SealError::WrongMasterKey { .. })
        ));
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        MasterKeys::load_or_generate(dir.path()).unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            MasterKeys::load_or_generate(dir.path()),
            Err(MasterKeyError::Permissions { .. })
        ));
    }

    #[test]
    fn replacing_the_file_keeps_previous_keys_openable() {
        let dir = tempfile::tempdir().unwrap();
        let old = MasterKeys::load_or_generate(dir.path()).unwrap();
        let sealed = old.current().seal(b"k", b"c");
        let old_text = std::fs::read_to_string(dir.path().join(MASTER_KEY_FILE)).unwrap();
        let new = MasterKey::generate_base64();
        replace_key_file(dir.path(), &[&new, old_text.trim()]).unwrap();
        let both = MasterKeys::load_or_generate(dir.path()).unwrap();
        assert_ne!(both.current().id(), old.current().id());
        assert_eq!(&both.open(old.current().id(), &sealed, b"c").unwrap()[..], b"k");
    }
}
