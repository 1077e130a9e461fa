//! Every tenant's signing keys, decrypted only here, in memory.
//!
//! The store holds each key sealed (AES-256-GCM under the master key, bound
//! to its tenant, kind and kid). This module opens them once, when an
//! instance starts or learns of a change, and keeps two things in memory:
//! one [`KeySet`] with every verification key of every tenant (a token's
//! `kid` finds its key in O(1), so a tenant's token costs what a default one
//! does), and each tenant's signing pair. Plaintext keys never leave this
//! process and are wiped when dropped (`tessera-token` zeroizes them).
//!
//! Key states follow the rotation: `next` keys verify (so a rotation made by
//! another instance is honoured before it is even announced) and become
//! `active` at the next rotation; `active` keys sign and verify; `retired`
//! keys verify until the last token they signed expires, then are dropped;
//! `revoked` keys are gone at once.
//!
//! Access keys are HS256 or public-key (EdDSA, ES256, RS256, chosen per
//! tenant); refresh keys are always HS256. A public-key tenant's next,
//! active and retired access keys are published as its JWKS, which this
//! module builds whenever the tenant's keys change (not per request). Keys
//! rotate by hand and, when configured, on a schedule ([`rotate_on_schedule`]):
//! each instance checks, and the store's compare-and-set on the active kid
//! lets only one of them rotate a tenant.
//!
//! Instances learn of changes three ways: PostgreSQL `LISTEN/NOTIFY` (within
//! milliseconds), a periodic re-read of recently changed rows (the safety net,
//! and the only way on SQLite, where a CLI process may change keys), and a
//! one-off lookup of a `kid` this instance has never seen, rate-limited and
//! negatively cached so that garbage kids cannot hammer the database.

use crate::master::MasterKeys;
use crate::secrets::SecretPair;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use sha2::Digest as _;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tessera_core::TenantId;
use tessera_store::{
    Conflict, KeyKind, KeyRotation, KeyState, NewKey, RotatedKeys, RotationMode, StoreError, StoredKey, TenantStore,
};
use tessera_token::{
    AccessClaims, Algorithm, JwkSet, Key, KeySet, RefreshClaims, SigningKeys, TokenBuf, TokenError, TokenKind,
    Validation, VerifiedSignatures,
};
use zeroize::Zeroizing;

/// Bytes of a generated HMAC key: 512 bits, the SHA-256 block size.
pub const KEY_BYTES: usize = 64;
/// How far back a re-read of changed keys looks, so a transaction that
/// committed late (its rows stamped before our last read) is still seen.
const CHANGE_LOOKBACK_MS: i64 = 60_000;
/// Store lookups of unknown kids allowed per second (with a burst of twice
/// that); beyond it an unknown kid is simply unknown.
const UNKNOWN_LOOKUPS_PER_SEC: f64 = 20.0;
/// How long a kid the store did not know stays known-unknown.
const NEGATIVE_TTL: Duration = Duration::from_secs(30);
const NEGATIVE_MAX: usize = 10_000;

/// How keys are made and rotated.
#[derive(Debug, Clone, Copy)]
pub struct KeyPolicy {
    /// What the default tenant's access tokens are signed with
    /// (`TESSERA_SIGNING_ALG`).
    pub default_alg: Algorithm,
    /// Scheduled rotation of public-key tenants (`TESSERA_KEY_ROTATION`).
    pub rotation: Option<std::time::Duration>,
    /// Scheduled rotation of HS256 tenants (`TESSERA_HMAC_KEY_ROTATION`).
    pub hmac_rotation: Option<std::time::Duration>,
    /// How long verifiers may cache a JWKS (`TESSERA_JWKS_MAX_AGE`); a next
    /// key is published at least this long before it signs.
    pub jwks_max_age: std::time::Duration,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        Self {
            default_alg: Algorithm::HS256,
            rotation: Some(std::time::Duration::from_secs(30 * 24 * 3600)),
            hmac_rotation: None,
            jwks_max_age: std::time::Duration::from_secs(300),
        }
    }
}

impl KeyPolicy {
    fn interval(&self, alg: Algorithm) -> Option<i64> {
        let every = if alg.is_asymmetric() {
            self.rotation
        } else {
            self.hmac_rotation
        };
        every.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX).max(1))
    }
}

/// Token lifetimes and clock leeway, in seconds: how long a retired key
/// must keep verifying what it signed.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub access_ttl: i64,
    pub refresh_ttl: i64,
    pub leeway: i64,
}

impl Lifetimes {
    pub fn of(config: &crate::config::Config) -> Self {
        let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Self {
            access_ttl: secs(config.access_ttl),
            refresh_ttl: secs(config.refresh_ttl),
            leeway: secs(config.leeway),
        }
    }
}

/// What a rotation asks for besides its mode.
#[derive(Debug, Clone, Default)]
pub struct RotateOptions {
    /// The algorithm of the new access keys; `None` keeps the tenant's.
    pub alg: Option<Algorithm>,
    /// Rotate only if this is still the active access kid (scheduled
    /// rotations, so that instances rotating at once rotate a tenant once).
    pub expect_active: Option<String>,
    /// Refuse a graceful rotation of a public-key tenant whose next key was
    /// published less than the JWKS max-age ago: a verifier caching the
    /// JWKS may not have it yet. Manual rotations wait; start-up and the
    /// schedule (whose interval is at least twice the max-age) do not.
    pub wait_for_publication: bool,
}

/// A tenant's JWKS document, built when its keys change.
#[derive(Debug)]
pub struct Jwks {
    /// `{"keys":[...]}`: the public next, active and retired access keys.
    pub body: String,
    /// A strong validator of `body`, quoted.
    pub etag: String,
    /// The algorithms the tenant signs (or will sign) access tokens with.
    pub algs: Vec<Algorithm>,
}

impl Jwks {
    fn build(mut keys: Vec<tessera_token::Jwk>, algs: Vec<Algorithm>) -> Self {
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        let body = serde_json::to_string(&JwkSet { keys }).unwrap_or_else(|_| r#"{"keys":[]}"#.to_owned());
        let etag = strong_etag(&body);
        Self { body, etag, algs }
    }

    fn empty(alg: Algorithm) -> Self {
        Self::build(Vec::new(), vec![alg])
    }
}

/// A strong ETag of `body`: 128 bits of its SHA-256, quoted.
pub fn strong_etag(body: &str) -> String {
    let digest = sha2::Sha256::digest(body.as_bytes());
    format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..16]))
}

