//! What the operator commands (`tessera tenant ...`, `tessera user ...`,
//! `tessera audit`, `tessera master-key rotate`) do, apart from printing. They work on the
//! stores directly; running instances learn of key changes through
//! notifications (PostgreSQL) or their periodic re-read (within a second on
//! SQLite).

use crate::audit::event;
use crate::config::Config;
use crate::http::admin::{decode_cursor, is_promotion, users_page};
use crate::http::tenants::{mode_name, new_api_key};
use crate::keys::{KeyManager, Lifetimes, RotateOptions};
use crate::master::{replace_key_file, MasterKeys};
use crate::secrets::SecretsSource;
use crate::startup::{master_keys, open_stores, Stores};
use crate::tenants::hash_api_key;
use crate::tokens::unix_now;
use anyhow::Context as _;
use std::sync::Arc;
use tessera_core::{Email, MasterKey, Role, TenantId, TenantName, TenantSlug};
use tessera_store::{
    AuditEvent, Conflict, NewAuditEvent, NewTenant, RoleChange, RotatedKeys, RotationMode, StoreError, StoredKey,
    Tenant, TenantRecord, User,
};
use tessera_token::Algorithm;
use zeroize::Zeroizing;

pub struct Operator {
    config: Config,
    stores: Stores,
    keys: Arc<KeyManager>,
}

/// A tenant operators look at.
pub struct TenantReport {
    pub record: TenantRecord,
    pub users: u64,
    pub keys: Vec<StoredKey>,
    /// Each key's algorithm (sealed with it); `None` once revoked or when
    /// no configured master key opens it.
    pub algorithms: Vec<Option<Algorithm>>,
}

