-- User requests: a change a data subject (or an application for them) asks for, which an admin or a
-- DPO approves or cancels. The proposed change, the request's metadata and a cancellation's reason
-- are sealed with the user's own key (AAD: tenant, kind `request_*`, the request's uuid), so
-- forget-me, which destroys that key, leaves none of them readable; it also cancels what is open.
CREATE TABLE user_requests (
    tenant_id     bigint NOT NULL,
    uuid          uuid NOT NULL,
    token         uuid NOT NULL,
    kind          text NOT NULL,
    appname       text,
    change        bytea,
    metadata      bytea,
    status        text NOT NULL DEFAULT 'open',
    reason        bytea,
    requested_by  uuid NOT NULL,
    decided_by    uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    decided_at    timestamptz,
    PRIMARY KEY (tenant_id, uuid),
    FOREIGN KEY (tenant_id, token) REFERENCES users (tenant_id, token) ON DELETE CASCADE,
    CONSTRAINT user_requests_kind
        CHECK (kind IN ('change-profile', 'patch-profile', 'forget-me', 'change-app-data')),
    CONSTRAINT user_requests_status CHECK (status IN ('open', 'approved', 'cancelled')),
    CONSTRAINT user_requests_app CHECK ((kind = 'change-app-data') = (appname IS NOT NULL)),
    CONSTRAINT user_requests_decided CHECK ((status = 'open') = (decided_at IS NULL))
);
-- One open request per user, kind and app: a second one answers the first's uuid.
CREATE UNIQUE INDEX user_requests_one_open
    ON user_requests (tenant_id, token, kind, (coalesce(appname, ''))) WHERE status = 'open';
CREATE INDEX user_requests_by_user ON user_requests (tenant_id, token, created_at);
CREATE INDEX user_requests_by_status ON user_requests (tenant_id, status, created_at);

ALTER TABLE user_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY user_requests_tenant_isolation ON user_requests
    USING (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint);

GRANT SELECT, INSERT, UPDATE ON user_requests TO bunker_app;
