-- A tenant's webhook for user requests: called when a request is opened, approved or cancelled,
-- with a body naming the event, the user's token and the request's uuid (never personal data),
-- signed with HMAC-SHA256 under the tenant's webhook secret. The secret is stored sealed with the
-- tenant's record key. Deliveries go through an outbox written in the request's own transaction,
-- so one is neither lost by a crash nor sent for a change that rolled back; servers deliver them
-- in the background, retrying with backoff, so a slow or failing receiver never holds a request.
ALTER TABLE tenants ADD COLUMN webhook_url text;
ALTER TABLE tenants ADD COLUMN webhook_secret bytea;
-- Set by root (the operator): may name this machine or a private network (development, an
-- internal receiver). A tenant admin's webhook reaches public addresses only, checked when it is
-- set and again at each connection (whatever its name resolves to then).
ALTER TABLE tenants ADD COLUMN webhook_trusted boolean NOT NULL DEFAULT false;
ALTER TABLE tenants ADD CONSTRAINT tenants_webhook_whole
    CHECK ((webhook_url IS NULL) = (webhook_secret IS NULL));

CREATE TABLE webhook_outbox (
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          uuid NOT NULL,
    body        text NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    next_at     timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (tenant_id, next_at);

ALTER TABLE webhook_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY webhook_outbox_tenant_isolation ON webhook_outbox
    USING (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint);

GRANT SELECT, INSERT, UPDATE, DELETE ON webhook_outbox TO bunker_app;
