-- The web portals' sessions (issue 21): a signed-in browser holds a short-lived JWT naming a session;
-- the session row keeps the token the portal acts with (a user's login token, or the admin or role
-- token a DPO signed in with), sealed with the tenant's record key and bound to the row, so the token
-- never reaches the browser. The row is found by the SHA-256 of the session id; a user's sessions go
-- with the user (forget-me). Additive: the previous release serves on it.
CREATE TABLE portal_sessions (
    tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id_hash      bytea NOT NULL,
    -- 'user' (the privacy portal at /) or 'admin' (the DPO portal at /admin).
    kind         text NOT NULL CHECK (kind IN ('user', 'admin')),
    -- The signed-in user, for a user session.
    user_token   uuid,
    token_sealed bytea NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id_hash),
    FOREIGN KEY (tenant_id, user_token) REFERENCES users (tenant_id, token) ON DELETE CASCADE
);
CREATE INDEX portal_sessions_expiry ON portal_sessions (tenant_id, expires_at);

ALTER TABLE portal_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE portal_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY portal_sessions_tenant_isolation ON portal_sessions
    USING (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint);

GRANT SELECT, INSERT, UPDATE, DELETE ON portal_sessions TO bunker_app;
