-- Usage counters (SystemGetSystemStats), the portals' display configuration (TenantGetUIConf) and
-- profiles kept for restoring (SystemDeleteUserProfiles, SystemRestoreUserProfile).

-- Usage counters, kept by triggers so that the statistics never count the large tables. Each
-- tenant has up to 64 rows (shards); a write adds its change to the shard of its database backend,
-- so concurrent requests on other connections do not wait for one another, and a transaction only
-- ever locks one counter row (no deadlock between counters). The statistics sum a tenant's rows.
-- `users`: live profiles (a forgotten one counts no more; a restored one again); `tokens`: stored
-- tokens; `sessions`: stored sessions (an expired one counts until the sweeper purges it).
CREATE TABLE usage_counters (
    tenant_id  bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    shard      smallint NOT NULL,
    users      bigint NOT NULL DEFAULT 0,
    tokens     bigint NOT NULL DEFAULT 0,
    sessions   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, shard)
) WITH (fillfactor = 50);
ALTER TABLE usage_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_counters FORCE ROW LEVEL SECURITY;
CREATE POLICY usage_counters_tenant_isolation ON usage_counters
    USING (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('bunker.tenant_id', true), '')::bigint);
GRANT SELECT, INSERT, UPDATE ON usage_counters TO bunker_app;

-- Adds to a tenant's counters, as whoever wrote (under the row-level security of that tenant): a
-- plain update of the backend's row (a HOT update: no index changes), its first write inserting
-- it. A tenant being deleted has no counters any more (its rows cascade in the same transaction).
CREATE FUNCTION bunker_count(tenant bigint, d_users bigint, d_tokens bigint, d_sessions bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    s smallint := pg_backend_pid() % 64;
BEGIN
    IF d_users = 0 AND d_tokens = 0 AND d_sessions = 0 THEN
        RETURN;
    END IF;
    UPDATE usage_counters
       SET users = users + d_users, tokens = tokens + d_tokens, sessions = sessions + d_sessions
     WHERE tenant_id = tenant AND shard = s;
    IF NOT FOUND AND EXISTS (SELECT 1 FROM tenants WHERE id = tenant) THEN
        INSERT INTO usage_counters AS c (tenant_id, shard, users, tokens, sessions)
        VALUES (tenant, s, d_users, d_tokens, d_sessions)
        ON CONFLICT (tenant_id, shard) DO UPDATE
            SET users = c.users + EXCLUDED.users,
                tokens = c.tokens + EXCLUDED.tokens,
                sessions = c.sessions + EXCLUDED.sessions;
    END IF;
END
$$;

CREATE FUNCTION bunker_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT tenant_id, count(*) AS n FROM changed GROUP BY tenant_id LOOP
        PERFORM bunker_count(r.tenant_id,
            CASE TG_TABLE_NAME WHEN 'users' THEN r.n ELSE 0 END,
            CASE TG_TABLE_NAME WHEN 'tokens' THEN r.n ELSE 0 END,
            CASE TG_TABLE_NAME WHEN 'sessions' THEN r.n ELSE 0 END);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION bunker_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT tenant_id, count(*) AS n FROM changed GROUP BY tenant_id LOOP
        PERFORM bunker_count(r.tenant_id, 0,
            CASE TG_TABLE_NAME WHEN 'tokens' THEN -r.n ELSE 0 END,
            CASE TG_TABLE_NAME WHEN 'sessions' THEN -r.n ELSE 0 END);
    END LOOP;
    RETURN NULL;
END
$$;

-- A profile forgotten (record emptied) or restored.
CREATE FUNCTION bunker_count_user_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM bunker_count(NEW.tenant_id,
        CASE WHEN NEW.record IS NULL THEN -1 ELSE 1 END, 0, 0);
    RETURN NULL;
END
$$;

CREATE TRIGGER users_counted AFTER INSERT ON users
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION bunker_count_inserted();
CREATE TRIGGER users_record_counted AFTER UPDATE OF record ON users
    FOR EACH ROW WHEN ((OLD.record IS NULL) IS DISTINCT FROM (NEW.record IS NULL))
    EXECUTE FUNCTION bunker_count_user_record();
CREATE TRIGGER tokens_counted AFTER INSERT ON tokens
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION bunker_count_inserted();
CREATE TRIGGER tokens_uncounted AFTER DELETE ON tokens
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION bunker_count_deleted();
CREATE TRIGGER sessions_counted AFTER INSERT ON sessions
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION bunker_count_inserted();
CREATE TRIGGER sessions_uncounted AFTER DELETE ON sessions
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION bunker_count_deleted();

-- What is there already is counted once, tenant by tenant under each tenant's policy (this
-- migration's transaction holds the tables' locks from the triggers' creation, so no write is
-- counted twice or missed).
DO $$
DECLARE
    t bigint;
BEGIN
    FOR t IN SELECT id FROM tenants LOOP
        PERFORM set_config('bunker.tenant_id', t::text, true);
        INSERT INTO usage_counters (tenant_id, shard, users, tokens, sessions)
        VALUES (t, 0,
            (SELECT count(*) FROM users WHERE record IS NOT NULL),
            (SELECT count(*) FROM tokens),
            (SELECT count(*) FROM sessions));
    END LOOP;
    PERFORM set_config('bunker.tenant_id', '', true);
END
$$;

-- The portals' display configuration of a tenant (TenantUpdate `uiconf`, answered by the public
-- TenantGetUIConf): names, links and colours only, checked by the server; never personal data.
ALTER TABLE tenants ADD COLUMN ui_conf jsonb NOT NULL DEFAULT '{}';

-- A profile removed by SystemDeleteUserProfiles is forgotten as by UserDelete (record, indexes,
-- the user's key and with it app data, files, sessions, shared records), except its versions,
-- which are kept (`removed_at` says since when) so that SystemRestoreUserProfile can bring the
-- profile back within the server's restore window (`BUNKER_RESTORE_WINDOW_SECONDS`, applied when
-- asked, so that shortening it shortens the windows running too). The sweeper deletes them after.
ALTER TABLE users ADD COLUMN removed_at timestamptz;
ALTER TABLE users ADD CONSTRAINT users_removed_only_forgotten
    CHECK (removed_at IS NULL OR record IS NULL);
CREATE INDEX users_removed ON users (tenant_id, removed_at) WHERE removed_at IS NOT NULL;
