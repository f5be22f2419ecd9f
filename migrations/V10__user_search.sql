-- Fuzzy search (UserSearch) over the indexed fields without storing them in clear: for each of a
-- user's email, phone, login and custom values, the set of its trigrams, each replaced by a keyed hash
-- (HMAC-SHA256 with the tenant's index key and the field's name, first 8 bytes). A search hashes the
-- trigrams of what it is given the same way, finds the users sharing the most (GIN index), then opens
-- those few records and ranks them by real similarity.
--
-- What this table reveals to someone holding the database (and nothing else): which users of a tenant
-- share trigrams in a field, e.g. that many e-mail addresses share a domain; never a trigram itself.
CREATE TABLE user_search (
    tenant_id   bigint NOT NULL,
    token       uuid NOT NULL,
    field       text NOT NULL,
    grams       bigint[] NOT NULL,
    PRIMARY KEY (tenant_id, token, field),
    FOREIGN KEY (tenant_id, token) REFERENCES users (tenant_id, token) ON DELETE CASCADE,
    CONSTRAINT user_search_field CHECK (field IN ('email', 'phone', 'login', 'custom'))
);
CREATE INDEX user_search_grams ON user_search USING gin (grams);

ALTER TABLE user_search ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_search FORCE ROW LEVEL SECURITY;
CREATE POLICY user_search_tenant_isolation ON user_search
    USING (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint);
GRANT SELECT, INSERT, DELETE ON user_search TO bunker_app;