/// What memory knows of a tenant's keys besides the keys themselves.
struct TenantInfo {
    /// The algorithm of the tenant's next access key: what it signs with
    /// after the next rotation, and what new keys are made for.
    alg: Algorithm,
    /// The active access key and when it became active.
    active_access: Option<(String, i64)>,
    jwks: Arc<Jwks>,
}

/// Where the default tenant's keys come from.
pub enum DefaultKeys {
    /// `JWT_SECRET` / `REFRESH_TOKEN_SECRET`: kept in memory only, never
    /// stored, never rotated by tessera (rotate them by changing the
    /// environment).
    Env(SecretPair),
    /// Generated and stored sealed like every tenant's. `legacy` is a pair
    /// generated by an earlier version (`secrets.json`, or the shared
    /// `default_secrets` row) to adopt with its original kids, so upgrading
    /// logs no one out.
    Stored { legacy: Option<SecretPair> },
}

/// Why a rotation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("the default tenant's keys come from JWT_SECRET and REFRESH_TOKEN_SECRET; rotate them by changing those variables")]
    DefaultFromEnv,
    /// The default tenant's algorithm is a setting, not a rotation's choice.
    #[error("the default tenant signs with TESSERA_SIGNING_ALG ({configured} here); to sign with {asked}, set TESSERA_SIGNING_ALG={asked} on every instance and restart them (nobody is logged out)")]
    DefaultAlgFromConfig { configured: Algorithm, asked: Algorithm },
    /// The next key has not been published for a JWKS max-age yet.
    #[error("the next signing key was published {published}s ago; verifiers caching the JWKS for up to {max_age}s may not have it yet; retry in {retry_after}s, or rotate with mode revoke")]
    TooSoon {
        published: i64,
        max_age: i64,
        retry_after: i64,
    },
    #[error("the key material of tenant {0} cannot be opened")]
    Damaged(TenantId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct KeyManager {
    master: MasterKeys,
    store: Arc<dyn TenantStore>,
    keys: RwLock<Keys>,
    unknown: Mutex<UnknownKids>,
    /// Public-key tokens whose signature verified lately: a token presented
    /// again (every request of a session, at a forward-auth endpoint) skips
    /// the curve or RSA arithmetic.
    verified: VerifiedSignatures,
    default_from_env: bool,
    policy: KeyPolicy,
    /// The database clock at the last re-read of changed keys, in ms.
    synced_ms: Mutex<i64>,
    /// How long a retired key must keep verifying, per kind: the lifetime of
    /// the tokens it signed plus the clock leeway.
    access_horizon: i64,
    refresh_horizon: i64,
}

#[derive(Default)]
struct Keys {
    verify: KeySet,
    signers: HashMap<TenantId, Arc<SigningKeys>>,
    /// Each tenant's kids in `verify`, so replacing a tenant's keys does not
    /// scan every tenant's.
    kids: HashMap<TenantId, Vec<String>>,
    /// Each tenant's algorithm, active key and JWKS.
    tenants: HashMap<TenantId, TenantInfo>,
    /// Access kids retired and then dropped because every token they signed
    /// has expired, until when to remember them: a token of one is
    /// `token_expired` (the client refreshes), not `invalid_token` (the
    /// client would send its user to log in again). Revoked kids are never
    /// here.
    expired_kids: HashMap<String, i64>,
    /// Retired keys: when they stop verifying, kid, tenant.
    retired: Vec<(i64, String, TenantId)>,
    /// The newest `changed_at_ms` applied per tenant, so the periodic re-read
    /// reopens only tenants that changed since (not every tenant touched in
    /// the look-back window, every time).
    applied: HashMap<TenantId, i64>,
}

impl KeyManager {
    /// Opens every live key in the store. For the default tenant, either the
    /// environment's pair or the stored one (created on first start, adopting
    /// a legacy pair if there is one).
    pub async fn start(
        master: MasterKeys,
        store: Arc<dyn TenantStore>,
        default: DefaultKeys,
        policy: KeyPolicy,
        lifetimes: Lifetimes,
        now: i64,
    ) -> anyhow::Result<Arc<Self>> {
        let default_from_env = matches!(default, DefaultKeys::Env(_));
        let manager = Arc::new(Self {
            master,
            store,
            keys: RwLock::new(Keys::default()),
            unknown: Mutex::new(UnknownKids::new()),
            verified: VerifiedSignatures::default(),
            default_from_env,
            policy,
            synced_ms: Mutex::new(0),
            access_horizon: lifetimes.access_ttl.saturating_add(lifetimes.leeway),
            refresh_horizon: lifetimes.refresh_ttl.saturating_add(lifetimes.leeway),
        });
        match default {
            DefaultKeys::Env(pair) => {
                let signer = SigningKeys::new(
                    Key::from_secret(TokenKind::Access, pair.access.expose().as_bytes())?,
                    Key::from_secret(TokenKind::Refresh, pair.refresh.expose().as_bytes())?,
                )?;
                let mut keys = manager.write();
                let kids = vec![signer.access_kid().to_owned(), signer.refresh_kid().to_owned()];
                keys.verify.upsert(signer.access_key().clone());
                keys.verify.upsert(signer.refresh_key().clone());
                keys.kids.insert(TenantId::DEFAULT, kids);
                keys.signers.insert(TenantId::DEFAULT, Arc::new(signer));
                keys.tenants.insert(
                    TenantId::DEFAULT,
                    TenantInfo {
                        alg: Algorithm::HS256,
                        active_access: None,
                        jwks: jwks_of(&[], None, Algorithm::HS256),
                    },
                );
            }
            DefaultKeys::Stored { legacy } => manager.ensure_default_keys(legacy, now).await?,
        }
        // The database clock before the load, so the first re-read also
        // covers changes committed while the keys were being opened.
        let baseline = manager.store.keys_changed_since(i64::MAX).await?.db_now_ms;
        let live = manager.store.live_keys().await?;
        let mut by_tenant: HashMap<TenantId, Vec<StoredKey>> = HashMap::new();
        for row in live {
            by_tenant.entry(row.tenant).or_default().push(row);
        }
        let tenants = by_tenant.len();
        for (tenant, rows) in by_tenant {
            if let Err(err) = manager.apply_tenant(tenant, &rows, now) {
                if tenant.is_default() {
                    // Without the default tenant's keys nothing works; a
                    // master key that does not match is a configuration
                    // error (exit 2), and says so.
                    return Err(match err.downcast_ref::<tessera_core::SealError>() {
                        Some(seal) => crate::secrets::SecretsError::Sealed(seal.clone()).into(),
                        None => err,
                    });
                }
                // One damaged tenant must not keep every other one from being served.
                tracing::error!(tenant = %tenant, error = %err, "cannot open a tenant's keys; its tokens are refused");
            }
        }
        *lock(&manager.synced_ms) = baseline;
        if !manager.read().signers.contains_key(&TenantId::DEFAULT) {
            anyhow::bail!("the default tenant has no usable signing keys (see the error above)");
        }
        if !default_from_env {
            manager.switch_default_alg(now).await?;
        }
        tracing::info!(tenants, keys = manager.read().verify.len(), "signing keys loaded");
        Ok(manager)
    }

    /// A manager that holds no keys in memory: for operator commands, which
    /// seal new keys and change stored ones but verify nothing.
    pub fn offline(
        master: MasterKeys,
        store: Arc<dyn TenantStore>,
        default_from_env: bool,
        policy: KeyPolicy,
        lifetimes: Lifetimes,
    ) -> Arc<Self> {
        Arc::new(Self {
            master,
            store,
            keys: RwLock::new(Keys::default()),
            unknown: Mutex::new(UnknownKids::new()),
            verified: VerifiedSignatures::default(),
            default_from_env,
            policy,
            synced_ms: Mutex::new(0),
            access_horizon: lifetimes.access_ttl.saturating_add(lifetimes.leeway),
            refresh_horizon: lifetimes.refresh_ttl.saturating_add(lifetimes.leeway),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Keys> {
        self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn master(&self) -> &MasterKeys {
        &self.master
    }

    pub fn policy(&self) -> &KeyPolicy {
        &self.policy
    }

    /// `TESSERA_SIGNING_ALG` changed since the default tenant's keys were
    /// made: switch them now, without logging anyone out. Two graceful
    /// rotations make a key of the new algorithm active at once; the old
    /// keys verify until their last token expires. (The new key signs as it
    /// is published: verifiers following the JWKS fetch it on its unknown
    /// kid.)
    async fn switch_default_alg(self: &Arc<Self>, now: i64) -> anyhow::Result<()> {
        let wanted = self.policy.default_alg;
        let signing = |keys: &Keys| {
            let alg = keys.signers.get(&TenantId::DEFAULT).map(|s| s.access_key().algorithm());
            let active = keys
                .tenants
                .get(&TenantId::DEFAULT)
                .and_then(|info| info.active_access.as_ref().map(|(kid, _)| kid.clone()));
            (alg, active)
        };
        let (before, _) = signing(&self.read());
        // Instances starting at once must not each rotate twice: every
        // rotation expects the active key it saw, and one that lost the race
        // re-reads and looks again. Two rotations suffice; the rest is slack
        // for races.
        for _ in 0..6 {
            let (alg, active) = signing(&self.read());
            if alg == Some(wanted) {
                if before != Some(wanted) {
                    tracing::info!(
                        from = before.map(Algorithm::name).unwrap_or("none"),
                        to = wanted.name(),
                        "the default tenant signs with a new algorithm (TESSERA_SIGNING_ALG); earlier tokens stay valid"
                    );
                }
                return Ok(());
            }
            let options = RotateOptions {
                alg: Some(wanted),
                expect_active: active,
                wait_for_publication: false,
            };
            match self
                .rotate(TenantId::DEFAULT, RotationMode::Graceful, now, options)
                .await
            {
                Ok(_) => {}
                Err(RotateError::Store(StoreError::Conflict(Conflict::RotationRaced))) => {
                    self.reload_tenant(TenantId::DEFAULT, now).await?;
                }
                Err(err) => return Err(err.into()),
            }
        }
        anyhow::bail!("could not switch the default tenant to {wanted}: its keys kept changing; start again")
    }

    async fn ensure_default_keys(&self, legacy: Option<SecretPair>, now: i64) -> anyhow::Result<()> {
        let stored = self.store.tenant_keys(TenantId::DEFAULT).await?;
        if stored.iter().any(|k| k.state == KeyState::Active) {
            return Ok(());
        }
        let tenant = TenantId::DEFAULT;
        let mut keys = Vec::with_capacity(4);
        match &legacy {
            Some(pair) => {
                for (kind, secret) in [(KeyKind::Access, &pair.access), (KeyKind::Refresh, &pair.refresh)] {
                    let key = Key::from_secret(token_kind(kind), secret.expose().as_bytes())?;
                    keys.push(self.seal_key(
                        tenant,
                        kind,
                        KeyState::Active,
                        key.kid(),
                        secret.expose().as_bytes(),
                        now,
                    ));
                }
            }
            None => {
                for kind in [KeyKind::Access, KeyKind::Refresh] {
                    keys.push(self.generate_key(tenant, kind, KeyState::Active, self.policy.default_alg, now)?);
                }
            }
        }
        // Adopted legacy keys are HS256; `switch_default_alg` moves them on.
        let next_alg = if legacy.is_some() {
            Algorithm::HS256
        } else {
            self.policy.default_alg
        };
        for kind in [KeyKind::Access, KeyKind::Refresh] {
            keys.push(self.generate_key(tenant, kind, KeyState::Next, next_alg, now)?);
        }
        self.store.install_keys_if_absent(tenant, keys).await?;
        if legacy.is_some() {
            tracing::info!(
                "adopted the previously generated signing keys into the sealed keyring; existing tokens stay valid"
            );
        } else {
            tracing::info!("generated the default tenant's signing keys (sealed in the database)");
        }
        Ok(())
    }

    /// A fresh random key of `tenant`, sealed for the store: an access key
    /// of `alg`, or an HS256 refresh key (refresh tokens are always HMAC).
    pub fn generate_key(
        &self,
        tenant: TenantId,
        kind: KeyKind,
        state: KeyState,
        alg: Algorithm,
        now: i64,
    ) -> Result<NewKey, tessera_token::KeyError> {
        let mut kid = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut kid);
        let kid = URL_SAFE_NO_PAD.encode(kid);
        if kind == KeyKind::Refresh || !alg.is_asymmetric() {
            let mut secret = Zeroizing::new([0u8; KEY_BYTES]);
            rand::rngs::OsRng.fill_bytes(secret.as_mut());
            return Ok(self.seal_key(tenant, kind, state, &kid, secret.as_ref(), now));
        }
        let der = tessera_token::generate_private_key(alg, &mut rand::rngs::OsRng)?;
        Ok(self.seal_key(tenant, kind, state, &kid, &private_key_plaintext(alg, &der), now))
    }

    fn seal_key(&self, tenant: TenantId, kind: KeyKind, state: KeyState, kid: &str, secret: &[u8], now: i64) -> NewKey {
        let master = self.master.current();
        NewKey {
            kid: kid.to_owned(),
            tenant,
            kind,
            state,
            master_key_id: master.id().to_owned(),
            sealed: master.seal(secret, &seal_context(tenant, kind, kid)),
            created_at: now,
        }
    }

    /// The four keys of a new tenant: an active and a next key per kind,
    /// access keys of `alg`.
    pub fn new_tenant_keys(
        &self,
        tenant: TenantId,
        alg: Algorithm,
        now: i64,
    ) -> Result<Vec<NewKey>, tessera_token::KeyError> {
        let mut keys = Vec::with_capacity(4);
        for state in [KeyState::Active, KeyState::Next] {
            for kind in [KeyKind::Access, KeyKind::Refresh] {
                keys.push(self.generate_key(tenant, kind, state, alg, now)?);
            }
        }
        Ok(keys)
    }

    /// Keys are made on the blocking pool: an RSA key takes a CPU for a
    /// good fraction of a second, which must not stall the async workers.
    pub async fn new_tenant_keys_off_runtime(
        self: &Arc<Self>,
        tenant: TenantId,
        alg: Algorithm,
        now: i64,
    ) -> anyhow::Result<Vec<NewKey>> {
        let manager = self.clone();
        Ok(tokio::task::spawn_blocking(move || manager.new_tenant_keys(tenant, alg, now)).await??)
    }

    fn open_row(&self, row: &StoredKey) -> anyhow::Result<Key> {
        let sealed = row
            .sealed
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("key {} of tenant {} has no key material", row.kid, row.tenant))?;
        let secret = self
            .master
            .open(
                &row.master_key_id,
                sealed,
                &seal_context(row.tenant, row.kind, &row.kid),
            )
            .map_err(|e| {
                anyhow::Error::new(e).context(format!("key {} of tenant {} cannot be opened", row.kid, row.tenant))
            })?;
        let key = match parse_plaintext(&secret) {
            (Algorithm::HS256, secret) => Key::with_kid(token_kind(row.kind), &row.kid, secret)?,
            (alg, der) => Key::from_pkcs8(alg, token_kind(row.kind), &row.kid, der)?,
        };
        Ok(key.for_tenant(row.tenant.as_uuid()))
    }

    /// The algorithm of a stored key, for operators; `None` when it cannot
    /// be opened (revoked, or sealed by a master key not configured).
    pub fn algorithm_of(&self, row: &StoredKey) -> Option<Algorithm> {
        row.sealed.as_ref()?;
        self.row_alg(row).ok()
    }

    /// The algorithm of a stored key (opening it, since the algorithm is
    /// sealed with the key material).
    fn row_alg(&self, row: &StoredKey) -> anyhow::Result<Algorithm> {
        let secret = open_stored_key(&self.master, row).map_err(|e| {
            anyhow::Error::new(e).context(format!("key {} of tenant {} cannot be opened", row.kid, row.tenant))
        })?;
        Ok(parse_plaintext(&secret).0)
    }

    /// Replaces everything in memory about `tenant` with `rows` (its keys in
    /// the store). Keys are opened before the lock is taken.
    fn apply_tenant(&self, tenant: TenantId, rows: &[StoredKey], now: i64) -> anyhow::Result<()> {
        if tenant.is_default() && self.default_from_env {
            return Ok(());
        }
        let mut opened = Vec::with_capacity(rows.len());
        let mut retired = Vec::new();
        let (mut access, mut refresh) = (None, None);
        let (mut next_alg, mut active_access) = (None, None);
        for row in rows {
            let verifies = match row.state {
                KeyState::Next | KeyState::Active => true,
                KeyState::Retired => row.verify_until.is_some_and(|until| until >= now),
                KeyState::Revoked => false,
            };
            if !verifies {
                continue;
            }
            let key = self.open_row(row)?;
            if row.state == KeyState::Active {
                match row.kind {
                    KeyKind::Access => {
                        active_access = Some((row.kid.clone(), row.activated_at.unwrap_or(row.created_at)));
                        access = Some(key.clone());
                    }
                    KeyKind::Refresh => refresh = Some(key.clone()),
                }
            }
            if row.state == KeyState::Next && row.kind == KeyKind::Access {
                next_alg = Some(key.algorithm());
            }
            if row.state == KeyState::Retired {
                retired.push((row.verify_until.unwrap_or(now), row.kid.clone(), tenant));
            }
            opened.push(key);
        }
        let alg = next_alg
            .or_else(|| access.as_ref().map(Key::algorithm))
            .unwrap_or(Algorithm::HS256);
        let signer = match (access, refresh) {
            (Some(access), Some(refresh)) => Some(Arc::new(SigningKeys::new(access, refresh)?)),
            _ => None,
        };
        let info = TenantInfo {
            alg,
            active_access,
            jwks: jwks_of(&opened, signer.as_deref(), alg),
        };
        let mut guard = self.write();
        let keys = &mut *guard;
        if let Some(old) = keys.kids.remove(&tenant) {
            for kid in old {
                keys.verify.remove(&kid);
            }
        }
        let kids: Vec<String> = opened.iter().map(|k| k.kid().to_owned()).collect();
        for key in opened {
            keys.verify.upsert(key);
        }
        if !kids.is_empty() {
            keys.kids.insert(tenant, kids);
        }
        match signer {
            Some(signer) => {
                keys.signers.insert(tenant, signer);
            }
            None => {
                keys.signers.remove(&tenant);
            }
        }
        keys.tenants.insert(tenant, info);
        keys.retired.retain(|(_, _, t)| *t != tenant);
        keys.retired.extend(retired);
        let remember_until = now.saturating_add(self.refresh_horizon);
        for row in rows {
            let expired = row.state == KeyState::Retired && row.verify_until.is_some_and(|until| until < now);
            if expired && row.kind == KeyKind::Access {
                remember_expired(&mut keys.expired_kids, row.kid.clone(), remember_until, now);
            }
        }
        if let Some(newest) = rows.iter().map(|r| r.changed_at_ms).max() {
            let applied = keys.applied.entry(tenant).or_insert(newest);
            *applied = (*applied).max(newest);
        }
        Ok(())
    }

    /// Re-reads one tenant's keys from the store.
    pub async fn reload_tenant(&self, tenant: TenantId, now: i64) -> Result<(), StoreError> {
        let rows = self.store.tenant_keys(tenant).await?;
        if let Err(err) = self.apply_tenant(tenant, &rows, now) {
            tracing::error!(tenant = %tenant, error = %err, "cannot open a tenant's keys; keeping what was in memory");
        }
        Ok(())
    }

    /// Re-reads every tenant whose keys changed lately (the safety net under
    /// notifications). Returns how many tenants were re-read.
    pub async fn sync_changes(&self, now: i64) -> Result<usize, StoreError> {
        let since = lock(&self.synced_ms).saturating_sub(CHANGE_LOOKBACK_MS);
        let changes = self.store.keys_changed_since(since).await?;
        let mut newest: HashMap<TenantId, i64> = HashMap::new();
        for key in &changes.keys {
            let seen = newest.entry(key.tenant).or_insert(key.changed_at_ms);
            *seen = (*seen).max(key.changed_at_ms);
        }
        let tenants: Vec<TenantId> = {
            let keys = self.read();
            newest
                .into_iter()
                .filter(|(tenant, changed)| keys.applied.get(tenant).is_none_or(|applied| changed > applied))
                .map(|(tenant, _)| tenant)
                .collect()
        };
        for tenant in &tenants {
            self.reload_tenant(*tenant, now).await?;
        }
        let mut synced = lock(&self.synced_ms);
        *synced = (*synced).max(changes.db_now_ms);
        Ok(tenants.len())
    }

    /// Drops retired keys whose last token has expired.
    pub fn sweep(&self, now: i64) -> usize {
        let mut guard = self.write();
        let keys = &mut *guard;
        let expired: Vec<(String, TenantId)> = keys
            .retired
            .iter()
            .filter(|(until, _, _)| *until < now)
            .map(|(_, kid, tenant)| (kid.clone(), *tenant))
            .collect();
        if expired.is_empty() {
            return 0;
        }
        keys.retired.retain(|(until, _, _)| *until >= now);
        let remember_until = now.saturating_add(self.refresh_horizon);
        for (kid, tenant) in &expired {
            if keys.verify.get(kid).is_some_and(|key| key.kind() == TokenKind::Access) {
                remember_expired(&mut keys.expired_kids, kid.clone(), remember_until, now);
            }
            keys.verify.remove(kid);
            if let Some(kids) = keys.kids.get_mut(tenant) {
                kids.retain(|k| k != kid);
            }
        }
        // A swept key leaves its tenant's JWKS too.
        let touched: HashSet<TenantId> = expired.iter().map(|(_, tenant)| *tenant).collect();
        for tenant in touched {
            let remaining: Vec<Key> = keys
                .kids
                .get(&tenant)
                .into_iter()
                .flatten()
                .filter_map(|kid| keys.verify.get(kid).cloned())
                .collect();
            let signer = keys.signers.get(&tenant).cloned();
            if let Some(info) = keys.tenants.get_mut(&tenant) {
                info.jwks = jwks_of(&remaining, signer.as_deref(), info.alg);
            }
        }
        expired.len()
    }

    /// The pair `tenant` signs with now.
    pub fn signer(&self, tenant: TenantId) -> Option<Arc<SigningKeys>> {
        self.read().signers.get(&tenant).cloned()
    }

    /// `tenant`'s JWKS, as built when its keys last changed; `None` for a
    /// tenant whose keys this instance does not hold.
    pub fn jwks(&self, tenant: TenantId) -> Option<Arc<Jwks>> {
        self.read().tenants.get(&tenant).map(|info| info.jwks.clone())
    }

    /// Tenants whose active access key is older than their rotation
    /// interval, with that key's kid (the rotation's expected one).
    fn due_rotations(&self, now: i64) -> Vec<(TenantId, String)> {
        self.read()
            .tenants
            .iter()
            .filter_map(|(tenant, info)| {
                let interval = self.policy.interval(info.alg)?;
                let (kid, since) = info.active_access.as_ref()?;
                (since.saturating_add(interval) <= now).then(|| (*tenant, kid.clone()))
            })
            .collect()
    }

    /// Verifies an access token of `tenant` (or of any tenant), looking an
    /// unknown kid up in the store once.
    pub async fn verify_access<'b>(
        &self,
        token: &str,
        tenant: Option<TenantId>,
        validation: &Validation,
        now: i64,
        buf: &'b mut TokenBuf,
    ) -> Result<AccessClaims<'b>, TokenError> {
        match self.verify_access_now(token, tenant, validation, now, buf) {
            Err(TokenError::UnknownKey) => {}
            other => return other,
        }
        if self.kid_expired(token, now) {
            return Err(TokenError::Expired);
        }
        if !self.learn_unknown_kid(token, now).await {
            return Err(TokenError::UnknownKey);
        }
        // Rare path: a second buffer, and claims that own their strings.
        let mut second = TokenBuf::new();
        self.verify_access_now(token, tenant, validation, now, &mut second)
            .map(AccessClaims::into_owned)
    }

    /// Verifies a refresh token, like [`KeyManager::verify_access`].
    pub async fn verify_refresh<'b>(
        &self,
        token: &str,
        tenant: Option<TenantId>,
        validation: &Validation,
        now: i64,
        buf: &'b mut TokenBuf,
    ) -> Result<RefreshClaims<'b>, TokenError> {
        match self.verify_refresh_now(token, tenant, validation, now, buf) {
            Err(TokenError::UnknownKey) => {}
            other => return other,
        }
        if !self.learn_unknown_kid(token, now).await {
            return Err(TokenError::UnknownKey);
        }
        let mut second = TokenBuf::new();
        self.verify_refresh_now(token, tenant, validation, now, &mut second)
            .map(RefreshClaims::into_owned)
    }

    /// Verification from memory only (no store, ever).
    pub fn verify_access_now<'b>(
        &self,
        token: &str,
        tenant: Option<TenantId>,
        validation: &Validation,
        now: i64,
        buf: &'b mut TokenBuf,
    ) -> Result<AccessClaims<'b>, TokenError> {
        let keys = self.read();
        let tenant = tenant.map(|t| t.as_uuid());
        keys.verify
            .verify_access_cached(token, tenant, validation, now, buf, &self.verified)
    }

    fn verify_refresh_now<'b>(
        &self,
        token: &str,
        tenant: Option<TenantId>,
        validation: &Validation,
        now: i64,
        buf: &'b mut TokenBuf,
    ) -> Result<RefreshClaims<'b>, TokenError> {
        let keys = self.read();
        match tenant {
            None => keys.verify.verify_refresh(token, validation, now, buf),
            Some(t) => keys.verify.verify_refresh_for(token, t.as_uuid(), validation, now, buf),
        }
    }

    /// Whether the token names a key dropped because all it signed expired.
    fn kid_expired(&self, token: &str, now: i64) -> bool {
        let mut buf = TokenBuf::new();
        let Ok(kid) = tessera_token::header_kid(token, &mut buf) else {
            return false;
        };
        self.read().expired_kids.get(kid).is_some_and(|until| *until >= now)
    }

    /// A token names a kid this instance does not hold: another instance may
    /// have just created it. Looks it up in the store, at most once per kid
    /// per [`NEGATIVE_TTL`] and within a global budget; true when the key
    /// was found and loaded.
    async fn learn_unknown_kid(&self, token: &str, now: i64) -> bool {
        let kid = {
            let mut buf = TokenBuf::new();
            match tessera_token::header_kid(token, &mut buf) {
                Ok(kid) => kid.to_owned(),
                Err(_) => return false,
            }
        };
        if !lock(&self.unknown).may_look_up(&kid) {
            return false;
        }
        match self.store.key(&kid).await {
            Ok(Some(row)) if matches!(row.state, KeyState::Next | KeyState::Active | KeyState::Retired) => {
                match self.reload_tenant(row.tenant, now).await {
                    Ok(()) => self.read().verify.contains(&kid),
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot load the keys of a tenant a token names");
                        false
                    }
                }
            }
            Ok(_) => {
                lock(&self.unknown).remember_missing(kid);
                false
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot look up an unknown key id");
                false
            }
        }
    }

    /// Rotates `tenant`'s keys in the store and in memory.
    pub async fn rotate(
        self: &Arc<Self>,
        tenant: TenantId,
        mode: RotationMode,
        now: i64,
        options: RotateOptions,
    ) -> Result<RotatedKeys, RotateError> {
        if tenant.is_default() && self.default_from_env {
            return Err(RotateError::DefaultFromEnv);
        }
        match options.alg {
            Some(asked) if tenant.is_default() && asked != self.policy.default_alg => {
                return Err(RotateError::DefaultAlgFromConfig {
                    configured: self.policy.default_alg,
                    asked,
                });
            }
            _ => {}
        }
        let rows = self.store.tenant_keys(tenant).await?;
        let next_access = rows
            .iter()
            .find(|row| row.kind == KeyKind::Access && row.state == KeyState::Next);
        let current_alg = match next_access {
            Some(row) => self.row_alg(row).map_err(|err| {
                tracing::error!(tenant = %tenant, error = %err, "cannot open a tenant's next key");
                RotateError::Damaged(tenant)
            })?,
            None => Algorithm::HS256,
        };
        let max_age = i64::try_from(self.policy.jwks_max_age.as_secs()).unwrap_or(i64::MAX);
        let waits = options.wait_for_publication && mode == RotationMode::Graceful && current_alg.is_asymmetric();
        let manual = options.expect_active.is_none();
        let mut expect_active = options.expect_active;
        if let (Some(row), true) = (next_access, waits) {
            // Both times are whole seconds (rounded down): one second more
            // than the max-age guarantees a whole max-age has passed.
            let published = now.saturating_sub(row.created_at);
            if published <= max_age {
                return Err(RotateError::TooSoon {
                    published,
                    max_age,
                    retry_after: max_age + 1 - published,
                });
            }
            // The wait was checked on this read of the keys: the rotation
            // must apply to them, or two rotations arriving together would
            // both pass it and the second would sign with a key published a
            // moment before.
            if expect_active.is_none() {
                expect_active = rows
                    .iter()
                    .find(|row| row.kind == KeyKind::Access && row.state == KeyState::Active)
                    .map(|row| row.kid.clone());
            }
        }
        let alg = options.alg.unwrap_or(current_alg);
        // Off the async workers: an RSA key takes a CPU for a good part of a
        // second. The keys are stamped when made, since the publication wait
        // counts from their `created_at`.
        let manager = self.clone();
        let made = tokio::task::spawn_blocking(move || {
            let mut keys = match mode {
                RotationMode::Graceful => [KeyKind::Access, KeyKind::Refresh]
                    .into_iter()
                    .map(|kind| manager.generate_key(tenant, kind, KeyState::Next, alg, now))
                    .collect::<Result<Vec<_>, _>>(),
                RotationMode::Revoke => manager.new_tenant_keys(tenant, alg, now),
            }?;
            let made_at = crate::tokens::unix_now().max(now);
            for key in &mut keys {
                key.created_at = made_at;
            }
            Ok::<_, tessera_token::KeyError>(keys)
        })
        .await;
        let new_keys = match made {
            Ok(Ok(keys)) => keys,
            Ok(Err(err)) => {
                tracing::error!(tenant = %tenant, error = %err, "cannot make new keys");
                return Err(RotateError::Damaged(tenant));
            }
            Err(err) => {
                tracing::error!(tenant = %tenant, error = %err, "key generation did not finish");
                return Err(RotateError::Damaged(tenant));
            }
        };
        let rotated = self
            .store
            .rotate_keys(KeyRotation {
                tenant,
                mode,
                now,
                access_verify_until: now.saturating_add(self.access_horizon),
                refresh_verify_until: now.saturating_add(self.refresh_horizon),
                new_keys,
                expect_active_access: expect_active,
            })
            .await
            .map_err(|err| match err {
                // A rotation that waited lost to another one: the next key
                // now is brand new, so this one waits a whole max-age.
                StoreError::Conflict(Conflict::RotationRaced) if waits && manual => RotateError::TooSoon {
                    published: 0,
                    max_age,
                    retry_after: max_age + 1,
                },
                other => RotateError::Store(other),
            })?;
        if let Err(err) = self.apply_tenant(tenant, &rotated.keys, now) {
            tracing::error!(tenant = %tenant, error = %err, "cannot open the keys just rotated");
        }
        Ok(rotated)
    }

    /// Re-seals every stored key sealed by a previous master key under the
    /// current one. Returns (re-sealed, left because no configured key opens them).
    pub async fn reseal_all(&self) -> Result<(u64, u64), StoreError> {
        let current = self.master.current();
        let mut resealed = 0u64;
        let mut stuck: HashSet<String> = HashSet::new();
        loop {
            let batch = self.store.keys_sealed_by_other(current.id(), 500).await?;
            let mut progress = false;
            for row in &batch {
                if stuck.contains(&row.kid) {
                    continue;
                }
                let Some(sealed) = row.sealed.as_deref() else { continue };
                let context = seal_context(row.tenant, row.kind, &row.kid);
                match self.master.open(&row.master_key_id, sealed, &context) {
                    Ok(secret) => {
                        let resealed_bytes = current.seal(&secret, &context);
                        if self
                            .store
                            .reseal_key(&row.kid, &row.master_key_id, current.id(), resealed_bytes)
                            .await?
                        {
                            resealed += 1;
                        }
                        progress = true;
                    }
                    Err(err) => {
                        tracing::debug!(kid = %row.kid, tenant = %row.tenant, error = %err, "cannot re-seal a key");
                        stuck.insert(row.kid.clone());
                    }
                }
            }
            if batch.is_empty() || !progress {
                break;
            }
        }
        Ok((resealed, stuck.len() as u64))
    }
}

