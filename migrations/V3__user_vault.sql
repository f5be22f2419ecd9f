-- The encrypted user vault. Nothing personal is stored in clear: profiles and their versions are
-- AES-256-GCM sealed with the tenant's record key (associated data binds each to its tenant, kind and
-- row); lookups go through HMAC-SHA256 blind indexes keyed per tenant.

-- The master key, only ever stored wrapped by the operator's wrapping key. Versioned for rotation.
-- Not tenant data: there is one master key per installation, from which tenant keys are derived.
CREATE TABLE master_keys (
    version     integer PRIMARY KEY,
    wrapped     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT ON master_keys TO bunker_app;

-- One row per user token. Forget-me empties the row (record NULL, forgotten_at set) but keeps it, so
-- the token stays reserved and is never issued again. `version` is the current version number: updates
-- name the version they read in their WHERE clause, so two concurrent updates never silently lose one.
CREATE TABLE users (
    tenant_id       bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    token           uuid NOT NULL,
    record          bytea,
    version         integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- Expiry (not personal): a sliding window renewed on access, and a hard cutoff.
    sliding_seconds bigint,
    final_at        timestamptz,
    expires_at      timestamptz,
    forgotten_at    timestamptz,
    PRIMARY KEY (tenant_id, token),
    CONSTRAINT users_record_or_forgotten CHECK ((record IS NULL) = (forgotten_at IS NOT NULL))
);
CREATE INDEX users_expiry ON users (tenant_id, expires_at) WHERE expires_at IS NOT NULL;

-- Blind indexes: HMAC-SHA256(tenant index key, field || 0 || normalized value). One partial unique index
-- per field makes uniqueness per tenant a database constraint whose name says which field clashed.
CREATE TABLE user_indexes (
    tenant_id   bigint NOT NULL,
    token       uuid NOT NULL,
    field       text NOT NULL,
    hash        bytea NOT NULL,
    PRIMARY KEY (tenant_id, token, field),
    FOREIGN KEY (tenant_id, token) REFERENCES users (tenant_id, token) ON DELETE CASCADE,
    CONSTRAINT user_indexes_field CHECK (field IN ('email', 'phone', 'login', 'custom')),
    CONSTRAINT user_indexes_hash_length CHECK (octet_length(hash) = 32)
);
CREATE UNIQUE INDEX user_index_email ON user_indexes (tenant_id, hash) WHERE field = 'email';
CREATE UNIQUE INDEX user_index_phone ON user_indexes (tenant_id, hash) WHERE field = 'phone';
CREATE UNIQUE INDEX user_index_login ON user_indexes (tenant_id, hash) WHERE field = 'login';
CREATE UNIQUE INDEX user_index_custom ON user_indexes (tenant_id, hash) WHERE field = 'custom';

-- Every kept version of a profile (the current one included), sealed like the record with its version
-- number in the associated data. The server prunes to the configured number kept.
CREATE TABLE user_versions (
    tenant_id   bigint NOT NULL,
    token       uuid NOT NULL,
    version     integer NOT NULL,
    record      bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, token, version),
    FOREIGN KEY (tenant_id, token) REFERENCES users (tenant_id, token) ON DELETE CASCADE
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'user_indexes', 'user_versions'] LOOP
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

GRANT SELECT, INSERT, UPDATE ON users TO bunker_app;
GRANT SELECT, INSERT, DELETE ON user_indexes TO bunker_app;
GRANT SELECT, INSERT, DELETE ON user_versions TO bunker_app;

-- Audit events now also name the user they concern and carry sealed details (sealed with the tenant's
-- audit key; the request metadata and the names of the fields touched, never the values). Events of the
-- expiry sweeper have no token: their actor is 'system'.
ALTER TABLE audit_events ADD COLUMN user_token uuid;
ALTER TABLE audit_events ADD COLUMN details bytea;
ALTER TABLE audit_events ALTER COLUMN actor_token_id DROP NOT NULL;
CREATE INDEX audit_events_user ON audit_events (tenant_id, user_token, occurred_at) WHERE user_token IS NOT NULL;
