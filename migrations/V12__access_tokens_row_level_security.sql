-- Access tokens under row-level security, like every table that carries a tenant_id.
--
-- Until now the table was left outside it (a token is found before its tenant is known), so the server
-- role, with no tenant set, could read every tenant's token hashes, kinds and user tokens. Authentication
-- already sets the requested tenant in the same round trip as the token lookup, so the lookup can run
-- under the policy: a tenant's tokens (admin, role, user) are visible and writable only as that tenant; a
-- token of another tenant is simply not found there. The root token belongs to no tenant and works in
-- all of them: it stays readable whatever the tenant, and only `bunker init` (the schema owner) writes it.
ALTER TABLE access_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE access_tokens FORCE ROW LEVEL SECURITY;

CREATE POLICY access_tokens_tenant_isolation ON access_tokens
    USING (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint);

CREATE POLICY access_tokens_root_lookup ON access_tokens FOR SELECT
    USING (tenant_id IS NULL AND kind = 'root');

-- The migrating role is the owner; FORCE holds it to the policies too, so it needs one to store the root.
CREATE POLICY access_tokens_root_by_owner ON access_tokens FOR INSERT TO CURRENT_USER
    WITH CHECK (tenant_id IS NULL AND kind = 'root');
