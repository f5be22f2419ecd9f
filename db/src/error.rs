use tokio_postgres::error::SqlState;

/// Everything that can go wrong in the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no database connection could be had: {}", pool_cause(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("could not build the connection pool: {0}")]
    PoolBuild(#[from] deadpool_postgres::BuildError),
    #[error("database error: {}", describe(.0))]
    Postgres(tokio_postgres::Error),
    /// A named unique constraint refused a row; the service layer turns the name into a client error.
    #[error("unique constraint {constraint} violated")]
    UniqueViolation { constraint: String },
    #[error("migration failed: {}: {}", .0, migration_cause(.0))]
    Migration(#[from] refinery::Error),
    /// The role the server would run tenant work as is unsafe; the message says why.
    #[error("{0}")]
    UnsafeRole(String),
    /// The schema is missing, behind or ahead of this binary; the message names the command to run.
    #[error("{0}")]
    Schema(String),
    /// The database was initialized before.
    #[error("the database is already initialized (it has a root token); refusing to initialize it again")]
    AlreadyInitialized,
    /// A transaction's connection was used after the transaction ended (a defect, never expected).
    #[error("the transaction has already ended")]
    TransactionEnded,
    /// The TLS settings of the database URL (`sslmode`, `sslrootcert`) are not usable.
    #[error("database TLS: {0}")]
    Tls(String),
    /// The tenant's requests hold all the connections it may (BUNKER_TENANT_MAX_CONNECTIONS) and
    /// none came free in time.
    #[error("the tenant's requests hold all the database connections it may have")]
    TenantBusy,
}

impl From<tokio_postgres::Error> for DbError {
    fn from(err: tokio_postgres::Error) -> Self {
        if err.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            if let Some(constraint) = err.as_db_error().and_then(|db| db.constraint()) {
                return DbError::UniqueViolation {
                    constraint: constraint.to_owned(),
                };
            }
        }
        DbError::Postgres(err)
    }
}

impl DbError {
    /// Whether the database could not be reached or went away: no connection, a connection lost
    /// mid-request, or a server shutting down or refusing connections. A request that meets it
    /// wrote nothing (its transaction never committed) and may be retried.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Pool(_) => true,
            DbError::Postgres(err) => match err.code() {
                // Connection exceptions; admin, crash or startup shutdown; too many connections.
                Some(code) => {
                    let code = code.code();
                    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
                }
                // No SQLSTATE: unavailable only if the connection closed or failed (I/O).
                None => {
                    err.is_closed()
                        || std::error::Error::source(err).is_some_and(|s| s.is::<std::io::Error>())
                }
            },
            _ => false,
        }
    }

    /// The name of the unique constraint this error reports, if it is a unique violation.
    pub fn violated_constraint(&self) -> Option<&str> {
        match self {
            DbError::UniqueViolation { constraint } => Some(constraint),
            _ => None,
        }
    }
}

/// A PostgreSQL error as the server may log it: the message and SQLSTATE, never the DETAIL (which
/// quotes row values, e.g. the key of a unique violation).
fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        // The driver's own errors (connecting, TLS, I/O) say why only in their causes.
        None => {
            let mut text = err.to_string();
            let mut cause = std::error::Error::source(err);
            while let Some(inner) = cause {
                text.push_str(&format!(": {inner}"));
                cause = inner.source();
            }
            text
        }
    }
}

/// What PostgreSQL said about a failed migration (refinery shows only "db error").
fn migration_cause(err: &refinery::Error) -> String {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(pg) = cause.downcast_ref::<tokio_postgres::Error>() {
            return describe(pg);
        }
        source = cause.source();
    }
    "no further detail".to_owned()
}

fn pool_cause(err: &deadpool_postgres::PoolError) -> String {
    match err {
        deadpool_postgres::PoolError::Backend(pg) => describe(pg),
        other => other.to_string(),
    }
}
