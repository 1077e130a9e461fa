-- Tenants, their signing keys, and an audit log.
--
-- Same tables, columns and constraint names as migrations/postgres. Every
-- user belongs to a tenant now, and an email is unique per tenant
-- (`users_tenant_email_key` replaces `users_email_key`). Users that existed
-- before go to the default tenant (the nil uuid), which this creates.

CREATE TABLE tenants (
    id           TEXT    NOT NULL,
    -- Lowercase ASCII (tessera_core::TenantSlug); BINARY collation orders it
    -- bytewise, as PostgreSQL's "C" collation does.
    slug         TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    -- SHA-256 of the tenant's API key.
    api_key_hash BLOB,
    created_at   INTEGER NOT NULL,
    CONSTRAINT tenants_pkey PRIMARY KEY (id),
    CONSTRAINT tenants_slug_key UNIQUE (slug),
    CONSTRAINT tenants_api_key_hash_check CHECK (api_key_hash IS NULL OR length(api_key_hash) = 32)
) STRICT;

INSERT INTO tenants (id, slug, name, api_key_hash, created_at)
VALUES ('00000000-0000-0000-0000-000000000000', 'default', 'Default', NULL, 0);

-- SQLite cannot drop a constraint, so `users` is rebuilt, and `sessions`
-- with it. The order matters: with foreign keys on, dropping `users` while
-- `sessions` still references it would delete every session (the implicit
-- DELETE of DROP TABLE cascades). So both new tables are filled first, the
-- old `sessions` goes before the old `users`, and renaming `users_new`
-- rewrites the reference in `sessions_new` to `users`.
CREATE TABLE users_new (
    id             TEXT    NOT NULL,
    email          TEXT    NOT NULL,
    email_verified INTEGER NOT NULL DEFAULT 0,
    password_hash  TEXT    NOT NULL,
    first_name     TEXT    NOT NULL,
    last_name      TEXT    NOT NULL,
    role           TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    tenant_id      TEXT    NOT NULL,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_tenant_email_key UNIQUE (tenant_id, email),
    CONSTRAINT users_email_verified_check CHECK (email_verified IN (0, 1)),
    CONSTRAINT users_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) STRICT;

CREATE TABLE sessions_new (
    id                 TEXT    NOT NULL,
    user_id            TEXT    NOT NULL,
    created_at         INTEGER NOT NULL,
    last_used_at       INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    user_agent         TEXT,
    ip                 TEXT,
    current_jti        TEXT    NOT NULL,
    current_access_jti TEXT    NOT NULL,
    current_issued_at  INTEGER NOT NULL,
    previous_jti       TEXT,
    rotated_at         INTEGER,
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES users_new (id) ON DELETE CASCADE,
    CONSTRAINT sessions_rotation_check CHECK ((previous_jti IS NULL) = (rotated_at IS NULL))
) STRICT;

INSERT INTO users_new
    (id, email, email_verified, password_hash, first_name, last_name, role, created_at, tenant_id)
SELECT id, email, email_verified, password_hash, first_name, last_name, role, created_at,
       '00000000-0000-0000-0000-000000000000'
FROM users;

INSERT INTO sessions_new
    (id, user_id, created_at, last_used_at, expires_at, user_agent, ip,
     current_jti, current_access_jti, current_issued_at, previous_jti, rotated_at)
SELECT id, user_id, created_at, last_used_at, expires_at, user_agent, ip,
       current_jti, current_access_jti, current_issued_at, previous_jti, rotated_at
FROM sessions;

DROP TABLE sessions;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
ALTER TABLE sessions_new RENAME TO sessions;

-- "My sessions", logout of others/all, and the cascade from users.
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
-- purge_expired.
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
-- Paging through a tenant's users (revoke_tenant_sessions, counts), and the
-- cascade from tenants.
CREATE INDEX users_tenant_id_idx ON users (tenant_id, id);

-- Each tenant's HMAC signing keys, sealed by the server (AES-256-GCM under
-- the master key `master_key_id`); the store never sees plaintext.
CREATE TABLE tenant_keys (
    kid           TEXT    NOT NULL,
    tenant_id     TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    master_key_id TEXT    NOT NULL,
    -- Wiped (NULL) when, and only when, the key is revoked.
    sealed        BLOB,
    created_at    INTEGER NOT NULL,
    activated_at  INTEGER,
    retired_at    INTEGER,
    -- A retired key verifies tokens until then.
    verify_until  INTEGER,
    -- Unix milliseconds from the database clock, set by every insert and
    -- update: "which keys changed since".
    changed_at    INTEGER NOT NULL,
    CONSTRAINT tenant_keys_pkey PRIMARY KEY (kid),
    CONSTRAINT tenant_keys_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    CONSTRAINT tenant_keys_kind_check CHECK (kind IN ('access', 'refresh')),
    CONSTRAINT tenant_keys_state_check CHECK (state IN ('next', 'active', 'retired', 'revoked')),
    CONSTRAINT tenant_keys_sealed_check CHECK ((sealed IS NULL) = (state = 'revoked'))
) STRICT;

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
    id         INTEGER CONSTRAINT audit_events_pkey PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    -- The event type, e.g. 'login.succeeded'.
    type       TEXT    NOT NULL,
    user_id    TEXT,
    session_id TEXT,
    ip         TEXT,
    user_agent TEXT,
    -- A JSON object as text, not interpreted by the store.
    detail     TEXT,
    CONSTRAINT audit_events_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) STRICT;

-- A tenant's log, newest first, page by page.
CREATE INDEX audit_events_tenant_id_idx ON audit_events (tenant_id, id);
-- prune_audit.
CREATE INDEX audit_events_at_idx ON audit_events (at);
