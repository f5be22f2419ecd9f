-- Key management: where each master key version is wrapped, its second wrapping by the recovery key
-- (split into Shamir shares), and when it was wrapped or retired. No key is ever stored in clear.

-- One row: the installation's id, bound into KMS encryption contexts so that a master key wrapped for one
-- installation cannot be unwrapped in the name of another.
CREATE TABLE installation (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    singleton   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT installation_singleton UNIQUE (singleton),
    CONSTRAINT installation_one_row CHECK (singleton)
);
INSERT INTO installation DEFAULT VALUES;
GRANT SELECT ON installation TO bunker_app;

ALTER TABLE master_keys
    ADD COLUMN wrap_source text NOT NULL DEFAULT 'local',
    ADD COLUMN recovery_wrapped bytea,
    ADD COLUMN wrapped_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN retired_at timestamptz,
    ADD CONSTRAINT master_keys_source CHECK (wrap_source IN ('local', 'kms'));

-- The server re-wraps the master key for SystemGenerateWrappingKey; it never changes the key itself.
GRANT UPDATE (wrapped, wrap_source, wrapped_at) ON master_keys TO bunker_app;

-- Master-key rotation (`bunker keys rotate-master`, run as bunker_app like every key command) adds a
-- version; `bunker keys reencrypt` marks the old one retired once nothing sealed with it remains.
GRANT INSERT ON master_keys TO bunker_app;
GRANT UPDATE (retired_at) ON master_keys TO bunker_app;

-- Re-encryption re-seals audit details under the new master key. The facts of an event (who, what,
-- when) stay immutable for the server; only the sealed details column may be rewritten.
GRANT UPDATE (details) ON audit_events TO bunker_app;
GRANT UPDATE (record) ON user_versions TO bunker_app;
