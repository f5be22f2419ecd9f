//! The start-up check that the role tenant work runs as cannot get around row-level security.

use crate::{Database, DbError, APP_ROLE, MAINTENANCE_ROLE};

/// Tables with a `tenant_id` column that are deliberately outside row-level security (the tenants
/// themselves). Every other table with a `tenant_id` column, access tokens included, is a tenant
/// table and must be isolated.
pub const CONTROL_PLANE_TABLES: &[&str] = &["tenants"];

impl Database {
    /// Refuses (with every reason at once) a role that is a superuser, has BYPASSRLS, owns or can
    /// become the owner of a tenant table, or is not `bunker_app`; and a tenant table without ENABLE
    /// and FORCE ROW LEVEL SECURITY and a policy. Checked on a pooled connection, so it sees exactly
    /// the role requests will run as.
    pub async fn check_posture(&self) -> Result<(), DbError> {
        let client = self.pool().get().await?;
        let role = client
            .query_one(
                "SELECT current_user::text, r.rolsuper, r.rolbypassrls,
                        pg_has_role(current_user, $1, 'USAGE')
                   FROM pg_roles r WHERE r.rolname = current_user",
                &[&APP_ROLE],
            )
            .await?;
        let name: String = role.try_get(0)?;
        let mut problems = Vec::new();
        if role.try_get::<_, bool>(1)? {
            problems.push(format!(
                "role {name} is a superuser, and superusers bypass row-level security"
            ));
        }
        if role.try_get::<_, bool>(2)? {
            problems.push(format!(
                "role {name} has BYPASSRLS, which bypasses row-level security"
            ));
        }
        if !role.try_get::<_, bool>(3)? {
            problems.push(format!(
                "role {name} is not a member of {APP_ROLE} and lacks its privileges"
            ));
        }
        // Every role this one can act as (itself, the roles it inherits and the ones it may SET
        // ROLE to, NOINHERIT or not): none may bypass row-level security, rewrite the trail (only
        // re-encryption, as bunker_maintenance, may rewrite sealed audit details or kept
        // versions), TRUNCATE a table (row-level security does not apply to it) or attach
        // triggers to one. Tables are looked for in every schema of the search path, which is
        // where unqualified names resolve.
        let reachable = client
            .query(
                "SELECT r.rolname::text,
                        r.rolsuper OR r.rolbypassrls,
                        r.rolcreaterole OR r.rolreplication
                          OR r.rolname IN ('pg_execute_server_program', 'pg_read_server_files',
                                           'pg_write_server_files'),
                        has_any_column_privilege(r.oid, 'audit_events', 'UPDATE')
                          OR has_table_privilege(r.oid, 'audit_events', 'DELETE')
                          OR has_any_column_privilege(r.oid, 'user_versions', 'UPDATE')
                          OR has_any_column_privilege(r.oid, 'audit_chain', 'UPDATE')
                          OR has_table_privilege(r.oid, 'audit_chain', 'DELETE')
                          OR r.rolname = $1,
                        array(SELECT c.relname::text
                                FROM pg_class c
                                JOIN pg_namespace n ON n.oid = c.relnamespace
                               WHERE c.relkind IN ('r', 'p')
                                 AND n.nspname = ANY (current_schemas(false))
                                 AND (has_table_privilege(r.oid, c.oid, 'TRUNCATE')
                                      OR has_table_privilege(r.oid, c.oid, 'TRIGGER'))
                               ORDER BY 1)
                   FROM pg_roles r
                  WHERE pg_has_role(current_user, r.oid, 'MEMBER')
                  ORDER BY 1",
                &[&MAINTENANCE_ROLE],
            )
            .await?;
        for row in &reachable {
            let role: String = row.try_get(0)?;
            let through = if role == name {
                String::new()
            } else {
                format!(" through role {role}")
            };
            if role != name && row.try_get::<_, bool>(1)? {
                problems.push(format!(
                    "role {name} can act as {role}, which bypasses row-level security"
                ));
            }
            if row.try_get::<_, bool>(2)? {
                problems.push(format!(
                    "role {name} may create roles, replicate the cluster or use the server's files \
                     or programs{through}"
                ));
            }
            if row.try_get::<_, bool>(3)? {
                problems.push(format!(
                    "role {name} may change audit events or kept versions{through} (is it {MAINTENANCE_ROLE}?)"
                ));
            }
            let sweeping: Vec<String> = row.try_get(4)?;
            if !sweeping.is_empty() {
                problems.push(format!(
                    "role {name} may TRUNCATE or add triggers to {}{through}",
                    sweeping.join(", ")
                ));
            }
        }
        // What runs with another role's rights, past row-level security: views (but those that
        // check the invoker) and materialized views it may read, SECURITY DEFINER functions it
        // may call (neither an extension's); owning the database or a schema of the search path
        // (whose tables it could then drop or replace); and a permissive policy that applies to
        // it without naming the tenant (only the root token's lookup, a token's by its holder, and the
        // look-ups of a shared record and of an expiration link by their capabilities may).
        let around: Vec<String> = client
            .query(
                "WITH reachable AS (SELECT oid FROM pg_roles WHERE pg_has_role(current_user, oid, 'MEMBER'))
                 SELECT 'view ' || c.relname
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relkind IN ('v', 'm') AND n.nspname = ANY (current_schemas(false))
                    AND c.relowner NOT IN (SELECT oid FROM reachable)
                    AND NOT (c.relkind = 'v' AND coalesce(array_to_string(c.reloptions, ',')
                             ~* 'security_invoker=(true|on|yes|1)', false))
                    AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                     WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                       AND d.deptype = 'e')
                    AND EXISTS (SELECT 1 FROM reachable r WHERE has_table_privilege(r.oid, c.oid, 'SELECT'))
                 UNION ALL
                 SELECT 'SECURITY DEFINER function ' || n.nspname || '.' || p.proname
                   FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                  WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                    AND p.proowner NOT IN (SELECT oid FROM reachable)
                    AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                     WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                                       AND d.deptype = 'e')
                    AND EXISTS (SELECT 1 FROM reachable r WHERE has_function_privilege(r.oid, p.oid, 'EXECUTE'))
                 UNION ALL
                 SELECT 'owning the database'
                   FROM pg_database db
                  WHERE db.datname = current_database() AND db.datdba IN (SELECT oid FROM reachable)
                 UNION ALL
                 SELECT 'owning schema ' || n.nspname
                   FROM pg_namespace n
                  WHERE n.nspname = ANY (current_schemas(false))
                    AND n.nspowner IN (SELECT oid FROM reachable)
                 UNION ALL
                 SELECT 'policy ' || pol.polname || ' on ' || c.relname
                   FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = ANY (current_schemas(false)) AND pol.polpermissive
                    AND (pol.polroles = '{0}' OR pol.polroles && ARRAY(SELECT oid FROM reachable))
                    AND NOT (c.relname = 'access_tokens' AND pol.polname = 'access_tokens_root_lookup')
                    AND NOT (c.relname = 'shared_records' AND pol.polname = 'shared_records_by_capability')
                    AND NOT (c.relname = 'access_tokens' AND pol.polname = 'access_tokens_by_holder'
                             AND pol.polcmd = 'r'
                             AND pg_get_expr(pol.polqual, pol.polrelid) LIKE '%current_setting(''bunker.token_hash''::text, true)%')
                    AND NOT (c.relname = 'user_expirations' AND pol.polname = 'user_expirations_by_capability'
                             AND pol.polcmd = 'r'
                             AND pg_get_expr(pol.polqual, pol.polrelid) LIKE '%current_setting(''bunker.expiration_link''::text, true)%')
                    AND (coalesce(pg_get_expr(pol.polqual, pol.polrelid), 'bunker.tenant_id')
                           NOT LIKE '%bunker.tenant_id%'
                         OR coalesce(pg_get_expr(pol.polwithcheck, pol.polrelid), 'bunker.tenant_id')
                           NOT LIKE '%bunker.tenant_id%')
                  ORDER BY 1",
                &[],
            )
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        if !around.is_empty() {
            problems.push(format!(
                "role {name} can get around row-level security through {}",
                around.join(", ")
            ));
        }
        let control: Vec<&str> = CONTROL_PLANE_TABLES.to_vec();
        let tables = client
            .query(
                "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity,
                        EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid),
                        pg_has_role(current_user, c.relowner, 'MEMBER')
                   FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relkind IN ('r', 'p')
                    AND n.nspname = ANY (current_schemas(false))
                    AND c.relname <> ALL ($1)
                    AND EXISTS (SELECT 1 FROM pg_attribute a
                                 WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                                   AND NOT a.attisdropped)
                  ORDER BY c.relname",
                &[&control],
            )
            .await?;
        for table in &tables {
            let relname: String = table.try_get(0)?;
            if !table.try_get::<_, bool>(1)? {
                problems.push(format!(
                    "tenant table {relname} does not ENABLE ROW LEVEL SECURITY"
                ));
            }
            if !table.try_get::<_, bool>(2)? {
                problems.push(format!(
                    "tenant table {relname} does not FORCE ROW LEVEL SECURITY"
                ));
            }
            if !table.try_get::<_, bool>(3)? {
                problems.push(format!(
                    "tenant table {relname} has no row-level security policy"
                ));
            }
            if table.try_get::<_, bool>(4)? {
                problems.push(format!(
                    "role {name} owns (or can become the owner of) tenant table {relname}"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(DbError::UnsafeRole(format!(
                "refusing to serve: {}. Give BUNKER_DATABASE_URL the schema owner (Bunker then switches to {APP_ROLE}) \
                 or a login role that is a member of {APP_ROLE} and nothing more",
                problems.join("; ")
            )))
        }
    }
}
