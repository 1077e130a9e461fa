-- The administrators' list of a tenant's users pages newest first
-- (UserStore::list_users: created_at, then id, both descending).
CREATE INDEX users_tenant_created_idx ON users (tenant_id, created_at, id);
