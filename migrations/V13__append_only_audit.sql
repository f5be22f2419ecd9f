-- The audit trail is append-only for the server: `bunker_app` may INSERT and SELECT audit events, never UPDATE or
-- DELETE them (V4 let it rewrite the sealed details, for re-encryption). Kept versions of profiles, likewise, are
-- only ever added or pruned, never rewritten.
--
-- Re-encryption after a master-key rotation still re-seals audit details and kept versions (so that an old
-- master-key version can be retired): it alone works as `bunker_maintenance`, a role with bunker_app's
-- privileges (and so its row-level security) plus the right to replace those sealed columns. `bunker keys
-- reencrypt` switches to it from the owner's connection; a server never does, and refuses to serve as a role that
-- could.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bunker_maintenance') THEN
        CREATE ROLE bunker_maintenance NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

GRANT bunker_app TO bunker_maintenance;

DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'bunker_maintenance', 'MEMBER') THEN
        EXECUTE format('GRANT bunker_maintenance TO %I', current_user);
    END IF;
END
$$;

REVOKE UPDATE (details) ON audit_events FROM bunker_app;
REVOKE UPDATE (record) ON user_versions FROM bunker_app;
GRANT UPDATE (details) ON audit_events TO bunker_maintenance;
GRANT UPDATE (record) ON user_versions TO bunker_maintenance;
