-- Bulk unlock: every bulk command needs an `unlockuuid` from BulkListUnlock, valid for a short time
-- (60 s by default) and only for the tenant and the access token that asked for it, so that a bulk dump
-- never happens by accident.
CREATE TABLE bulk_unlocks (
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          uuid NOT NULL,
    token_id    uuid NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
ALTER TABLE bulk_unlocks ENABLE ROW LEVEL SECURITY;
ALTER TABLE bulk_unlocks FORCE ROW LEVEL SECURITY;
CREATE POLICY bulk_unlocks_tenant_isolation ON bulk_unlocks
    USING (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint);
GRANT SELECT, INSERT, DELETE ON bulk_unlocks TO bunker_app;
