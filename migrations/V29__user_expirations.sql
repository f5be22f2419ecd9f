-- The expiration flow of the /v1 API (issue 22; Bunker's /v2 UserExpiration* commands): an admin
-- starts it for a user, with an end and a status; the user is sent two links holding a capability
-- (a version 4 uuid, 122 random bits) to keep their data or to have it deleted now. While the status
-- is 'wait', the sweeper forgets the user at `ends_at`; 'retain' keeps them. Only the SHA-256 of the
-- capability is kept. One flow per user; forgetting the user ends it. Nothing personal is stored.
-- Additive: the previous release serves on it.
CREATE TABLE user_expirations (
    tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    token        uuid NOT NULL,
    -- The row's own id: what the audit trail names when the capability acts (never the capability).
    id           uuid NOT NULL,
    link_hash    bytea NOT NULL UNIQUE,
    status       text NOT NULL CHECK (status IN ('wait', 'retain')),
    ends_at      timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, token),
    FOREIGN KEY (tenant_id, token) REFERENCES users (tenant_id, token) ON DELETE CASCADE,
    CONSTRAINT user_expirations_hash_length CHECK (length(link_hash) = 32)
);
CREATE INDEX user_expirations_due ON user_expirations (tenant_id, ends_at) WHERE status = 'wait';

ALTER TABLE user_expirations ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_expirations FORCE ROW LEVEL SECURITY;
CREATE POLICY user_expirations_tenant_isolation ON user_expirations
    USING (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint);

-- The retain and delete links come with no token and no tenant: as SharedRecordGet's, their look-up
-- sets `bunker.expiration_link` (transaction-local) to the hex SHA-256 of the capability, with no
-- tenant set, and this policy shows that one row and nothing else; the server then goes on under the
-- row's tenant. Holding the capability is what shows its row: no listing, no other row, no write.
CREATE POLICY user_expirations_by_capability ON user_expirations FOR SELECT
    USING (link_hash = decode(NULLIF(current_setting('bunker.expiration_link', true), ''), 'hex'));

GRANT SELECT, INSERT, UPDATE, DELETE ON user_expirations TO bunker_app;
