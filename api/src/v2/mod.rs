//! The Databunker Pro `/v2` API: every command is `POST /v2/<Command>` with a JSON body.

pub mod tenants;

use poem_openapi::{Enum, Tags};

/// The groups commands are listed under in the OpenAPI document.
#[derive(Tags)]
pub enum ApiTags {
    /// Tenants: create, read, rename and delete tenants; their admin tokens.
    Tenants,
}

/// The `status` of every successful answer.
#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Status {
    Ok,
}
