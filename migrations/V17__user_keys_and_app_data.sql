-- Per-user data keys and app data.
--
-- Each user gets a random data key the first time something is sealed for them alone (app data, its
-- versions, pending changes). It is stored only wrapped, sealed with the tenant's record key under a
-- label naming the tenant, the kind `user_key` and the user, so a master-key rotation re-seals it like
-- any record. Forget-me sets it to NULL in the same statement that empties the record: from then on,
-- whatever of that user sealed with it is unreadable with any key Bunker holds.
ALTER TABLE users ADD COLUMN data_key bytea;
ALTER TABLE users ADD CONSTRAINT users_forgotten_have_no_key
    CHECK (forgotten_at IS NULL OR data_key IS NULL);

-- A user's app data: one free-form object per application name, sealed with the user's key
-- (associated data: tenant, kind `appdata`, `<token>/<appname>`). App names are not personal (the
-- contract's `^[a-z][a-z0-9_]{1,30}$`) and stay in clear, so a tenant's names can be listed.
-- `version` is the current version; updates name the version they read.
CREATE TABLE app_data (
    tenant_id   bigint NOT NULL,
    token       uuid NOT NULL,
    appname     text NOT NULL,
    record      bytea NOT NULL,
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, token, appname),
    FOREIGN KEY (tenant_id, token) REFERENCES users (tenant_id, token) ON DELETE CASCADE,
    CONSTRAINT app_data_appname CHECK (appname ~ '^[a-z][a-z0-9_]{1,30}$')
);
CREATE INDEX app_data_names ON app_data (tenant_id, appname);

-- Every kept version of an app's data (the current one included), sealed like it with the version in
-- the associated data (`<token>/<appname>/<version>`). The server prunes to the configured number kept.
CREATE TABLE app_data_versions (
    tenant_id   bigint NOT NULL,
    token       uuid NOT NULL,
    appname     text NOT NULL,
    version     integer NOT NULL,
    record      bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, token, appname, version),
    FOREIGN KEY (tenant_id, token) REFERENCES users (tenant_id, token) ON DELETE CASCADE
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['app_data', 'app_data_versions'] LOOP
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

GRANT SELECT, INSERT, UPDATE, DELETE ON app_data TO bunker_app;
GRANT SELECT, INSERT, DELETE ON app_data_versions TO bunker_app;
