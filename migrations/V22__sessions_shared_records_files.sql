-- Sessions, shared records and the file vault.
--
-- Everything personal here is sealed: with the linked user's own data key (so forget-me, which
-- destroys that key, shreds it wherever a copy is left), or, for a session that names no user, with
-- the tenant's record key. Secrets chosen or handed out by Bunker (session ids, shared-record uuids)
-- are stored only as hashes.

-- A session: a caller-chosen id (stored as an HMAC with the tenant's index key), free-form data
-- sealed (associated data: tenant, kind `session`, the hash in hex). `token` links it to a user when
-- its data names one. Hot rows: one upsert per request of the application; `expires_at` is always
-- set (a session with no expiry asked for lives 30 days from its last write), and the sweeper purges
-- what has passed it.
CREATE TABLE sessions (
    tenant_id        bigint NOT NULL,
    session_hash     bytea NOT NULL,
    token            uuid,
    record           bytea NOT NULL,
    sliding_seconds  bigint,
    final_at         timestamptz,
    expires_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, session_hash),
    FOREIGN KEY (tenant_id, token) REFERENCES users (tenant_id, token) ON DELETE CASCADE
) WITH (fillfactor = 80);
CREATE INDEX sessions_of_user ON sessions (tenant_id, token) WHERE token IS NOT NULL;
CREATE INDEX sessions_expiry ON sessions (tenant_id, expires_at);

-- A shared record: a time-limited view of a user's profile (or of one app's data) restricted to a
-- list of fields, reached by whoever holds its uuid. The uuid (122 random bits) is the capability:
-- only its SHA-256 is kept. What is shared (fields, app name, partner label) is sealed with the
-- user's key (associated data: tenant, kind `shared_record`, the row id); the answer is read from the
-- user's record when it is asked for, so a forgotten user shares nothing.
CREATE TABLE shared_records (
    tenant_id    bigint NOT NULL,
    id           uuid NOT NULL,
    record_hash  bytea NOT NULL UNIQUE,
    token        uuid NOT NULL,
    sealed       bytea NOT NULL,
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, token) REFERENCES users (tenant_id, token) ON DELETE CASCADE,
    CONSTRAINT shared_records_hash_length CHECK (length(record_hash) = 32)
);
CREATE INDEX shared_records_of_user ON shared_records (tenant_id, token);
CREATE INDEX shared_records_expiry ON shared_records (tenant_id, expires_at);

-- A file: its content sealed in chunks with its own random key, in object storage under
-- `tenant/<tenant>/<user token>/<file id>`; the key is stored here wrapped by the user's key, with
-- the filename and media type sealed by it too. `content_hash` (an HMAC of the content's SHA-256
-- with the tenant's index key) finds the same content again for the same user; `name_hash` finds
-- the newest file of a name; tags are kept as HMACs (`tag_hashes`) for look-ups and sealed in `meta`
-- for answers.
CREATE TABLE files (
    tenant_id        bigint NOT NULL,
    id               uuid NOT NULL,
    token            uuid NOT NULL,
    content_hash     bytea NOT NULL,
    name_hash        bytea NOT NULL,
    tag_hashes       bytea[] NOT NULL DEFAULT '{}',
    meta             bytea NOT NULL,
    file_key         bytea NOT NULL,
    size             bigint NOT NULL,
    sliding_seconds  bigint,
    final_at         timestamptz,
    expires_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, token, content_hash),
    FOREIGN KEY (tenant_id, token) REFERENCES users (tenant_id, token) ON DELETE CASCADE,
    CONSTRAINT files_size CHECK (size >= 0),
    CONSTRAINT files_tags CHECK (cardinality(tag_hashes) <= 16)
);
CREATE INDEX files_by_name ON files (tenant_id, token, name_hash, created_at DESC);
CREATE INDEX files_by_tag ON files USING gin (tag_hashes);
CREATE INDEX files_expiry ON files (tenant_id, expires_at) WHERE expires_at IS NOT NULL;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['sessions', 'shared_records', 'files'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY %I ON %I
                 USING (tenant_id = NULLIF(current_setting(''bunker.tenant_id'', true), '''')::bigint)
                 WITH CHECK (tenant_id = NULLIF(current_setting(''bunker.tenant_id'', true), '''')::bigint)',
            t || '_tenant_isolation', t);
    END LOOP;
END
$$;

-- SharedRecordGet is public: it comes with no token and its tenant is the record's, not the one a
-- header names. Its transaction sets `bunker.shared_record` (transaction-local) to the hash of the
-- uuid it was given, with no tenant set; this policy then shows that one row and nothing else, so the
-- server learns the record's tenant, sets it, and goes on under the tenant policy. Holding the uuid is
-- what shows the row: no listing, no other row, no write.
CREATE POLICY shared_records_by_capability ON shared_records FOR SELECT
    USING (record_hash = decode(NULLIF(current_setting('bunker.shared_record', true), ''), 'hex'));

GRANT SELECT, INSERT, UPDATE, DELETE ON sessions TO bunker_app;
GRANT SELECT, INSERT, DELETE ON shared_records TO bunker_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON files TO bunker_app;