impl Operator {
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        if !config.uses_postgres() {
            crate::secrets::ensure_data_dir(&config.data_dir)?;
        }
        let stores = open_stores(&config).await?;
        let master = master_keys(&config)?;
        let keys = KeyManager::offline(
            master,
            stores.tenants.clone(),
            matches!(config.secrets, SecretsSource::Env { .. }),
            config.keys,
            Lifetimes::of(&config),
        );
        Ok(Self { config, stores, keys })
    }

    /// A tenant with its keys and API key (returned once), without an owner:
    /// the API key administers it, and its users register on its routes.
    pub async fn create_tenant(
        &self,
        name: &str,
        slug: Option<&str>,
        alg: Algorithm,
    ) -> anyhow::Result<(Tenant, String)> {
        let name = TenantName::parse(name).map_err(|e| anyhow::anyhow!("the tenant name {e}"))?;
        let slug = match slug {
            Some(raw) => {
                let slug = TenantSlug::parse(raw).map_err(|e| anyhow::anyhow!("the slug {raw:?} {e}"))?;
                anyhow::ensure!(!slug.is_default(), "the slug `default` is the default tenant's");
                slug
            }
            None => TenantSlug::from_name(name.as_str()),
        };
        let now = unix_now();
        let id = TenantId::random();
        let api_key = new_api_key();
        let tenant = self
            .stores
            .tenants
            .create_tenant(
                NewTenant {
                    id,
                    slug: slug.clone(),
                    name,
                    api_key_hash: Some(hash_api_key(&api_key).to_vec()),
                    created_at: now,
                },
                self.keys.new_tenant_keys_off_runtime(id, alg, now).await?,
                None,
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(Conflict::SlugTaken) => {
                    anyhow::anyhow!("the slug {slug} is taken; choose another with --slug")
                }
                other => anyhow::Error::new(other).context("cannot create the tenant"),
            })?;
        self.append_event(NewAuditEvent {
            tenant: id,
            at: now,
            kind: event::TENANT_CREATED.to_owned(),
            user: None,
            session: None,
            ip: None,
            user_agent: None,
            detail: Some(serde_json::json!({"slug": tenant.slug.as_str(), "by": "cli"}).to_string()),
        })
        .await;
        Ok((tenant, api_key))
    }

    pub async fn list_tenants(&self, after: Option<&str>, limit: u32) -> anyhow::Result<Vec<(Tenant, u64)>> {
        let after = after
            .map(|a| TenantSlug::parse(a).map_err(|e| anyhow::anyhow!("--after {a:?} {e}")))
            .transpose()?;
        let tenants = self.stores.tenants.list_tenants(after.as_ref(), limit).await?;
        let mut out = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            let users = self.stores.tenants.count_users(tenant.id).await?;
            out.push((tenant, users));
        }
        Ok(out)
    }

    pub async fn show_tenant(&self, slug: &str) -> anyhow::Result<TenantReport> {
        let record = self.tenant(slug).await?;
        let users = self.stores.tenants.count_users(record.tenant.id).await?;
        let keys = self.stores.tenants.tenant_keys(record.tenant.id).await?;
        let algorithms = keys.iter().map(|k| self.keys.algorithm_of(k)).collect();
        Ok(TenantReport {
            record,
            users,
            keys,
            algorithms,
        })
    }

    pub async fn rotate_keys(
        &self,
        slug: &str,
        mode: RotationMode,
        alg: Option<Algorithm>,
    ) -> anyhow::Result<RotatedKeys> {
        let tenant = self.tenant(slug).await?.tenant;
        // This command does not know what the servers run with; the
        // default tenant's algorithm is theirs to set.
        if let (true, Some(alg)) = (tenant.id.is_default(), alg) {
            anyhow::bail!(
                "the default tenant signs with the servers' TESSERA_SIGNING_ALG; to sign with {alg}, set \
                 TESSERA_SIGNING_ALG={alg} on every instance and restart them (nobody is logged out)"
            );
        }
        let now = unix_now();
        let options = RotateOptions {
            alg,
            expect_active: None,
            wait_for_publication: true,
        };
        let rotated = self.keys.rotate(tenant.id, mode, now, options).await?;
        if mode == RotationMode::Revoke {
            self.stores.sessions.revoke_tenant_sessions(tenant.id).await?;
        }
        self.append_event(NewAuditEvent {
            tenant: tenant.id,
            at: now,
            kind: event::KEYS_ROTATED.to_owned(),
            user: None,
            session: None,
            ip: None,
            user_agent: None,
            detail: Some(
                serde_json::json!({
                    "mode": mode_name(mode),
                    "by": "cli",
                    "accessKid": rotated.access_kid,
                    "refreshKid": rotated.refresh_kid,
                })
                .to_string(),
            ),
        })
        .await;
        Ok(rotated)
    }

    pub async fn audit(&self, slug: &str, before: Option<i64>, limit: u32) -> anyhow::Result<Vec<AuditEvent>> {
        let tenant = self.tenant(slug).await?.tenant;
        Ok(self.stores.audit.audit_events(tenant.id, before, limit).await?)
    }

    /// Re-seals every stored key under the current master key. On the
    /// embedded default (no `TESSERA_MASTER_KEY`) it first generates the new
    /// key into the data directory, keeping the old one openable until every
    /// key is re-sealed. Returns (re-sealed, left unopenable, new key id).
    pub async fn rotate_master_key(&self) -> anyhow::Result<(u64, u64, String)> {
        let _lock = if self.config.master_key.is_none() && !self.config.uses_postgres() {
            Some(crate::startup::lock_data_dir(&self.config.data_dir, true)?)
        } else {
            None
        };
        let keys = if self.config.master_key.is_some() {
            self.keys.clone()
        } else {
            let old = Zeroizing::new(
                std::fs::read_to_string(self.config.data_dir.join(crate::master::MASTER_KEY_FILE))
                    .context("cannot read the master key file")?,
            );
            let new = Zeroizing::new(MasterKey::generate_base64());
            let mut lines: Vec<&str> = vec![new.as_str()];
            lines.extend(old.lines().map(str::trim).filter(|l| !l.is_empty()));
            replace_key_file(&self.config.data_dir, &lines)?;
            KeyManager::offline(
                MasterKeys::load_or_generate(&self.config.data_dir)?,
                self.stores.tenants.clone(),
                matches!(self.config.secrets, SecretsSource::Env { .. }),
                self.config.keys,
                Lifetimes::of(&self.config),
            )
        };
        let (resealed, stuck) = keys.reseal_all().await?;
        let current = keys.master().current().id().to_owned();
        if self.config.master_key.is_none() && stuck == 0 {
            // Every key opens with the new master key alone now.
            let text = Zeroizing::new(
                std::fs::read_to_string(self.config.data_dir.join(crate::master::MASTER_KEY_FILE))
                    .context("cannot read the master key file")?,
            );
            if let Some(first) = text.lines().map(str::trim).find(|l| !l.is_empty()) {
                replace_key_file(&self.config.data_dir, &[first])?;
            }
        }
        Ok((resealed, stuck, current))
    }

    /// The account with `email` in the tenant `slug`.
    pub async fn user(&self, slug: &str, email: &str) -> anyhow::Result<User> {
        let tenant = self.tenant(slug).await?.tenant;
        let parsed =
            Email::parse_existing(email).map_err(|e| anyhow::anyhow!("{email:?} is not an email address: {e}"))?;
        self.stores
            .users
            .find_user_by_email(tenant.id, &parsed)
            .await?
            .map(|r| r.user)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "tenant {slug} has no account with the email {parsed} (`tessera user list --tenant {slug}` shows them)"
                )
            })
    }

    /// Gives the account `email` of tenant `slug` the role `role`. A change
    /// that is not a promotion ends every session of the user, as the admin
    /// API does. Returns the change and how many sessions ended.
    pub async fn set_role(&self, slug: &str, email: &str, role: &str) -> anyhow::Result<(RoleChange, u64)> {
        let role = Role::parse(role)
            .map_err(|_| anyhow::anyhow!("{role:?} is not a role: use 1 to 32 of a-z, 0-9, _ and -"))?;
        let user = self.user(slug, email).await?;
        if role.is_owner() && user.tenant.is_default() {
            anyhow::bail!(
                "the default tenant has no owner (its keys come from the servers' settings); \
                 make {email} an admin instead: `tessera user set-role {email} admin`"
            );
        }
        let change = match self.stores.users.set_role(user.id, &role).await {
            Ok(Some(change)) => change,
            Ok(None) => anyhow::bail!("the account {email} was deleted meanwhile"),
            Err(StoreError::Conflict(Conflict::LastOwner)) => anyhow::bail!(
                "{email} is the last owner of tenant {slug}; make another user owner first \
                 (`tessera user set-role OTHER-EMAIL owner --tenant {slug}`)"
            ),
            Err(err) => return Err(err.into()),
        };
        if change.previous == role {
            return Ok((change, 0));
        }
        let ended = if is_promotion(&change.previous, &role) {
            0
        } else {
            self.end_all_sessions(&user).await?
        };
        self.append_event(NewAuditEvent {
            tenant: user.tenant,
            at: unix_now(),
            kind: event::ROLE_CHANGED.to_owned(),
            user: None,
            session: None,
            ip: None,
            user_agent: None,
            detail: Some(
                serde_json::json!({
                    "target": user.id.to_string(),
                    "from": change.previous.as_str(),
                    "to": role.as_str(),
                    "by": "cli",
                    "sessionsEnded": ended,
                })
                .to_string(),
            ),
        })
        .await;
        Ok((change, ended))
    }

    /// A page of tenant `slug`'s users, newest first, after the cursor
    /// `before` (a previous page's `next`); and the next page's cursor.
    pub async fn list_users(
        &self,
        slug: &str,
        before: Option<&str>,
        limit: u32,
    ) -> anyhow::Result<(Vec<User>, Option<String>)> {
        let tenant = self.tenant(slug).await?.tenant;
        let before = before
            .map(|raw| {
                decode_cursor(raw)
                    .ok_or_else(|| anyhow::anyhow!("--before {raw:?} is not a cursor this command printed"))
            })
            .transpose()?;
        Ok(users_page(self.stores.users.as_ref(), tenant.id, before, limit).await?)
    }

    /// Ends every session of the account `email` of tenant `slug`; how many.
    pub async fn revoke_sessions(&self, slug: &str, email: &str) -> anyhow::Result<u64> {
        let user = self.user(slug, email).await?;
        let ended = self.end_all_sessions(&user).await?;
        self.append_event(NewAuditEvent {
            tenant: user.tenant,
            at: unix_now(),
            kind: event::SESSION_REVOKED.to_owned(),
            user: None,
            session: None,
            ip: None,
            user_agent: None,
            detail: Some(
                serde_json::json!({"target": user.id.to_string(), "by": "cli", "sessionsEnded": ended}).to_string(),
            ),
        })
        .await;
        Ok(ended)
    }

    /// Ends every session of `user` (`tessera user revoke-sessions`) and
    /// records them as revoked, so that servers running with
    /// `TESSERA_REVOCATION_CHECK=on` refuse their access tokens too: they
    /// hear of it through Redis or PostgreSQL, or read it within a second
    /// on SQLite. Recorded whatever this process's own setting says (it
    /// costs one write), with the lifetime of `TESSERA_ACCESS_TTL` and
    /// `TESSERA_LEEWAY` as given. Returns how many sessions ended.
    ///
    /// With Redis, the clients known to the account are forgotten too, as a
    /// server does; in-memory counters are each server's own, out of reach.
    pub async fn end_all_sessions(&self, user: &User) -> anyhow::Result<u64> {
        let ended = self.stores.sessions.revoke_all_sessions(user.id).await?;
        if let Some(limiter) = &self.stores.rate_limiter {
            crate::ratelimit::forget_known_clients(limiter.as_ref(), user.tenant, &user.email)
                .await
                .context("the sessions have ended, but the account's known clients could not be forgotten")?;
        }
        crate::revocation::record_ended(
            self.stores.revocations.as_ref(),
            &ended,
            crate::revocation::lifetime(&self.config),
            unix_now(),
        )
        .await
        .context("the sessions have ended, but their revocation could not be recorded; run the command again")?;
        Ok(ended.len() as u64)
    }

    async fn tenant(&self, slug: &str) -> anyhow::Result<TenantRecord> {
        let parsed = TenantSlug::parse(slug).map_err(|e| anyhow::anyhow!("the slug {slug:?} {e}"))?;
        self.stores
            .tenants
            .tenant_by_slug(&parsed)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no tenant has the slug {slug} (`tessera tenant list` shows them)"))
    }

    async fn append_event(&self, event: NewAuditEvent) {
        if let Err(err) = self.stores.audit.append_audit(&[event]).await {
            tracing::warn!(error = %err, "could not record the audit event");
        }
    }
}
