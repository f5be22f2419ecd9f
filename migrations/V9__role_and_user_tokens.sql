-- Role and user access tokens (XTokenCreateForRole, XTokenCreateForUser). Like every access token they
-- are stored only as SHA-256 hashes, in the control plane (a token is resolved before its tenant is
-- known), and belong to one tenant. Unlike root and tenant admin tokens they expire: `expires_at` is
-- when the token stops working; a token with `sliding_seconds` has it pushed forward on every use,
-- never past `final_at`.
ALTER TABLE access_tokens DROP CONSTRAINT access_tokens_kind;
ALTER TABLE access_tokens
    ADD CONSTRAINT access_tokens_kind CHECK (kind IN ('root', 'tenant_admin', 'role', 'user'));

ALTER TABLE access_tokens
    -- A role token acts as this role; its policies decide what it may do.
    ADD COLUMN role_id         bigint REFERENCES roles (id) ON DELETE CASCADE,
    -- A user token acts as this user (of `tenant_id`): its own record, and what the policies of the
    -- roles the user holds in groups grant. Forget-me deletes the user's tokens.
    ADD COLUMN user_token      uuid,
    ADD COLUMN sliding_seconds bigint,
    ADD COLUMN final_at        timestamptz,
    ADD COLUMN expires_at      timestamptz,
    ADD CONSTRAINT access_tokens_role CHECK ((kind = 'role') = (role_id IS NOT NULL)),
    ADD CONSTRAINT access_tokens_user CHECK ((kind = 'user') = (user_token IS NOT NULL)),
    ADD CONSTRAINT access_tokens_expiry
        CHECK ((kind IN ('role', 'user')) = (expires_at IS NOT NULL AND final_at IS NOT NULL)),
    ADD CONSTRAINT access_tokens_user_fk
        FOREIGN KEY (tenant_id, user_token) REFERENCES users (tenant_id, token) ON DELETE CASCADE;

CREATE INDEX access_tokens_user ON access_tokens (tenant_id, user_token) WHERE user_token IS NOT NULL;
CREATE INDEX access_tokens_expiry ON access_tokens (expires_at) WHERE expires_at IS NOT NULL;

-- The server renews sliding tokens; nothing else of a token ever changes.
GRANT UPDATE (expires_at) ON access_tokens TO bunker_app;
