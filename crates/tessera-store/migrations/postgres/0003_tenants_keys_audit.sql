-- Tenants, their signing keys, and an audit log.
--
-- Same tables, columns and constraint names as migrations/sqlite. Every user
-- belongs to a tenant now, and an email is unique per tenant
-- (`users_tenant_email_key` replaces `users_email_key`). Users that existed
-- before go to the default tenant (the nil uuid), which this creates.

CREATE TABLE tenants (
    id           uuid   NOT NULL,
    -- Lowercase ASCII (tessera_core::TenantSlug). "C": ordered bytewise, as
    -- in SQLite, whatever the database's collation.
    slug         text   COLLATE "C" NOT NULL,
    name         text   NOT NULL,
    -- SHA-256 of the tenant's API key.
    api_key_hash bytea,
    created_at   bigint NOT NULL,
    CONSTRAINT tenants_pkey PRIMARY KEY (id),
    CONSTRAINT tenants_slug_key UNIQUE (slug),
    CONSTRAINT tenants_api_key_hash_check CHECK (api_key_hash IS NULL OR octet_length(api_key_hash) = 32)
);

INSERT INTO tenants (id, slug, name, api_key_hash, created_at)
VALUES ('00000000-0000-0000-0000-000000000000', 'default', 'Default', NULL, 0);

-- Existing users go to the default tenant; the default is dropped right away,
-- so every new user names its tenant.
ALTER TABLE users ADD COLUMN tenant_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE users ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE users
    DROP CONSTRAINT users_email_key,
    ADD CONSTRAINT users_tenant_email_key UNIQUE (tenant_id, email),
    ADD CONSTRAINT users_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE;
-- Paging through a tenant's users (revoke_tenant_sessions, counts), and the
-- cascade from tenants.
CREATE INDEX users_tenant_id_idx ON users (tenant_id, id);

-- Each tenant's HMAC signing keys, sealed by the server (AES-256-GCM under
-- the master key `master_key_id`); the store never sees plaintext.
CREATE TABLE tenant_keys (
    kid           text   NOT NULL,
    tenant_id     uuid   NOT NULL,
    kind          text   NOT NULL,
    state         text   NOT NULL,
    master_key_id text   NOT NULL,
    -- Wiped (NULL) when, and only when, the key is revoked.
    sealed        bytea,
    created_at    bigint NOT NULL,
    activated_at  bigint,
    retired_at    bigint,
    -- A retired key verifies tokens until then.
    verify_until  bigint,
    -- Unix milliseconds from the database clock (clock_timestamp()), set by
    -- every insert and update: "which keys changed since".
    changed_at    bigint NOT NULL,
    CONSTRAINT tenant_keys_pkey PRIMARY KEY (kid),
    CONSTRAINT tenant_keys_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    CONSTRAINT tenant_keys_kind_check CHECK (kind IN ('access', 'refresh')),
    CONSTRAINT tenant_keys_state_check CHECK (state IN ('next', 'active', 'retired', 'revoked')),
    CONSTRAINT tenant_keys_sealed_check CHECK ((sealed IS NULL) = (state = 'revoked'))
);

-- At most one active and one next key per tenant and kind.
CREATE UNIQUE INDEX tenant_keys_one_active ON tenant_keys (tenant_id, kind) WHERE state = 'active';
CREATE UNIQUE INDEX tenant_keys_one_next ON tenant_keys (tenant_id, kind) WHERE state = 'next';
-- keys_changed_since.
CREATE INDEX tenant_keys_changed_at_idx ON tenant_keys (changed_at);
-- A tenant's keys, and the cascade from tenants.
CREATE INDEX tenant_keys_tenant_id_idx ON tenant_keys (tenant_id);

-- What happened to a tenant's accounts. No foreign keys to users or
-- sessions: the log outlives them.
CREATE TABLE audit_events (
    id         bigint GENERATED ALWAYS AS IDENTITY,
    tenant_id  uuid   NOT NULL,
    at         bigint NOT NULL,
    -- The event type, e.g. 'login.succeeded'.
    type       text   NOT NULL,
    user_id    uuid,
    session_id uuid,
    ip         text,
    user_agent text,
    -- A JSON object as text, not interpreted by the store.
    detail     text,
    CONSTRAINT audit_events_pkey PRIMARY KEY (id),
    CONSTRAINT audit_events_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
);

-- A tenant's log, newest first, page by page.
CREATE INDEX audit_events_tenant_id_idx ON audit_events (tenant_id, id);
-- prune_audit.
CREATE INDEX audit_events_at_idx ON audit_events (at);
