//! Token commands: TokenCreate, TokenCreateBulk, TokenGet, TokenDelete.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::Deserialize;
use serde_json::Value;

use super::{ApiTags, Done, Status};
use crate::http::error::ApiError;
use crate::http::extract::{Authenticated, JsonBody};
use bunker_services::access::Command;
use bunker_services::core::expiry::Expiry;
use bunker_services::core::limits::check_bulk;
use bunker_services::tokens::format::{FormatOptions, TokenType};
use bunker_services::tokens::TokenSpec;
use bunker_services::Vault;

/// The token commands.
pub struct TokenApi {
    pub vault: Vault,
}

#[derive(Debug, Object, Deserialize)]
pub struct TokenCreateRequest {
    /// `creditcard`, `email`, `uint32`, `uint64`, `unixtime` or `text`.
    tokentype: String,
    /// The value to tokenize.
    record: String,
    /// The same value gets the same token (and restarts its expiry).
    unique: Option<bool>,
    slidingtime: Option<Value>,
    finaltime: Option<Value>,
    /// Cards: keep the last four digits.
    keeplast4: Option<bool>,
    /// Cards: make the token fail the Luhn check.
    luhninvalid: Option<bool>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct TokenCreated {
    status: Status,
    /// The format-preserving token (a UUID for `text`).
    tokenbase: String,
    tokenuuid: String,
}

#[derive(Debug, Object, Deserialize)]
pub struct BulkTokenRecord {
    tokentype: String,
    record: String,
    keeplast4: Option<bool>,
    luhninvalid: Option<bool>,
}

#[derive(Debug, Object, Deserialize)]
pub struct TokenCreateBulkRequest {
    /// Values to tokenize: all of them, or (on any error) none.
    records: Vec<BulkTokenRecord>,
    unique: Option<bool>,
    slidingtime: Option<Value>,
    finaltime: Option<Value>,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct CreatedTokenRow {
    tokenbase: String,
    tokenuuid: String,
    tokentype: String,
    /// The submitted value, so callers can match rows by value.
    record: String,
}

#[derive(Debug, Object)]
pub struct BulkSummary {
    created: i64,
}

#[derive(Debug, Object)]
pub struct TokensCreated {
    status: Status,
    created: Vec<CreatedTokenRow>,
    summary: BulkSummary,
}

#[derive(Debug, Object, Deserialize)]
pub struct TokenHandleRequest {
    /// The `tokenuuid` or the `tokenbase`.
    token: String,
    request_metadata: Option<Value>,
}

#[derive(Debug, Object)]
pub struct TokenView {
    status: Status,
    /// The value behind the token.
    record: String,
    tokentype: String,
    tokenuuid: String,
    tokenbase: String,
    #[oai(skip_serializing_if_is_none)]
    expirationtime: Option<i64>,
}

fn spec(
    tokentype: &str,
    record: String,
    keeplast4: Option<bool>,
    luhninvalid: Option<bool>,
) -> Result<TokenSpec, ApiError> {
    let token_type: TokenType =
        tokentype
            .parse()
            .map_err(|e: bunker_services::tokens::format::FormatError| {
                ApiError::bad_request(e.to_string())
            })?;
    Ok(TokenSpec {
        token_type,
        record,
        options: FormatOptions {
            keep_last4: keeplast4.unwrap_or(false),
            luhn_invalid: luhninvalid.unwrap_or(false),
        },
    })
}

#[OpenApi(tag = "ApiTags::Tokens")]
impl TokenApi {
    /// Replace one sensitive value with a random token of the same shape.
    #[oai(path = "/TokenCreate", method = "post", operation_id = "TokenCreate")]
    async fn token_create(
        &self,
        caller: Authenticated,
        body: JsonBody<TokenCreateRequest>,
    ) -> Result<Json<TokenCreated>, ApiError> {
        let request = body.0;
        let expiry = Expiry::parse(request.slidingtime.as_ref(), request.finaltime.as_ref())?;
        let specs = [spec(
            &request.tokentype,
            request.record,
            request.keeplast4,
            request.luhninvalid,
        )?];
        let tokens = self
            .vault
            .create_tokens(
                &caller.0,
                Command::TokenCreate,
                &specs,
                request.unique.unwrap_or(false),
                expiry,
                request.request_metadata.as_ref(),
            )
            .await?;
        let token = tokens.into_iter().next().ok_or_else(ApiError::internal)?;
        Ok(Json(TokenCreated {
            status: Status::Ok,
            tokenbase: token.base,
            tokenuuid: token.uuid.to_string(),
        }))
    }

    /// Tokenize many values in one transaction: all or none.
    #[oai(
        path = "/TokenCreateBulk",
        method = "post",
        operation_id = "TokenCreateBulk"
    )]
    async fn token_create_bulk(
        &self,
        caller: Authenticated,
        body: JsonBody<TokenCreateBulkRequest>,
    ) -> Result<Json<TokensCreated>, ApiError> {
        let request = body.0;
        check_bulk(request.records.len(), "records")?;
        let expiry = Expiry::parse(request.slidingtime.as_ref(), request.finaltime.as_ref())?;
        let mut specs = Vec::with_capacity(request.records.len());
        for (i, r) in request.records.into_iter().enumerate() {
            specs.push(
                spec(&r.tokentype, r.record, r.keeplast4, r.luhninvalid)
                    .map_err(|e| ApiError::bad_request(format!("records[{i}]: {}", e.message())))?,
            );
        }
        let tokens = self
            .vault
            .create_tokens(
                &caller.0,
                Command::TokenCreateBulk,
                &specs,
                request.unique.unwrap_or(false),
                expiry,
                request.request_metadata.as_ref(),
            )
            .await?;
        let created: Vec<CreatedTokenRow> = tokens
            .into_iter()
            .zip(specs)
            .map(|(token, spec)| CreatedTokenRow {
                tokenbase: token.base,
                tokenuuid: token.uuid.to_string(),
                tokentype: token.token_type.as_str().to_owned(),
                record: spec.record,
            })
            .collect();
        Ok(Json(TokensCreated {
            status: Status::Ok,
            summary: BulkSummary {
                created: created.len() as i64,
            },
            created,
        }))
    }

    /// The value behind a token (by `tokenuuid` or `tokenbase`).
    #[oai(path = "/TokenGet", method = "post", operation_id = "TokenGet")]
    async fn token_get(
        &self,
        caller: Authenticated,
        body: JsonBody<TokenHandleRequest>,
    ) -> Result<Json<TokenView>, ApiError> {
        let request = body.0;
        let token = self
            .vault
            .get_token(&caller.0, &request.token, request.request_metadata)
            .await?;
        Ok(Json(TokenView {
            status: Status::Ok,
            record: token.record,
            tokentype: token.token_type,
            tokenuuid: token.uuid.to_string(),
            tokenbase: token.base,
            expirationtime: token.expirationtime,
        }))
    }

    /// Delete a token: neither handle resolves afterwards.
    #[oai(path = "/TokenDelete", method = "post", operation_id = "TokenDelete")]
    async fn token_delete(
        &self,
        caller: Authenticated,
        body: JsonBody<TokenHandleRequest>,
    ) -> Result<Json<Done>, ApiError> {
        let request = body.0;
        self.vault
            .delete_token(&caller.0, &request.token, request.request_metadata)
            .await?;
        Ok(Json(Done { status: Status::Ok }))
    }
}