/// The plaintext of a stored key (for tests and audits of the store: what
/// must never be found in the database).
pub fn open_stored_key(master: &MasterKeys, row: &StoredKey) -> Result<Zeroizing<Vec<u8>>, tessera_core::SealError> {
    let sealed = row.sealed.as_deref().ok_or(tessera_core::SealError::Damaged)?;
    master.open(
        &row.master_key_id,
        sealed,
        &seal_context(row.tenant, row.kind, &row.kid),
    )
}

/// Sealed public-key private keys start with this, then the algorithm's
/// name and a NUL, then the PKCS#8 DER. Generated HMAC secrets are 64
/// random bytes and secrets adopted from the environment are text, so
/// neither starts with a NUL; and since the algorithm is sealed with the
/// key, it is authenticated with it (a row cannot be made to say another).
const PRIVATE_KEY_MAGIC: &[u8] = b"\0tessera-private-key-v1\0";

fn private_key_plaintext(alg: Algorithm, der: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(PRIVATE_KEY_MAGIC.len() + 6 + der.len()));
    out.extend_from_slice(PRIVATE_KEY_MAGIC);
    out.extend_from_slice(alg.name().as_bytes());
    out.push(0);
    out.extend_from_slice(der);
    out
}

/// The algorithm and key material of an opened key.
fn parse_plaintext(plain: &[u8]) -> (Algorithm, &[u8]) {
    let parsed = plain.strip_prefix(PRIVATE_KEY_MAGIC).and_then(|rest| {
        let nul = rest.iter().position(|b| *b == 0)?;
        let alg = Algorithm::from_name(std::str::from_utf8(&rest[..nul]).ok()?)?;
        Some((alg, &rest[nul + 1..]))
    });
    parsed.unwrap_or((Algorithm::HS256, plain))
}

