-- Users and their login sessions.
--
-- Conventions (shared with every SQL backend): ids and jtis are canonical
-- hyphenated UUID text, times are INTEGER unix seconds, constraints are named
-- so that errors can be mapped back to them (`users_email_key` is EmailTaken).
-- STRICT tables make SQLite refuse values of the wrong type instead of
-- storing them silently.

CREATE TABLE users (
    id             TEXT    NOT NULL,
    -- Already trimmed and lowercased by tessera_core::Email.
    email          TEXT    NOT NULL,
    email_verified INTEGER NOT NULL DEFAULT 0,
    password_hash  TEXT    NOT NULL,
    first_name     TEXT    NOT NULL,
    last_name      TEXT    NOT NULL,
    role           TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_verified_check CHECK (email_verified IN (0, 1))
) STRICT;

-- One row per login (per device). The row holds the refresh token the session
-- accepts now (`current_*`) and the one it replaced (`previous_jti`, at
-- `rotated_at`), which is all that refresh-token reuse detection needs.
CREATE TABLE sessions (
    id                 TEXT    NOT NULL,
    user_id            TEXT    NOT NULL,
    created_at         INTEGER NOT NULL,
    last_used_at       INTEGER NOT NULL,
    -- Always the expiry of the current refresh token.
    expires_at         INTEGER NOT NULL,
    user_agent         TEXT,
    ip                 TEXT,
    current_jti        TEXT    NOT NULL,
    current_access_jti TEXT    NOT NULL,
    current_issued_at  INTEGER NOT NULL,
    previous_jti       TEXT,
    rotated_at         INTEGER,
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT sessions_rotation_check CHECK ((previous_jti IS NULL) = (rotated_at IS NULL))
) STRICT;

-- "My sessions", logout of others/all, and the cascade from users.
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
-- purge_expired.
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
