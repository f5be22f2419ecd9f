-- Passwordless login (issue 21): captchas and one-time codes, each tenant's under row-level
-- security like every tenant table. Nothing here is personal or usable if read: a captcha is kept
-- as the SHA-256 of its id (the capability the page holds) and a keyed hash of its answer; a code as
-- a keyed hash (the tenant's index key) of the user and the code, with its expiry and the failed
-- attempts that lock the identity out.
CREATE TABLE login_captchas (
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id_hash     bytea NOT NULL,
    answer_mac  bytea NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id_hash)
);
CREATE INDEX login_captchas_expiry ON login_captchas (tenant_id, expires_at);

CREATE TABLE login_codes (
    tenant_id    bigint NOT NULL,
    token        uuid NOT NULL,
    -- NULL while locked out with no code waiting.
    code_mac     bytea,
    expires_at   timestamptz NOT NULL,
    failures     integer NOT NULL DEFAULT 0,
    locked_until timestamptz,
    PRIMARY KEY (tenant_id, token),
    FOREIGN KEY (tenant_id, token) REFERENCES users (tenant_id, token) ON DELETE CASCADE
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['login_captchas', 'login_codes'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY %I ON %I
                 USING (tenant_id = NULLIF(current_setting(''bunker.tenant_id'', true), '''')::bigint)
                 WITH CHECK (tenant_id = NULLIF(current_setting(''bunker.tenant_id'', true), '''')::bigint)',
            t || '_tenant_isolation', t);
    END LOOP;
END
$$;

GRANT SELECT, INSERT, DELETE ON login_captchas TO bunker_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON login_codes TO bunker_app;
