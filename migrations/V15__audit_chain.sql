-- A verifiable audit trail. Per tenant, a background task (one server at a time, under an advisory lock) links
-- each event, once it is old enough that no transaction writing an earlier one can still be open, into a chain:
-- link n holds the event's id and a keyed MAC (HMAC-SHA256 under the tenant's fingerprint key, which does not
-- rotate with the master key) over link n-1's MAC, the position and the event as written (its id, time, actor,
-- action, target, user and a MAC of its opened details, so that re-encryption leaves the chain valid).
-- `bunker audit verify` recomputes the chain and names every event changed, deleted, inserted or moved before
-- its last link. Writers never touch the chain, so they do not serialize on it.
CREATE TABLE audit_chain (
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    position    bigint NOT NULL,
    event_id    uuid NOT NULL,
    -- The event's time as linked: the chain's order is (occurred_at, event_id).
    occurred_at timestamptz NOT NULL,
    mac         bytea NOT NULL,
    linked_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, position),
    CONSTRAINT audit_chain_event UNIQUE (tenant_id, event_id),
    CONSTRAINT audit_chain_mac_length CHECK (octet_length(mac) = 32)
);

ALTER TABLE audit_chain ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_chain FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_chain_tenant_isolation ON audit_chain
    USING (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint);

-- Append-only for the server, like the events it links.
GRANT SELECT, INSERT ON audit_chain TO bunker_app;

-- The chain walks events in time order.
CREATE INDEX audit_events_chain_order ON audit_events (tenant_id, occurred_at, id);
