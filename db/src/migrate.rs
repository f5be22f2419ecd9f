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
    /// The database was migrated by a newer Bunker.
    Ahead { applied: i32, latest: i32 },
    /// The schema is current but `bunker init` has not created the root token yet.
    Uninitialized,
    /// Ready to serve.
    Ready,
}

impl SchemaStatus {
    /// `Ok` when the server may serve; otherwise an error naming the command to run.
    pub fn require_ready(self) -> Result<(), DbError> {
        let message = match self {
            SchemaStatus::Ready => return Ok(()),
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
        Some(applied) if applied > latest => SchemaStatus::Ahead { applied, latest },
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
