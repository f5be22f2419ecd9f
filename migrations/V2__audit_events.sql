-- The audit trail: the first tenant table, and the pattern every later tenant table follows.
--
-- Tenant-table rules (checked by the server at start, which refuses to serve otherwise):
--   * a `tenant_id` column referencing tenants(id) ON DELETE CASCADE, so TenantDelete removes the
--     tenant's rows in its own transaction;
--   * ENABLE and FORCE ROW LEVEL SECURITY (FORCE so that even the owner is filtered);
--   * a policy whose USING and WITH CHECK compare tenant_id with the transaction-local setting
--     `bunker.tenant_id`. NULLIF maps the '' a session reads once the setting has been used back to
--     NULL, so a connection with no tenant set sees and writes nothing.
CREATE TABLE audit_events (
    id              uuid PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    -- Who acted: 'root' or 'tenant_admin', and the id (never the value) of the access token used.
    actor_kind      text NOT NULL,
    actor_token_id  uuid NOT NULL,
    -- The /v2 command, e.g. 'TenantUpdate'.
    action          text NOT NULL,
    -- What was acted on, e.g. 'tenant:7'. Never personal data in clear.
    target          text NOT NULL
);

CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, occurred_at);

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_events_tenant_isolation ON audit_events
    USING (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint);

-- Append-only for the server: it may record and read events, never change or remove them.
GRANT SELECT, INSERT ON audit_events TO bunker_app;
