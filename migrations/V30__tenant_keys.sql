-- Per-tenant keys (issue 23): each tenant gets a random key-encryption key, versioned, stored only
-- wrapped, from which its sealing keys come (see docs/keys.md). `wrapped_by` says what wraps a
-- version: the installation's master key ('master', with the master-key version), or an AWS KMS key
-- the tenant owns ('kms', with its id or ARN). A version is sealed with from `active_from` on: a new
-- version is dated one cache lifetime ahead, so that every server has loaded it (and opens what it
-- seals) before any server seals with it. `opens_master_derived`: the tenant still has values
-- sealed with the keys once derived from the master key (a tenant made before this release), until
-- `bunker keys reencrypt` re-seals them. Deleting the tenant deletes these rows in the same
-- transaction (ON DELETE CASCADE): whatever of the tenant a copy of the database keeps is ciphertext
-- nothing opens once every copy of these rows is gone, or once the tenant's KMS key is.
-- Additive: the previous release serves on it (it seals with the master-derived keys, which stay
-- loaded while `opens_master_derived` is set).
CREATE TABLE tenant_keys (
    tenant_id             bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    version               integer NOT NULL CHECK (version >= 1),
    wrapped               bytea NOT NULL,
    wrapped_by            text NOT NULL CHECK (wrapped_by IN ('master', 'kms')),
    master_version        integer,
    kms_key_id            text,
    active_from           timestamptz NOT NULL DEFAULT now(),
    opens_master_derived  boolean NOT NULL DEFAULT false,
    retired               boolean NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, version),
    CONSTRAINT tenant_keys_wrapping CHECK (
        (wrapped_by = 'master' AND master_version IS NOT NULL AND kms_key_id IS NULL)
        OR (wrapped_by = 'kms' AND master_version IS NULL AND kms_key_id IS NOT NULL
            AND length(kms_key_id) BETWEEN 1 AND 2048))
);

ALTER TABLE tenant_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_keys_tenant_isolation ON tenant_keys
    USING (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint);

-- No DELETE: a version is retired, never removed, except with its tenant.
GRANT SELECT, INSERT, UPDATE ON tenant_keys TO bunker_app;

-- Whether the tenant has had a key of its own (set with its first one, never cleared): such a tenant
-- with no key rows (a restore without them) is refused, never served with master-derived keys.
-- False for the tenants an earlier release made, until `bunker keys reencrypt` gives them a key.
ALTER TABLE tenants ADD COLUMN own_keys boolean NOT NULL DEFAULT false;

-- The longest tenant-key cache lifetime any server of the installation has used
-- (BUNKER_TENANT_KEY_CACHE_SECONDS): a new version is sealed with only after it, so that a server
-- configured to keep keys longer than the one that made the version has loaded it too. Each server
-- raises it at start; it is never lowered.
ALTER TABLE installation ADD COLUMN tenant_key_cache_seconds bigint NOT NULL DEFAULT 0;
GRANT UPDATE (tenant_key_cache_seconds) ON installation TO bunker_app;
