-- Single-use tokens mailed to a user: password reset and email verification.
-- The same table, columns and constraint names as migrations/sqlite.
--
-- Only the SHA-256 of a token is stored, so a copy of the database cannot
-- reset anyone's password. A token is deleted when it is used; every reset
-- token of a user is deleted when the password changes, and every
-- verification token when the email is verified. `expires_at` is unix
-- seconds; expired rows are invisible and purged.
CREATE TABLE account_tokens (
    token_hash bytea  NOT NULL,
    tenant_id  uuid   NOT NULL,
    user_id    uuid   NOT NULL,
    purpose    text   NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    CONSTRAINT account_tokens_pkey PRIMARY KEY (token_hash),
    CONSTRAINT account_tokens_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT account_tokens_purpose_check CHECK (purpose IN ('password_reset', 'email_verification')),
    CONSTRAINT account_tokens_hash_check CHECK (octet_length(token_hash) = 32)
);

-- "Every reset token of this user" when the password changes.
CREATE INDEX account_tokens_user_id_idx ON account_tokens (user_id, purpose);
-- purge_account_tokens.
CREATE INDEX account_tokens_expires_at_idx ON account_tokens (expires_at);
