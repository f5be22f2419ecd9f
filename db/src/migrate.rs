use tokio_postgres::{Client, GenericClient};

use crate::DbError;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Where the database's schema stands against the migrations built into this binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaStatus {
    /// No migration was ever applied.
    Empty,
    /// Migrations are missing: `bunker migrate` applies them.
    Behind { applied: i32, latest: i32 },
    /// The database was migrated by a newer Bunker that this one cannot serve on.
    Ahead { applied: i32, latest: i32 },
    /// The database was migrated by a newer Bunker whose migrations this one can still serve on
    /// (the schema's `serves_from` is at most `latest`): the previous release, during a rolling
    /// upgrade or after a rollback.
    Newer { applied: i32, latest: i32 },
    /// The schema is current but `bunker init` has not created the root token yet.
    Uninitialized,
    /// Ready to serve.
    Ready,
}

impl SchemaStatus {
    /// `Ok` when the server may serve; otherwise an error naming the command to run.
    pub fn require_ready(self) -> Result<(), DbError> {
        let message = match self {
            SchemaStatus::Ready | SchemaStatus::Newer { .. } => return Ok(()),
            SchemaStatus::Empty | SchemaStatus::Uninitialized => {
                "the database is not initialized: run `bunker init` first".to_owned()
            }
            SchemaStatus::Behind { applied, latest } => format!(
                "the database schema is out of date (version {applied}, this binary needs {latest}): run `bunker migrate`"
            ),
            SchemaStatus::Ahead { applied, latest } => format!(
                "the database schema (version {applied}) is newer than this binary knows ({latest}): upgrade bunker"
            ),
        };
        Err(DbError::Schema(message))
    }
}

/// The version of the newest migration built into this binary.
pub fn latest_version() -> i32 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0)
}

pub(crate) async fn run(client: &mut Client) -> Result<usize, DbError> {
    let report = embedded::migrations::runner().run_async(client).await?;
    Ok(report.applied_migrations().len())
}

pub(crate) async fn schema_status(client: &Client) -> Result<SchemaStatus, DbError> {
    let row = client
        .query_one(
            "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
            &[],
        )
        .await?;
    if !row.get::<_, bool>(0) {
        return Ok(SchemaStatus::Empty);
    }
    let applied: Option<i32> = client
        .query_one("SELECT max(version) FROM refinery_schema_history", &[])
        .await?
        .get(0);
    let latest = latest_version();
    let status = match applied {
        None => SchemaStatus::Empty,
        Some(applied) if applied < latest => SchemaStatus::Behind { applied, latest },
        Some(applied) if applied > latest => {
            let serves = serves_from(client)
                .await?
                .is_some_and(|from| from <= latest);
            if serves && has_root_token(client).await? {
                SchemaStatus::Newer { applied, latest }
            } else {
                SchemaStatus::Ahead { applied, latest }
            }
        }
        Some(_) => {
            if has_root_token(client).await? {
                SchemaStatus::Ready
            } else {
                SchemaStatus::Uninitialized
            }
        }
    };
    Ok(status)
}

/// The oldest migration whose binaries may serve on this schema (migrations/V25); None before it.
async fn serves_from(client: &Client) -> Result<Option<i32>, DbError> {
    let row = client
        .query_one(
            "SELECT to_regclass('schema_compatibility') IS NOT NULL",
            &[],
        )
        .await?;
    if !row.get::<_, bool>(0) {
        return Ok(None);
    }
    Ok(client
        .query_opt("SELECT serves_from FROM schema_compatibility", &[])
        .await?
        .map(|row| row.get(0)))
}

/// Whether `bunker init` has run: the installation has its root token.
pub(crate) async fn has_root_token<C: GenericClient>(client: &C) -> Result<bool, DbError> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM access_tokens WHERE kind = 'root')",
            &[],
        )
        .await?
        .try_get(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Statements after which the previous release's binaries may no longer serve: they remove or
    /// retype what those binaries read, or refuse what they write.
    const BREAKING: &[&str] = &[
        "drop table",
        "drop column",
        "drop view",
        "drop function",
        "drop type",
        " rename ",
        "set not null",
        "drop default",
        "add constraint",
        "alter column",
    ];

    /// Whether a migration's SQL holds a statement that [`BREAKING`] names without saying what it does
    /// to the previous binaries: raising `serves_from` (`UPDATE schema_compatibility`), or a comment
    /// `-- serves-previous: <why>` saying they still serve on it. A new `NOT NULL` column with no
    /// default counts as breaking too (the previous binaries' inserts would fail).
    fn undeclared_break(sql: &str) -> Option<String> {
        let lower = sql.to_lowercase();
        if lower.contains("update schema_compatibility") || lower.contains("-- serves-previous:") {
            return None;
        }
        let code: String = lower
            .lines()
            .map(|line| line.split("--").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(" ");
        code.split(';').find_map(|statement| {
            let statement = statement.split_whitespace().collect::<Vec<_>>().join(" ");
            let new_required = statement.contains("add column")
                && statement.contains("not null")
                && !statement.contains("default");
            (new_required || BREAKING.iter().any(|word| statement.contains(word)))
                .then_some(statement)
        })
    }

    #[test]
    fn a_migration_that_could_break_the_previous_release_says_so() {
        let breaking = [
            "ALTER TABLE users DROP COLUMN record;",
            "ALTER TABLE users RENAME COLUMN record TO sealed;",
            "ALTER TABLE users ALTER COLUMN record TYPE text;",
            "ALTER TABLE users\n    ALTER COLUMN login SET NOT NULL;",
            "ALTER TABLE tenants ADD COLUMN region text NOT NULL;",
            "ALTER TABLE tenants ADD CONSTRAINT short CHECK (length(name) < 9);",
            "DROP TABLE old;",
        ];
        for sql in breaking {
            assert!(undeclared_break(sql).is_some(), "{sql}");
            let raised = format!("{sql}\nUPDATE schema_compatibility SET serves_from = 26;");
            assert!(undeclared_break(&raised).is_none(), "{raised}");
            let argued = format!("-- serves-previous: they never read it\n{sql}");
            assert!(undeclared_break(&argued).is_none(), "{argued}");
        }
        let additive = [
            "CREATE TABLE things (tenant_id bigint NOT NULL, id bigint);",
            "ALTER TABLE tenants ADD COLUMN region text NOT NULL DEFAULT 'eu';",
            "ALTER TABLE tenants ADD COLUMN note text CONSTRAINT short CHECK (length(note) < 9);",
            "CREATE INDEX things_id ON things (id); -- drop table in a comment",
            "GRANT SELECT ON things TO bunker_app;",
        ];
        for sql in additive {
            assert_eq!(undeclared_break(sql), None, "{sql}");
        }
    }

    /// Every migration after V25 (the first release that reads `serves_from`) either only adds
    /// or says what it does to the release before it.
    #[test]
    fn every_migration_since_v25_declares_whether_the_previous_release_serves_on_it() {
        for migration in embedded::migrations::runner().get_migrations() {
            if migration.version() <= 25 {
                continue;
            }
            let sql = migration.sql().unwrap_or_default();
            assert_eq!(
                undeclared_break(sql),
                None,
                "V{}__{}: raise schema_compatibility.serves_from, or argue `-- serves-previous:`",
                migration.version(),
                migration.name()
            );
        }
    }
}
