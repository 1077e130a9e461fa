//! Tenants by slug, cached: a tenant's routes resolve their slug on every
//! request, and tenants change rarely (created, never renamed).

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq as _;
use tessera_core::{TenantId, TenantSlug};
use tessera_store::{StoreError, TenantRecord, TenantStore};

/// How long a slug the store did not know is not asked for again: long
/// enough to absorb a flood of requests for made-up tenants, short enough
/// that a tenant just created on another instance appears quickly.
const MISSING_TTL: Duration = Duration::from_secs(2);
const MISSING_MAX: usize = 10_000;

/// What a request needs to know about its tenant.
#[derive(Debug)]
pub struct TenantInfo {
    pub id: TenantId,
    pub slug: TenantSlug,
    pub name: String,
    pub created_at: i64,
    api_key_hash: Option<[u8; 32]>,
}

impl TenantInfo {
    pub fn default_tenant() -> Self {
        Self {
            id: TenantId::DEFAULT,
            slug: TenantSlug::default_tenant(),
            name: "Default".to_owned(),
            created_at: 0,
            api_key_hash: None,
        }
    }

    fn from_record(record: TenantRecord) -> Self {
        let api_key_hash = record
            .api_key_hash
            .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok());
        Self {
            id: record.tenant.id,
            slug: record.tenant.slug,
            name: record.tenant.name,
            created_at: record.tenant.created_at,
            api_key_hash,
        }
    }

    /// Whether `presented` is this tenant's API key (compared as SHA-256
    /// digests in constant time; a tenant without a key accepts none).
    pub fn api_key_matches(&self, presented: &str) -> bool {
        match &self.api_key_hash {
            Some(stored) => bool::from(hash_api_key(presented).ct_eq(stored)),
            None => false,
        }
    }
}

/// API keys are 256 random bits, so a fast hash is the right one: there is
/// nothing to brute-force, and checking one costs a microsecond, not 50 ms.
pub fn hash_api_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

pub struct TenantDirectory {
    store: Arc<dyn TenantStore>,
    by_slug: RwLock<HashMap<TenantSlug, Arc<TenantInfo>>>,
    missing: Mutex<HashMap<TenantSlug, Instant>>,
    default: Arc<TenantInfo>,
}

impl TenantDirectory {
    pub fn new(store: Arc<dyn TenantStore>) -> Self {
        Self {
            store,
            by_slug: RwLock::new(HashMap::new()),
            missing: Mutex::new(HashMap::new()),
            default: Arc::new(TenantInfo::default_tenant()),
        }
    }

    pub fn default_tenant(&self) -> Arc<TenantInfo> {
        self.default.clone()
    }

    /// The tenant with this slug, from memory or else the store.
    pub async fn by_slug(&self, slug: &TenantSlug) -> Result<Option<Arc<TenantInfo>>, StoreError> {
        if slug.is_default() {
            return Ok(Some(self.default.clone()));
        }
        if let Some(found) = self
            .by_slug
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(slug)
        {
            return Ok(Some(found.clone()));
        }
        {
            let missing = self.missing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if missing.get(slug).is_some_and(|until| *until > Instant::now()) {
                return Ok(None);
            }
        }
        match self.store.tenant_by_slug(slug).await? {
            Some(record) => Ok(Some(self.remember(record))),
            None => {
                let mut missing = self.missing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = Instant::now();
                if missing.len() >= MISSING_MAX {
                    missing.retain(|_, until| *until > now);
                    if missing.len() >= MISSING_MAX {
                        missing.clear();
                    }
                }
                missing.insert(slug.clone(), now + MISSING_TTL);
                Ok(None)
            }
        }
    }

    /// Caches a tenant read from or just written to the store.
    pub fn remember(&self, record: TenantRecord) -> Arc<TenantInfo> {
        let info = Arc::new(TenantInfo::from_record(record));
        self.missing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&info.slug);
        self.by_slug
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(info.slug.clone(), info.clone());
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_store::Tenant;

    #[test]
    fn api_keys_match_only_themselves() {
        let record = TenantRecord {
            tenant: Tenant {
                id: TenantId::random(),
                slug: TenantSlug::parse("acme").unwrap(),
                name: "Acme".to_owned(),
                created_at: 1,
            },
            api_key_hash: Some(hash_api_key("tsk_right").to_vec()),
        };
        let info = TenantInfo::from_record(record);
        assert!(info.api_key_matches("tsk_right"));
        assert!(!info.api_key_matches("tsk_wrong"));
        assert!(!info.api_key_matches(""));
        assert!(!TenantInfo::default_tenant().api_key_matches(""));
    }
}
