-- The default keyring's two signing secrets, sealed by the server
-- (AES-256-GCM under the master key; the store never sees plaintext), shared
-- by every instance that uses this database.
--
-- One row at most: `id` is pinned to 1 by a CHECK, so a second insert is a
-- primary-key conflict, which `INSERT ... ON CONFLICT DO NOTHING` turns into
-- "the first insert wins" (a concurrent insert waits for the first to commit).

CREATE TABLE default_secrets (
    id            smallint NOT NULL DEFAULT 1,
    -- Which master key sealed the two secrets.
    master_key_id text     NOT NULL,
    access        bytea    NOT NULL,
    refresh       bytea    NOT NULL,
    created_at    bigint   NOT NULL,
    CONSTRAINT default_secrets_pkey PRIMARY KEY (id),
    CONSTRAINT default_secrets_single_row_check CHECK (id = 1)
);
