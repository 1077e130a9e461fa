-- The default keyring's two signing secrets, sealed by the server
-- (AES-256-GCM under the master key; the store never sees plaintext), shared
-- by every instance that uses this database.
--
-- One row at most: `id` is pinned to 1 by a CHECK, so a second insert is a
-- primary-key conflict, which `INSERT ... ON CONFLICT DO NOTHING` turns into
-- "the first insert wins".

CREATE TABLE default_secrets (
    id            INTEGER NOT NULL DEFAULT 1,
    -- Which master key sealed the two secrets.
    master_key_id TEXT    NOT NULL,
    access        BLOB    NOT NULL,
    refresh       BLOB    NOT NULL,
    created_at    INTEGER NOT NULL,
    CONSTRAINT default_secrets_pkey PRIMARY KEY (id),
    CONSTRAINT default_secrets_single_row_check CHECK (id = 1)
) STRICT;
