-- `bunker token rotate-root` replaces the root token's hash in place, as the schema owner (the only role that may
-- write the root token, V12). Access tokens are under FORCE row-level security, so the owner needs a policy for it.
CREATE POLICY access_tokens_root_rotation ON access_tokens FOR UPDATE TO CURRENT_USER
    USING (tenant_id IS NULL AND kind = 'root')
    WITH CHECK (tenant_id IS NULL AND kind = 'root');
