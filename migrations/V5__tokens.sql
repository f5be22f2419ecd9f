-- Tokenization: a token stands in for one sensitive value (a card number, an id, a date). Tokens are
-- random; the value itself is sealed with the tenant's token key. Three tables, each hash-partitioned by
-- the key it is looked up by, so that its indexes stay small at hundreds of millions of tokens and each
-- uniqueness constraint can include the partition key:
--   tokens          by token_uuid  : the sealed value, its type and expiry
--   token_handles   by token_base  : the format-preserving token -> token_uuid (unique per tenant)
--   token_unique    by value_hash  : HMAC of the value -> token_uuid, for `unique` tokens (one per value)

CREATE TABLE tokens (
    tenant_id       bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    token_uuid      uuid NOT NULL,
    token_base      text NOT NULL,
    token_type      text NOT NULL,
    record          bytea NOT NULL,
    value_hash      bytea,
    sliding_seconds bigint,
    final_at        timestamptz,
    expires_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, token_uuid),
    CONSTRAINT tokens_type CHECK (token_type IN ('creditcard', 'email', 'uint32', 'uint64', 'unixtime', 'text'))
) PARTITION BY HASH (token_uuid);
CREATE INDEX tokens_expiry ON tokens (tenant_id, expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE token_handles (
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    token_base  text NOT NULL,
    token_uuid  uuid NOT NULL,
    CONSTRAINT token_handles_pkey PRIMARY KEY (tenant_id, token_base)
) PARTITION BY HASH (token_base);
CREATE INDEX token_handles_uuid ON token_handles (tenant_id, token_uuid);

CREATE TABLE token_unique (
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    value_hash  bytea NOT NULL,
    token_uuid  uuid NOT NULL,
    CONSTRAINT token_unique_pkey PRIMARY KEY (tenant_id, value_hash)
) PARTITION BY HASH (value_hash);

-- 16 partitions each; row-level security on the parents (what the server queries) and, in depth, on
-- every partition too (the server has no grant on partitions).
DO $$
DECLARE
    t text;
    p text;
    i int;
    policy text := 'tenant_id = NULLIF(current_setting(''bunker.tenant_id'', true), '''')::bigint';
BEGIN
    FOREACH t IN ARRAY ARRAY['tokens', 'token_handles', 'token_unique'] LOOP
        FOR i IN 0..15 LOOP
            p := format('%s_p%s', t, i);
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES WITH (MODULUS 16, REMAINDER %s)', p, t, i);
            EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', p);
            EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', p);
            EXECUTE format('CREATE POLICY %I ON %I USING (%s) WITH CHECK (%s)', p || '_tenant_isolation', p, policy, policy);
        END LOOP;
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I USING (%s) WITH CHECK (%s)', t || '_tenant_isolation', t, policy, policy);
    END LOOP;
END
$$;

GRANT SELECT, INSERT, DELETE ON tokens, token_handles, token_unique TO bunker_app;
-- Sliding expiry is renewed on reads; re-encryption re-seals the value.
GRANT UPDATE (expires_at, final_at, sliding_seconds, record) ON tokens TO bunker_app;
