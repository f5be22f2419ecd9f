use bunker_db::DbError;

/// Why a request was refused. Messages are safe to show to the client: they never contain what the
/// client sent.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error("Invalid tenant name: use 1 to 63 lowercase letters, digits and inner hyphens")]
    InvalidTenantName,
    #[error("Access denied: the X-Bunker-Token header is missing")]
    MissingToken,
    #[error("Access denied")]
    InvalidToken,
    #[error("Access denied: {0}")]
    Forbidden(&'static str),
    #[error("The tenant was not found")]
    TenantNotFound,
    #[error("Duplicate tenant name")]
    DuplicateTenantName,
    #[error("The access token was not found")]
    TokenNotFound,
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// The new tenant's key could not be made or wrapped (never seen: sealing does not fail).
    #[error("The tenant's key could not be made")]
    KeyFailure,
    #[error(transparent)]
    Database(#[from] DbError),
}