/// The JWKS of a tenant whose keys are `keys`: every public access key,
/// plus the signing key's algorithm and the next one's.
fn jwks_of(keys: &[Key], signer: Option<&SigningKeys>, next_alg: Algorithm) -> Arc<Jwks> {
    let published: Vec<_> = keys
        .iter()
        .filter(|key| key.kind() == TokenKind::Access)
        .filter_map(Key::public_jwk)
        .collect();
    // What tokens of the tenant may carry now: the signing key's algorithm
    // first, then the next key's, then those of retired keys whose tokens
    // are still valid (a verifier taking its list from discovery must not
    // refuse them after a switch).
    let mut algs = Vec::with_capacity(2);
    let others = keys
        .iter()
        .filter(|key| key.kind() == TokenKind::Access)
        .map(Key::algorithm);
    for alg in signer
        .map(|s| s.access_key().algorithm())
        .into_iter()
        .chain([next_alg])
        .chain(others)
    {
        if !algs.contains(&alg) {
            algs.push(alg);
        }
    }
    // Most tenants are HS256 and publish nothing: they share one document
    // rather than each holding a copy.
    if published.is_empty() && algs == [Algorithm::HS256] {
        static HMAC_ONLY: std::sync::OnceLock<Arc<Jwks>> = std::sync::OnceLock::new();
        return HMAC_ONLY
            .get_or_init(|| Arc::new(Jwks::empty(Algorithm::HS256)))
            .clone();
    }
    Arc::new(Jwks::build(published, algs))
}

