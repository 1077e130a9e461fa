-- Sessions that ended before their access tokens expired, so that the
-- instance (and one restarted on the same file) refuses those tokens
-- (TESSERA_REVOCATION_CHECK=on).
--
-- A row lives until `expires_at` (unix seconds): by then the last access
-- token of its session has expired anyway, and the row is purged. No foreign
-- key: the session itself is gone. `revoked_at` is the database clock in
-- milliseconds, so that a server finds what the CLI revoked since it last
-- looked.
CREATE TABLE revoked_sessions (
    session_id TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL,
    CONSTRAINT revoked_sessions_pkey PRIMARY KEY (session_id)
) STRICT;

-- revocations_since (what the server has not seen yet).
CREATE INDEX revoked_sessions_revoked_at_idx ON revoked_sessions (revoked_at);
-- purge_revocations, and the live ones a starting instance loads.
CREATE INDEX revoked_sessions_expires_at_idx ON revoked_sessions (expires_at);
