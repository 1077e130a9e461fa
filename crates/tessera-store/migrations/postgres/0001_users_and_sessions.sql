-- Users and their login sessions.
--
-- Conventions (shared with every SQL backend): the same tables, columns and
-- constraint names as migrations/sqlite, so that errors map back to the same
-- rules (`users_email_key` is EmailTaken). Native types here: ids and jtis are
-- `uuid`, times are `bigint` unix seconds, flags are `boolean`.

CREATE TABLE users (
    id             uuid    NOT NULL,
    -- Already trimmed, NFKC-normalized and lowercased by tessera_core::Email,
    -- so a plain (deterministic) unique constraint is the right comparison.
    email          text    NOT NULL,
    email_verified boolean NOT NULL DEFAULT false,
    password_hash  text    NOT NULL,
    first_name     text    NOT NULL,
    last_name      text    NOT NULL,
    role           text    NOT NULL,
    created_at     bigint  NOT NULL,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_email_key UNIQUE (email)
);

-- One row per login (per device). The row holds the refresh token the session
-- accepts now (`current_*`) and the one it replaced (`previous_jti`, at
-- `rotated_at`), which is all that refresh-token reuse detection needs.
CREATE TABLE sessions (
    id                 uuid   NOT NULL,
    user_id            uuid   NOT NULL,
    created_at         bigint NOT NULL,
    last_used_at       bigint NOT NULL,
    -- Always the expiry of the current refresh token.
    expires_at         bigint NOT NULL,
    user_agent         text,
    ip                 text,
    current_jti        uuid   NOT NULL,
    current_access_jti uuid   NOT NULL,
    current_issued_at  bigint NOT NULL,
    previous_jti       uuid,
    rotated_at         bigint,
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT sessions_rotation_check CHECK ((previous_jti IS NULL) = (rotated_at IS NULL))
);

-- "My sessions", logout of others/all, and the cascade from users.
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
-- purge_expired.
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
