-- Sessions that ended before their access tokens expired, so that every
-- instance can refuse those tokens (TESSERA_REVOCATION_CHECK=on). The same
-- table, columns and constraint names as migrations/sqlite.
--
-- A row lives until `expires_at` (unix seconds): by then the last access
-- token of its session has expired anyway, and the row is purged. No foreign
-- key: the session itself is gone. `revoked_at` is the database clock in
-- milliseconds, so that instances can ask "what was revoked since" without
-- trusting each other's clocks. Rows are announced with NOTIFY
-- tessera_revocations by the transaction that writes them.
CREATE TABLE revoked_sessions (
    session_id uuid   NOT NULL,
    expires_at bigint NOT NULL,
    revoked_at bigint NOT NULL,
    CONSTRAINT revoked_sessions_pkey PRIMARY KEY (session_id)
);

-- revocations_since (what an instance missed).
CREATE INDEX revoked_sessions_revoked_at_idx ON revoked_sessions (revoked_at);
-- purge_revocations, and the live ones a starting instance loads.
CREATE INDEX revoked_sessions_expires_at_idx ON revoked_sessions (expires_at);