/// What a sealed key is bound to: a ciphertext moved to another row (another
/// tenant, kind or kid) does not open.
fn seal_context(tenant: TenantId, kind: KeyKind, kid: &str) -> Vec<u8> {
    format!("tessera/tenant-key/v1\0{tenant}\0{}\0{kid}", kind.as_str()).into_bytes()
}

fn token_kind(kind: KeyKind) -> TokenKind {
    match kind {
        KeyKind::Access => TokenKind::Access,
        KeyKind::Refresh => TokenKind::Refresh,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Remembers an expired kid, keeping the map bounded (a kid per rotation;
/// the bound is for schedules of seconds).
fn remember_expired(kids: &mut HashMap<String, i64>, kid: String, until: i64, now: i64) {
    const MAX_EXPIRED_KIDS: usize = 100_000;
    if kids.len() >= MAX_EXPIRED_KIDS {
        kids.retain(|_, until| *until >= now);
        if kids.len() >= MAX_EXPIRED_KIDS {
            kids.clear();
        }
    }
    kids.insert(kid, until);
}

/// Kids the store did not know, and the budget of store lookups.
struct UnknownKids {
    missing: HashMap<String, Instant>,
    tokens: f64,
    refilled: Instant,
}

impl UnknownKids {
    fn new() -> Self {
        Self {
            missing: HashMap::new(),
            tokens: UNKNOWN_LOOKUPS_PER_SEC * 2.0,
            refilled: Instant::now(),
        }
    }

    fn may_look_up(&mut self, kid: &str) -> bool {
        let now = Instant::now();
        if let Some(until) = self.missing.get(kid) {
            if *until > now {
                return false;
            }
            self.missing.remove(kid);
        }
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * UNKNOWN_LOOKUPS_PER_SEC).min(UNKNOWN_LOOKUPS_PER_SEC * 2.0);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    fn remember_missing(&mut self, kid: String) {
        let now = Instant::now();
        if self.missing.len() >= NEGATIVE_MAX {
            self.missing.retain(|_, until| *until > now);
            if self.missing.len() >= NEGATIVE_MAX {
                self.missing.clear();
            }
        }
        self.missing.insert(kid, now + NEGATIVE_TTL);
    }
}

/// Follows key changes made elsewhere (other instances, the CLI) until the
/// process ends: notifications when the store has them, a periodic re-read
/// always, and the sweep of expired retired keys.
pub async fn follow_key_changes(keys: Arc<KeyManager>) {
    let mut listener = match keys.store.listen_key_changes().await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for key changes; re-reading them periodically instead");
            None
        }
    };
    // Without notifications (SQLite, where only the CLI changes keys behind
    // our back) the periodic re-read is the only signal, so it runs often;
    // it is one indexed query.
    let every = if listener.is_some() {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(1)
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let notified = async {
            match listener.as_mut() {
                Some(l) => l.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = notified => {
                let now = crate::tokens::unix_now();
                let result = match event {
                    Ok(Some(tenant)) => keys.reload_tenant(tenant, now).await,
                    Ok(None) => {
                        tracing::warn!("key change notifications reconnected (some may have been missed); re-reading recent changes");
                        keys.sync_changes(now).await.map(|_| ())
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "key change notifications interrupted; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        Ok(())
                    }
                };
                if let Err(err) = result {
                    tracing::warn!(error = %err, "cannot re-read changed keys; will retry");
                }
            }
            _ = tick.tick() => {
                let now = crate::tokens::unix_now();
                if let Err(err) = keys.sync_changes(now).await {
                    tracing::debug!(error = %err, "cannot re-read changed keys; will retry");
                }
                let dropped = keys.sweep(now);
                if dropped > 0 {
                    tracing::info!(keys = dropped, "retired keys past their last token dropped");
                }
            }
        }
    }
}

/// Rotates, gracefully, every tenant whose active key is older than its
/// rotation interval, until the process ends. Every instance runs this;
/// the store's compare-and-set on the active kid lets one of them rotate a
/// tenant and tells the others (`RotationRaced`), which then just re-read.
pub async fn rotate_on_schedule(keys: Arc<KeyManager>, audit: crate::audit::AuditLog) {
    let policy = keys.policy;
    let Some(shortest) = [policy.rotation, policy.hmac_rotation].into_iter().flatten().min() else {
        return;
    };
    // A tenth of the interval, so a rotation is at most 10% late, between a
    // quarter second (tests rotate every few seconds) and a minute.
    let every = (shortest / 10).clamp(Duration::from_millis(250), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = crate::tokens::unix_now();
        for (tenant, active) in keys.due_rotations(now) {
            let options = RotateOptions {
                expect_active: Some(active),
                ..RotateOptions::default()
            };
            match keys.rotate(tenant, RotationMode::Graceful, now, options).await {
                Ok(rotated) => {
                    tracing::info!(tenant = %tenant, access_kid = %rotated.access_kid, "keys rotated on schedule");
                    audit.record(
                        crate::audit::Event::new(crate::audit::event::KEYS_ROTATED, tenant, now).detail(
                            serde_json::json!({
                                "mode": "graceful",
                                "by": "schedule",
                                "accessKid": rotated.access_kid,
                                "refreshKid": rotated.refresh_kid,
                            }),
                        ),
                    );
                }
                Err(RotateError::Store(StoreError::Conflict(Conflict::RotationRaced))) => {
                    // Another instance rotated first: take its keys.
                    if let Err(err) = keys.reload_tenant(tenant, now).await {
                        tracing::debug!(tenant = %tenant, error = %err, "cannot re-read keys rotated elsewhere; will retry");
                    }
                }
                Err(err) => tracing::warn!(tenant = %tenant, error = %err, "scheduled key rotation failed; will retry"),
            }
        }
    }
}

/// Deletes expired retired and old revoked key rows, hourly.
pub async fn prune_keys(store: Arc<dyn TenantStore>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        match store.prune_keys(crate::tokens::unix_now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(keys = n, "pruned expired keys"),
            Err(err) => tracing::warn!(error = %err, "could not prune expired keys"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kids_are_looked_up_within_a_budget_and_remembered_when_missing() {
        let mut unknown = UnknownKids::new();
        // The burst: twice the per-second budget, then nothing until it refills.
        let burst = (UNKNOWN_LOOKUPS_PER_SEC * 2.0) as usize;
        let allowed = (0..burst * 3)
            .filter(|i| unknown.may_look_up(&format!("kid-{i}")))
            .count();
        assert!(allowed >= burst && allowed <= burst + 1, "{allowed}");
        // A kid the store did not know is not asked for again for a while.
        let mut unknown = UnknownKids::new();
        assert!(unknown.may_look_up("gone"));
        unknown.remember_missing("gone".to_owned());
        assert!(!unknown.may_look_up("gone"));
        assert!(unknown.may_look_up("other"));
    }

    #[test]
    fn the_negative_cache_stays_bounded() {
        let mut unknown = UnknownKids::new();
        for i in 0..NEGATIVE_MAX + 10 {
            unknown.remember_missing(format!("kid-{i}"));
        }
        assert!(unknown.missing.len() <= NEGATIVE_MAX);
    }

    #[test]
    fn a_sealed_key_is_bound_to_its_tenant_kind_and_kid() {
        let master = MasterKeys::new(
            tessera_core::MasterKey::from_bytes(&[7u8; 31].iter().chain(&[8u8]).copied().collect::<Vec<_>>()).unwrap(),
            Vec::new(),
        );
        let tenant = TenantId::random();
        let context = seal_context(tenant, KeyKind::Access, "kid-a");
        let sealed = master.current().seal(
            b"sixty-four bytes of key material, more or less, for this test..",
            &context,
        );
        let row = |tenant, kind, kid: &str| StoredKey {
            kid: kid.to_owned(),
            tenant,
            kind,
            state: KeyState::Active,
            master_key_id: master.current().id().to_owned(),
            sealed: Some(sealed.clone()),
            created_at: 0,
            activated_at: Some(0),
            retired_at: None,
            verify_until: None,
            changed_at_ms: 0,
        };
        assert!(open_stored_key(&master, &row(tenant, KeyKind::Access, "kid-a")).is_ok());
        for moved in [
            row(TenantId::random(), KeyKind::Access, "kid-a"),
            row(tenant, KeyKind::Refresh, "kid-a"),
            row(tenant, KeyKind::Access, "kid-b"),
        ] {
            assert!(open_stored_key(&master, &moved).is_err(), "{moved:?}");
        }
    }
}
